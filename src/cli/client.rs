//! A small blocking Kafka client for the CLI: one connection per broker (`cli::conn`: framing
//! and the ApiVersions handshake), request routing (bootstrap, any node, group coordinator) and
//! Kafka error codes turned into [`CliError`]s.
//!
//! It speaks to any Kafka-compatible broker: every request version is min(our max, the broker's
//! max) and request shapes that changed across versions are built for the version in use.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::conn::{Conn, ConnError, Timeouts};
use super::error::{CliError, Result};

pub use super::conn::api_name;

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

impl From<ConnError> for CliError {
    fn from(e: ConnError) -> CliError {
        match e {
            ConnError::Io(m) => CliError::connect(m),
            ConnError::Protocol(m) => CliError::other(m),
        }
    }
}

fn open(addr: &str, cfg: &ClientConfig) -> Result<Conn> {
    let timeouts = Timeouts {
        connect: cfg.connect_timeout,
        io: cfg.request_timeout,
    };
    Ok(Conn::open(addr, CLIENT_ID, timeouts, MAX_FRAME)?)
}

/// The version `conn` uses for `R`.
fn version_on<R: Request>(conn: &Conn) -> Result<i16> {
    Ok(conn.version::<R>(our_max(R::KEY))?)
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
        let conn = open(&cfg.bootstrap, &cfg)?;
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
                    self.bootstrap = Some(open(&self.cfg.bootstrap, &self.cfg)?);
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
                    let conn = open(&addr, &self.cfg)?;
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
        version_on::<R>(self.conn(target)?)
    }

    /// Sends the request `build(version)` to `target`. A broken connection is dropped so the
    /// next call reconnects.
    pub fn call<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response)> {
        let conn = self.conn(target)?;
        let v = version_on::<R>(conn)?;
        let req = build(v);
        match conn.call(v, &req) {
            Ok(r) => Ok((v, r)),
            Err(e) => {
                match target {
                    Target::Bootstrap => self.bootstrap = None,
                    Target::Node(id) => {
                        self.nodes.remove(&id);
                    }
                }
                Err(e.into())
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
        let v = version_on::<R>(conn)?;
        let req = build(v);
        Ok(conn.send_only(v, &req)?)
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
                    let conn = open(&addr, &self.cfg)?;
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
