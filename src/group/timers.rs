//! How the coordinator gets woken up and runs background work: a small trait, so the state
//! machine's deadlines can be driven by the shard runtime in the broker and by hand in tests.
//!
//! The broker implementation ([`ShardDriver`]) schedules wake-ups on the shard's timing wheel
//! (O(1) insert). The coordinator keeps at most about one pending wake-up per group: it only
//! schedules a new one when a deadline earlier than the one already scheduled appears (a
//! heartbeat only moves a deadline later, so heartbeats schedule nothing).

use std::future::Future;
use std::pin::Pin;

/// A `!Send` boxed future, run on the current shard.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Clock, timers and background tasks for the coordinator.
pub trait Driver {
    /// Wall-clock milliseconds.
    fn now_ms(&self) -> i64;
    /// Calls `f` at (or soon after) `at_ms`.
    fn wake_at(&self, at_ms: i64, f: Box<dyn FnOnce()>);
    /// Runs `f` in the background on this shard.
    fn spawn(&self, f: LocalFuture<()>);
}

/// The shard runtime's clock and `spawn`, with wake-ups on the shard's timing wheel.
pub struct ShardDriver {
    pub timer: crate::timer::Timer,
}

impl Driver for ShardDriver {
    fn now_ms(&self) -> i64 {
        crate::runtime::now_ms()
    }

    fn wake_at(&self, at_ms: i64, f: Box<dyn FnOnce()>) {
        // Group deadlines are wall-clock (they come from member timestamps); the shard's timing
        // wheel runs on the monotonic clock, so schedule by delay.
        let delay = at_ms.saturating_sub(crate::runtime::now_ms()).max(0) as u64;
        self.timer.schedule_after(delay, f);
    }

    fn spawn(&self, f: LocalFuture<()>) {
        crate::runtime::spawn(f);
    }
}
