//! Starting and stopping the broker: shard startup order, the accept loops, retention, and clean
//! shutdown on SIGINT/SIGTERM.

use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_channel::oneshot;
use futures_util::FutureExt;

use super::connection::serve_connection;
use crate::config::BrokerConfig;
use crate::controller;
use crate::runtime::net::Listener;
use crate::runtime::{self, launch_shards, now_ms, sleep, ShardSpec};
use crate::shard::{self, Shard};

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static EXIT_CODE: AtomicI32 = AtomicI32::new(0);
/// Set once the controlled shutdown is done (or skipped): shards keep serving until then, so
/// the leadership handover is published to all of them before they close.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);
/// How long a shard waits for the controlled shutdown before closing anyway (it is bounded by
/// 5 s itself).
const HANDOVER_WAIT_MS: u64 = 7_000;

/// Asks every shard to stop (signal handler, or a fatal startup error).
pub fn request_shutdown() {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

fn fail(msg: String) {
    tracing::error!("{msg}");
    EXIT_CODE.store(1, Ordering::SeqCst);
    request_shutdown();
}

/// Connections and open segment files need descriptors; the usual soft limit of 1024 would leave
/// little for either. Raise the soft limit to the hard limit, as Kafka's
/// packaging does with `ulimit -n` (best effort: an unprivileged process may keep what it has).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!("open-file limit raised from {soft} to {hard}"),
            Err(e) => tracing::warn!("could not raise the open-file limit from {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the open-file limit: {e}"),
    }
}

/// Runs the broker until SIGINT/SIGTERM; returns the process exit code.
pub fn run_broker(config: BrokerConfig) -> io::Result<i32> {
    let listen = config
        .listen()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::create_dir_all(config.data_dir()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("creating data dir {}: {e}", config.data_dir().display()),
        )
    })?;
    // Shard listeners use SO_REUSEPORT (one accept loop per shard), which would also let a second
    // broker bind the same port and silently take half the connections. So refuse to start if
    // something already accepts there. (A plain bind test is wrong here: leftover TIME_WAIT
    // sockets of our previous run's SO_REUSEPORT listener make it fail for a minute.)
    if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("cannot listen on {listen}: another process is listening there"),
        ));
    }

    raise_fd_limit();
    // A plain thread waits for the signal and raises the flag every shard polls: signal handlers
    // must not touch executor state.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Shutdown first: logging may fail (closed stderr) and must not stand in its way.
                request_shutdown();
                tracing::info!("signal {sig}: shutting down");
            }
        })?;

    // Placement: `cpuset` / `cores` / `pin.shards` / `numa.membind` (see runtime::numa).
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let cpuset = runtime::numa::parse_cpuset(config.get("cpuset"))
        .map_err(|e| invalid(format!("config `cpuset`: {e}")))?;
    let (cores, cpus) = runtime::numa::plan_shards(
        config.int("cores").max(0) as usize,
        &cpuset,
        &runtime::executor::usable_cpus(),
    )
    .map_err(invalid)?;
    let pin = config.bool("pin.shards");
    let spin = Duration::from_micros(config.int("spin.before.park.us").max(0) as u64);
    let placed: Vec<usize> = (0..cores)
        .filter_map(|i| cpus.get(i % cpus.len().max(1)).copied())
        .collect();
    tracing::info!(
        "shardlog {} starting: {cores} shard(s) {}, data dir {}, listening on {listen}",
        env!("CARGO_PKG_VERSION"),
        match pin {
            true => format!("pinned to cpus {placed:?}"),
            false => "unpinned (pin.shards=false)".to_string(),
        },
        config.data_dir().display()
    );
    let queued = config.int("queued.max.request.bytes");
    let request_max = config.int("socket.request.max.bytes");
    if queued > 0 && queued < request_max {
        return Err(invalid(format!(
            "config `queued.max.request.bytes` ({queued}) must be at least \
             socket.request.max.bytes ({request_max}), or -1"
        )));
    }
    let overrides =
        super::admission::parse_overrides(config.get("max.connections.per.ip.overrides"))
            .map_err(|e| invalid(format!("config `max.connections.per.ip.overrides`: {e}")))?;
    super::admission::init(super::admission::Limits {
        max_connections: config.int("max.connections").max(0) as usize,
        max_per_ip: config.int("max.connections.per.ip").max(0) as usize,
        per_ip_overrides: overrides,
        creation_rate: config.int("max.connection.creation.rate").max(1) as u64,
    });
    runtime::file::set_append_io(match config.get("log.append.io") {
        "uring" => runtime::file::AppendIo::Uring,
        _ => runtime::file::AppendIo::Pwrite,
    });
    runtime::file::set_writeback_bytes(config.int("log.writeback.bytes").max(0) as u64);
    runtime::file::set_drop_behind_bytes(drop_behind_bytes(&config));
    let spec = ShardSpec {
        shards: cores,
        cpus: if pin { cpus } else { Vec::new() },
        spin_before_park: spin,
        local_memory: config.bool("numa.membind"),
    };
    launch_shards(spec, move |id| run_shard(id, config.clone()))?;
    Ok(EXIT_CODE.load(Ordering::SeqCst))
}

thread_local! {
    static READY: std::cell::RefCell<Option<oneshot::Sender<()>>> = const { std::cell::RefCell::new(None) };
}

/// Marks this shard's metadata as loaded (called by the bootstrap broadcast, see below).
fn mark_ready() {
    if let Some(tx) = READY.with(|r| r.borrow_mut().take()) {
        let _ = tx.send(());
    }
}

/// Descriptors held from the start of a shard until its listener is bound, then given back:
/// opening partitions can exhaust the open-file limit (a data directory made under a higher
/// limit), and the listener must still get its socket. The partitions that did not open are
/// offline (KAFKA_STORAGE_ERROR); the broker serves the rest instead of exiting.
const LISTENER_RESERVE: usize = 16;

fn reserve_descriptors() -> Vec<std::fs::File> {
    (0..LISTENER_RESERVE)
        .filter_map(|_| std::fs::File::open("/dev/null").ok())
        .collect()
}

/// Segment files one shard keeps open (`log.open.files.max`, split among the shards; by default
/// half the open-file limit, the other half for connections, index files being written and
/// zero-copy fetches in flight).
fn segment_file_budget(config: &BrokerConfig) -> usize {
    let configured = config.int("log.open.files.max");
    let total = if configured > 0 {
        configured as u64
    } else {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024)
            / 2
    };
    (total as usize / runtime::shard_count().max(1)).max(16)
}

async fn run_shard(id: usize, config: BrokerConfig) {
    let reserve = reserve_descriptors();
    runtime::file_cache::set_budget(segment_file_budget(&config));
    let shard = Rc::new(Shard::new(id, config.clone()));
    shard::install(shard.clone());
    let (tx, rx) = oneshot::channel();
    READY.with(|r| *r.borrow_mut() = Some(tx));
    // Only now may other shards' jobs (the metadata bootstrap first) run here.
    runtime::start_receiving();

    if id == controller::CONTROLLER_SHARD {
        runtime::spawn(async {
            match controller::bootstrap().await {
                Ok(quorum) => {
                    runtime::spawn(async move {
                        if let Err(e) = quorum.await {
                            fail(format!("the metadata quorum stopped: {e}"));
                        }
                    });
                    crate::server::group_host::ensure_offsets_topic().await;
                    // Tell every shard its metadata is loaded; each then starts accepting.
                    for s in 0..runtime::shard_count() {
                        let _ = runtime::submit_to(s, || async { mark_ready() }).await;
                    }
                }
                Err(e) => fail(format!("startup failed: {e}")),
            }
        });
    }
    let ready = async {
        let _ = rx.await;
    };
    if !wait_or_shutdown(ready).await {
        shard.close_all().await;
        return;
    }
    // Consumer groups are loaded before this shard accepts clients.
    crate::server::group_host::start_shard_groups().await;
    drop(reserve);
    match config
        .listen()
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(Listener::bind)
    {
        Ok(listener) => {
            if id == 0 {
                tracing::info!(
                    "ready: accepting Kafka connections on {}",
                    config.get("listen")
                );
            }
            runtime::spawn(accept_loop(listener));
        }
        Err(e) => fail(format!("shard {id}: {e}")),
    }
    if id == 0 {
        crate::metrics::endpoint::start_configured(&config, shard::scrape::local_snapshot);
    }
    runtime::spawn(retention_loop(
        config.int("log.retention.check.interval.ms").max(100) as u64,
        config.int("producer.id.expiration.ms"),
    ));
    runtime::spawn(flush_loop(
        config.int("log.flush.scheduler.interval.ms").max(10) as u64,
    ));
    while !shutdown_requested() {
        sleep(Duration::from_millis(100)).await;
    }
    if id == controller::CONTROLLER_SHARD {
        // Only a broker that started fully hands over; a failed start just stops.
        if EXIT_CODE.load(Ordering::SeqCst) == 0 {
            controller::controlled_shutdown().await;
        }
        HANDED_OVER.store(true, Ordering::SeqCst);
    } else {
        let waited = now_ms();
        while !HANDED_OVER.load(Ordering::SeqCst)
            && now_ms().saturating_sub(waited) < HANDOVER_WAIT_MS as i64
        {
            sleep(Duration::from_millis(20)).await;
        }
    }
    shard.close_all().await;
    // Group-commit effectiveness, read by bench/run-durability.sh until metrics exist.
    tracing::info!(
        "sync stats: shard={id} syncs={} acks_all_appends={}",
        shard.waiters.syncs.get(),
        shard.waiters.acks_all_appends.get()
    );
}

/// Awaits `f` unless shutdown is requested first; true if `f` finished.
async fn wait_or_shutdown(f: impl std::future::Future<Output = ()>) -> bool {
    let stop = async {
        while !shutdown_requested() {
            sleep(Duration::from_millis(50)).await;
        }
    };
    futures_lite::future::or(
        async {
            f.await;
            true
        },
        async {
            stop.await;
            false
        },
    )
    .await
}

async fn accept_loop(listener: Listener) {
    let admission = super::admission::get();
    loop {
        // max.connection.creation.rate: accept no faster than allowed; the kernel's backlog
        // holds the rest (as Kafka's acceptor throttles).
        while let Some(wait) = admission.creation_delay() {
            sleep(wait).await;
        }
        match listener.accept().await {
            Ok(conn) => runtime::spawn(async move {
                let ticket = match admission.admit(conn.peer_addr().map(|a| a.ip())) {
                    Ok(ticket) => ticket,
                    Err(why) => {
                        // Dropping the connection closes it: the client sees a refused
                        // connection, every existing client carries on.
                        crate::metrics::with(|m| m.connections_refused.inc());
                        tracing::debug!("{:?}: connection refused: {why}", conn.peer_addr());
                        return;
                    }
                };
                // Defence in depth: a bug that panics while serving one client closes that
                // client's connection instead of taking the shard (and every other client) down.
                if AssertUnwindSafe(serve_connection(conn))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!("a connection handler panicked; that connection was closed");
                }
                drop(ticket);
            }),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; existing clients keep going.
                tracing::warn!("accept failed: {e}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Periodic `flush.ms` syncs.
async fn flush_loop(interval_ms: u64) {
    loop {
        sleep(Duration::from_millis(interval_ms)).await;
        shard::partition_ops::flush_due_partitions().await;
    }
}

/// Periodic housekeeping of this shard's logs: time/size retention and idle producer-id expiry.
async fn retention_loop(interval_ms: u64, producer_expiration_ms: i64) {
    loop {
        sleep(Duration::from_millis(interval_ms)).await;
        for partition in shard::current().partitions() {
            let log = partition.log();
            if let Err(e) = log.apply_retention(now_ms()).await {
                tracing::warn!("retention: {e}");
            }
            if let Err(e) = log.expire_producers(now_ms(), producer_expiration_ms).await {
                tracing::warn!("producer expiry: {e}");
            }
        }
    }
}

/// `log.drop.behind.bytes` as used: off without write-behind (pages are only dropped after
/// their writeback was started), and at least two write-behind chunks, so the range dropped is
/// one whose writeback was started a whole chunk earlier.
fn drop_behind_bytes(config: &BrokerConfig) -> u64 {
    let keep = config.int("log.drop.behind.bytes").max(0) as u64;
    let chunk = config.int("log.writeback.bytes").max(0) as u64;
    if keep == 0 {
        return 0;
    }
    if chunk == 0 {
        tracing::warn!("log.drop.behind.bytes needs log.writeback.bytes > 0: drop-behind is off");
        return 0;
    }
    keep.max(2 * chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn with(keep: &str, chunk: &str) -> u64 {
        let mut c = BrokerConfig::default();
        c.set("log.drop.behind.bytes", keep, Source::CommandLine)
            .unwrap();
        c.set("log.writeback.bytes", chunk, Source::CommandLine)
            .unwrap();
        drop_behind_bytes(&c)
    }

    #[test]
    fn drop_behind_needs_write_behind_and_spans_two_chunks() {
        assert_eq!(with("0", "1048576"), 0);
        assert_eq!(
            with("33554432", "0"),
            0,
            "no writeback started: nothing is clean"
        );
        assert_eq!(with("33554432", "1048576"), 33554432);
        assert_eq!(with("4096", "1048576"), 2 * 1048576);
    }
}
