//! Produce: validate, fan out one append per partition to its owning shard, gather the answers.

use bytes::Bytes;
use futures_util::future::join_all;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::str_bytes;
use crate::shard::partition_ops::{append_on_owner_deferred, finish_sync, AppendOutcome, SyncWait};

/// What a Produce request is answered with.
pub enum ProduceAnswer {
    /// acks=0: no response at all.
    Nothing,
    Now(ProduceResponse),
    /// acks=-1 whose records are appended but not yet synced: the response once they are.
    /// Awaiting it is all that is left to do; the appends themselves happened in order.
    AfterSync(std::pin::Pin<Box<dyn std::future::Future<Output = ProduceResponse>>>),
}

pub async fn handle(req: ProduceRequest, _version: i16) -> ProduceAnswer {
    let acks = req.acks;
    let refuse = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks,
            "acks must be -1, 0 or 1",
        ))
    } else if req.transactional_id.is_some() {
        Some((
            ResponseError::InvalidRequest,
            "transactions are not supported by this broker yet",
        ))
    } else {
        None
    };

    // One entry per partition: Kafka collects a request's partitions into a map, so a
    // partition named twice is appended once, with the records of its last mention, and
    // answered once. Grouped by topic in request order: the response's shape.
    let mut topics: IndexMap<TopicName, IndexMap<i32, Option<Bytes>>> = IndexMap::new();
    for topic in req.topic_data {
        let parts = topics.entry(topic.name).or_default();
        for p in topic.partition_data {
            parts.insert(p.index, p.records);
        }
    }
    let mut calls = Vec::new();
    let mut shape: Vec<(TopicName, Vec<i32>)> = Vec::with_capacity(topics.len());
    for (topic, parts) in topics {
        shape.push((topic.clone(), parts.keys().copied().collect()));
        for p in parts {
            let name = topic.0.to_string();
            // Only the group coordinator writes the internal offsets topic (Kafka refuses client
            // appends to internal topics the same way): forged records would corrupt groups.
            let refuse = match name == crate::group::OFFSETS_TOPIC {
                true => Some((
                    ResponseError::InvalidTopicException,
                    "cannot produce to an internal topic",
                )),
                false => refuse,
            };
            calls.push(async move {
                if let Some((e, msg)) = refuse {
                    let o = AppendOutcome {
                        error_code: e.code(),
                        error_message: Some(msg.into()),
                        record_errors: Vec::new(),
                        base_offset: -1,
                        log_append_time: -1,
                        log_start_offset: -1,
                    };
                    return (o, None);
                }
                match p.1 {
                    Some(records) => append_on_owner_deferred(name, p.0, records, acks).await,
                    None => {
                        let o = AppendOutcome {
                            error_code: ResponseError::CorruptMessage.code(),
                            error_message: Some("null records".into()),
                            record_errors: Vec::new(),
                            base_offset: -1,
                            log_append_time: -1,
                            log_start_offset: -1,
                        };
                        (o, None)
                    }
                }
            });
        }
    }
    let (outcomes, waits): (Vec<AppendOutcome>, Vec<Option<SyncWait>>) =
        join_all(calls).await.into_iter().unzip();
    if acks == 0 {
        return ProduceAnswer::Nothing;
    }
    if waits.iter().all(Option::is_none) {
        return ProduceAnswer::Now(response(shape, outcomes));
    }
    ProduceAnswer::AfterSync(Box::pin(async move {
        let mut outcomes = outcomes;
        for (o, wait) in outcomes.iter_mut().zip(waits) {
            if let Some(wait) = wait {
                finish_sync(o, wait).await;
            }
        }
        response(shape, outcomes)
    }))
}

/// Builds the response: `outcomes` in request order, shaped like the request.
fn response(shape: Vec<(TopicName, Vec<i32>)>, outcomes: Vec<AppendOutcome>) -> ProduceResponse {
    let mut outcomes = outcomes.into_iter();
    let mut resp = ProduceResponse::default();
    for (name, parts) in shape {
        let mut t = TopicProduceResponse::default();
        t.name = name;
        for index in parts {
            let o = outcomes.next().unwrap_or_default();
            let mut pr = PartitionProduceResponse::default();
            pr.index = index;
            pr.error_code = o.error_code;
            pr.base_offset = o.base_offset;
            pr.log_append_time_ms = o.log_append_time;
            pr.log_start_offset = o.log_start_offset;
            pr.error_message = o.error_message.map(str_bytes);
            pr.record_errors = o
                .record_errors
                .into_iter()
                .map(|(index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(str_bytes(message)))
                })
                .collect();
            t.partition_responses.push(pr);
        }
        resp.responses.push(t);
    }
    resp
}
