//! Start-up on shard 0: the metadata quorum's log opened (a metadata log of an older shardlog
//! converted into its first snapshot), replayed into the committed image, this data directory's
//! identity (`meta.properties`) settled, this node's placement brought in line, the data
//! directory cleaned, the result loaded on every shard, and the quorum task returned for the
//! caller to run.

use std::io;
use std::path::Path;
use std::rc::Rc;

use raft::prelude::{HardState, Snapshot};
use uuid::Uuid;

use super::state;
use super::state_machine::MetadataStateMachine;
use crate::metadata::legacy::convert;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::node::meta_properties::settle;
use crate::quorum::core::QuorumCore;
use crate::quorum::driver::Driver;
use crate::quorum::log_store::{QuorumLog, Recovered};
use crate::runtime::file::blocking;
use crate::shard::current;
use crate::shard::publish::{load, open_placement};

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
    let voters = [node as u64];
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
        let snapshot = first_snapshot(&image, &voters);
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        let (back, written) = blocking(move || {
            let r = log.replace_with_snapshot(&snapshot, &[], &hs);
            (log, r.map(|()| (snapshot, hs)))
        })
        .await;
        log = back;
        let (snapshot, hs) = written?;
        recovered = Recovered {
            snapshot: Some(snapshot),
            entries: Vec::new(),
            hard_state: hs,
        };
        tracing::info!(
            "metadata log {} converted into the metadata quorum's first snapshot",
            old_log.display()
        );
    }
    if old_log.exists() {
        set_aside(&old_log).await?;
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
    driver.catch_up().await?;
    // The data directory's identity: it refuses another node id or cluster, and supplies the
    // cluster id to a metadata log without one (settled before that id is committed, so a crash
    // in between cannot make the two disagree).
    let in_metadata =
        Some(driver.state_machine().image.cluster_id.clone()).filter(|c| !c.is_empty());
    let cluster_id = {
        let dir = data_dir.clone();
        let metadata_id = in_metadata.clone();
        let configured = shard.config.get("cluster.id").to_string();
        blocking(move || {
            settle(&dir, node, metadata_id.as_deref(), || {
                match configured.as_str() {
                    "" => Uuid::new_v4().simple().to_string(),
                    id => id.to_string(),
                }
            })
        })
        .await?
    };
    if in_metadata.is_none() {
        let record = serde_json::to_vec(&MetadataRecord::ClusterId { id: cluster_id })
            .map_err(io::Error::other)?;
        driver.commit_now(record).await?.map_err(io::Error::other)?;
    }
    let image = driver.state_machine().image.clone();
    let placement = match placement {
        Some(p) => p,
        None => open_placement(&image, None).await?,
    };
    state::set_producer_ids((image.producer_id_block_end, image.producer_id_block_end));
    // Directories of deleted topics a crash left behind, before any partition is opened.
    let deleted = std::mem::take(&mut driver.state_machine().deleted_at_start);
    let deleted: std::collections::HashSet<String> = deleted
        .into_iter()
        .filter(|n| image.topic(n).is_none())
        .collect();
    let listed = image.clone();
    let dir = data_dir.clone();
    match blocking(move || crate::shard::partition_dirs::clean_data_dir(&dir, &listed, &deleted))
        .await
    {
        Ok(c) if !c.removed.is_empty() => {
            tracing::info!("removed directories of deleted partitions: {:?}", c.removed)
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cleaning the data directory: {e}"),
    }
    // Ship the final state, not the history: replaying a create-then-delete would open and
    // then remove directories for nothing.
    let mut snapshot = vec![MetadataRecord::ClusterId {
        id: image.cluster_id.clone(),
    }];
    snapshot.extend(
        image
            .topics()
            .map(|t| MetadataRecord::CreateTopic { topic: t.clone() }),
    );
    load(snapshot, placement).await.map_err(io::Error::other)?;
    driver.state_machine().online = true;
    state::set_quorum(handle);
    Ok(Box::pin(driver.run()))
}

/// The snapshot a converted metadata log becomes: the quorum's state as of entry 1, term 1.
fn first_snapshot(image: &MetadataImage, voters: &[u64]) -> Snapshot {
    let mut snapshot = Snapshot {
        data: image.encode_snapshot().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = 1;
    meta.term = 1;
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
