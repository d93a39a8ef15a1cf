//! Partition leadership when a broker is fenced or comes back (Kafka's
//! `PartitionChangeBuilder` for broker fencing and unfencing, without unclean election).
//!
//! These run inside [`MetadataImage::apply`](super::MetadataImage::apply), so every node derives
//! the same partition changes from the same broker record: a fence and the leader moves it
//! causes are one committed record, never half applied.
//!
//! Rules, as KRaft's controller applies them:
//! - A fenced broker leaves the ISR of every partition, unless it is the last member (the ISR
//!   never becomes empty: the last in-sync replica is remembered so that it, and only it, may
//!   lead again).
//! - A partition it led gets a new leader: the first replica (preferred order) that is in the
//!   ISR and not fenced; none → no leader (-1), the partition is offline.
//! - A broker that is unfenced or registers again leads every leaderless partition whose ISR
//!   holds it.
//! - Any change bumps the partition epoch; a leader change also bumps the leader epoch.

use super::PartitionMeta;

/// `broker` is fenced: the change to `p`, if any. `fenced(b)`: whether broker `b` is fenced
/// (after this fence).
pub fn on_fence(p: &mut PartitionMeta, broker: i32, fenced: impl Fn(i32) -> bool) -> bool {
    if !p.isr.contains(&broker) && p.leader != broker {
        return false;
    }
    let mut isr = p.isr.clone();
    if isr.len() > 1 {
        isr.retain(|b| *b != broker);
    }
    let leader = match p.leader == broker {
        true => p
            .replicas
            .iter()
            .copied()
            .find(|r| *r != broker && isr.contains(r) && !fenced(*r))
            .unwrap_or(-1),
        false => p.leader,
    };
    change(p, leader, isr)
}

/// `broker` is unfenced or registered again: the change to `p`, if any.
pub fn on_unfence(p: &mut PartitionMeta, broker: i32) -> bool {
    if p.leader != -1 || !p.isr.contains(&broker) || !p.replicas.contains(&broker) {
        return false;
    }
    let isr = p.isr.clone();
    change(p, broker, isr)
}

fn change(p: &mut PartitionMeta, leader: i32, isr: Vec<i32>) -> bool {
    if leader == p.leader && isr == p.isr {
        return false;
    }
    if leader != p.leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.isr = isr;
    p.partition_epoch += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 7,
        }
    }

    #[test]
    fn a_fenced_leader_hands_over_to_the_next_live_in_sync_replica() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        // 2 is fenced too: 3 leads.
        assert!(on_fence(&mut p, 1, |b| b == 1 || b == 2));
        assert_eq!((p.leader, p.isr.clone()), (3, vec![2, 3]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (6, 8));
    }

    #[test]
    fn a_fenced_follower_only_leaves_the_isr() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        assert!(on_fence(&mut p, 3, |b| b == 3));
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (5, 8));
        // Not in the ISR any more: nothing to change.
        assert!(!on_fence(&mut p, 3, |b| b == 3));
    }

    #[test]
    fn the_last_in_sync_replica_stays_and_alone_may_lead_again() {
        let mut p = part(&[1], &[1], 1);
        assert!(on_fence(&mut p, 1, |b| b == 1));
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (-1, vec![1], 6));
        // An out-of-sync replica never leads (no unclean election).
        let mut q = part(&[1, 2], &[1], 1);
        assert!(on_fence(&mut q, 1, |b| b == 1));
        assert_eq!((q.leader, q.isr.clone()), (-1, vec![1]));
        assert!(!on_unfence(&mut q, 2));
        // The last in-sync replica comes back and leads, at a new epoch.
        assert!(on_unfence(&mut q, 1));
        assert_eq!((q.leader, q.leader_epoch), (1, 7));
        assert!(!on_unfence(&mut q, 1));
    }
}
