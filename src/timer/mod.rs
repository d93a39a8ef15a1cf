//! Delayed operations: a hierarchical timing wheel (Kafka's `TimingWheel` / `TimerTaskList` /
//! `SystemTimer` design), one per shard, single-threaded, no locks.
//!
//! Users: long-poll Fetch (`fetch.max.wait.ms`), acks=all Produce, group session and rebalance
//! timeouts, request timeouts, delayed-delivery messages. All of them insert far more timers than
//! ever fire (most are cancelled when the operation completes), so insert and cancel are O(1).
//!
//! * [`TimingWheel`] is the data structure, generic over the task payload and driven by an
//!   explicit clock (`advance(now)`), so it is deterministic and testable.
//! * [`Timer`] is the shard-local service: a wheel of callbacks plus a background task that sleeps
//!   until the next deadline, with [`Timer::sleep`] and [`Timer::timeout`] conveniences.
//!
//! # Design
//! Level 0 is an array of `wheel_size` buckets, each spanning `tick_ms`; together they cover
//! `interval = tick_ms * wheel_size` from the level's clock. A deadline beyond that goes to the
//! *overflow wheel*, a level with `wheel_size` buckets of span `interval`, created on demand; and
//! so on, each level `wheel_size` times coarser. A bucket is a doubly-linked list of tasks with
//! one expiration (the start of its span). Non-empty buckets sit in a priority queue ordered by
//! expiration; advancing the clock pops due buckets only, so the clock jumps over empty slots.
//! When a coarse bucket expires its tasks are re-inserted relative to the new clock and fall into
//! finer levels (or fire). Deadlines are first rounded *up* to the tick, so a task never fires
//! early and fires within one tick after its deadline.
//!
//! # Worked example: `tick_ms = 1`, `wheel_size = 20`, clock at 0
//! Level 0 covers `[0, 20)` with 1 ms buckets; level 1 (created on demand) covers `[0, 400)` with
//! 20 ms buckets; level 2 covers `[0, 8000)` with 400 ms buckets.
//!
//! | deadline | inserted into            | bucket expiration | cascade                                                 |
//! |----------|--------------------------|-------------------|---------------------------------------------------------|
//! | 5        | level 0, bucket 5        | 5                 | fires at `advance(5)`                                   |
//! | 25       | level 1, bucket 25/20=1  | 20                | at 20 → level 0 bucket 25%20=5 (exp. 25); fires at 25  |
//! | 405      | level 2, bucket 405/400=1| 400               | at 400 → level 0 bucket 5 (exp. 405, as 405 < 400+20)   |
//! | 445      | level 2, bucket 1        | 400               | at 400 → level 1 bucket 445/20%20=2 (exp. 440); at 440 → level 0 bucket 5 (exp. 445) |
//!
//! Level-0 bucket 5 is reused for expirations 5, 25, 405 and 445, but never at the same time: a
//! level only holds expirations within one interval of its clock. `advance(1000)` in one call pops
//! only the buckets 5, 20, 25, 400, 405, 440, 445 (in that order), never the empty ones.
//!
//! ```
//! use shardlog::timer::TimingWheel;
//! let mut w = TimingWheel::new(1, 20, 0);
//! for d in [5, 25, 405, 445] {
//!     w.insert(d, d);
//! }
//! assert_eq!(w.levels(), 3);
//! assert_eq!(w.next_deadline(), Some(5));
//! assert_eq!(w.expire(24), vec![5]);
//! assert_eq!(w.next_deadline(), Some(25));
//! assert_eq!(w.expire(1000), vec![25, 405, 445]);
//! assert!(w.is_empty());
//! ```

mod driver;
mod wheel;

pub use driver::{Elapsed, Timer};
pub use wheel::{TimerId, TimingWheel, MAX_DEADLINE_MS};

#[cfg(test)]
mod tests;
