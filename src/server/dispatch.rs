//! From a raw frame to a response: parse the header, decode the body with the version's codec,
//! call the API's handler, encode the answer.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::handlers;
use super::handlers::produce::ProduceAnswer;
use crate::wire::{
    api_versions_response, encode_response, encode_response_parts, parse_request, FrameError,
    PartsBuf, RequestFrame, Response,
};

/// What the connection does with a request.
pub enum Outcome {
    Respond(Response),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
    /// The request's work is done except waiting (acks=-1 produce waiting for its sync): the
    /// connection may read and handle its next request meanwhile, and sends this response when
    /// ready, in request order.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>),
    /// Unanswerable (malformed, unknown API, unsupported version): close, as Kafka does.
    Close(String),
}

fn decode<T: Decodable>(frame: &mut RequestFrame) -> Result<T, Outcome> {
    let body = T::decode(&mut frame.body, frame.api_version).map_err(|e| {
        Outcome::Close(format!(
            "malformed {:?} v{} body: {e}",
            frame.api_key, frame.api_version
        ))
    })?;
    Ok(body)
}

fn respond<R: Encodable>(frame: &RequestFrame, body: &R) -> Outcome {
    encode(
        frame.api_key,
        frame.api_version,
        frame.header.correlation_id,
        body,
    )
}

fn encode<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Outcome {
    match encode_response(api_key, version, correlation_id, body) {
        Ok(b) => Outcome::Respond(Response::from_bytes(b)),
        Err(e) => Outcome::Close(format!(
            "encoding {api_key:?} v{version} response failed: {e}"
        )),
    }
}

/// [`respond`] for a body whose record data was registered with `buf`.
fn respond_parts<R: Encodable>(frame: &RequestFrame, body: &R, buf: PartsBuf) -> Outcome {
    match encode_response_parts(
        frame.api_key,
        frame.api_version,
        frame.header.correlation_id,
        body,
        buf,
    ) {
        Ok(r) => Outcome::Respond(r),
        Err(e) => Outcome::Close(format!(
            "encoding {:?} v{} response failed: {e}",
            frame.api_key, frame.api_version
        )),
    }
}

/// Handles one request frame.
pub async fn dispatch(raw: Bytes) -> Outcome {
    let mut frame = match parse_request(raw) {
        Ok(f) => f,
        Err(FrameError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer an unknown ApiVersions version with a v0 body carrying the error
            // and our versions, so the client can retry with one we support.
            let body = api_versions_response(ResponseError::UnsupportedVersion.code());
            return match encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) {
                Ok(b) => Outcome::Respond(Response::from_bytes(b)),
                Err(e) => Outcome::Close(e.to_string()),
            };
        }
        Err(e) => return Outcome::Close(e.to_string()),
    };
    match route(&mut frame).await {
        Ok(o) | Err(o) => o,
    }
}

async fn route(f: &mut RequestFrame) -> Result<Outcome, Outcome> {
    let v = f.api_version;
    Ok(match f.api_key {
        ApiKey::ApiVersions => {
            let _: ApiVersionsRequest = decode(f)?;
            respond(f, &api_versions_response(0))
        }
        ApiKey::Metadata => {
            let r = handlers::metadata::handle(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::Produce => match handlers::produce::handle(decode(f)?, v).await {
            ProduceAnswer::Now(r) => respond(f, &r),
            ProduceAnswer::Nothing => Outcome::NoResponse,
            ProduceAnswer::AfterSync(later) => {
                let (key, correlation_id) = (f.api_key, f.header.correlation_id);
                Outcome::Later(Box::pin(async move {
                    encode(key, v, correlation_id, &later.await)
                }))
            }
        },
        ApiKey::Fetch => {
            let (r, buf) = handlers::fetch::handle(decode(f)?, v).await;
            respond_parts(f, &r, buf)
        }
        ApiKey::ListOffsets => {
            let r = handlers::list_offsets::handle(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::CreateTopics => {
            let r = handlers::topics::create_topics(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::DeleteTopics => {
            let r = handlers::topics::delete_topics(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::CreatePartitions => {
            let r = handlers::topics::create_partitions(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::DescribeConfigs => {
            let r = handlers::describe_configs::handle(decode(f)?);
            respond(f, &r)
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = handlers::alter_configs::incremental(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::AlterConfigs => {
            let r = handlers::alter_configs::legacy(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::DescribeCluster => {
            let r = handlers::cluster::describe_cluster(decode(f)?);
            respond(f, &r)
        }
        ApiKey::InitProducerId => {
            let r = handlers::init_producer_id::handle(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::FindCoordinator => {
            let r = handlers::groups::find_coordinator(decode(f)?, v);
            respond(f, &r)
        }
        ApiKey::JoinGroup => {
            let client_id = f
                .header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let r = handlers::groups::join_group(decode(f)?, v, client_id).await;
            respond(f, &r)
        }
        ApiKey::SyncGroup => {
            let r = handlers::groups::sync_group(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::Heartbeat => {
            let r = handlers::groups::heartbeat(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::LeaveGroup => {
            let r = handlers::groups::leave_group(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::OffsetCommit => {
            let r = handlers::groups::offset_commit(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::OffsetFetch => {
            let r = handlers::groups::offset_fetch(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::OffsetDelete => {
            let r = handlers::groups::offset_delete(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::ListGroups => {
            let r = handlers::groups::list_groups(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::DescribeGroups => {
            let r = handlers::groups::describe_groups(decode(f)?, v).await;
            respond(f, &r)
        }
        ApiKey::DeleteGroups => {
            let r = handlers::groups::delete_groups(decode(f)?).await;
            respond(f, &r)
        }
        ApiKey::SaslHandshake => {
            let _: SaslHandshakeRequest = decode(f)?;
            // SASL is not configured on this listener: refuse every mechanism, list none.
            let mut r = SaslHandshakeResponse::default();
            r.error_code = ResponseError::UnsupportedSaslMechanism.code();
            respond(f, &r)
        }
        other => Outcome::Close(format!("{other:?} is not supported")),
    })
}
