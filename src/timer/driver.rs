//! A shard-local timer service: a [`TimingWheel`] of callbacks plus a background task that sleeps
//! until the wheel's next deadline and fires what is due.

use super::wheel::{TimerId, TimingWheel};
use futures_channel::oneshot;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::time::Duration;

type Callback = Box<dyn FnOnce()>;

/// The error of [`Timer::timeout`]: the deadline passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

struct Inner {
    wheel: TimingWheel<Callback>,
    /// Wakes the background task before its sleep ends (sent on an insert with an earlier
    /// deadline). `None` while the task is awake or already woken.
    wake: Option<oneshot::Sender<()>>,
    /// The time the background task sleeps until (`u64::MAX`: until woken); `0` while awake.
    armed_for: u64,
}

/// The current time in the driver's clock: monotonic milliseconds, so wall-clock steps never
/// fire delayed operations early or late.
fn clock_ms() -> u64 {
    crate::runtime::monotonic_ms()
}

/// A shard-local timer: schedule callbacks at a deadline (O(1)), cancel them (O(1)), sleep, time out.
///
/// Deadlines are milliseconds in the clock of [`crate::runtime::monotonic_ms`]. Callbacks run on the
/// shard's executor, in the background task, at most one tick after their deadline (plus scheduling
/// latency), never before. A callback may use the timer (schedule, cancel). `Timer` is a cheap
/// `Rc` handle: clones share one wheel. The background task ends when the last handle is dropped
/// (pending callbacks are then dropped without running). A callback that captures a `Timer`
/// handle keeps the timer alive until it fires or is cancelled.
///
/// `!Send`: create one per shard, inside the shard's executor.
#[derive(Clone)]
pub struct Timer {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_borrow() {
            Ok(inner) => f
                .debug_struct("Timer")
                .field("wheel", &inner.wheel)
                .finish(),
            Err(_) => f.write_str("Timer { <busy> }"),
        }
    }
}

impl Timer {
    /// A timer with a wheel of `wheel_size` buckets of `tick_ms`, driven by a background task
    /// spawned on the current shard (must be called inside the shard's executor).
    ///
    /// # Panics
    /// On invalid wheel parameters (see [`TimingWheel::new`]).
    pub fn new(tick_ms: u64, wheel_size: usize) -> Timer {
        let inner = Rc::new(RefCell::new(Inner {
            wheel: TimingWheel::new(tick_ms, wheel_size, clock_ms()),
            wake: None,
            armed_for: 0,
        }));
        crate::runtime::spawn(run(Rc::downgrade(&inner)));
        Timer { inner }
    }

    /// The driver's current time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        clock_ms()
    }

    /// The number of pending callbacks.
    pub fn len(&self) -> usize {
        self.inner.borrow().wheel.len()
    }

    /// Whether no callback is pending.
    pub fn is_empty(&self) -> bool {
        self.inner.borrow().wheel.is_empty()
    }

    /// Runs `f` once the clock reaches `deadline_ms` (right away, from the background task, if it
    /// already has).
    pub fn schedule_at(&self, deadline_ms: u64, f: impl FnOnce() + 'static) -> TimerId {
        let mut inner = self.inner.borrow_mut();
        let id = inner.wheel.insert(deadline_ms, Box::new(f));
        if deadline_ms < inner.armed_for {
            // The background task sleeps past this deadline: wake it to re-plan.
            inner.armed_for = 0;
            if let Some(tx) = inner.wake.take() {
                let _ = tx.send(());
            }
        }
        id
    }

    /// Runs `f` after `delay_ms` milliseconds.
    pub fn schedule_after(&self, delay_ms: u64, f: impl FnOnce() + 'static) -> TimerId {
        self.schedule_at(clock_ms().saturating_add(delay_ms), f)
    }

    /// Cancels a pending callback (dropping it unrun). `false` if it already ran, was cancelled,
    /// or `id` is stale.
    pub fn cancel(&self, id: TimerId) -> bool {
        // Drop the callback outside the borrow: its captures may own other timer handles.
        let removed = self.inner.borrow_mut().wheel.cancel(id);
        removed.is_some()
    }

    /// Completes once the clock reaches `deadline_ms`. Dropping the future cancels its timer.
    pub async fn sleep_until(&self, deadline_ms: u64) {
        let (tx, rx) = oneshot::channel::<()>();
        let id = self.schedule_at(deadline_ms, move || {
            let _ = tx.send(());
        });
        let _guard = CancelOnDrop { timer: self, id };
        // Err only if the callback was dropped unrun, which cannot happen while we hold `self`
        // and have not cancelled: either way, stop waiting.
        let _ = rx.await;
    }

    /// Completes after `delay_ms` milliseconds. Dropping the future cancels its timer.
    pub async fn sleep(&self, delay_ms: u64) {
        self.sleep_until(clock_ms().saturating_add(delay_ms)).await;
    }

    /// Runs `fut` for at most `delay_ms` milliseconds: its output, or [`Elapsed`] (dropping it).
    pub async fn timeout<F: Future>(&self, delay_ms: u64, fut: F) -> Result<F::Output, Elapsed> {
        futures_lite::future::or(async { Ok(fut.await) }, async {
            self.sleep(delay_ms).await;
            Err(Elapsed)
        })
        .await
    }
}

/// Cancels a `sleep_until` timer when its future is dropped (a no-op once it fired).
struct CancelOnDrop<'a> {
    timer: &'a Timer,
    id: TimerId,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.timer.cancel(self.id);
    }
}

/// The background task: fire what is due, then sleep until the next deadline or an earlier insert.
async fn run(weak: Weak<RefCell<Inner>>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let fired = {
            let mut guard = inner.borrow_mut();
            guard.armed_for = 0;
            guard.wake = None;
            guard.wheel.expire(clock_ms())
        };
        // Run callbacks without holding the borrow: they may schedule or cancel.
        for f in fired {
            f();
        }
        let (next, rx) = {
            let mut guard = inner.borrow_mut();
            let next = guard.wheel.next_deadline();
            let (tx, rx) = oneshot::channel::<()>();
            guard.wake = Some(tx);
            guard.armed_for = next.unwrap_or(u64::MAX);
            (next, rx)
        };
        // Hold only a weak reference while asleep so that dropping the last `Timer` drops the
        // sender and ends this task.
        drop(inner);
        let now = clock_ms();
        match next {
            Some(deadline) if deadline <= now => {}
            Some(deadline) => {
                let nap = Duration::from_millis(deadline - now);
                futures_lite::future::or(crate::runtime::sleep(nap), async {
                    let _ = rx.await;
                })
                .await;
            }
            None => {
                let _ = rx.await;
            }
        }
    }
}
