//! Test harness: a real `shardlog` broker process per test, plus rdkafka helpers.
//!
//! Every test starts its own broker on a free port with its own temporary data directory, so
//! tests in one file can run in parallel. The broker's stderr goes to `broker-<n>.log` next to the
//! data directory (one file per start); on a failing test the log tail is printed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

pub const START_TIMEOUT: Duration = Duration::from_secs(20);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerOpts {
    pub cores: usize,
    /// Reuse this data directory instead of a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// Extra `--set key=value` settings.
    pub sets: Vec<(String, String)>,
    /// How long a stop may take before the broker is killed and the test fails.
    pub stop_timeout: Duration,
    /// Start the broker with this open-file limit (soft and hard).
    pub nofile: Option<u64>,
    /// Listen on this port (default: a free one picked at start).
    pub port: Option<u16>,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        BrokerOpts {
            cores: 1,
            data_dir: None,
            sets: Vec::new(),
            stop_timeout: STOP_TIMEOUT,
            nofile: None,
            port: None,
        }
    }
}

impl BrokerOpts {
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = n;
        self
    }
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    pub fn nofile(mut self, limit: Option<u64>) -> Self {
        self.nofile = limit;
        self
    }
    pub fn stop_timeout(mut self, d: Duration) -> Self {
        self.stop_timeout = d;
        self
    }
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.sets.push((key.into(), value.into()));
        self
    }
}

/// A running broker process. Killed (SIGKILL) on drop if still running.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    /// Where the log files go: the temp dir root, or `<data dir>.logs` for a given data dir.
    log_dir: PathBuf,
    log_path: PathBuf,
    starts: usize,
    opts: BrokerOpts,
    _tmp: Option<tempfile::TempDir>,
}

/// A port that is free now and outside the kernel's ephemeral range, so a client socket of
/// another test cannot take it between a stop and a restart (a plain bind to port 0 returns an
/// ephemeral port, which the kernel later hands out as a client's local port).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SALT: AtomicU64 = AtomicU64::new(0);
    let (lo, _hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(
        nanos
            ^ ((std::process::id() as u64) << 32)
            ^ SALT.fetch_add(0x9e37_79b9, Ordering::Relaxed),
    );
    let (from, to) = if lo > 12_000 {
        (10_000u16, lo)
    } else {
        (lo, u16::MAX)
    };
    // Tests of one binary run in parallel: never hand out a port twice in this process (a
    // broker that has not bound its port yet leaves it free to the bind check below).
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = from + rng.below((to - from) as u64) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Sends ApiVersions v0 on a fresh connection and returns the response's error code.
pub fn api_versions_probe(addr: SocketAddr, timeout: Duration) -> std::io::Result<i16> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // size 10: api_key 18, version 0, correlation id 7, null client id.
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])?;
    let mut head = [0u8; 10];
    s.read_exact(&mut head)?;
    let corr = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if corr != 7 {
        return Err(std::io::Error::other(format!("correlation id {corr}")));
    }
    Ok(i16::from_be_bytes([head[8], head[9]]))
}

impl Broker {
    pub fn start(opts: BrokerOpts) -> Broker {
        let mut b = Broker::launch(opts);
        if let Err(e) = b.await_ready() {
            panic!("{e}");
        }
        b
    }

    /// Starts the process without waiting for it to be ready ([`Broker::await_ready`]): a
    /// cluster's nodes are ready only once enough of them run to form the metadata quorum.
    pub fn launch(opts: BrokerOpts) -> Broker {
        let (tmp, data_dir, log_dir) = match &opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).unwrap();
                (None, d.clone(), d.with_extension("logs"))
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("shardlog-test-")
                    .tempdir()
                    .expect("tempdir");
                let data = tmp.path().join("data");
                let logs = tmp.path().to_path_buf();
                (Some(tmp), data, logs)
            }
        };
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut b = Broker {
            child: None,
            port: opts.port.unwrap_or_else(free_port),
            data_dir,
            log_path: PathBuf::new(),
            log_dir,
            starts: 0,
            opts,
            _tmp: tmp,
        };
        b.launch_process();
        b
    }

    /// Waits until a launched broker answers ApiVersions; `Err` (with the log) if it exits
    /// first or is not ready within START_TIMEOUT (then it is killed).
    pub fn await_ready(&mut self) -> Result<(), String> {
        let r = self.wait_ready();
        if r.is_err() {
            self.kill9();
        }
        r
    }

    pub fn start_default() -> Broker {
        Broker::start(BrokerOpts::default())
    }

    /// This broker's `node.id` (1 unless set).
    #[allow(dead_code)] // not every test binary asks
    pub fn node_id(&self) -> i32 {
        self.opts
            .sets
            .iter()
            .rev()
            .find(|(k, _)| k == "node.id")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1)
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// Starts the process and waits until it answers ApiVersions; `Err` (with the log) if it
    /// exits first or is not ready within START_TIMEOUT (then it is killed).
    fn try_spawn(&mut self) -> Result<(), String> {
        self.launch_process();
        self.await_ready()
    }

    /// Starts the process (after the previous one's port is free).
    fn launch_process(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        if self.starts > 0 {
            // A dead broker's listening socket can outlive the process for a moment (the kernel
            // tears io_uring instances down asynchronously, and a pending accept holds the
            // socket). Wait until nothing accepts on the port any more — the broker's own check.
            // (A plain bind test would wait out TIME_WAIT sockets of the old SO_REUSEPORT
            // listener, which the broker itself does not mind.) Bounded: past it, start anyway
            // and let the broker report the problem.
            let port = self.port;
            wait_until(Duration::from_secs(5), || {
                std::net::TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(100),
                )
                .is_err()
            });
        }
        self.starts += 1;
        self.log_path = self.log_dir.join(format!("broker-{}.log", self.starts));
        let log = File::create(&self.log_path).expect("create broker log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardlog"));
        cmd.arg("start")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--cores")
            .arg(self.opts.cores.to_string());
        // Parallel test brokers must not compete for the default metrics port (9644); a test
        // that scrapes sets `metrics.listen` to a free port, which wins (later --set).
        cmd.arg("--set").arg("metrics.listen=");
        for (k, v) in &self.opts.sets {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(limit) = self.opts.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit (a system call) runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        limit,
                        limit,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        let child = cmd.spawn().expect("spawn shardlog");
        self.child = Some(child);
    }

    /// Starts the stopped process again without waiting for it to be ready.
    pub fn relaunch(&mut self) {
        self.launch_process();
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr: SocketAddr = self.addr();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "broker exited during startup with {status}; log {}:\n{}",
                    self.log_path.display(),
                    self.log()
                ));
            }
            // Accepting TCP is the readiness signal; an ApiVersions answer proves it is our
            // broker and not something else that grabbed the port.
            // (The broker briefly binds the port with a plain listener before its shards start,
            // so a connection may be accepted and then reset: that is "not ready yet".)
            let last = if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                match api_versions_probe(addr, Duration::from_secs(5)) {
                    Ok(0) => return Ok(()),
                    other => format!("{other:?}"),
                }
            } else {
                "connection refused".to_string()
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "broker not ready on {addr} within {START_TIMEOUT:?} (last probe: {last}); sockets:\n{}\nlog:\n{}",
                    sockets_on(self.port),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker not running").id()
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The logs of every run, oldest first.
    pub fn all_logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                format!(
                    "===== run {n} =====\n{}",
                    read_lossy(&self.log_dir.join(format!("broker-{n}.log")))
                )
            })
            .collect()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Panics with the log if the process has exited.
    /// The exit status if the broker process has exited (it is then reaped), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait().unwrap() {
                panic!(
                    "broker exited unexpectedly with {status}; log:\n{}",
                    self.log()
                );
            }
        } else {
            panic!("broker is not running");
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait for exit, assert exit status 0.
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "broker exited with {status} after SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// SIGTERM and wait (up to STOP_TIMEOUT, then SIGKILL and panic). Returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("broker not running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("send SIGTERM");
        let deadline = Instant::now() + self.opts.stop_timeout;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "broker did not exit within {:?} of SIGTERM; log:\n{}",
                    self.opts.stop_timeout,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start again on the same data dir and port (the process must be stopped or killed first;
    /// a still-running one is stopped with SIGTERM).
    /// The open-file limit of the broker's next starts (see [`BrokerOpts::nofile`]).
    pub fn set_nofile(&mut self, limit: Option<u64>) {
        self.opts.nofile = limit;
    }

    /// The core count of the broker's next starts.
    #[allow(dead_code)] // not every test binary asks
    pub fn set_cores(&mut self, n: usize) {
        self.opts.cores = n;
    }

    /// A `--set key=value` for the broker's next starts (it wins over an earlier one).
    #[allow(dead_code)] // not every test binary asks
    pub fn set_for_next_start(&mut self, key: &str, value: &str) {
        self.opts.sets.push((key.into(), value.into()));
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Like `restart`, but returns the startup failure instead of panicking.
    pub fn try_restart(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            self.stop();
        }
        self.try_spawn()
    }

    /// Lines of the current log that indicate a panic.
    pub fn panics_in_log(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"))
            .map(String::from)
            .collect()
    }

    // ---- rdkafka helpers bound to this broker ----

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        base_config(&self.bootstrap())
            .create()
            .expect("admin client")
    }

    pub fn producer(&self) -> TestProducer {
        TestProducer::new(&self.bootstrap(), &[])
    }

    pub fn producer_with(&self, extra: &[(&str, &str)]) -> TestProducer {
        TestProducer::new(&self.bootstrap(), extra)
    }

    pub fn consumer(&self) -> BaseConsumer {
        consumer(&self.bootstrap())
    }

    pub fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        create_topic(&self.admin(), name, partitions, configs);
    }

    /// A metadata round trip through rdkafka; panics (with the broker log) if it fails.
    pub fn assert_metadata_ok(&mut self) {
        self.assert_running();
        let c = self.consumer();
        if let Err(e) = c.fetch_metadata(None, Duration::from_secs(10)) {
            panic!("metadata call failed: {e}; log:\n{}", self.log());
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.all_logs();
            let tail: String = {
                let lines: Vec<&str> = logs.lines().collect();
                let from = lines.len().saturating_sub(60);
                lines[from..].join("\n")
            };
            eprintln!(
                "---- broker log tail (port {}) ----\n{tail}\n----",
                self.port
            );
        }
        self.kill9();
    }
}

/// `ss -tanp` lines mentioning `port` (diagnostics only).
pub fn sockets_on(port: u16) -> String {
    let out = Command::new("ss").arg("-tanp").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let needle = format!(":{port} ");
    text.lines()
        .filter(|l| l.contains(&needle))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------------------------------------------------------------------------------------------
// rdkafka helpers

pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

/// Runs a future to completion on this thread (rdkafka's admin futures are runtime-agnostic).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(15)))
}

pub fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = block_on(admin.create_topics([&t], &admin_opts())).expect("create_topics call");
    assert_eq!(res.len(), 1);
    if let Err((n, e)) = &res[0] {
        panic!("creating topic {n} failed: {e:?}");
    }
}

pub fn delete_topic(admin: &AdminClient<DefaultClientContext>, name: &str) {
    let res = block_on(admin.delete_topics(&[name], &admin_opts())).expect("delete_topics call");
    if let Err((n, e)) = &res[0] {
        panic!("deleting topic {n} failed: {e:?}");
    }
}

/// A BaseConsumer for manual assignment: no consumer group, no commits.
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    consumer_with(bootstrap, &[])
}

pub fn consumer_with(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = base_config(bootstrap);
    // librdkafka refuses `assign` without a group.id (Local: Unknown group), even though a
    // manual assignment never talks to a group coordinator.
    c.set("group.id", "shardlog-tests-manual-assign")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

/// One consumed message, owned.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
}

/// What `consume` saw.
#[derive(Debug, Default)]
pub struct ConsumeResult {
    pub messages: Vec<Consumed>,
    pub errors: Vec<KafkaError>,
}

/// Assigns `(topic, partition, start offset)` and reads until `count` messages arrived or
/// `timeout` passed. Errors are collected, not fatal.
pub fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    starts: &[(i32, i64)],
    count: usize,
    timeout: Duration,
) -> ConsumeResult {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in starts {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = ConsumeResult::default();
    let deadline = Instant::now() + timeout;
    while out.messages.len() < count && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.messages.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| k.to_vec()),
                payload: m.payload().map(|p| p.to_vec()),
                timestamp: m.timestamp().to_millis(),
            }),
            Some(Err(e)) => out.errors.push(e),
        }
    }
    consumer.unassign().expect("unassign");
    out
}

/// Reads every partition of `topic` from offset 0 until `total` messages arrived.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total: usize,
    timeout: Duration,
) -> ConsumeResult {
    let c = consumer(bootstrap);
    let starts: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    consume(&c, topic, &starts, total, timeout)
}

/// `(low, high)` watermarks per partition.
pub fn watermarks(c: &BaseConsumer, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("fetch_watermarks {topic}/{p}: {e}"))
        })
        .collect()
}

/// Topic names the broker lists in Metadata.
pub fn topic_names(c: &BaseConsumer) -> Vec<String> {
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Producer with delivery-report capture

/// One delivery report.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The id given at send time (`TestProducer::send` returns it).
    pub id: u64,
    pub partition: i32,
    pub offset: i64,
    pub error: Option<KafkaError>,
}

#[derive(Default)]
pub struct Recorder {
    pub deliveries: Mutex<Vec<Delivery>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, r: &DeliveryResult<'_>, id: Box<u64>) {
        let d = match r {
            Ok(m) => Delivery {
                id: *id,
                partition: m.partition(),
                offset: m.offset(),
                error: None,
            },
            Err((e, m)) => Delivery {
                id: *id,
                partition: m.partition(),
                offset: m.offset(),
                error: Some(e.clone()),
            },
        };
        self.deliveries.lock().unwrap().push(d);
    }
}

/// A BaseProducer (acks=all, lz4) that records every delivery report with a caller-visible id.
pub struct TestProducer {
    pub inner: BaseProducer<Recorder>,
    next_id: u64,
}

impl TestProducer {
    pub fn new(bootstrap: &str, extra: &[(&str, &str)]) -> TestProducer {
        let mut c = base_config(bootstrap);
        c.set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("enable.idempotence", "false")
            .set("queue.buffering.max.messages", "200000")
            // Generous: on a loaded 2-core CI box an acks=all request waits for fdatasyncs that
            // can take seconds; with retries off, a timeout would be a spurious failure.
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "60000")
            .set("retries", "0");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        let inner = c
            .create_with_context(Recorder::default())
            .expect("producer");
        TestProducer { inner, next_id: 0 }
    }

    /// Queues one message; retries while the local queue is full. Returns its id.
    pub fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        timestamp: Option<i64>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut rec: BaseRecord<'_, [u8], [u8], Box<u64>> =
            BaseRecord::with_opaque_to(topic, Box::new(id)).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        if let Some(ts) = timestamp {
            rec = rec.timestamp(ts);
        }
        loop {
            match self.inner.send(rec) {
                Ok(()) => break,
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    rec = r;
                    self.inner.poll(Duration::from_millis(20));
                }
                Err((e, _)) => panic!("send failed locally: {e}"),
            }
        }
        self.inner.poll(Duration::ZERO);
        id
    }

    /// Flushes (waits for every delivery report) and returns all reports so far, sorted by id.
    pub fn flush(&mut self, timeout: Duration) -> Vec<Delivery> {
        self.inner.flush(timeout).expect("flush");
        self.take()
    }

    /// Reports received so far (polls once first), removing them from the recorder.
    pub fn take(&mut self) -> Vec<Delivery> {
        self.inner.poll(Duration::ZERO);
        let mut d = std::mem::take(&mut *self.inner.context().deliveries.lock().unwrap());
        d.sort_by_key(|d| d.id);
        d
    }

    pub fn poll(&self, t: Duration) {
        self.inner.poll(t);
    }

    /// Drops every queued and in-flight message (their reports arrive as purge errors) and
    /// returns all reports so far. For a dead broker, where flush would wait for timeouts.
    pub fn abandon(&mut self) -> Vec<Delivery> {
        self.inner
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        let _ = self.inner.flush(Duration::from_secs(5));
        self.take()
    }

    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }
}

/// Groups consumed messages by partition, each sorted by offset.
pub fn by_partition(msgs: &[Consumed]) -> HashMap<i32, Vec<&Consumed>> {
    let mut m: HashMap<i32, Vec<&Consumed>> = HashMap::new();
    for c in msgs {
        m.entry(c.partition).or_default().push(c);
    }
    for v in m.values_mut() {
        v.sort_by_key(|c| c.offset);
    }
    m
}

/// Polls `cond` every 20 ms until true or `timeout`; returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tiny deterministic PRNG (xorshift64*), so tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// ---------------------------------------------------------------------------------------------
// Raw Kafka protocol over std TcpStream (kafka-protocol crate types)

/// `size + header + body` for `api_key` at `version`; the header version comes from the crate.
pub fn raw_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("shardlog-tests")));
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    let mut buf = bytes::BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    buf.extend_from_slice(body);
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Reads one response frame (the bytes after the size prefix).
pub fn raw_read_frame(s: &mut TcpStream) -> std::io::Result<bytes::Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let n = i32::from_be_bytes(size);
    assert!((0..64 << 20).contains(&n), "response size {n}");
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body)?;
    Ok(bytes::Bytes::from(body))
}

/// One typed request/response round trip on a fresh connection (15 s to answer).
pub fn raw_call<Req, Resp>(
    addr: SocketAddr,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    raw_call_within(addr, api_key, version, req, Duration::from_secs(15))
}

/// [`raw_call`] with another time limit for the answer.
pub fn raw_call_within<Req, Resp>(
    addr: SocketAddr,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
    timeout: Duration,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    use std::io::Write;
    let mut body = bytes::BytesMut::new();
    req.encode(&mut body, version).expect("encode request");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(&raw_frame(api_key as i16, version, 4711, &body))
        .expect("write request");
    let mut resp = raw_read_frame(&mut s).expect("read response");
    let header =
        <kafka_protocol::messages::ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
            &mut resp,
            api_key.response_header_version(version),
        )
        .expect("decode response header");
    assert_eq!(header.correlation_id, 4711);
    Resp::decode(&mut resp, version).expect("decode response body")
}

/// An uncompressed RecordBatch v2 without a producer id holding `(key, value)` records, with
/// timestamps 1_700_000_000_000 + i: for tests that speak the protocol by hand.
#[allow(dead_code)] // not every test binary builds batches by hand
pub fn record_batch(records: &[(Option<Vec<u8>>, Vec<u8>)]) -> bytes::BytesMut {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch whenever offset - sequence changes;
            // a constant difference keeps one batch (base sequence -1: not idempotent), as a
            // produce request carries exactly one batch per partition.
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: key.clone().map(bytes::Bytes::from),
            value: Some(bytes::Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a record batch");
    buf
}

/// A Produce request of `records` to partition 0 of `topic`.
pub fn produce_request(
    topic: &str,
    records: bytes::Bytes,
    acks: i16,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), 0 if unreadable.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A tmpfs mounted for one test (tests run as root), unmounted when dropped (also when the test
/// fails). For disks that fill up.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
            .success();
        assert!(
            ok,
            "mounting a tmpfs at {} (tests run as root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Writes a file until the filesystem is full: the next write that needs a page fails.
    pub fn fill(&self) {
        let filler = vec![7u8; 4096];
        let mut f = File::create(self.0.join("filler")).unwrap();
        while std::io::Write::write_all(&mut f, &filler).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Bytes that do not compress (xorshift64), `len` of them, continuing from `state` (so
/// successive calls give different values).
pub fn incompressible(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

/// A cluster of shardlog nodes on loopback, each a combined broker and metadata-quorum voter
/// (node ids 1..=n), as `scripts/cluster.sh` starts one.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    pub controller_ports: Vec<u16>,
}

impl Cluster {
    /// Starts `n` nodes with `sets` on each, and waits until all are ready.
    pub fn start(n: usize, sets: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::launch(n, sets);
        for b in &mut c.nodes {
            if let Err(e) = b.await_ready() {
                panic!("{e}");
            }
        }
        c
    }

    /// Starts `n` nodes without waiting for them.
    pub fn launch(n: usize, sets: &[(&str, &str)]) -> Cluster {
        let controller_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..n)
            .map(|i| {
                let mut opts = BrokerOpts::default()
                    .set("node.id", &(i + 1).to_string())
                    .set(
                        "controller.listener",
                        &format!("127.0.0.1:{}", controller_ports[i]),
                    )
                    .set("controller.quorum.voters", &voters);
                for (k, v) in sets {
                    opts = opts.set(k, v);
                }
                Broker::launch(opts)
            })
            .collect();
        Cluster {
            nodes,
            controller_ports,
        }
    }

    /// Every node's address, for a client's bootstrap.servers.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id` (1-based).
    pub fn node(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[id as usize - 1]
    }
}
