//! Soak: 200 consumer groups with 2 members each on one broker stay stable (no spurious
//! rebalances) for 2 minutes (issue 4).
//!
//! The 400 members are not librdkafka consumers (400 librdkafka instances, each with its own
//! threads and metadata refreshes, would swamp a 2-core machine and measure the client, not the
//! broker). Each member is a minimal classic-protocol client over a blocking `std` TCP
//! connection, one thread per member (they sleep almost all the time):
//!
//! FindCoordinator v3 → JoinGroup v7 (v4+, so the MEMBER_ID_REQUIRED handshake applies: the first
//! join gets error 79 and a member id, the member joins again with it) → SyncGroup v5 (the leader
//! sends a range assignment of the topic's partitions, the follower an empty one) → Heartbeat v4
//! every second, with `session.timeout.ms` 10 s and `rebalance.timeout.ms` 30 s. Errors are handled
//! as a Kafka client does (REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION → join again with the member
//! id, UNKNOWN_MEMBER_ID → join again without one).
//!
//! Phase 1 (bounded by 60 s): every group reaches Stable: both members got a SyncGroup answer
//! without error for the same generation, and DescribeGroups agrees.
//! Phase 2 (`SHARDLOG_SOAK_SECS`, default 120 s as the issue asks): every heartbeat answers 0;
//! any other answer, any JoinGroup/SyncGroup, any connection error is a spurious rebalance (or a
//! failure) and is recorded. At the end DescribeGroups shows every group Stable with the same two
//! members and their assignments, and every member's last heartbeat, sent with the generation it
//! got in phase 1, answered 0 (DescribeGroups does not carry the generation; the heartbeat check
//! is the broker's own generation comparison). The broker's CPU use over phase 2 is measured from
//! `/proc/<pid>/stat` and must stay under half a core (see `MAX_BROKER_CORES`).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const GROUPS: usize = 200;
const MEMBERS_PER_GROUP: usize = 2;
const TOPIC: &str = "soak";
const PARTITIONS: i32 = 4;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Phase 1 bound: every group Stable within this.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Phase 2 length unless `SHARDLOG_SOAK_SECS` says otherwise.
const DEFAULT_SOAK_SECS: u64 = 120;
/// Average broker CPU over phase 2, in cores. The load is 400 heartbeats/s (each a small frame
/// decoded, hopped to the owning shard, a hash lookup and a deadline bump) plus at most one
/// timing-wheel wake-up per group per session timeout: a few percent of one core. Half a core is
/// far above that and still catches what would make the broker unfit for many idle groups: busy
/// polling, a timer storm (e.g. a wake-up per member per tick), or per-heartbeat persistence.
const MAX_BROKER_CORES: f64 = 0.5;
/// A heartbeat answered slower than this is a failure even if it answered 0: a real client with
/// a 1 s interval and a 10 s session would be close to expiring.
const MAX_HEARTBEAT_LATENCY: Duration = Duration::from_secs(5);

const PHASE_SETTLE: u8 = 0;
const PHASE_SOAK: u8 = 1;
const PHASE_STOP: u8 = 2;

// Error codes the members handle.
const NONE: i16 = 0;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

fn soak_duration() -> Duration {
    let secs = std::env::var("SHARDLOG_SOAK_SECS")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("SHARDLOG_SOAK_SECS={v:?} is not a number of seconds"))
        })
        .unwrap_or(DEFAULT_SOAK_SECS);
    Duration::from_secs(secs)
}

fn group_name(g: usize) -> String {
    format!("soak-group-{g:03}")
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// A persistent raw connection

struct Conn {
    s: TcpStream,
    correlation: i32,
}

impl Conn {
    fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        // A JoinGroup may be parked for up to the rebalance timeout.
        s.set_read_timeout(Some(Duration::from_millis(
            REBALANCE_TIMEOUT_MS as u64 + 15_000,
        )))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn { s, correlation: 0 })
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        req: &Req,
    ) -> std::io::Result<Resp> {
        let mut body = BytesMut::new();
        req.encode(&mut body, version)
            .map_err(std::io::Error::other)?;
        self.correlation = self.correlation.wrapping_add(1);
        let corr = self.correlation;
        self.s
            .write_all(&raw_frame(api_key as i16, version, corr, &body))?;
        let mut resp = raw_read_frame(&mut self.s)?;
        let header = ResponseHeader::decode(&mut resp, api_key.response_header_version(version))
            .map_err(std::io::Error::other)?;
        if header.correlation_id != corr {
            return Err(std::io::Error::other(format!(
                "{api_key:?}: correlation id {} (want {corr})",
                header.correlation_id
            )));
        }
        Resp::decode(&mut resp, version).map_err(std::io::Error::other)
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer protocol metadata

fn subscription() -> Bytes {
    const V: i16 = 3;
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(vec![sb(TOPIC)])
        .with_generation_id(-1);
    let mut b = BytesMut::new();
    b.put_i16(V);
    sub.encode(&mut b, V).unwrap();
    b.freeze()
}

fn decode_subscription(mut b: Bytes) -> Result<Vec<String>, String> {
    if b.remaining() < 2 {
        return Err(format!("subscription of {} bytes", b.len()));
    }
    let v = b.get_i16();
    let sub = ConsumerProtocolSubscription::decode(&mut b, v.clamp(0, 3))
        .map_err(|e| format!("subscription v{v}: {e}"))?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

fn assignment(partitions: &[i32]) -> Bytes {
    const V: i16 = 0;
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(TopicName(sb(TOPIC)))
            .with_partitions(partitions.to_vec()),
    ]);
    let mut b = BytesMut::new();
    b.put_i16(V);
    a.encode(&mut b, V).unwrap();
    b.freeze()
}

/// `(topic, partition)`s of an encoded assignment.
fn decode_assignment(mut b: Bytes) -> Result<Vec<(String, i32)>, String> {
    if b.remaining() < 2 {
        return Err(format!("assignment of {} bytes", b.len()));
    }
    let v = b.get_i16();
    let a = ConsumerProtocolAssignment::decode(&mut b, v.clamp(0, 3))
        .map_err(|e| format!("assignment v{v}: {e}"))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
        .collect())
}

/// The range assignor for one topic: members sorted by id, contiguous partition ranges, the first
/// `partitions % members` members get one extra.
fn range_assign(member_ids: &[String]) -> Vec<(String, Vec<i32>)> {
    let mut ids = member_ids.to_vec();
    ids.sort();
    let n = ids.len() as i32;
    let (per, extra) = (PARTITIONS / n, PARTITIONS % n);
    let mut next = 0;
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let count = per + i32::from((i as i32) < extra);
            let parts: Vec<i32> = (next..next + count).collect();
            next += count;
            (id, parts)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shared state between the members and the test

/// Something that must not happen during the soak (or a protocol error at any time).
#[derive(Debug, Clone)]
#[allow(dead_code)] // read through Debug in failure messages
struct Event {
    /// Seconds since the soak started (negative: during phase 1).
    at: f64,
    group: usize,
    member: usize,
    what: String,
}

struct Shared {
    addr: SocketAddr,
    phase: AtomicU8,
    soak_start: OnceLock<Instant>,
    /// Per member: the generation of its last successful SyncGroup, -1 while (re)joining.
    stable_gen: Vec<AtomicI32>,
    /// Per member: its member id once it has one.
    member_id: Vec<Mutex<String>>,
    /// Per member: its current assignment as the SyncGroup answer gave it.
    assigned: Vec<Mutex<Vec<(String, i32)>>>,
    /// Per member: the generation of the last heartbeat answered 0 (-1 before any).
    last_ok_heartbeat_gen: Vec<AtomicI32>,
    /// Anomalies during the soak: non-zero heartbeats, rejoins, connection errors.
    soak_events: Mutex<Vec<Event>>,
    /// Failures at any time that are not ordinary rebalance traffic (bad metadata, unexpected
    /// error codes).
    protocol_errors: Mutex<Vec<Event>>,
    started: Instant,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn at(&self) -> f64 {
        match self.soak_start.get() {
            Some(s) => s.elapsed().as_secs_f64(),
            None => -self.started.elapsed().as_secs_f64(),
        }
    }

    fn soak_event(&self, group: usize, member: usize, what: String) {
        if self.phase() == PHASE_SOAK {
            let at = self.at();
            self.soak_events.lock().unwrap().push(Event {
                at,
                group,
                member,
                what,
            });
        }
    }

    fn protocol_error(&self, group: usize, member: usize, what: String) {
        let at = self.at();
        self.protocol_errors.lock().unwrap().push(Event {
            at,
            group,
            member,
            what,
        });
    }
}

/// What one member thread measured.
#[derive(Debug, Default)]
struct MemberStats {
    /// Heartbeats sent during the soak.
    soak_heartbeats: u64,
    /// Their round-trip times, µs.
    soak_latencies_us: Vec<u32>,
    heartbeats_total: u64,
    join_calls: u64,
    member_id_required: u64,
    sync_calls: u64,
    /// Non-zero JoinGroup/SyncGroup/Heartbeat answers by code (phase 1 included).
    errors: Vec<(&'static str, i16)>,
    reconnects: u64,
}

enum Step {
    Connect,
    Join,
    Sync {
        generation: i32,
        protocol: String,
        assignments: Vec<(String, Vec<i32>)>,
    },
    Heartbeat {
        generation: i32,
        next: Instant,
    },
}

/// Sleeps until `until` in short slices; false if the test asked to stop meanwhile.
fn sleep_until(shared: &Shared, until: Instant) -> bool {
    loop {
        if shared.phase() == PHASE_STOP {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(250)));
    }
}

fn run_member(shared: Arc<Shared>, group: usize, index: usize) -> MemberStats {
    let me = group * MEMBERS_PER_GROUP + index;
    let gid = group_name(group);
    let mut rng = Rng::new(0x5eed_0000 + me as u64);
    let mut stats = MemberStats::default();
    let mut conn: Option<Conn> = None;
    let mut member_id = String::new();
    let mut step = Step::Connect;
    let metadata = subscription();

    // Any error on the connection: record, drop it, start over with FindCoordinator.
    macro_rules! io_fail {
        ($what:expr, $e:expr) => {{
            shared.stable_gen[me].store(-1, Ordering::Release);
            shared.soak_event(group, me, format!("{}: connection error {}", $what, $e));
            conn = None;
            stats.reconnects += 1;
            std::thread::sleep(Duration::from_millis(200));
            Step::Connect
        }};
    }

    while shared.phase() != PHASE_STOP {
        step = match step {
            Step::Connect => {
                let mut c = match Conn::connect(shared.addr) {
                    Ok(c) => c,
                    Err(e) => {
                        step = io_fail!("connect", e);
                        continue;
                    }
                };
                let req = FindCoordinatorRequest::default()
                    .with_key(sb(&gid))
                    .with_key_type(0);
                match c.call::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 3, &req) {
                    Ok(r) if r.error_code == NONE => {
                        if r.port != i32::from(shared.addr.port()) {
                            shared.protocol_error(
                                group,
                                me,
                                format!(
                                    "FindCoordinator: port {} (broker's is {})",
                                    r.port,
                                    shared.addr.port()
                                ),
                            );
                        }
                        conn = Some(c);
                        Step::Join
                    }
                    Ok(r) => {
                        // The offsets topic may still be coming up right after start.
                        if r.error_code != COORDINATOR_NOT_AVAILABLE
                            && r.error_code != COORDINATOR_LOAD_IN_PROGRESS
                        {
                            shared.protocol_error(
                                group,
                                me,
                                format!("FindCoordinator: error {}", r.error_code),
                            );
                        }
                        shared.soak_event(
                            group,
                            me,
                            format!("FindCoordinator: error {}", r.error_code),
                        );
                        std::thread::sleep(Duration::from_millis(200));
                        Step::Connect
                    }
                    Err(e) => io_fail!("FindCoordinator", e),
                }
            }

            Step::Join => {
                shared.stable_gen[me].store(-1, Ordering::Release);
                shared.soak_event(
                    group,
                    me,
                    format!("JoinGroup sent (member id {member_id:?})"),
                );
                let req = JoinGroupRequest::default()
                    .with_group_id(GroupId(sb(&gid)))
                    .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                    .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                    .with_member_id(sb(&member_id))
                    .with_protocol_type(sb("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default()
                        .with_name(sb("range"))
                        .with_metadata(metadata.clone())]);
                stats.join_calls += 1;
                let c = conn.as_mut().unwrap();
                match c.call::<_, JoinGroupResponse>(ApiKey::JoinGroup, 7, &req) {
                    Err(e) => io_fail!("JoinGroup", e),
                    Ok(r) => match r.error_code {
                        NONE => {
                            member_id = r.member_id.to_string();
                            *shared.member_id[me].lock().unwrap() = member_id.clone();
                            let protocol = r
                                .protocol_name
                                .as_ref()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            if r.protocol_type.as_ref().map(|t| t.as_str()) != Some("consumer")
                                || protocol != "range"
                            {
                                shared.protocol_error(
                                    group,
                                    me,
                                    format!(
                                        "JoinGroup: protocol {:?}/{protocol:?}",
                                        r.protocol_type
                                    ),
                                );
                            }
                            let is_leader = r.leader.as_str() == member_id;
                            // The leader gets the member list, followers do not.
                            if is_leader == r.members.is_empty() {
                                shared.protocol_error(
                                    group,
                                    me,
                                    format!(
                                        "JoinGroup gen {}: leader={is_leader} but {} member(s) listed",
                                        r.generation_id,
                                        r.members.len()
                                    ),
                                );
                            }
                            let mut ids = Vec::new();
                            for m in &r.members {
                                match decode_subscription(m.metadata.clone()) {
                                    Ok(t) if t == [TOPIC] => {}
                                    other => shared.protocol_error(
                                        group,
                                        me,
                                        format!(
                                            "JoinGroup: member {} subscription {other:?}",
                                            m.member_id
                                        ),
                                    ),
                                }
                                ids.push(m.member_id.to_string());
                            }
                            let assignments = if is_leader {
                                range_assign(&ids)
                            } else {
                                Vec::new()
                            };
                            Step::Sync {
                                generation: r.generation_id,
                                protocol,
                                assignments,
                            }
                        }
                        MEMBER_ID_REQUIRED => {
                            stats.member_id_required += 1;
                            member_id = r.member_id.to_string();
                            *shared.member_id[me].lock().unwrap() = member_id.clone();
                            Step::Join
                        }
                        code => {
                            stats.errors.push(("JoinGroup", code));
                            match code {
                                UNKNOWN_MEMBER_ID => member_id.clear(),
                                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => {}
                                NOT_COORDINATOR
                                | COORDINATOR_NOT_AVAILABLE
                                | COORDINATOR_LOAD_IN_PROGRESS => {
                                    std::thread::sleep(Duration::from_millis(200));
                                }
                                other => {
                                    shared.protocol_error(
                                        group,
                                        me,
                                        format!("JoinGroup: error {other}"),
                                    );
                                    std::thread::sleep(Duration::from_millis(500));
                                }
                            }
                            Step::Join
                        }
                    },
                }
            }

            Step::Sync {
                generation,
                protocol,
                assignments,
            } => {
                let req = SyncGroupRequest::default()
                    .with_group_id(GroupId(sb(&gid)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&member_id))
                    .with_protocol_type(Some(sb("consumer")))
                    .with_protocol_name(Some(sb(&protocol)))
                    .with_assignments(
                        assignments
                            .iter()
                            .map(|(id, parts)| {
                                SyncGroupRequestAssignment::default()
                                    .with_member_id(sb(id))
                                    .with_assignment(assignment(parts))
                            })
                            .collect(),
                    );
                stats.sync_calls += 1;
                let c = conn.as_mut().unwrap();
                match c.call::<_, SyncGroupResponse>(ApiKey::SyncGroup, 5, &req) {
                    Err(e) => io_fail!("SyncGroup", e),
                    Ok(r) => match r.error_code {
                        NONE => {
                            match decode_assignment(r.assignment.clone()) {
                                Ok(a) => *shared.assigned[me].lock().unwrap() = a,
                                Err(e) => shared.protocol_error(
                                    group,
                                    me,
                                    format!("SyncGroup gen {generation}: {e}"),
                                ),
                            }
                            shared.stable_gen[me].store(generation, Ordering::Release);
                            shared.soak_event(
                                group,
                                me,
                                format!("SyncGroup completed generation {generation}"),
                            );
                            // First heartbeat one interval later plus jitter, so the 400 members'
                            // heartbeats spread over the second instead of arriving in one burst.
                            let jitter = Duration::from_millis(rng.below(1000));
                            Step::Heartbeat {
                                generation,
                                next: Instant::now() + HEARTBEAT_INTERVAL / 2 + jitter,
                            }
                        }
                        code => {
                            stats.errors.push(("SyncGroup", code));
                            shared.soak_event(
                                group,
                                me,
                                format!("SyncGroup gen {generation}: error {code}"),
                            );
                            match code {
                                UNKNOWN_MEMBER_ID => member_id.clear(),
                                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => {}
                                other => {
                                    shared.protocol_error(
                                        group,
                                        me,
                                        format!("SyncGroup gen {generation}: error {other}"),
                                    );
                                    std::thread::sleep(Duration::from_millis(500));
                                }
                            }
                            Step::Join
                        }
                    },
                }
            }

            Step::Heartbeat { generation, next } => {
                if !sleep_until(&shared, next) {
                    break;
                }
                let req = HeartbeatRequest::default()
                    .with_group_id(GroupId(sb(&gid)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&member_id));
                let in_soak = shared.phase() == PHASE_SOAK;
                let sent = Instant::now();
                let c = conn.as_mut().unwrap();
                let res = c.call::<_, HeartbeatResponse>(ApiKey::Heartbeat, 4, &req);
                let took = sent.elapsed();
                stats.heartbeats_total += 1;
                if in_soak {
                    stats.soak_heartbeats += 1;
                    stats
                        .soak_latencies_us
                        .push(took.as_micros().min(u32::MAX as u128) as u32);
                }
                match res {
                    Err(e) => io_fail!(format!("Heartbeat gen {generation}"), e),
                    Ok(r) if r.error_code == NONE => {
                        shared.last_ok_heartbeat_gen[me].store(generation, Ordering::Release);
                        if took > MAX_HEARTBEAT_LATENCY {
                            shared.soak_event(
                                group,
                                me,
                                format!("Heartbeat gen {generation}: answered after {took:?}"),
                            );
                        }
                        Step::Heartbeat {
                            generation,
                            next: sent + HEARTBEAT_INTERVAL,
                        }
                    }
                    Ok(r) => {
                        let code = r.error_code;
                        stats.errors.push(("Heartbeat", code));
                        shared.stable_gen[me].store(-1, Ordering::Release);
                        shared.soak_event(
                            group,
                            me,
                            format!("Heartbeat gen {generation}: error {code} after {took:?}"),
                        );
                        match code {
                            UNKNOWN_MEMBER_ID => member_id.clear(),
                            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => {}
                            other => {
                                shared.protocol_error(
                                    group,
                                    me,
                                    format!("Heartbeat gen {generation}: error {other}"),
                                );
                                std::thread::sleep(Duration::from_millis(500));
                            }
                        }
                        Step::Join
                    }
                }
            }
        };
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Broker-side views

fn describe_all(addr: SocketAddr) -> DescribeGroupsResponse {
    let req = DescribeGroupsRequest::default()
        .with_groups((0..GROUPS).map(|g| GroupId(sb(&group_name(g)))).collect());
    raw_call(addr, ApiKey::DescribeGroups, 5, &req)
}

/// Problems with the broker's view of the groups: each should be Stable with exactly the two
/// member ids the members hold, protocol range, and assignments that split the topic.
fn describe_problems(addr: SocketAddr, shared: &Shared) -> Vec<String> {
    let resp = describe_all(addr);
    let mut out = Vec::new();
    if resp.groups.len() != GROUPS {
        out.push(format!(
            "DescribeGroups returned {} groups",
            resp.groups.len()
        ));
    }
    for dg in &resp.groups {
        let name = dg.group_id.0.to_string();
        let Some(g) = (0..GROUPS).find(|g| group_name(*g) == name) else {
            out.push(format!("unexpected group {name}"));
            continue;
        };
        if dg.error_code != 0 || dg.group_state.as_str() != "Stable" {
            out.push(format!(
                "{name}: error {} state {}",
                dg.error_code,
                dg.group_state.as_str()
            ));
            continue;
        }
        if dg.protocol_type.as_str() != "consumer" || dg.protocol_data.as_str() != "range" {
            out.push(format!(
                "{name}: protocol {}/{}",
                dg.protocol_type.as_str(),
                dg.protocol_data.as_str()
            ));
        }
        let mut want: Vec<String> = (0..MEMBERS_PER_GROUP)
            .map(|i| {
                shared.member_id[g * MEMBERS_PER_GROUP + i]
                    .lock()
                    .unwrap()
                    .clone()
            })
            .collect();
        want.sort();
        let mut have: Vec<String> = dg.members.iter().map(|m| m.member_id.to_string()).collect();
        have.sort();
        if have != want {
            out.push(format!(
                "{name}: members {have:?}, the clients hold {want:?}"
            ));
            continue;
        }
        let mut parts = Vec::new();
        for m in &dg.members {
            match decode_assignment(m.member_assignment.clone()) {
                Ok(a) => parts.extend(a),
                Err(e) => out.push(format!("{name}: member {}: {e}", m.member_id.as_str())),
            }
        }
        parts.sort();
        let all: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
        if parts != all {
            out.push(format!("{name}: assigned {parts:?}"));
        }
    }
    out
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------------

#[test]
fn two_hundred_groups_of_two_stay_stable() {
    let test_start = Instant::now();
    let soak = soak_duration();
    let mut b = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("group.initial.rebalance.delay.ms", "0"),
    );
    b.create_topic(TOPIC, PARTITIONS, &[]);
    let broker_pid = b.pid().to_string();

    let members = GROUPS * MEMBERS_PER_GROUP;
    let shared = Arc::new(Shared {
        addr: b.addr(),
        phase: AtomicU8::new(PHASE_SETTLE),
        soak_start: OnceLock::new(),
        stable_gen: (0..members).map(|_| AtomicI32::new(-1)).collect(),
        member_id: (0..members).map(|_| Mutex::new(String::new())).collect(),
        assigned: (0..members).map(|_| Mutex::new(Vec::new())).collect(),
        last_ok_heartbeat_gen: (0..members).map(|_| AtomicI32::new(-1)).collect(),
        soak_events: Mutex::new(Vec::new()),
        protocol_errors: Mutex::new(Vec::new()),
        started: Instant::now(),
    });

    // ---- phase 1: everyone joins; every group reaches Stable --------------------------------
    let settle_start = Instant::now();
    let handles: Vec<_> = (0..members)
        .map(|me| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("member-{me}"))
                .stack_size(256 << 10)
                .spawn(move || run_member(shared, me / MEMBERS_PER_GROUP, me % MEMBERS_PER_GROUP))
                .expect("spawn member thread")
        })
        .collect();

    let stable_groups = |shared: &Shared| -> usize {
        (0..GROUPS)
            .filter(|g| {
                let gens: Vec<i32> = (0..MEMBERS_PER_GROUP)
                    .map(|i| shared.stable_gen[g * MEMBERS_PER_GROUP + i].load(Ordering::Acquire))
                    .collect();
                gens[0] >= 0 && gens.iter().all(|x| *x == gens[0])
            })
            .count()
    };
    let settled = wait_until(SETTLE_TIMEOUT, || stable_groups(&shared) == GROUPS);
    let settle_time = settle_start.elapsed();
    b.assert_running();
    if !settled {
        let stuck: Vec<String> = (0..GROUPS)
            .filter_map(|g| {
                let gens: Vec<i32> = (0..MEMBERS_PER_GROUP)
                    .map(|i| shared.stable_gen[g * MEMBERS_PER_GROUP + i].load(Ordering::Acquire))
                    .collect();
                (gens[0] < 0 || gens.iter().any(|x| *x != gens[0]))
                    .then(|| format!("{}: generations {gens:?}", group_name(g)))
            })
            .take(20)
            .collect();
        shared.phase.store(PHASE_STOP, Ordering::Release);
        panic!(
            "only {}/{GROUPS} groups stable after {SETTLE_TIMEOUT:?}; first stuck: {stuck:#?}\nbroker view: {:#?}",
            stable_groups(&shared),
            describe_problems(b.addr(), &shared).into_iter().take(20).collect::<Vec<_>>()
        );
    }
    // Members see Stable as soon as their SyncGroup answers; the broker must agree.
    let problems = describe_problems(b.addr(), &shared);
    assert!(
        problems.is_empty(),
        "after phase 1, DescribeGroups disagrees with the members: {problems:#?}"
    );
    let gen_after_settle: Vec<i32> = shared
        .stable_gen
        .iter()
        .map(|g| g.load(Ordering::Acquire))
        .collect();
    let mut gen_hist = std::collections::BTreeMap::<i32, usize>::new();
    for g in 0..GROUPS {
        *gen_hist
            .entry(gen_after_settle[g * MEMBERS_PER_GROUP])
            .or_default() += 1;
    }
    eprintln!(
        "phase 1: {GROUPS} groups x {MEMBERS_PER_GROUP} members Stable after {settle_time:.2?}; groups by generation: {gen_hist:?}"
    );

    // ---- phase 2: soak ----------------------------------------------------------------------
    let cpu_before = cpu_seconds(&broker_pid);
    let client_cpu_before = cpu_seconds("self");
    shared.soak_start.set(Instant::now()).unwrap();
    shared.phase.store(PHASE_SOAK, Ordering::Release);
    let soak_start = Instant::now();
    let mut next_report = soak_start + Duration::from_secs(30);
    while soak_start.elapsed() < soak {
        std::thread::sleep(
            Duration::from_millis(500).min(soak.saturating_sub(soak_start.elapsed())),
        );
        b.assert_running();
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(30);
            eprintln!(
                "soak {:>4.0}s: {} anomalies so far, broker CPU {:.1}% of one core",
                soak_start.elapsed().as_secs_f64(),
                shared.soak_events.lock().unwrap().len(),
                100.0 * (cpu_seconds(&broker_pid) - cpu_before)
                    / soak_start.elapsed().as_secs_f64()
            );
        }
    }
    let soak_elapsed = soak_start.elapsed();
    let broker_cpu = cpu_seconds(&broker_pid) - cpu_before;
    let client_cpu = cpu_seconds("self") - client_cpu_before;
    // The broker's view while the members are still heartbeating.
    let end_problems = describe_problems(b.addr(), &shared);
    let gen_at_end: Vec<i32> = shared
        .stable_gen
        .iter()
        .map(|g| g.load(Ordering::Acquire))
        .collect();
    let last_ok_gen: Vec<i32> = shared
        .last_ok_heartbeat_gen
        .iter()
        .map(|g| g.load(Ordering::Acquire))
        .collect();
    shared.phase.store(PHASE_STOP, Ordering::Release);
    let stats: Vec<MemberStats> = handles
        .into_iter()
        .map(|h| h.join().expect("member thread panicked"))
        .collect();
    b.assert_running();

    // ---- report -----------------------------------------------------------------------------
    let soak_events = shared.soak_events.lock().unwrap().clone();
    let protocol_errors = shared.protocol_errors.lock().unwrap().clone();
    let mut lat: Vec<u32> = stats
        .iter()
        .flat_map(|s| s.soak_latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let soak_heartbeats: u64 = stats.iter().map(|s| s.soak_heartbeats).sum();
    let min_member_heartbeats = stats.iter().map(|s| s.soak_heartbeats).min().unwrap_or(0);
    let mut settle_errors = std::collections::BTreeMap::<String, usize>::new();
    for s in &stats {
        for (api, code) in &s.errors {
            *settle_errors.entry(format!("{api}:{code}")).or_default() += 1;
        }
    }
    let spurious_groups: std::collections::BTreeSet<usize> =
        soak_events.iter().map(|e| e.group).collect();
    let changed_gen: Vec<usize> = (0..members)
        .filter(|m| {
            gen_at_end[*m] != gen_after_settle[*m] || last_ok_gen[*m] != gen_after_settle[*m]
        })
        .collect();
    let expirations = b
        .log()
        .lines()
        .filter(|l| l.contains("session expired"))
        .count();
    let broker_cores = broker_cpu / soak_elapsed.as_secs_f64();
    eprintln!(
        "phase 2: {:.1}s soak; heartbeats {soak_heartbeats} ({:.0}/s, fewest by one member {min_member_heartbeats}); \
         latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        soak_elapsed.as_secs_f64(),
        soak_heartbeats as f64 / soak_elapsed.as_secs_f64(),
        percentile(&lat, 0.5) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        percentile(&lat, 0.999) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    eprintln!(
        "phase 2: broker CPU {broker_cpu:.2}s = {:.1}% of one core (limit {:.0}%); test client CPU {client_cpu:.2}s = {:.1}%",
        100.0 * broker_cores,
        100.0 * MAX_BROKER_CORES,
        100.0 * client_cpu / soak_elapsed.as_secs_f64()
    );
    eprintln!(
        "phase 2: anomalies {} in {} group(s); members whose generation changed {}; session expirations in broker log {expirations}",
        soak_events.len(),
        spurious_groups.len(),
        changed_gen.len()
    );
    eprintln!(
        "totals: JoinGroup calls {}, MEMBER_ID_REQUIRED {}, SyncGroup calls {}, heartbeats {}, reconnects {}, non-zero answers {settle_errors:?}",
        stats.iter().map(|s| s.join_calls).sum::<u64>(),
        stats.iter().map(|s| s.member_id_required).sum::<u64>(),
        stats.iter().map(|s| s.sync_calls).sum::<u64>(),
        stats.iter().map(|s| s.heartbeats_total).sum::<u64>(),
        stats.iter().map(|s| s.reconnects).sum::<u64>(),
    );
    eprintln!("total test time {:.1?}", test_start.elapsed());

    // ---- assertions -------------------------------------------------------------------------
    assert!(
        protocol_errors.is_empty(),
        "protocol errors (first 20 of {}): {:#?}",
        protocol_errors.len(),
        &protocol_errors[..protocol_errors.len().min(20)]
    );
    assert!(
        soak_events.is_empty(),
        "{} spurious rebalance event(s) in {} group(s) during the soak (first 30): {:#?}",
        soak_events.len(),
        spurious_groups.len(),
        &soak_events[..soak_events.len().min(30)]
    );
    assert!(
        changed_gen.is_empty(),
        "members whose generation changed or whose last heartbeat failed: {:?}",
        changed_gen
            .iter()
            .take(20)
            .map(|m| (m, gen_after_settle[*m], gen_at_end[*m], last_ok_gen[*m]))
            .collect::<Vec<_>>()
    );
    assert!(
        end_problems.is_empty(),
        "after the soak, DescribeGroups shows (first 20): {:#?}",
        &end_problems[..end_problems.len().min(20)]
    );
    // Every member really heartbeated all along (at 1/s, allowing for the phase edges).
    let want_min = ((soak_elapsed.as_secs_f64() * 0.9) as u64).saturating_sub(1);
    assert!(
        min_member_heartbeats >= want_min,
        "a member sent only {min_member_heartbeats} heartbeats in {soak_elapsed:?}"
    );
    let max_latency = Duration::from_micros(lat.last().copied().unwrap_or(0) as u64);
    assert!(
        max_latency <= MAX_HEARTBEAT_LATENCY,
        "slowest heartbeat took {max_latency:?}"
    );
    assert_eq!(expirations, 0, "the broker expired member sessions");
    assert!(
        broker_cores < MAX_BROKER_CORES,
        "broker used {:.1}% of one core on average over the soak (limit {:.0}%)",
        100.0 * broker_cores,
        100.0 * MAX_BROKER_CORES
    );
    assert!(b.panics_in_log().is_empty(), "{:?}", b.panics_in_log());
    b.stop();
}
