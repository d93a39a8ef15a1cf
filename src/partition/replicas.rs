//! The leader's view of a partition's replicas (Kafka's `Partition` with its `Replica` states
//! on the leader): each follower's log end offset as its fetches report it, when it was last
//! caught up, and from those the high watermark and the ISR changes to ask the controller for.
//!
//! Pure state, no I/O: the partition feeds it follower fetches and the metadata's ISR, and
//! reads back the high watermark and the followers to drop from or add to the ISR.
//!
//! # Invariants
//! - `isr` is a subset of `replicas` and always holds the leader (`me`) while it leads.
//! - The high watermark is the smallest log end offset in the ISR (the leader's own included),
//!   and it does not move while the ISR is smaller than `min.insync.replicas` (KIP-966: an
//!   acknowledged acks=all write must be on at least that many replicas).
//! - A follower counts as caught up at a fetch (Kafka's rule) when it asked for the leader's
//!   log end offset, or for at least the log end offset the leader had at its previous fetch
//!   (then it was caught up as of that previous fetch).

use std::collections::HashMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (the offset it last fetched from); -1 until it fetched.
    pub log_end_offset: i64,
    /// When it was last known caught up with the leader (ms); the leader's start for a new
    /// follower, so a follower gets `replica.lag.time.max.ms` to show up.
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end offset at that fetch.
    last_fetch_leader_end: i64,
}

#[derive(Debug, Clone)]
pub struct ReplicaSet {
    me: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    min_isr: usize,
    followers: HashMap<i32, FollowerState>,
}

impl ReplicaSet {
    /// The replica set of a partition this node (`me`) leads, as the metadata gives it.
    pub fn new(me: i32, replicas: Vec<i32>, isr: Vec<i32>, min_isr: usize, now_ms: i64) -> Self {
        let mut set = ReplicaSet {
            me,
            replicas: Vec::new(),
            isr: Vec::new(),
            min_isr: min_isr.max(1),
            followers: HashMap::new(),
        };
        set.update(replicas, isr, now_ms);
        set
    }

    /// Takes the metadata's replicas and ISR (after a change the controller committed).
    /// Followers that stay keep their state; new ones start unknown, counted caught up as of
    /// `now_ms`.
    pub fn update(&mut self, replicas: Vec<i32>, isr: Vec<i32>, now_ms: i64) {
        self.followers.retain(|id, _| replicas.contains(id));
        for r in replicas.iter().filter(|r| **r != self.me) {
            self.followers.entry(*r).or_insert(FollowerState {
                log_end_offset: -1,
                last_caught_up_ms: now_ms,
                last_fetch_ms: now_ms,
                last_fetch_leader_end: -1,
            });
        }
        self.isr = isr.into_iter().filter(|r| replicas.contains(r)).collect();
        self.replicas = replicas;
    }

    pub fn set_min_isr(&mut self, min_isr: usize) {
        self.min_isr = min_isr.max(1);
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn follower(&self, id: i32) -> Option<FollowerState> {
        self.followers.get(&id).copied()
    }

    /// True if `id` is one of this partition's followers (a replica other than the leader).
    pub fn is_follower(&self, id: i32) -> bool {
        self.followers.contains_key(&id)
    }

    /// A fetch from follower `id` at `fetch_offset` (its log end), when the leader's log ended
    /// at `leader_end`. Returns false (nothing recorded) if `id` is not a follower here.
    pub fn on_follower_fetch(
        &mut self,
        id: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&id) else {
            return false;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_end && f.last_fetch_leader_end >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
        true
    }

    /// The high watermark the ISR allows when the leader's log ends at `leader_end`: the
    /// smallest log end offset in the ISR; `None` while the ISR is smaller than
    /// `min.insync.replicas` (the high watermark then stays where it is).
    pub fn high_watermark(&self, leader_end: i64) -> Option<i64> {
        if self.isr.len() < self.min_isr {
            return None;
        }
        let mut hw = leader_end;
        for id in self.isr.iter().filter(|id| **id != self.me) {
            let end = self.followers.get(id).map_or(-1, |f| f.log_end_offset);
            hw = hw.min(end.max(0));
        }
        Some(hw)
    }

    /// In-sync followers not caught up within `lag_ms` (Kafka's `replica.lag.time.max.ms`):
    /// the ISR shrink to ask the controller for.
    pub fn out_of_sync(&self, now_ms: i64, lag_ms: i64) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .isr
            .iter()
            .filter(|id| **id != self.me)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_some_and(|f| now_ms - f.last_caught_up_ms > lag_ms)
            })
            .copied()
            .collect();
        out.sort();
        out
    }

    /// Followers outside the ISR that have caught up to the high watermark `hw` and to the
    /// start of the current leader epoch (`epoch_start`): the ISR expansion to ask for.
    pub fn caught_up(&self, hw: i64, epoch_start: i64) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .followers
            .iter()
            .filter(|(id, f)| {
                !self.isr.contains(id) && f.log_end_offset >= hw && f.log_end_offset >= epoch_start
            })
            .map(|(id, _)| *id)
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(min_isr: usize) -> ReplicaSet {
        ReplicaSet::new(1, vec![1, 2, 3], vec![1, 2, 3], min_isr, 0)
    }

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_replica() {
        let mut s = three(2);
        // Nobody fetched yet: nothing is on every replica.
        assert_eq!(s.high_watermark(10), Some(0));
        s.on_follower_fetch(2, 10, 10, 5);
        s.on_follower_fetch(3, 4, 10, 5);
        assert_eq!(s.high_watermark(10), Some(4));
        s.on_follower_fetch(3, 10, 12, 6);
        assert_eq!(s.high_watermark(12), Some(10));
        // A stranger's fetch is not recorded.
        assert!(!s.on_follower_fetch(9, 100, 12, 6));
    }

    #[test]
    fn below_min_insync_replicas_the_high_watermark_does_not_move() {
        let mut s = three(2);
        s.on_follower_fetch(2, 8, 8, 1);
        s.update(vec![1, 2, 3], vec![1], 2);
        assert_eq!(s.high_watermark(20), None);
        s.set_min_isr(1);
        assert_eq!(s.high_watermark(20), Some(20));
    }

    #[test]
    fn followers_that_fall_behind_leave_the_isr_and_rejoin_once_caught_up() {
        let mut s = three(1);
        // Follower 2 keeps up; 3 fetches but never reaches the end.
        for t in 1..=10 {
            let end = t * 10;
            s.on_follower_fetch(2, end, end, t * 1000);
            s.on_follower_fetch(3, 5, end, t * 1000);
        }
        assert_eq!(s.out_of_sync(10_000, 30_000), Vec::<i32>::new());
        assert_eq!(s.out_of_sync(31_001, 30_000), vec![3]);
        s.update(vec![1, 2, 3], vec![1, 2], 31_001);
        assert_eq!(s.high_watermark(100), Some(100));
        assert_eq!(s.caught_up(100, 0), Vec::<i32>::new());
        s.on_follower_fetch(3, 100, 100, 32_000);
        assert_eq!(s.caught_up(100, 0), vec![3]);
        // Not past the current epoch's start yet: stays out.
        assert_eq!(s.caught_up(100, 101), Vec::<i32>::new());
    }

    #[test]
    fn a_follower_that_reaches_the_previous_end_was_caught_up_at_the_previous_fetch() {
        let mut s = three(1);
        s.on_follower_fetch(2, 50, 100, 1_000); // behind
        s.on_follower_fetch(2, 100, 150, 2_000); // reached the end the leader had at 1,000
        assert_eq!(s.follower(2).unwrap().last_caught_up_ms, 1_000);
        assert_eq!(s.follower(2).unwrap().log_end_offset, 100);
    }

    #[test]
    fn replicas_leaving_the_assignment_are_forgotten() {
        let mut s = three(1);
        s.on_follower_fetch(3, 7, 7, 1);
        s.update(vec![1, 2], vec![1, 2], 2);
        assert!(s.follower(3).is_none());
        assert_eq!(s.isr(), &[1, 2]);
        assert!(s.is_follower(2) && !s.is_follower(1));
    }
}
