//! Request framing and header parsing, response encoding.
//!
//! A request is `i32 size` + header + body. The size is checked by the connection before the body
//! is read (see `server::connection`); here the header is parsed without trusting anything: the api
//! key must be known and the version supported before the body is handed to a decoder.

use super::response::{PartsBuf, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request whose header is parsed; the body is still raw bytes.
#[derive(Debug)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Why a frame cannot be answered normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than an api key + version. Kafka closes the connection.
    TooShort,
    /// An api key this broker does not know. Kafka closes the connection.
    UnknownApiKey(i16),
    /// A version outside what we support. ApiVersions still gets an answer (v0 body, error
    /// UNSUPPORTED_VERSION, so the client can pick a version); other APIs close the connection.
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    /// The header does not parse.
    BadHeader(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort => write!(f, "request shorter than its header"),
            FrameError::UnknownApiKey(k) => write!(f, "unknown api key {k}"),
            FrameError::UnsupportedVersion {
                api_key, version, ..
            } => {
                write!(f, "unsupported version {version} of {api_key:?}")
            }
            FrameError::BadHeader(e) => write!(f, "malformed request header: {e}"),
        }
    }
}

/// Parses the header of one request frame (the bytes after the size prefix).
pub fn parse_request(
    mut frame: Bytes,
    offered: &[super::api_table::OfferedApi],
) -> Result<RequestFrame, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort);
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?;
    let Some(range) = super::supported_versions(offered, api_key) else {
        return Err(FrameError::UnknownApiKey(raw_key));
    };
    if api_version < range.min || api_version > range.max {
        return Err(FrameError::UnsupportedVersion {
            api_key,
            version: api_version,
            correlation_id,
        });
    }
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::BadHeader(e.to_string()))?;
    Ok(RequestFrame {
        api_key,
        api_version,
        header,
        body: frame,
    })
}

/// Encodes `size + response header + body` for `api_key` at `version`.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    // ApiVersions responses always use header v0, whatever the request version (KIP-511), which
    // `response_header_version` already encodes.
    let header_version = api_key.response_header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// [`encode_response`] into a [`PartsBuf`] whose record blobs were registered by the caller:
/// the same bytes on the wire, but registered record data is not copied.
pub fn encode_response_parts<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    mut buf: PartsBuf,
) -> anyhow::Result<Response> {
    let header_version = api_key.response_header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let response = buf.finish()?;
    anyhow::ensure!(
        response.len() == 4 + size,
        "response encoded to {} bytes, expected {}",
        response.len(),
        4 + size
    );
    Ok(response)
}

/// Reads the big-endian i32 size prefix; `None` if it is negative or larger than `max`.
pub fn check_size(prefix: [u8; 4], max: usize) -> Option<usize> {
    let size = (&prefix[..]).get_i32();
    usize::try_from(size).ok().filter(|s| *s <= max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::api_table::test_table as table;

    #[test]
    fn size_prefix_bounds() {
        assert_eq!(check_size([0, 0, 0, 10], 100), Some(10));
        assert_eq!(check_size([0xff, 0xff, 0xff, 0xff], 100), None);
        assert_eq!(check_size([0x7f, 0xff, 0xff, 0xff], 100), None);
        assert_eq!(check_size([0, 0, 0, 0], 100), Some(0));
    }

    #[test]
    fn header_errors_are_classified() {
        assert_eq!(
            parse_request(Bytes::from_static(&[0, 18, 0]), &table()).unwrap_err(),
            FrameError::TooShort
        );
        assert_eq!(
            parse_request(
                Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]),
                &table()
            )
            .unwrap_err(),
            FrameError::UnknownApiKey(0x7f00)
        );
        match parse_request(Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 7]), &table()).unwrap_err()
        {
            FrameError::UnsupportedVersion {
                version: 99,
                correlation_id: 7,
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        // ApiVersions v3 header (v2: flexible) cut right after the correlation id.
        assert!(matches!(
            parse_request(Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 7]), &table()).unwrap_err(),
            FrameError::BadHeader(_)
        ));
    }

    #[test]
    fn parses_a_real_api_versions_v3_header() {
        // api_key 18, version 3, correlation 1, client_id "c", no tagged fields.
        let frame =
            Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 1, b'c', 0, 2, b'x', 2, b'1', 0]);
        let r = parse_request(frame, &table()).unwrap();
        assert_eq!(r.api_key, ApiKey::ApiVersions);
        assert_eq!(r.header.correlation_id, 1);
        assert_eq!(r.header.client_id.as_deref(), Some("c"));
        assert_eq!(r.body.len(), 5);
    }
}
