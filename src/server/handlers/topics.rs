//! CreateTopics, DeleteTopics, CreatePartitions: translated into controller calls on shard 0.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;

use super::str_bytes;
use crate::config::TOPIC_SETTINGS;
use crate::controller::{self, DeleteTarget, TopicOutcome, TopicSpec};

/// Kafka's config source code for defaults (DescribeConfigs `ConfigSource.DEFAULT_CONFIG`).
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_TOPIC: i8 = 1;

fn failed_call(name: &str, e: impl std::fmt::Display) -> TopicOutcome {
    TopicOutcome {
        name: name.into(),
        error_code: ResponseError::UnknownServerError.code(),
        error_message: Some(format!("metadata owner unreachable: {e}")),
        ..Default::default()
    }
}

pub async fn create_topics(req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    // A name given twice in one request is an error for that name (Kafka: INVALID_REQUEST).
    let mut seen = HashSet::new();
    let dup: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let specs: Vec<TopicSpec> = req
        .topics
        .iter()
        .filter(|t| !dup.contains(t.name.as_str()))
        .map(|t| TopicSpec {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
            validate_only: req.validate_only,
        })
        .collect();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let outcomes = controller::create_topics(specs)
        .await
        .unwrap_or_else(|e| names.iter().map(|n| failed_call(n, &e)).collect());
    let mut outcomes = outcomes.into_iter();
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        if dup.contains(t.name.as_str()) {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(str_bytes("Duplicate topic in request."));
            resp.topics.push(r);
            continue;
        }
        let o = outcomes.next().unwrap_or_default();
        r.error_code = o.error_code;
        r.error_message = o.error_message.map(str_bytes);
        r.topic_id = o.id;
        if o.error_code == 0 {
            r.num_partitions = o.num_partitions;
            r.replication_factor = 1;
            if version >= 5 {
                let overrides: HashSet<&str> = t.configs.iter().map(|c| c.name.as_str()).collect();
                r.configs = Some(
                    TOPIC_SETTINGS
                        .iter()
                        .map(|(s, _)| {
                            let mut c = CreatableTopicConfigs::default();
                            c.name = str_bytes(s.name);
                            c.value = o.configs.get(s.name).cloned().map(str_bytes);
                            c.config_source = if overrides.contains(s.name) {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            c
                        })
                        .collect(),
                );
            }
        } else {
            r.num_partitions = -1;
            r.replication_factor = -1;
        }
        resp.topics.push(r);
    }
    resp
}

pub async fn delete_topics(req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let targets: Vec<DeleteTarget> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => DeleteTarget::Name(n.0.to_string()),
                None => DeleteTarget::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| DeleteTarget::Name(n.0.to_string()))
            .collect()
    };
    let count = targets.len();
    let outcomes = controller::delete_topics(targets)
        .await
        .unwrap_or_else(|e| (0..count).map(|_| failed_call("", &e)).collect());
    let mut resp = DeleteTopicsResponse::default();
    for o in outcomes {
        let mut r = DeletableTopicResult::default();
        r.name = (!o.name.is_empty()).then(|| TopicName(str_bytes(o.name)));
        r.topic_id = o.id;
        r.error_code = o.error_code;
        r.error_message = o.error_message.map(str_bytes);
        resp.responses.push(r);
    }
    resp
}

pub async fn create_partitions(req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let validate_only = req.validate_only;
    for t in req.topics {
        let name = t.name.0.to_string();
        let assignments = t.assignments.map(|a| {
            a.into_iter()
                .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let n = name.clone();
        let o = controller::create_partitions(n, t.count, assignments, validate_only)
            .await
            .unwrap_or_else(|e| failed_call(&name, e));
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name;
        r.error_code = o.error_code;
        r.error_message = o.error_message.map(str_bytes);
        resp.results.push(r);
    }
    resp
}
