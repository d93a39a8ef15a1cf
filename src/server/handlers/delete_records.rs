//! DeleteRecords: records below an offset (or the high watermark, -1) are deleted from a
//! partition — its log start offset moves up, durably, and segments entirely below it go —
//! for `kafka-delete-records`, `Admin.deleteRecords` and franz-go. Internal topics are refused
//! (INVALID_TOPIC_EXCEPTION), as Kafka refuses them; an offset beyond the high watermark is
//! OFFSET_OUT_OF_RANGE.

use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::shard::partition_ops::delete_records_on_owner;

pub async fn handle(req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let internal = name == crate::group::OFFSETS_TOPIC;
        let answers = join_all(t.partitions.iter().map(|p| {
            let (name, index, offset) = (name.clone(), p.partition_index, p.offset);
            async move {
                if internal {
                    (index, ResponseError::InvalidTopicException.code(), -1)
                } else {
                    let (code, low) = delete_records_on_owner(name, index, offset).await;
                    (index, code, low)
                }
            }
        }))
        .await;
        let mut topic = DeleteRecordsTopicResult::default();
        topic.name = t.name;
        topic.partitions = answers
            .into_iter()
            .map(|(index, code, low)| {
                let mut p = DeleteRecordsPartitionResult::default();
                p.partition_index = index;
                p.error_code = code;
                p.low_watermark = low;
                p
            })
            .collect();
        r.topics.push(topic);
    }
    r
}
