//! Start-up on shard 0: the metadata quorum's log opened (a metadata log of an older shardlog
//! converted into its first snapshot), replayed into the committed image, this data directory's
//! identity (`meta.properties`) settled, this node's placement brought in line, the data
//! directory cleaned, the result loaded on every shard, and the quorum task returned for the
//! caller to run.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use raft::prelude::{HardState, Snapshot};
use uuid::Uuid;

use super::state;
use super::state_machine::MetadataStateMachine;
use crate::metadata::legacy::convert;
use crate::metadata::{BrokerMeta, MetadataImage, MetadataRecord};
use crate::node::meta_properties::{settle, stored_cluster_id};
use crate::quorum::core::QuorumCore;
use crate::quorum::driver::{Driver, ProposeError, QuorumHandle};
use crate::quorum::log_store::{QuorumLog, Recovered};
use crate::quorum::transport::{self, Identity, Transport};
use crate::runtime::file::blocking;
use crate::shard::current;
use crate::shard::publish::{load, open_placement, publish, publish_quorum_leader};

/// The quorum task, for the caller to spawn: it runs until the node stops, or fails (its log
/// could not be written) and the node must stop.
pub type QuorumTask = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>>>>;

/// Startup on shard 0 (see the module docs). Returns once every shard has its metadata and
/// partitions; the returned task must then be spawned.
pub async fn bootstrap() -> io::Result<QuorumTask> {
    let shard = current();
    let node = shard.config.node_id();
    let data_dir = shard.config.data_dir();
    let quorum_dir = data_dir.join("__metadata").join("quorum");
    let configured = shard.config.quorum_voters().map_err(io::Error::other)?;
    let voters: Vec<u64> = match configured.is_empty() {
        true => vec![node as u64],
        false => configured.iter().map(|(id, _)| *id).collect(),
    };
    // The data directory's node comes first: another node's directory is refused before
    // anything is read from it.
    let stored_cluster = {
        let dir = data_dir.clone();
        blocking(move || stored_cluster_id(&dir, node)).await?
    };
    let (mut log, mut recovered) = {
        let dir = quorum_dir.clone();
        blocking(move || QuorumLog::open(&dir)).await?
    };
    // A metadata log from before the quorum becomes the quorum's first snapshot. Its placement
    // (an old format's shards) is made durable first, then the snapshot, then the old log is
    // set aside: a crash at any point converts again or finds the conversion done.
    let mut placement = None;
    let old_log = data_dir.join("__metadata").join("metadata.log");
    let fresh = recovered.snapshot.is_none() && recovered.entries.is_empty();
    let mut converted_deletes = std::collections::HashSet::new();
    let set_aside_log = set_aside_path(&old_log);
    if !fresh && old_log.exists() && set_aside_log.exists() {
        // Converted before, and then an older shardlog ran here and wrote a metadata log of
        // its own (it saw no topics, and set their directories aside as strays).
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} was written by an older shardlog after this data directory was converted to \
                 the metadata quorum ({} is the converted one); topics created meanwhile would \
                 be lost. Move it away to start, and restore partition directories renamed \
                 *-stray by that run",
                old_log.display(),
                set_aside_log.display()
            ),
        ));
    }
    if fresh && old_log.exists() && voters.len() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is an older shardlog's metadata log: start this node once without \
                 controller.quorum.voters to convert it (a cluster cannot adopt one node's log)",
                old_log.display()
            ),
        ));
    }
    if fresh && old_log.exists() {
        let dir = data_dir.clone();
        let stored = blocking(move || crate::metadata::store::read(&dir)).await?;
        let converted = convert(stored, node);
        let mut image = MetadataImage::default();
        converted.records.iter().for_each(|r| image.apply(r));
        converted_deletes = converted
            .records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::DeleteTopic { name } if image.topic(name).is_none() => {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        placement =
            Some(open_placement(&image, converted.had_legacy.then_some(converted.shards)).await?);
        let snapshot = first_snapshot(&image, &voters, 1, 1);
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        let (back, written) = write_snapshot(log, snapshot, hs).await;
        log = back;
        recovered = written?;
        tracing::info!(
            "metadata log {} converted into the metadata quorum's first snapshot",
            old_log.display()
        );
    } else if fresh {
        // The voters, durable before anything else: a restart under other voters is refused
        // instead of joining a quorum that counts votes differently.
        let snapshot = first_snapshot(&MetadataImage::default(), &voters, 0, 0);
        let (back, written) = write_snapshot(log, snapshot, HardState::default()).await;
        log = back;
        recovered = written?;
    }
    if old_log.exists() {
        set_aside(&old_log).await?;
    }
    // A log without a snapshot was written by the first quorum version, which knew only a
    // quorum of this node alone.
    let stored_voters = recovered.snapshot.as_ref().map_or_else(
        || vec![node as u64],
        |s| s.get_metadata().get_conf_state().voters.clone(),
    );
    let mut sorted = stored_voters.clone();
    sorted.sort();
    if sorted != voters {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "this data directory's metadata quorum has voters {sorted:?}, but \
                 controller.quorum.voters names {voters:?}; changing the voters of a quorum is \
                 not supported"
            ),
        ));
    }
    // Replay: the committed image, built offline (nothing opened yet).
    let mut sm = MetadataStateMachine {
        deleted_at_start: converted_deletes,
        ..Default::default()
    };
    if let Some(s) = &recovered.snapshot {
        sm.image = MetadataImage::decode_snapshot(&s.data).map_err(io::Error::other)?;
    }
    let core = QuorumCore::new(node as u64, &voters, recovered).map_err(io::Error::other)?;
    // A quorum of one sends nothing.
    let outbox = Rc::new(|_msgs| {});
    let (mut driver, handle) = Driver::new(core, log, sm, outbox, shard.timer.clone());
    let transport = match shard.config.controller_listen().map_err(io::Error::other)? {
        Some(listen) if voters.len() > 1 => {
            // The directory's cluster id, else the configured one: peers that know another
            // refuse this node (and it them), even at a cluster's first start when every node
            // is configured with the same cluster.id.
            let me = Identity {
                node: node as u64,
                voters: configured.clone(),
                cluster_id: stored_cluster.clone().or_else(|| {
                    Some(shard.config.get("cluster.id").to_string()).filter(|c| !c.is_empty())
                }),
            };
            let (transport, outbox) =
                transport::start(me, listen, handle.clone(), shard.timer.clone())?;
            driver.set_outbox(outbox);
            tracing::info!("metadata quorum: listening for voters on {listen}");
            Some(transport)
        }
        _ => None,
    };
    driver.watch_leader(Box::new(|leader| {
        publish_quorum_leader(leader.and_then(|l| i32::try_from(l).ok()))
    }));
    driver.catch_up().await?;
    let mut start = StartCommits {
        driver: &mut driver,
        handle: &handle,
        transport: transport.as_deref(),
        voters: &voters,
        since: shard.timer.now_ms(),
        warned: 0,
    };
    // The cluster id comes from the quorum: the first one committed wins (this directory's own,
    // the configured one, or a new one), and every node's directory must then agree.
    if start.driver.state_machine().image.cluster_id.is_empty() {
        let candidate = stored_cluster
            .clone()
            .or_else(|| Some(shard.config.get("cluster.id").to_string()).filter(|c| !c.is_empty()))
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        let record = serde_json::to_vec(&MetadataRecord::ClusterId { id: candidate })
            .map_err(io::Error::other)?;
        // Refused means another node's id was committed first: that one holds.
        let _ = start.commit(record).await?;
    }
    let cluster_id = start.driver.state_machine().image.cluster_id.clone();
    let configured_id = shard.config.get("cluster.id");
    if !configured_id.is_empty() && configured_id != cluster_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "cluster.id is set to {configured_id}, but the metadata quorum's cluster id is \
                 {cluster_id}"
            ),
        ));
    }
    {
        let dir = data_dir.clone();
        let id = cluster_id.clone();
        blocking(move || settle(&dir, node, Some(&id), || id.clone())).await?;
    }
    if let Some(t) = &transport {
        t.set_cluster_id(&cluster_id);
    }
    // Registering is also the catch-up barrier: once this node's own record is applied here,
    // so is everything committed before it.
    let (host, port) = shard.config.advertised().map_err(io::Error::other)?;
    let register = MetadataRecord::RegisterBroker {
        broker: BrokerMeta {
            id: node,
            host,
            port,
            incarnation: Uuid::new_v4(),
            fenced: false,
            shutting_down: false,
        },
    };
    start
        .commit(serde_json::to_vec(&register).map_err(io::Error::other)?)
        .await?
        .map_err(io::Error::other)?;
    // From here the node loads its partitions, which can take a while with many of them: the
    // quorum keeps running meanwhile (a silent voter would stall or unsettle the others), and
    // what it commits is kept aside and published once the shards are loaded.
    let backlog: Backlog = Rc::new(RefCell::new(Vec::new()));
    driver.state_machine().backlog = Some(backlog.clone());
    let image = driver.state_machine().image.clone();
    state::set_producer_ids((image.producer_id_block_end, image.producer_id_block_end));
    // Directories of deleted topics a crash left behind, before any partition is opened.
    let deleted = std::mem::take(&mut driver.state_machine().deleted_at_start);
    let deleted: std::collections::HashSet<String> = deleted
        .into_iter()
        .filter(|n| image.topic(n).is_none())
        .collect();
    let loading = async {
        let placement = match placement {
            Some(p) => p,
            None => open_placement(&image, None).await?,
        };
        let listed = image.clone();
        let dir = data_dir.clone();
        match blocking(move || {
            crate::shard::partition_dirs::clean_data_dir(&dir, &listed, &deleted)
        })
        .await
        {
            Ok(c) if !c.removed.is_empty() => {
                tracing::info!("removed directories of deleted partitions: {:?}", c.removed)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cleaning the data directory: {e}"),
        }
        // Ship the final state, not the history: replaying a create-then-delete would open
        // and then remove directories for nothing.
        load(image.snapshot_records(), placement)
            .await
            .map_err(io::Error::other)
    };
    stopped_unless(driver.run_until(loading).await?)??;
    // What was committed while loading, in order; more may come while it is published.
    let draining = async {
        loop {
            let batch = std::mem::take(&mut *backlog.borrow_mut());
            if batch.is_empty() {
                return;
            }
            for record in batch {
                if let Err(e) = publish(record).await {
                    tracing::error!("publishing a metadata change: {e}");
                }
            }
        }
    };
    stopped_unless(driver.run_until(draining).await?)?;
    // The driver is not running between the last empty backlog and this: nothing is missed.
    let sm = driver.state_machine();
    sm.backlog = None;
    sm.online = true;
    state::set_quorum(handle);
    Ok(Box::pin(async move {
        // The transport lives as long as the quorum task.
        let _transport = transport;
        let watch = async {
            super::liveness::watch_brokers().await;
            std::future::pending::<io::Result<()>>().await
        };
        futures_lite::future::or(driver.run(), watch).await
    }))
}

/// Commits made while the node starts: the quorum runs while they wait (it may have to elect
/// a leader first, with the other voters still starting), a conflict with a peer stops the
/// start, and a long wait is logged.
struct StartCommits<'a, S: crate::quorum::driver::StateMachine> {
    driver: &'a mut Driver<S>,
    handle: &'a QuorumHandle,
    transport: Option<&'a Transport>,
    voters: &'a [u64],
    since: u64,
    warned: u64,
}

impl<S: crate::quorum::driver::StateMachine> StartCommits<'_, S> {
    /// Commits `record` and returns once it is applied here: `Ok(Err(why))` if the state
    /// machine refused it.
    async fn commit(&mut self, record: Vec<u8>) -> io::Result<Result<(), String>> {
        let timer = current().timer.clone();
        loop {
            if let Some(why) = self.transport.and_then(Transport::conflict) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, why));
            }
            let waited = timer.now_ms().saturating_sub(self.since) / 10_000;
            if waited > self.warned {
                self.warned = waited;
                tracing::warn!(
                    "waiting for the metadata quorum (voters {:?}) to elect a leader: {} s",
                    self.voters,
                    waited * 10
                );
            }
            let attempt =
                timer.timeout(START_COMMIT_TIMEOUT_MS, self.handle.propose(record.clone()));
            match self.driver.run_until(attempt).await? {
                None => return Err(io::Error::other("the metadata quorum stopped")),
                Some(Ok(Ok(()))) => return Ok(Ok(())),
                Some(Ok(Err(ProposeError::Refused(why)))) => return Ok(Err(why)),
                Some(Ok(Err(ProposeError::Stopped))) => {
                    return Err(io::Error::other("the metadata quorum stopped"))
                }
                // No leader yet (or it was lost): let the election run, then try again.
                Some(Ok(Err(ProposeError::NoLeader(_)))) | Some(Err(_)) => {
                    let pause = timer.sleep(ELECTION_PAUSE_MS);
                    self.driver.run_until(pause).await?;
                }
            }
        }
    }
}

/// Records committed while the shards load, published after.
type Backlog = Rc<RefCell<Vec<MetadataRecord>>>;

/// `Some(output)` of a `run_until`, or the error of a quorum that stopped first.
fn stopped_unless<T>(output: Option<T>) -> io::Result<T> {
    output.ok_or_else(|| io::Error::other("the metadata quorum stopped"))
}

/// How long a start-up commit waits before it is proposed again.
const START_COMMIT_TIMEOUT_MS: u64 = 3_000;
/// How long to let an election run before proposing again when there is no leader.
const ELECTION_PAUSE_MS: u64 = 200;

/// Makes `snapshot` the whole of `log` (durably); the log back, and what it now holds.
async fn write_snapshot(
    mut log: QuorumLog,
    snapshot: Snapshot,
    hs: HardState,
) -> (QuorumLog, io::Result<Recovered>) {
    blocking(move || {
        let r = log.replace_with_snapshot(&snapshot, &[], &hs);
        let recovered = r.map(|()| Recovered {
            snapshot: Some(snapshot),
            entries: Vec::new(),
            hard_state: hs,
        });
        (log, recovered)
    })
    .await
}

/// The quorum's first snapshot: `image` with `voters`, as of entry `index` in `term` (a
/// converted metadata log: entry 1 of term 1; a new quorum: entry 0, nothing yet).
fn first_snapshot(image: &MetadataImage, voters: &[u64], index: u64, term: u64) -> Snapshot {
    let mut snapshot = Snapshot {
        data: image.encode_snapshot().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(raft::prelude::ConfState::from((voters.to_vec(), vec![])));
    snapshot
}

fn set_aside_path(old_log: &Path) -> std::path::PathBuf {
    let mut to = old_log.as_os_str().to_owned();
    to.push(".converted");
    to.into()
}

/// Renames a converted metadata log to `metadata.log.converted` (kept for operators; nothing
/// reads it again).
async fn set_aside(old_log: &Path) -> io::Result<()> {
    crate::runtime::file::rename(old_log, &set_aside_path(old_log)).await?;
    if let Some(dir) = old_log.parent() {
        crate::runtime::file::sync_dir(dir).await?;
    }
    Ok(())
}
