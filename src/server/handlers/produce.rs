//! Produce: validate, fan out one append per partition to its owning shard, gather the answers.

use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
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

    let mut calls = Vec::new();
    let mut shape = Vec::new(); // (topic name, partition indexes) in request order
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            parts.push(p.index);
            let name = name.clone();
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
                        base_offset: -1,
                        log_append_time: -1,
                        log_start_offset: -1,
                    };
                    return (o, None);
                }
                match p.records {
                    Some(records) => append_on_owner_deferred(name, p.index, records, acks).await,
                    None => {
                        let o = AppendOutcome {
                            error_code: ResponseError::CorruptMessage.code(),
                            error_message: Some("null records".into()),
                            base_offset: -1,
                            log_append_time: -1,
                            log_start_offset: -1,
                        };
                        (o, None)
                    }
                }
            });
        }
        shape.push((topic.name, parts));
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
            t.partition_responses.push(pr);
        }
        resp.responses.push(t);
    }
    resp
}
