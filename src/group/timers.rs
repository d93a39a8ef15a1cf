//! How the coordinator gets woken up and runs background work: a small trait, so the state
//! machine's deadlines can be driven by the shard runtime in the broker and by hand in tests.
//!
//! The broker implementation ([`ShardDriver`]) sleeps in a spawned task per wake-up. The
//! coordinator keeps at most about one pending wake-up per group: it only schedules a new one
//! when a deadline earlier than the one already scheduled appears (a heartbeat only moves a
//! deadline later, so heartbeats schedule nothing). When the shard's timing wheel
//! (`src/timer/`) gets a driver, a wheel-backed implementation of [`Driver`] replaces this one
//! without touching the coordinator.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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

/// The shard runtime's clock, `sleep` and `spawn`.
pub struct ShardDriver;

impl Driver for ShardDriver {
    fn now_ms(&self) -> i64 {
        crate::runtime::now_ms()
    }

    fn wake_at(&self, at_ms: i64, f: Box<dyn FnOnce()>) {
        let delay = at_ms.saturating_sub(crate::runtime::now_ms()).max(0) as u64;
        crate::runtime::spawn(async move {
            crate::runtime::sleep(Duration::from_millis(delay)).await;
            f();
        });
    }

    fn spawn(&self, f: LocalFuture<()>) {
        crate::runtime::spawn(f);
    }
}
