//! From a raw frame to a response: parse the header, build the request's context, decode the
//! body with the version's codec and call the API's handler (`apis::route`, generated from the
//! one list of APIs), encode the answer.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::apis::{route, OFFERED};
use super::session::{RequestContext, Session};
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

pub(super) fn decode<T: Decodable>(frame: &mut RequestFrame) -> Result<T, Outcome> {
    let body = T::decode(&mut frame.body, frame.api_version).map_err(|e| {
        Outcome::Close(format!(
            "malformed {:?} v{} body: {e}",
            frame.api_key, frame.api_version
        ))
    })?;
    Ok(body)
}

pub(super) fn respond<R: Encodable>(ctx: &RequestContext, body: &R) -> Outcome {
    encode(ctx.api_key, ctx.api_version, ctx.correlation_id, body)
}

pub(super) fn encode<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Outcome {
    match encode_response(api_key, version, correlation_id, body) {
        Ok(b) => Outcome::Respond(Response::from_bytes(b)),
        Err(e) => Outcome::Close(format!(
            "encoding {api_key:?} v{version} response failed: {e}"
        )),
    }
}

/// [`respond`] for a body whose record data was registered with `buf`.
pub(super) fn respond_parts<R: Encodable>(
    ctx: &RequestContext,
    body: &R,
    buf: PartsBuf,
) -> Outcome {
    match encode_response_parts(ctx.api_key, ctx.api_version, ctx.correlation_id, body, buf) {
        Ok(r) => Outcome::Respond(r),
        Err(e) => Outcome::Close(format!(
            "encoding {:?} v{} response failed: {e}",
            ctx.api_key, ctx.api_version
        )),
    }
}

/// Handles one request frame of the connection `session`.
pub async fn dispatch(raw: Bytes, session: &Rc<Session>) -> Outcome {
    let mut frame = match parse_request(raw, OFFERED) {
        Ok(f) => f,
        Err(FrameError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer an unknown ApiVersions version with a v0 body carrying the error
            // and our versions, so the client can retry with one we support.
            let body = api_versions_response(OFFERED, ResponseError::UnsupportedVersion.code());
            return match encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) {
                Ok(b) => Outcome::Respond(Response::from_bytes(b)),
                Err(e) => Outcome::Close(e.to_string()),
            };
        }
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let ctx = RequestContext::new(&frame, session);
    match route(&ctx, &mut frame).await {
        Ok(o) | Err(o) => o,
    }
}
