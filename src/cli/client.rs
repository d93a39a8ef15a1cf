//! A small blocking Kafka client for the CLI: one TCP connection per broker, ApiVersions
//! negotiation per connection, request routing (bootstrap, any node, group coordinator) and
//! Kafka error codes turned into [`CliError`]s.
//!
//! It speaks to any Kafka-compatible broker: every request version is min(our max, the broker's
//! max) and request shapes that changed across versions are built for the version in use.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::{CliError, Result};

pub const CLIENT_ID: &str = "shardlog-cli";

/// A frame larger than this is treated as a protocol error (guards against garbage lengths).
const MAX_FRAME: usize = 256 << 20;

/// The highest version of each API this client builds requests for. Capped where a newer
/// version changes semantics the CLI does not handle (e.g. topic ids instead of names).
fn our_max(key: i16) -> i16 {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Metadata) => 12,
        Ok(ApiKey::ApiVersions) => 3,
        Ok(ApiKey::CreateTopics) => 7,
        Ok(ApiKey::DeleteTopics) => 6,
        Ok(ApiKey::CreatePartitions) => 3,
        Ok(ApiKey::DescribeConfigs) => 4,
        Ok(ApiKey::ListOffsets) => 8,
        Ok(ApiKey::FindCoordinator) => 4,
        Ok(ApiKey::ListGroups) => 4,
        Ok(ApiKey::DescribeGroups) => 5,
        Ok(ApiKey::OffsetFetch) => 8,
        Ok(ApiKey::OffsetCommit) => 8,
        Ok(ApiKey::DeleteGroups) => 2,
        Ok(ApiKey::IncrementalAlterConfigs) => 1,
        Ok(ApiKey::DescribeCluster) => 1,
        // v9 is the first flexible version; later ones add nothing the CLI uses (v13 wants ids).
        Ok(ApiKey::Produce) => 9,
        // v13+ address topics by id.
        Ok(ApiKey::Fetch) => 12,
        _ => 0,
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub bootstrap: String,
    /// TCP connect timeout per address.
    pub connect_timeout: Duration,
    /// Read/write timeout on every request.
    pub request_timeout: Duration,
}

/// One broker connection with the versions it supports.
struct Conn {
    addr: String,
    stream: TcpStream,
    next_correlation: i32,
    /// api key → (min, max) as the broker advertised.
    apis: BTreeMap<i16, (i16, i16)>,
}

fn connect(addr: &str, cfg: &ClientConfig) -> Result<TcpStream> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| CliError::connect(format!("cannot resolve broker address {addr}: {e}")))?
        .collect();
    let mut last = format!("no address found for {addr}");
    for a in addrs {
        match TcpStream::connect_timeout(&a, cfg.connect_timeout) {
            Ok(s) => {
                let io = |e: std::io::Error| CliError::connect(format!("{addr}: {e}"));
                s.set_nodelay(true).map_err(io)?;
                s.set_read_timeout(Some(cfg.request_timeout)).map_err(io)?;
                s.set_write_timeout(Some(cfg.request_timeout)).map_err(io)?;
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to broker at {addr}: {e}"),
        }
    }
    Err(CliError::connect(last))
}

pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api {key}"),
    }
}

impl Conn {
    fn open(addr: &str, cfg: &ClientConfig) -> Result<Conn> {
        let mut conn = Conn {
            addr: addr.to_string(),
            stream: connect(addr, cfg)?,
            next_correlation: 1,
            apis: BTreeMap::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first; a broker that does not know v3 answers UNSUPPORTED_VERSION in the v0 format
        // (which may not decode as v3): reconnect and ask with v0 then.
        let resp = match conn.raw_call(3, &req) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                conn.stream = connect(addr, cfg)?;
                conn.raw_call(0, &req)?
            }
        };
        if resp.error_code != 0 {
            return Err(CliError::broker(resp.error_code, "ApiVersions", None));
        }
        conn.apis = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// min(our max, broker max, crate max), if within every range.
    fn version<R: Request>(&self) -> Result<i16> {
        let name = api_name(R::KEY);
        let (bmin, bmax) = *self.apis.get(&R::KEY).ok_or_else(|| {
            CliError::other(format!(
                "broker {} does not support {name} (not in its ApiVersions)",
                self.addr
            ))
        })?;
        let crate_range = ApiKey::try_from(R::KEY)
            .map(|k| k.valid_versions())
            .map_err(|_| CliError::other(format!("unknown api key {}", R::KEY)))?;
        let v = our_max(R::KEY).min(bmax).min(crate_range.max);
        if v < bmin || v < crate_range.min {
            return Err(CliError::other(format!(
                "no common version of {name} with broker {}: broker {bmin}..={bmax}, client {}..={}",
                self.addr,
                crate_range.min,
                our_max(R::KEY).min(crate_range.max)
            )));
        }
        Ok(v)
    }

    /// Encodes `size + header + body` for the next correlation id; returns the frame and the id.
    fn encode_frame<R: Request>(&mut self, version: i16, req: &R) -> Result<(BytesMut, i32)> {
        let name = api_name(R::KEY);
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut out = BytesMut::new();
        out.extend_from_slice(&[0, 0, 0, 0]);
        header
            .encode(&mut out, R::header_version(version))
            .map_err(|e| CliError::other(format!("encoding {name} request header: {e}")))?;
        req.encode(&mut out, version)
            .map_err(|e| CliError::other(format!("encoding {name} v{version} request: {e}")))?;
        let size = i32::try_from(out.len() - 4)
            .map_err(|_| CliError::other(format!("{name} request too large")))?;
        out[0..4].copy_from_slice(&size.to_be_bytes());
        Ok((out, corr))
    }

    /// Sends a request that gets no response (Produce with acks=0).
    fn send_only<R: Request>(&mut self, version: i16, req: &R) -> Result<()> {
        let name = api_name(R::KEY);
        let (out, _) = self.encode_frame(version, req)?;
        self.stream
            .write_all(&out)
            .map_err(|e| CliError::connect(format!("{}: sending {name}: {e}", self.addr)))
    }

    fn raw_call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let name = api_name(R::KEY);
        let (out, corr) = self.encode_frame(version, req)?;
        let addr = self.addr.clone();
        let io = |what: &str, e: std::io::Error| {
            let hint = if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                " (timed out)"
            } else {
                ""
            };
            CliError::connect(format!("{addr}: {what} {name}: {e}{hint}"))
        };
        self.stream.write_all(&out).map_err(|e| io("sending", e))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| io("reading response to", e))?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > MAX_FRAME {
            let what = if &size.to_be_bytes() == b"HTTP" {
                "an HTTP server answered"
            } else {
                "bad response frame size"
            };
            return Err(CliError::other(format!(
                "{addr}: {what} ({size}) to {name}: is this a Kafka broker's address?"
            )));
        }
        let mut buf = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| io("reading response to", e))?;
        let mut frame = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| {
                CliError::other(format!("{addr}: decoding {name} response header: {e}"))
            })?;
        if header.correlation_id != corr {
            return Err(CliError::other(format!(
                "{addr}: {name} response has correlation id {} but {corr} was expected",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(|e| {
            CliError::other(format!("{addr}: decoding {name} v{version} response: {e}"))
        })
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The bootstrap broker.
    Bootstrap,
    /// A broker by node id (from Metadata).
    Node(i32),
}

/// Cluster view from Metadata.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// node id → host:port
    pub brokers: BTreeMap<i32, String>,
    pub controller_id: i32,
    pub cluster_id: Option<String>,
}

/// The client: lazily opened connections per broker.
pub struct Client {
    cfg: ClientConfig,
    bootstrap: Option<Conn>,
    nodes: HashMap<i32, Conn>,
    cluster: Option<Cluster>,
    coordinators: HashMap<String, i32>,
}

impl Client {
    /// Connects to the bootstrap broker (fails fast if it is unreachable).
    pub fn connect(cfg: ClientConfig) -> Result<Client> {
        let conn = Conn::open(&cfg.bootstrap, &cfg)?;
        Ok(Client {
            cfg,
            bootstrap: Some(conn),
            nodes: HashMap::new(),
            cluster: None,
            coordinators: HashMap::new(),
        })
    }

    fn conn(&mut self, target: Target) -> Result<&mut Conn> {
        match target {
            Target::Bootstrap => {
                if self.bootstrap.is_none() {
                    self.bootstrap = Some(Conn::open(&self.cfg.bootstrap, &self.cfg)?);
                }
                self.bootstrap
                    .as_mut()
                    .ok_or_else(|| CliError::other("bootstrap connection missing"))
            }
            Target::Node(id) => {
                if !self.nodes.contains_key(&id) {
                    let addr = match self.cluster()?.brokers.get(&id) {
                        Some(a) => a.clone(),
                        None => {
                            // Refresh once: a node may have joined since.
                            self.cluster = None;
                            self.cluster()?.brokers.get(&id).cloned().ok_or_else(|| {
                                CliError::other(format!(
                                    "broker {id} is not in the cluster metadata"
                                ))
                            })?
                        }
                    };
                    let conn = Conn::open(&addr, &self.cfg)?;
                    self.nodes.insert(id, conn);
                }
                self.nodes
                    .get_mut(&id)
                    .ok_or_else(|| CliError::other("node connection missing"))
            }
        }
    }

    /// The version `target` will be sent for `R` (opening the connection if needed).
    pub fn version<R: Request>(&mut self, target: Target) -> Result<i16> {
        self.conn(target)?.version::<R>()
    }

    /// Sends the request `build(version)` to `target`. A broken connection is dropped so the
    /// next call reconnects.
    pub fn call<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response)> {
        let conn = self.conn(target)?;
        let v = conn.version::<R>()?;
        let req = build(v);
        match conn.raw_call(v, &req) {
            Ok(r) => Ok((v, r)),
            Err(e) => {
                match target {
                    Target::Bootstrap => self.bootstrap = None,
                    Target::Node(id) => {
                        self.nodes.remove(&id);
                    }
                }
                Err(e)
            }
        }
    }

    /// Sends `build(version)` to `target` without waiting for an answer (acks=0 Produce).
    pub fn send_only<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<()> {
        let conn = self.conn(target)?;
        let v = conn.version::<R>()?;
        let req = build(v);
        conn.send_only(v, &req)
    }

    /// Metadata for `topics` (`None` = all topics).
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let (_, resp) = self.call(Target::Bootstrap, |v| {
            let topics = match topics {
                // v0 has no null: an empty list means "all topics".
                None if v == 0 => Some(Vec::new()),
                None => None,
                Some(ts) => Some(
                    ts.iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                        })
                        .collect(),
                ),
            };
            MetadataRequest::default()
                .with_topics(topics)
                .with_allow_auto_topic_creation(false)
        })?;
        let cluster = Cluster {
            brokers: resp
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                .collect(),
            controller_id: resp.controller_id.0,
            cluster_id: resp.cluster_id.as_ref().map(|c| c.to_string()),
        };
        self.cluster = Some(cluster);
        Ok(resp)
    }

    /// The cluster view (one Metadata call for no topics, cached).
    pub fn cluster(&mut self) -> Result<&Cluster> {
        if self.cluster.is_none() {
            self.metadata(Some(&[]))?;
        }
        self.cluster
            .as_ref()
            .ok_or_else(|| CliError::other("no cluster metadata"))
    }

    /// Where admin requests (CreateTopics, DeleteTopics, CreatePartitions) go: the controller
    /// if Metadata names one, else the bootstrap broker.
    pub fn controller(&mut self) -> Result<Target> {
        let c = self.cluster()?;
        Ok(if c.brokers.contains_key(&c.controller_id) {
            Target::Node(c.controller_id)
        } else {
            Target::Bootstrap
        })
    }

    /// The coordinator of `group` (FindCoordinator, cached). Retries while the broker reports
    /// the coordinator as not available yet.
    pub fn coordinator(&mut self, group: &str) -> Result<Target> {
        if let Some(id) = self.coordinators.get(group) {
            return Ok(Target::Node(*id));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (v, resp) = self.call(Target::Bootstrap, |v| {
                let req = FindCoordinatorRequest::default().with_key_type(0);
                if v >= 4 {
                    req.with_coordinator_keys(vec![StrBytes::from_string(group.to_string())])
                } else {
                    req.with_key(StrBytes::from_string(group.to_string()))
                }
            })?;
            let c = if v >= 4 {
                resp.coordinators.into_iter().next().ok_or_else(|| {
                    CliError::other("FindCoordinator answered without a coordinator")
                })?
            } else {
                Coordinator::default()
                    .with_error_code(resp.error_code)
                    .with_error_message(resp.error_message)
                    .with_node_id(resp.node_id)
                    .with_host(resp.host)
                    .with_port(resp.port)
            };
            if c.error_code == 0 {
                let id = c.node_id.0;
                let addr = format!("{}:{}", c.host.as_str(), c.port);
                if !self.nodes.contains_key(&id) {
                    let conn = Conn::open(&addr, &self.cfg)?;
                    self.nodes.insert(id, conn);
                }
                self.coordinators.insert(group.to_string(), id);
                return Ok(Target::Node(id));
            }
            if !is_coordinator_retriable(c.error_code) || Instant::now() > deadline {
                return Err(CliError::broker(
                    c.error_code,
                    &format!("FindCoordinator for group {group}"),
                    c.error_message.as_ref().map(|m| m.as_str()),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Forgets the cached coordinator of `group` (after NOT_COORDINATOR and the like).
    pub fn forget_coordinator(&mut self, group: &str) {
        self.coordinators.remove(group);
    }

    /// Runs `f` against the coordinator of `group`, re-finding the coordinator and retrying (for
    /// up to 10 s) while `f` fails with COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE or
    /// NOT_COORDINATOR.
    pub fn with_coordinator<T>(
        &mut self,
        group: &str,
        mut f: impl FnMut(&mut Client, Target) -> Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let target = self.coordinator(group)?;
            match f(self, target) {
                Err(e)
                    if e.code().is_some_and(is_coordinator_retriable)
                        && Instant::now() < deadline =>
                {
                    self.forget_coordinator(group);
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }
}

/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
pub fn is_coordinator_retriable(code: i16) -> bool {
    matches!(code, 14..=16)
}
