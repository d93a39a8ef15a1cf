//! Broker liveness (Kafka's BrokerHeartbeatManager): the quorum's leader fences a broker it has
//! not heard from within `broker.session.timeout.ms` and unfences it when it is heard again.
//!
//! Every node is a voter of the metadata quorum, and a live voter answers the leader's Raft
//! heartbeats every few hundred milliseconds; those messages are its heartbeats (the quorum's
//! driver notes when each peer was last heard, `QuorumStatus::silent_ms`). A SIGSTOPped, dead or
//! cut-off broker falls silent and is fenced; the record's application moves the leadership of
//! its partitions (`metadata::election`). A new leader gives every broker a full session first.

use super::commit::{commit, controller_lock};
use super::state;
use crate::metadata::MetadataRecord;
use crate::shard::current;

/// Runs on the controller shard for as long as the node does; acts only while this node leads
/// the quorum.
pub async fn watch_brokers() {
    let shard = current();
    let interval = shard.config.int("broker.heartbeat.interval.ms").max(10) as u64;
    let session = shard.config.int("broker.session.timeout.ms").max(1) as u64;
    let me = shard.config.node_id();
    loop {
        shard.timer.sleep(interval).await;
        let Some(quorum) = state::quorum() else {
            continue;
        };
        let Some(status) = quorum.status().await else {
            return; // the quorum stopped; the node is stopping
        };
        if status.leader != Some(status.node) {
            continue;
        }
        let brokers: Vec<_> = shard.with_image(|i| i.brokers().cloned().collect());
        for b in brokers {
            let silent = match b.id == me {
                true => Some(0),
                false => status
                    .silent_ms
                    .iter()
                    .find(|(id, _)| i64::from(b.id) == *id as i64)
                    .map(|(_, ms)| *ms),
            };
            // A registered broker that is not a voter has no heartbeat here yet.
            let Some(silent) = silent else { continue };
            let record = match (b.fenced, silent) {
                (false, s) if s > session => MetadataRecord::FenceBroker {
                    id: b.id,
                    incarnation: b.incarnation,
                    controlled: false,
                },
                // A broker shutting down stays fenced until it registers again.
                (true, s) if s <= interval && !b.shutting_down => MetadataRecord::UnfenceBroker {
                    id: b.id,
                    incarnation: b.incarnation,
                },
                _ => continue,
            };
            let lock = controller_lock();
            let _serial = lock.lock().await;
            if let Err(e) = commit(record).await {
                tracing::debug!("broker {} liveness change not made: {e}", b.id);
            }
        }
    }
}

/// How long a stopping broker waits for its controlled shutdown to commit.
const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;

/// Controlled shutdown (Kafka's `wantShutDown` heartbeat): before a broker of a cluster stops,
/// it has itself fenced, so the partitions it leads move to other in-sync replicas (or go
/// offline at once) instead of waiting out its session. Best effort and bounded: without a
/// quorum the broker stops anyway and is fenced when its session runs out. A node alone has
/// nobody to hand over to and skips it.
pub async fn controlled_shutdown() {
    let shard = current();
    if shard.config.quorum_voters().map_or(true, |v| v.len() < 2) {
        return;
    }
    let me = shard.config.node_id();
    let Some(b) = shard.with_image(|i| i.broker(me).cloned()) else {
        return;
    };
    if b.shutting_down {
        return;
    }
    let fence = async {
        let lock = controller_lock();
        let _serial = lock.lock().await;
        commit(MetadataRecord::FenceBroker {
            id: me,
            incarnation: b.incarnation,
            controlled: true,
        })
        .await
    };
    match shard.timer.timeout(CONTROLLED_SHUTDOWN_TIMEOUT_MS, fence).await {
        Ok(Ok(())) => tracing::info!("controlled shutdown: leadership handed over"),
        Ok(Err(e)) => tracing::warn!("controlled shutdown not committed: {e}"),
        Err(_) => tracing::warn!(
            "controlled shutdown not committed within {CONTROLLED_SHUTDOWN_TIMEOUT_MS} ms; stopping anyway"
        ),
    }
}
