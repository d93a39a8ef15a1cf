//! Metadata: brokers, cluster id, topics and partition leaders; auto-creates topics Kafka-style.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{
    all_brokers, controller_id, str_bytes, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL,
    TOPIC_OPERATIONS_ALL,
};
use crate::controller::{self, TopicSpec};
use crate::metadata::topic_name::validate_topic_name;
use crate::metadata::TopicMeta;
use crate::shard::{self};

pub async fn handle(req: MetadataRequest, version: i16) -> MetadataResponse {
    let shard = shard::current();
    // The cluster field exists in v8-v10 only; encoding it elsewhere is an error.
    let cluster_ops = match req.include_cluster_authorized_operations && (8..=10).contains(&version)
    {
        true => CLUSTER_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    let topic_ops = match req.include_topic_authorized_operations && version >= 8 {
        true => TOPIC_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    // v0 used an empty list for "all topics"; v1+ uses null.
    let wanted: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto = (version < 4 || req.allow_auto_topic_creation)
        && shard.config.bool("auto.create.topics.enable");
    if allow_auto {
        if let Some(w) = &wanted {
            let missing: Vec<TopicSpec> = w
                .iter()
                .filter_map(|(n, _)| n.clone())
                .filter(|n| {
                    validate_topic_name(n).is_ok() && shard.with_image(|i| i.topic(n).is_none())
                })
                .map(|name| TopicSpec {
                    name,
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: Vec::new(),
                    configs: Vec::new(),
                    validate_only: false,
                })
                .collect();
            if !missing.is_empty() {
                // Concurrent auto-creates of one name race harmlessly: the loser sees
                // TOPIC_ALREADY_EXISTS, and the topic exists either way.
                let _ = controller::create_topics(missing).await;
            }
        }
    }

    let topics = shard.with_image(|img| match &wanted {
        None => img.topics().map(|t| topic_entry(t, topic_ops)).collect(),
        Some(w) => w
            .iter()
            .map(|(name, id)| {
                let found = match name {
                    Some(n) => img.topic(n),
                    None => img.topic_by_id(id),
                };
                match (found, name) {
                    (Some(t), _) => topic_entry(t, topic_ops),
                    (None, Some(n)) => {
                        let code = match validate_topic_name(n) {
                            Ok(()) => ResponseError::UnknownTopicOrPartition,
                            Err(_) => ResponseError::InvalidTopicException,
                        };
                        topic_error(Some(n.clone()), *id, code)
                    }
                    (None, None) => topic_error(None, *id, ResponseError::UnknownTopicId),
                }
            })
            .collect(),
    });

    let mut r = MetadataResponse::default();
    r.brokers = all_brokers()
        .into_iter()
        .map(|(id, host, port)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = id;
            b.host = host;
            b.port = port;
            b
        })
        .collect();
    r.cluster_id = Some(str_bytes(shard.with_image(|i| i.cluster_id.clone())));
    r.controller_id = controller_id();
    r.topics = topics;
    r.cluster_authorized_operations = cluster_ops;
    r
}

fn topic_entry(t: &TopicMeta, ops: i32) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.name = Some(TopicName(str_bytes(t.name.clone())));
    e.topic_id = t.id;
    e.is_internal = t.name == crate::group::OFFSETS_TOPIC;
    e.topic_authorized_operations = ops;
    e.partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(p, m)| {
            let mut pe = MetadataResponsePartition::default();
            pe.partition_index = p as i32;
            pe.leader_id = m.leader.into();
            pe.leader_epoch = m.leader_epoch;
            pe.replica_nodes = m.replicas.iter().map(|&n| n.into()).collect();
            pe.isr_nodes = m.isr.iter().map(|&n| n.into()).collect();
            if m.leader < 0 {
                pe.error_code = ResponseError::LeaderNotAvailable.code();
            }
            pe
        })
        .collect();
    e
}

fn topic_error(name: Option<String>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.error_code = code.code();
    e.name = name.map(|n| TopicName(str_bytes(n)));
    e.topic_id = id;
    e.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    e
}
