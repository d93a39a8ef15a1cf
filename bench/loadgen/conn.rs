//! One blocking Kafka connection: framing, request headers, synchronous request/response.
//!
//! The hot paths (produce writer/reader, fetch loop) use `encode_frame` / `read_frame` /
//! `decode_response` directly on their own sockets; `Conn::call` is for setup requests.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub const CLIENT_ID: &str = "shardlog-bench";

/// A frame larger than this is treated as a protocol error (guards against garbage lengths).
const MAX_FRAME: usize = 1 << 30;

pub type Result<T> = std::result::Result<T, String>;

/// Opens a TCP connection with TCP_NODELAY and a read timeout, so a stuck broker is an error.
pub fn connect(addr: &str, read_timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .collect();
    let mut last = format!("no address for {addr}");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(s) => {
                s.set_nodelay(true)
                    .map_err(|e| format!("{addr}: set_nodelay: {e}"))?;
                s.set_read_timeout(Some(read_timeout))
                    .map_err(|e| format!("{addr}: set_read_timeout: {e}"))?;
                return Ok(s);
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Appends a complete frame (i32 size + request header + body) for `req` to `out`.
pub fn encode_frame<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(out, R::header_version(version))
        .map_err(|e| format!("encoding request header: {e}"))?;
    req.encode(out, version)
        .map_err(|e| format!("encoding {:?} v{version}: {e}", api_name(R::KEY)))?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Byte range of the correlation id inside a frame produced by `encode_frame`.
pub const CORRELATION_ID_RANGE: std::ops::Range<usize> = 8..12;

/// Reads one response frame (without its size prefix) into `buf`, replacing its contents.
pub fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<()> {
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("reading response size: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > MAX_FRAME {
        return Err(format!("bad response frame size {size}"));
    }
    buf.clear();
    buf.resize(size as usize, 0);
    stream
        .read_exact(&mut buf[..])
        .map_err(|e| format!("reading response body ({size} bytes): {e}"))?;
    Ok(())
}

/// Decodes a response frame: checks the correlation id and decodes the body.
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
    expected_correlation: i32,
) -> Result<R::Response> {
    let mut frame = frame;
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| format!("decoding {} response header: {e}", api_name(R::KEY)))?;
    if header.correlation_id != expected_correlation {
        return Err(format!(
            "{} response: correlation id {} but expected {expected_correlation}",
            api_name(R::KEY),
            header.correlation_id
        ));
    }
    R::Response::decode(&mut frame, version)
        .map_err(|e| format!("decoding {} v{version} response: {e}", api_name(R::KEY)))
}

pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api {key}"),
    }
}

/// A connection used for request/response exchanges during setup.
pub struct Conn {
    pub addr: String,
    stream: TcpStream,
    next_correlation: i32,
    buf: BytesMut,
}

impl Conn {
    pub fn open(addr: &str) -> Result<Conn> {
        Ok(Conn {
            addr: addr.to_string(),
            stream: connect(addr, Duration::from_secs(30))?,
            next_correlation: 1,
            buf: BytesMut::new(),
        })
    }

    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut out = BytesMut::new();
        encode_frame(&mut out, corr, version, req)?;
        self.stream
            .write_all(&out)
            .map_err(|e| format!("{}: sending {}: {e}", self.addr, api_name(R::KEY)))?;
        read_frame(&mut self.stream, &mut self.buf)
            .map_err(|e| format!("{}: {} response: {e}", self.addr, api_name(R::KEY)))?;
        let frame = self.buf.split().freeze();
        decode_response::<R>(frame, version, corr).map_err(|e| format!("{}: {e}", self.addr))
    }
}
