//! Starting the shards: one pinned glommio executor per core, joined into a channel mesh.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use super::mesh;

thread_local! {
    static SHARD_ID: Cell<usize> = const { Cell::new(0) };
    static SHARD_COUNT: Cell<usize> = const { Cell::new(1) };
}

/// How to start the shards.
#[derive(Debug, Clone)]
pub struct ShardSpec {
    /// Number of shards.
    pub shards: usize,
    /// CPU ids to pin shard i to (`cpus[i % len]`); empty means no pinning.
    pub cpus: Vec<usize>,
    /// Busy-poll this long before parking an idle executor (0 = off). See DESIGN.md: without it an
    /// idle executor wakes on the kernel tick; with it the core burns while idle.
    pub spin_before_park: Duration,
    /// Each pinned shard prefers memory from its CPU's NUMA node (`numa.membind`, best effort;
    /// see `runtime::numa`). Ignored for unpinned shards.
    pub local_memory: bool,
}

/// This thread's shard id (0 outside a shard).
pub fn shard_id() -> usize {
    SHARD_ID.with(|c| c.get())
}

/// The number of shards in this process.
pub fn shard_count() -> usize {
    SHARD_COUNT.with(|c| c.get())
}

/// Runs a future as an independent task on the current shard.
pub fn spawn<F: Future<Output = ()> + 'static>(f: F) {
    glommio::spawn_local(f).detach();
}

/// The CPUs this process may run on, in order.
pub fn usable_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// Starts `spec.shards` executors; each joins the mesh, then runs `main(shard_id)` to completion.
/// Blocks until every shard has returned. A shard that fails to start is reported as an error.
pub fn launch_shards<G, F>(spec: ShardSpec, main: G) -> io::Result<()>
where
    G: Fn(usize) -> F + Send + Clone + 'static,
    F: Future<Output = ()> + 'static,
{
    let shards = spec.shards.max(1);
    let mesh = mesh::new_mesh(shards);
    let mut handles = Vec::with_capacity(shards);
    for id in 0..shards {
        let placement = match spec.cpus.is_empty() {
            true => Placement::Unbound,
            false => Placement::Fixed(spec.cpus[id % spec.cpus.len()]),
        };
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            // 1 MiB of registered io memory per executor fits the default 8 MiB memlock limit
            // for unprivileged users (DESIGN.md).
            .io_memory(1 << 20);
        if !spec.spin_before_park.is_zero() {
            builder = builder.spin_before_park(spec.spin_before_park);
        }
        let main = main.clone();
        let mesh = mesh.clone();
        let local_cpu = match spec.cpus.is_empty() || !spec.local_memory {
            true => None,
            false => Some(spec.cpus[id % spec.cpus.len()]),
        };
        let handle = builder
            .spawn(move || async move {
                if let Some(cpu) = local_cpu {
                    super::numa::prefer_local_memory(id, cpu);
                }
                SHARD_ID.with(|c| c.set(id));
                SHARD_COUNT.with(|c| c.set(shards));
                if let Err(e) = mesh::join(mesh).await {
                    tracing::error!("shard {id}: joining the channel mesh failed: {e}");
                    return;
                }
                main(id).await;
            })
            .map_err(|e| io::Error::other(format!("starting shard {id}: {e}")))?;
        handles.push(handle);
    }
    let mut first_err = None;
    for (id, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            first_err.get_or_insert(io::Error::other(format!("shard {id} failed: {e}")));
        }
    }
    first_err.map_or(Ok(()), Err)
}
