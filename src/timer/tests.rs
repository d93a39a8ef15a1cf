use super::*;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

// ---------- TimingWheel: edge cases ----------

#[test]
fn empty_wheel() {
    let mut w: TimingWheel<u32> = TimingWheel::new(1, 20, 100);
    assert!(w.is_empty());
    assert_eq!(w.len(), 0);
    assert_eq!(w.next_deadline(), None);
    assert!(w.expire(1_000_000).is_empty());
    assert_eq!(w.now(), 1_000_000);
}

#[test]
fn deadline_in_the_past_fires_at_next_advance() {
    let mut w = TimingWheel::new(10, 8, 1000);
    w.insert(5, 'a'); // long past
    w.insert(1000, 'b'); // exactly now
    assert_eq!(w.len(), 2);
    assert_eq!(w.next_deadline(), Some(1000));
    // Even an advance that does not move the clock fires them.
    assert_eq!(w.expire(1000), vec!['a', 'b']);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn past_deadline_between_tick_and_clock_fires_at_next_advance() {
    // Clock at 105 with 10 ms ticks: level 0's clock is 100; a deadline of 103 is already past.
    let mut w = TimingWheel::new(10, 8, 0);
    w.expire(105);
    w.insert(103, 1);
    assert_eq!(w.expire(106), vec![1]);
}

#[test]
fn exactly_on_tick_boundary() {
    let mut w = TimingWheel::new(10, 8, 0);
    w.insert(30, "on");
    w.insert(31, "after");
    assert_eq!(w.next_deadline(), Some(30));
    assert!(w.expire(29).is_empty());
    assert_eq!(w.expire(30), vec!["on"]);
    // 31 rounds up to 40: not early at 31..39, on time at 40 (within one tick).
    assert!(w.expire(31).is_empty());
    assert!(w.expire(39).is_empty());
    assert_eq!(w.next_deadline(), Some(40));
    assert_eq!(w.expire(40), vec!["after"]);
}

#[test]
fn worked_example_cascade() {
    let mut w = TimingWheel::new(1, 20, 0);
    for d in [5u64, 25, 405, 445] {
        w.insert(d, d);
    }
    assert_eq!(w.levels(), 3);
    assert_eq!(w.next_deadline(), Some(5));
    assert_eq!(w.expire(5), vec![5]);
    assert_eq!(w.next_deadline(), Some(20)); // level-1 bucket holding 25
    assert!(w.expire(20).is_empty());
    assert_eq!(w.next_deadline(), Some(25)); // moved down to level 0
    assert_eq!(w.expire(25), vec![25]);
    assert_eq!(w.next_deadline(), Some(400)); // level-2 bucket holding 405 and 445
    assert!(w.expire(404).is_empty());
    assert_eq!(w.next_deadline(), Some(405));
    assert_eq!(w.expire(405), vec![405]);
    assert_eq!(w.next_deadline(), Some(440));
    assert!(w.expire(444).is_empty());
    assert_eq!(w.expire(445), vec![445]);
    assert!(w.is_empty());
}

#[test]
fn far_future_deadlines_days() {
    let day = 24 * 3600 * 1000u64;
    let mut w = TimingWheel::new(1, 20, 0);
    let deadlines = [3 * day + 17, 3 * day, day, 7 * day + 123_456, 30_000];
    for d in deadlines {
        w.insert(d, d);
    }
    assert!(w.levels() >= 6, "levels: {}", w.levels());
    // Walk the clock in irregular large steps; each task fires at its exact deadline (1 ms tick),
    // so step to each deadline - 1 then to the deadline.
    for d in sorted(deadlines.to_vec()) {
        assert!(w.expire(d - 1).is_empty(), "fired before {d}");
        assert_eq!(w.expire(d), vec![d]);
    }
    assert!(w.is_empty());
    // One big jump fires everything in deadline order.
    for d in deadlines {
        w.insert(w.now() + d, d);
    }
    let now = w.now();
    assert_eq!(w.expire(now + 8 * day), sorted(deadlines.to_vec()));
}

#[test]
fn max_deadline_is_clamped() {
    let mut w = TimingWheel::new(1, 2, 0);
    let id = w.insert(u64::MAX, 1);
    w.insert(MAX_DEADLINE_MS - 1, 2);
    assert!(w.levels() <= 64);
    assert!(w.expire(MAX_DEADLINE_MS - 2).is_empty());
    assert_eq!(w.expire(MAX_DEADLINE_MS - 1), vec![2]);
    assert!(w.contains(id));
    assert_eq!(w.expire(u64::MAX), vec![1]);
}

#[test]
fn cancel_before_and_after_expiry_and_twice() {
    let mut w = TimingWheel::new(1, 20, 0);
    let a = w.insert(10, "a");
    let b = w.insert(10, "b");
    let c = w.insert(500, "c");
    assert!(w.contains(a));
    assert_eq!(w.cancel(a), Some("a"));
    assert!(!w.contains(a));
    assert_eq!(w.cancel(a), None, "cancel twice");
    assert_eq!(w.len(), 2);
    assert_eq!(w.expire(10), vec!["b"]);
    assert_eq!(w.cancel(b), None, "cancel after expiry");
    assert_eq!(w.cancel(c), Some("c"));
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
    assert!(w.expire(10_000).is_empty());
}

#[test]
fn cancelling_earliest_bucket_updates_next_deadline() {
    let mut w = TimingWheel::new(1, 20, 0);
    let a = w.insert(3, 'a');
    let b = w.insert(3, 'b');
    w.insert(7, 'c');
    w.cancel(a);
    assert_eq!(w.next_deadline(), Some(3));
    w.cancel(b);
    assert_eq!(w.next_deadline(), Some(7));
    // Re-filling the emptied bucket with the same expiration works (duplicate queue entries).
    w.insert(3, 'd');
    assert_eq!(w.next_deadline(), Some(3));
    assert_eq!(w.expire(10), vec!['d', 'c']);
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn stale_id_never_cancels_reused_slot() {
    let mut w = TimingWheel::new(1, 20, 0);
    let a = w.insert(10, 1);
    assert_eq!(w.cancel(a), Some(1));
    let b = w.insert(10, 2); // reuses a's slot
    assert_ne!(a, b);
    assert_eq!(w.cancel(a), None);
    assert!(w.contains(b));
    assert_eq!(w.expire(10), vec![2]);
    // After firing, the slot is reused again; neither old id touches the new task.
    let c = w.insert(20, 3);
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.cancel(b), None);
    assert_eq!(w.cancel(c), Some(3));
}

#[test]
fn many_tasks_in_one_bucket_fire_in_insertion_order() {
    let mut w = TimingWheel::new(5, 16, 0);
    let ids: Vec<_> = (0..10_000u64).map(|i| w.insert(1001 + i % 4, i)).collect();
    // All round up to 1005: one bucket.
    for (i, id) in ids.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(w.cancel(*id), Some(i as u64));
        }
    }
    assert!(w.expire(1004).is_empty());
    let fired = w.expire(1005);
    let expected: Vec<u64> = (0..10_000).filter(|i| i % 3 != 0).collect();
    assert_eq!(fired, expected);
}

#[test]
fn clock_never_goes_back() {
    let mut w = TimingWheel::new(1, 4, 0);
    w.expire(100);
    w.insert(150, 1);
    assert!(w.expire(50).is_empty());
    assert_eq!(w.now(), 100);
    w.insert(90, 2); // past relative to the clock
    assert_eq!(w.expire(60), vec![2]);
    assert_eq!(w.expire(150), vec![1]);
}

#[test]
fn payloads_are_dropped_with_the_wheel() {
    let rc = Rc::new(());
    {
        let mut w = TimingWheel::new(1, 8, 0);
        for d in 0..100 {
            w.insert(d * 37, rc.clone());
        }
        assert_eq!(Rc::strong_count(&rc), 101);
        let fired = w.expire(500);
        drop(fired);
        assert!(Rc::strong_count(&rc) < 101);
    }
    assert_eq!(Rc::strong_count(&rc), 1);
}

#[test]
fn advance_callback_counts() {
    let mut w = TimingWheel::new(2, 3, 0);
    for d in 0..50u64 {
        w.insert(d * 3, d);
    }
    let mut seen = Vec::new();
    let n = w.advance(60, &mut |d| seen.push(d));
    assert_eq!(n, seen.len());
    assert_eq!(seen, (0..=20).collect::<Vec<_>>());
    assert_eq!(w.len(), 29);
}

// ---------- TimingWheel: randomized test against an oracle ----------

/// SplitMix64: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

struct Pending {
    deadline: u64,
    /// The clock when inserted: a deadline not after it is due at the next advance.
    inserted_at: u64,
}

fn run_oracle(seed: u64, ops: usize) {
    let mut rng = Rng(seed);
    let tick = rng.pick(&[1u64, 1, 2, 3, 7, 10, 1000]);
    let wheel_size = rng.pick(&[2usize, 3, 4, 8, 20, 64, 512]);
    let start = rng.pick(&[0u64, 1, 999, 1_700_000_000_123]);
    let ctx = format!("seed {seed} tick {tick} wheel_size {wheel_size} start {start}");
    let mut w: TimingWheel<u64> = TimingWheel::new(tick, wheel_size, start);
    let mut now = start;
    let mut next_key = 0u64;
    // key -> task; the oracle's view of what is pending.
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut by_deadline: BTreeMap<(u64, u64), ()> = BTreeMap::new();
    let mut ids: Vec<(TimerId, u64)> = Vec::new();
    let span = tick * wheel_size as u64;

    for _ in 0..ops {
        match rng.below(10) {
            0..=4 => {
                let delta = match rng.below(6) {
                    0 => rng.below(3 * tick + 1),
                    1 => rng.below(span + 1),
                    2 => rng.below(span * wheel_size as u64 * 3 + 1),
                    3 => rng.below(5 * 24 * 3600 * 1000), // up to 5 days
                    4 => 0,
                    _ => rng.below(100),
                };
                let deadline = if rng.below(10) == 0 {
                    now.saturating_sub(rng.below(50)) // in the past
                } else {
                    now + delta
                };
                let key = next_key;
                next_key += 1;
                let id = w.insert(deadline, key);
                ids.push((id, key));
                pending.insert(
                    key,
                    Pending {
                        deadline,
                        inserted_at: now,
                    },
                );
                by_deadline.insert((deadline, key), ());
            }
            5..=6 => {
                if ids.is_empty() {
                    continue;
                }
                // Any id ever issued: pending, fired, cancelled, possibly slot-reused.
                let i = rng.below(ids.len() as u64) as usize;
                let (id, key) = ids[i];
                let got = w.cancel(id);
                match pending.remove(&key) {
                    Some(p) => {
                        assert_eq!(got, Some(key), "{ctx}: cancel of pending task");
                        by_deadline.remove(&(p.deadline, key));
                    }
                    None => assert_eq!(got, None, "{ctx}: cancel of fired/cancelled task"),
                }
            }
            _ => {
                let step = match rng.below(5) {
                    0 => 0,
                    1 => rng.below(tick + 1),
                    2 => rng.below(span + 1),
                    3 => rng.below(span * wheel_size as u64 * 2 + 1),
                    _ => rng.below(2 * 24 * 3600 * 1000),
                };
                now += step;
                let fired = w.expire(now);
                let mut fired_set = std::collections::HashSet::new();
                // Order: the already-due tasks first, then by deadline rounded up to the tick.
                let mut last_order = (0u8, 0u64);
                for key in &fired {
                    assert!(fired_set.insert(*key), "{ctx}: {key} fired twice");
                    let p = pending
                        .remove(key)
                        .unwrap_or_else(|| panic!("{ctx}: {key} fired but not pending"));
                    by_deadline.remove(&(p.deadline, *key));
                    assert!(p.deadline <= now, "{ctx}: {key} fired early");
                    let order = if p.deadline <= p.inserted_at {
                        (0, 0)
                    } else {
                        (1, p.deadline.div_ceil(tick) * tick)
                    };
                    assert!(order >= last_order, "{ctx}: {key} fired out of order");
                    last_order = order;
                }
                // Everything left must not be due yet: within-one-tick bound, exact semantics.
                for (&(deadline, key), _) in by_deadline.range(..(now.saturating_add(1), 0)) {
                    let p = &pending[&key];
                    let e = deadline.div_ceil(tick) * tick;
                    assert!(
                        deadline > p.inserted_at && e > now,
                        "{ctx}: {key} (deadline {deadline}) still pending at {now}"
                    );
                    assert!(deadline + tick > now, "{ctx}: {key} late by a tick or more");
                }
                assert_eq!(w.now(), now);
                match w.next_deadline() {
                    None => assert!(pending.is_empty(), "{ctx}: next_deadline None"),
                    Some(nd) => {
                        assert!(nd > now, "{ctx}: next_deadline {nd} <= now {now}");
                        let min = by_deadline
                            .keys()
                            .next()
                            .map(|(d, _)| d.div_ceil(tick) * tick);
                        assert!(min.is_some_and(|m| nd <= m), "{ctx}: {nd} > {min:?}");
                    }
                }
            }
        }
        assert_eq!(w.len(), pending.len(), "{ctx}: len");
    }
    // Drain: everything left fires exactly once, at its deadline rounded up to the tick.
    let keys: Vec<(u64, u64)> = by_deadline.keys().copied().collect();
    for (deadline, key) in keys {
        if !pending.contains_key(&key) {
            continue;
        }
        let e = deadline.div_ceil(tick) * tick;
        for t in [e.saturating_sub(1).max(now), e.max(now)] {
            now = t;
            for k in w.expire(now) {
                let p = pending
                    .remove(&k)
                    .unwrap_or_else(|| panic!("{ctx}: drain: {k} not pending"));
                assert!(p.deadline <= now, "{ctx}: drain: {k} fired early");
            }
        }
        assert!(
            !pending.contains_key(&key),
            "{ctx}: {key} not fired by {now}"
        );
    }
    assert!(pending.is_empty());
    assert!(w.is_empty(), "{ctx}");
    assert_eq!(w.next_deadline(), None, "{ctx}");
}

#[test]
fn randomized_against_oracle() {
    for seed in 0..400 {
        run_oracle(seed, 600);
    }
}

#[test]
fn randomized_against_oracle_long() {
    for seed in 1000..1008 {
        run_oracle(seed, 30_000);
    }
}

// ---------- Timer driver ----------

fn elapsed_ms(start: std::time::Instant) -> u128 {
    start.elapsed().as_millis()
}

#[test]
fn driver_fires_callbacks_in_order_and_not_early() {
    crate::runtime::file::run_local(async {
        let timer = Timer::new(1, 20);
        let log = Rc::new(RefCell::new(Vec::new()));
        let t0 = timer.now_ms();
        for (delay, tag) in [(30u64, 'c'), (10, 'a'), (20, 'b')] {
            let log = log.clone();
            timer.schedule_after(delay, move || {
                log.borrow_mut().push((tag, crate::runtime::monotonic_ms()))
            });
        }
        assert_eq!(timer.len(), 3);
        timer.sleep(60).await;
        let log = log.borrow();
        assert_eq!(log.iter().map(|(t, _)| *t).collect::<String>(), "abc");
        for ((_, at), delay) in log.iter().zip([10u64, 20, 30]) {
            assert!(*at >= t0 + delay, "fired early");
        }
        assert!(timer.is_empty());
    });
}

#[test]
fn driver_wakes_early_for_an_earlier_deadline() {
    crate::runtime::file::run_local(async {
        let timer = Timer::new(1, 20);
        let far = Rc::new(Cell::new(false));
        let f = far.clone();
        timer.schedule_after(10_000, move || f.set(true));
        // Let the background task go to sleep for ~10 s.
        crate::runtime::sleep(std::time::Duration::from_millis(5)).await;
        let start = std::time::Instant::now();
        timer.sleep(20).await;
        let took = elapsed_ms(start);
        assert!((19..1000).contains(&took), "took {took} ms");
        assert!(!far.get());
        assert_eq!(timer.len(), 1);
    });
}

#[test]
fn driver_cancel_and_stale_ids() {
    crate::runtime::file::run_local(async {
        let timer = Timer::new(1, 20);
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        let id = timer.schedule_after(10, move || h.set(h.get() + 1));
        assert!(timer.cancel(id));
        assert!(!timer.cancel(id));
        let h = hits.clone();
        let id2 = timer.schedule_after(10, move || h.set(h.get() + 10));
        timer.sleep(30).await;
        assert_eq!(hits.get(), 10);
        assert!(!timer.cancel(id2), "already fired");
    });
}

#[test]
fn driver_timeout_and_dropped_sleep_cancels() {
    crate::runtime::file::run_local(async {
        let timer = Timer::new(1, 20);
        assert_eq!(timer.timeout(1000, async { 7 }).await, Ok(7));
        assert!(timer.is_empty(), "the timeout's timer is cancelled");
        let start = std::time::Instant::now();
        let r = timer
            .timeout(15, futures_lite::future::pending::<()>())
            .await;
        assert_eq!(r, Err(Elapsed));
        assert!(elapsed_ms(start) >= 14);
        // Nested: inner timeout elapses first.
        let r = timer
            .timeout(1000, timer.timeout(5, timer.sleep(500)))
            .await;
        assert_eq!(r, Ok(Err(Elapsed)));
        assert!(timer.is_empty());
    });
}

#[test]
fn driver_callbacks_can_reschedule() {
    crate::runtime::file::run_local(async {
        let timer = Timer::new(1, 8);
        let count = Rc::new(Cell::new(0u32));
        fn tick(timer: &Timer, count: Rc<Cell<u32>>) {
            let t = timer.clone();
            timer.schedule_after(2, move || {
                count.set(count.get() + 1);
                if count.get() < 5 {
                    tick(&t, count);
                }
            });
        }
        tick(&timer, count.clone());
        timer.sleep(200).await;
        assert_eq!(count.get(), 5);
        // A past deadline runs right away.
        let c = count.clone();
        timer.schedule_at(0, move || c.set(100));
        timer.sleep(5).await;
        assert_eq!(count.get(), 100);
    });
}
