//! Start-up on shard 0: the metadata log replayed (an old-format log converted), compacted when
//! long, this data directory's identity (`meta.properties`) settled, this node's placement
//! brought in line, the data
//! directory cleaned, and the resulting state loaded on every shard.

use std::io;

use uuid::Uuid;

use super::commit::persist;
use super::state;
use crate::metadata::legacy::convert;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::node::meta_properties::settle;
use crate::runtime::file::blocking;
use crate::shard::current;
use crate::shard::publish::{load, open_placement};

/// Records of history the metadata log may carry beyond twice its snapshot before start-up
/// compacts it.
const METADATA_COMPACT_SLACK: usize = 1_000;

/// Startup on shard 0: replays the metadata log, gives the data directory a cluster id, checks
/// `meta.properties`, places this node's partitions on its shards, and loads the resulting
/// metadata on every shard (opening and recovering each shard's partition logs).
pub async fn bootstrap() -> io::Result<()> {
    let shard = current();
    let node = shard.config.node_id();
    let converted = {
        let data_dir = shard.config.data_dir();
        let (store, stored) =
            blocking(move || crate::metadata::store::MetadataStore::open(&data_dir)).await?;
        state::put_store(store);
        convert(stored, node)
    };
    let replayed = converted.records;
    let mut image = MetadataImage::default();
    for r in &replayed {
        image.apply(r);
    }
    // The data directory's identity first: it refuses another node id or cluster, and supplies
    // the cluster id to a metadata log without one (before that id is written there, so a crash
    // in between cannot make the two disagree).
    let cluster_id = {
        let data_dir = shard.config.data_dir();
        let in_metadata = (!image.cluster_id.is_empty()).then(|| image.cluster_id.clone());
        let configured = shard.config.get("cluster.id").to_string();
        blocking(move || {
            settle(
                &data_dir,
                node,
                in_metadata.as_deref(),
                || match configured.as_str() {
                    "" => Uuid::new_v4().simple().to_string(),
                    id => id.to_string(),
                },
            )
        })
        .await?
    };
    let mut new_records = Vec::new();
    if image.cluster_id.is_empty() {
        new_records.push(MetadataRecord::ClusterId { id: cluster_id });
    }
    if !new_records.is_empty() && !converted.had_legacy {
        persist(new_records.clone())
            .await
            .map_err(io::Error::other)?;
    }
    for r in &new_records {
        image.apply(r);
    }
    // This node's placement, durable before an old-format metadata log is rewritten below.
    let placement =
        open_placement(&image, converted.had_legacy.then_some(converted.shards)).await?;
    state::set_producer_ids((image.producer_id_block_end, image.producer_id_block_end));
    // Directories of deleted topics a crash left behind, before any partition is opened.
    let deleted: std::collections::HashSet<String> = replayed
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::DeleteTopic { name } if image.topic(name).is_none() => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect();
    let data_dir = shard.config.data_dir();
    let listed = image.clone();
    match crate::runtime::file::blocking(move || {
        crate::shard::partition_dirs::clean_data_dir(&data_dir, &listed, &deleted)
    })
    .await
    {
        Ok(c) if !c.removed.is_empty() => {
            tracing::info!("removed directories of deleted partitions: {:?}", c.removed)
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cleaning the data directory: {e}"),
    }
    // Compact the metadata log to the current state once the history is much longer (every
    // create, delete and config change is a line; the cleanup above no longer needs the
    // deletes). Before any other change can be committed.
    let snapshot_records = image.snapshot_records();
    if converted.had_legacy
        || replayed.len() + new_records.len() > 2 * snapshot_records.len() + METADATA_COMPACT_SLACK
    {
        let taken = state::take_store();
        if let Some(mut store) = taken {
            let records = snapshot_records.clone();
            let (store, rewritten) = blocking(move || {
                let r = store.rewrite(&records);
                (store, r)
            })
            .await;
            state::put_store(store);
            rewritten?;
        }
        tracing::info!(
            "metadata log compacted from {} records to {}",
            replayed.len() + new_records.len(),
            snapshot_records.len()
        );
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
    load(snapshot, placement).await.map_err(io::Error::other)
}
