//! Cross-shard calls: `submit_to(shard, f)`.
//!
//! Every shard joins a full glommio channel mesh whose messages are boxed jobs (a `Send` closure
//! that, once on the target shard, builds a local future). A per-peer receive loop on each shard
//! spawns every job it receives as a local task, so a slow job never blocks the link. The result
//! travels back on a `futures` oneshot: glommio wakers may be woken from another thread (they queue
//! the wake on the owning executor), so awaiting it never blocks the calling shard.
//!
//! Payloads are moved, not copied: record batches travel as `bytes::Bytes`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::FutureExt;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;

type LocalJob = Pin<Box<dyn Future<Output = ()>>>;
/// A unit of work shipped to another shard.
pub(crate) type Job = Box<dyn FnOnce() -> LocalJob + Send>;

/// How many jobs may queue on one link before the sender waits (back-pressure between shards).
const LINK_CAPACITY: usize = 1024;

thread_local! {
    static PENDING: RefCell<Vec<ConnectedReceiver<Job>>> = const { RefCell::new(Vec::new()) };
    static SENDERS: RefCell<Option<Rc<Senders<Job>>>> = const { RefCell::new(None) };
    static STATS: Cell<MeshStats> = const { Cell::new(MeshStats::ZERO) };
}

/// This shard's cross-shard traffic (plain thread-local counters, read by `metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshStats {
    /// Calls sent to other shards.
    pub calls_sent: u64,
    /// Calls sent to other shards whose result has not come back yet.
    pub calls_in_flight: u64,
    /// Jobs received from other shards.
    pub jobs_received: u64,
    /// Jobs from other shards running here now (spawned, not finished).
    pub jobs_running: u64,
}

impl MeshStats {
    const ZERO: MeshStats = MeshStats {
        calls_sent: 0,
        calls_in_flight: 0,
        jobs_received: 0,
        jobs_running: 0,
    };
}

/// This shard's [`MeshStats`].
pub fn mesh_stats() -> MeshStats {
    STATS.try_with(Cell::get).unwrap_or_default()
}

fn update_stats(f: impl FnOnce(&mut MeshStats)) {
    let _ = STATS.try_with(|c| {
        let mut s = c.get();
        f(&mut s);
        c.set(s);
    });
}

/// Decrements a gauge of [`MeshStats`] when dropped (a call's future may be dropped early).
struct StatGuard(fn(&mut MeshStats));

impl Drop for StatGuard {
    fn drop(&mut self) {
        update_stats(self.0);
    }
}

pub(crate) fn new_mesh(shards: usize) -> MeshBuilder<Job, Full> {
    MeshBuilder::full(shards, LINK_CAPACITY)
}

/// Joins the mesh on the current shard. Incoming jobs queue on their links until
/// [`start_receiving`] is called: glommio runs a newly spawned task at once, so receiving from
/// inside `join` would run other shards' jobs before this shard has installed its state.
pub(crate) async fn join(mesh: MeshBuilder<Job, Full>) -> Result<(), SubmitError> {
    let (senders, mut receivers) = mesh.join().await.map_err(|_| SubmitError::MeshJoin)?;
    SENDERS.with(|s| *s.borrow_mut() = Some(Rc::new(senders)));
    let streams: Vec<_> = receivers.streams().into_iter().map(|(_, rx)| rx).collect();
    PENDING.with(|p| *p.borrow_mut() = streams);
    Ok(())
}

/// Starts running jobs other shards send here. Call once the shard's state is installed.
pub fn start_receiving() {
    for rx in PENDING.with(|p| std::mem::take(&mut *p.borrow_mut())) {
        glommio::spawn_local(async move {
            while let Some(job) = rx.recv().await {
                // A panicking job drops its reply channel (the caller sees ShardGone) instead of
                // killing this shard.
                update_stats(|s| {
                    s.jobs_received += 1;
                    s.jobs_running += 1;
                });
                glommio::spawn_local(async move {
                    let _running = StatGuard(|s| s.jobs_running -= 1);
                    if AssertUnwindSafe(job()).catch_unwind().await.is_err() {
                        tracing::error!("a cross-shard job panicked");
                    }
                })
                .detach();
            }
        })
        .detach();
    }
}

/// Why a cross-shard call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    MeshJoin,
    NoSuchShard(usize),
    /// The target shard is gone (shutting down) or dropped the job.
    ShardGone(usize),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::MeshJoin => write!(f, "joining the shard mesh failed"),
            SubmitError::NoSuchShard(s) => write!(f, "no shard {s}"),
            SubmitError::ShardGone(s) => write!(f, "shard {s} is not answering"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Runs `f()` on `shard` and returns its result. On the current shard it runs as a local task
/// directly (no channel hop).
pub async fn submit_to<T, F, Fut>(shard: usize, f: F) -> Result<T, SubmitError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    if shard == super::shard_id() {
        return Ok(f().await);
    }
    if shard >= super::shard_count() {
        return Err(SubmitError::NoSuchShard(shard));
    }
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        Box::pin(async move {
            let _ = tx.send(f().await);
        })
    });
    let senders = SENDERS.with(|s| s.borrow().clone());
    let senders = senders.ok_or(SubmitError::ShardGone(shard))?;
    update_stats(|s| {
        s.calls_sent += 1;
        s.calls_in_flight += 1;
    });
    let _in_flight = StatGuard(|s| s.calls_in_flight -= 1);
    senders
        .send_to(shard, job)
        .await
        .map_err(|_| SubmitError::ShardGone(shard))?;
    rx.await.map_err(|_| SubmitError::ShardGone(shard))
}
