//! The client side of the wire format: a request as a complete frame (size, header, body), and
//! a response frame checked and decoded. Used wherever shardlog itself is a Kafka client — the
//! CLI and load generator (`cli::conn`) and a broker calling another (`server::peer`).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Byte range of the correlation id inside a frame built by [`encode_request_frame`].
pub const CORRELATION_ID_RANGE: std::ops::Range<usize> = 8..12;

/// An API's name for messages (`Produce`, or `api 99` for an unknown key).
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api {key}"),
    }
}

/// Appends a complete frame (i32 size, request header, body) for `req` to `out`.
pub fn encode_request_frame<R: Request>(
    out: &mut BytesMut,
    client_id: &'static str,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<(), String> {
    let name = api_name(R::KEY);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(out, R::header_version(version))
        .map_err(|e| format!("encoding {name} request header: {e}"))?;
    req.encode(out, version)
        .map_err(|e| format!("encoding {name} v{version} request: {e}"))?;
    let size =
        i32::try_from(out.len() - start - 4).map_err(|_| format!("{name} request too large"))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Decodes a response frame (without its size prefix): checks the correlation id, then decodes
/// the body.
pub fn decode_response_frame<R: Request>(
    mut frame: Bytes,
    version: i16,
    expected_correlation: i32,
) -> Result<R::Response, String> {
    let name = api_name(R::KEY);
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| format!("decoding {name} response header: {e}"))?;
    if header.correlation_id != expected_correlation {
        return Err(format!(
            "{name} response has correlation id {} but {expected_correlation} was expected",
            header.correlation_id
        ));
    }
    R::Response::decode(&mut frame, version)
        .map_err(|e| format!("decoding {name} v{version} response: {e}"))
}
