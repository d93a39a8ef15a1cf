//! One blocking Kafka connection: TCP with timeouts, request framing and headers, response
//! frames checked and decoded, and the ApiVersions handshake that picks each request's version.
//! The CLI's client (`cli::client`: routing, Kafka errors) and the load generator
//! (`bench/loadgen`, which pipelines on its own sockets with [`encode_frame`] / [`read_frame`] /
//! [`decode_response`]) both build on it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::wire::client::{decode_response_frame, encode_request_frame};

/// What went wrong on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    /// Resolving, connecting, sending or receiving failed (timeouts included).
    Io(String),
    /// The peer answered something that is not the expected Kafka response, or a request
    /// could not be encoded.
    Protocol(String),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(m) | ConnError::Protocol(m) => f.write_str(m),
        }
    }
}

impl From<ConnError> for String {
    fn from(e: ConnError) -> String {
        e.to_string()
    }
}

pub type Result<T> = std::result::Result<T, ConnError>;

/// Timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect, per address.
    pub connect: Duration,
    /// Every read and write.
    pub io: Duration,
}

pub use crate::wire::client::{api_name, CORRELATION_ID_RANGE};

/// Opens a TCP connection to `addr` (host:port, every resolved address tried) with
/// TCP_NODELAY and read/write timeouts, so a stuck broker is an error, not a hang.
pub fn connect(addr: &str, t: Timeouts) -> Result<TcpStream> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| ConnError::Io(format!("cannot resolve broker address {addr}: {e}")))?
        .collect();
    let mut last = format!("no address found for {addr}");
    for a in addrs {
        match TcpStream::connect_timeout(&a, t.connect) {
            Ok(s) => {
                let io = |e: std::io::Error| ConnError::Io(format!("{addr}: {e}"));
                s.set_nodelay(true).map_err(io)?;
                s.set_read_timeout(Some(t.io)).map_err(io)?;
                s.set_write_timeout(Some(t.io)).map_err(io)?;
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to broker at {addr}: {e}"),
        }
    }
    Err(ConnError::Io(last))
}

/// Appends a complete frame (i32 size, request header, body) for `req` to `out`.
pub fn encode_frame<R: Request>(
    out: &mut BytesMut,
    client_id: &'static str,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<()> {
    encode_request_frame(out, client_id, correlation_id, version, req).map_err(ConnError::Protocol)
}

/// Reads one response frame (without its size prefix) into `buf`, replacing its contents.
/// A size below 4 or above `max_frame` is refused before anything is allocated for it.
pub fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut, max_frame: usize) -> Result<()> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io_error)?;
    let n = i32::from_be_bytes(size);
    if n < 4 || n as usize > max_frame {
        let what = if &size == b"HTTP" {
            "an HTTP server answered"
        } else {
            "bad response frame size"
        };
        return Err(ConnError::Protocol(format!(
            "{what} ({n}): is this a Kafka broker's address?"
        )));
    }
    buf.clear();
    buf.resize(n as usize, 0);
    stream.read_exact(&mut buf[..]).map_err(io_error)
}

fn io_error(e: std::io::Error) -> ConnError {
    let hint = match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => " (timed out)",
        _ => "",
    };
    ConnError::Io(format!("{e}{hint}"))
}

/// Decodes a response frame: checks the correlation id, then decodes the body.
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
    expected_correlation: i32,
) -> Result<R::Response> {
    decode_response_frame::<R>(frame, version, expected_correlation).map_err(ConnError::Protocol)
}

/// A connection after the ApiVersions handshake: synchronous request/response.
pub struct Conn {
    addr: String,
    client_id: &'static str,
    max_frame: usize,
    stream: TcpStream,
    next_correlation: i32,
    buf: BytesMut,
    /// api key -> (min, max) as the broker advertised.
    apis: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects to `addr` and asks for its API versions (v3, or v0 from a broker too old for
    /// v3), announcing `client_id` as the client software name.
    pub fn open(
        addr: &str,
        client_id: &'static str,
        timeouts: Timeouts,
        max_frame: usize,
    ) -> Result<Conn> {
        let mut conn = Conn {
            addr: addr.to_string(),
            client_id,
            max_frame,
            stream: connect(addr, timeouts)?,
            next_correlation: 1,
            buf: BytesMut::new(),
            apis: BTreeMap::new(),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // A broker that does not know v3 answers UNSUPPORTED_VERSION in the v0 format (which
        // may not decode as v3): reconnect and ask with v0 then.
        let resp = match conn.call(3, &req) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                conn.stream = connect(addr, timeouts)?;
                conn.call(0, &req)?
            }
        };
        if resp.error_code != 0 {
            return Err(ConnError::Protocol(format!(
                "{addr}: ApiVersions error code {}",
                resp.error_code
            )));
        }
        conn.apis = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version of `R` to use: min(`preferred`, the broker's max, this library's max),
    /// provided it is within the broker's and the library's ranges.
    pub fn version<R: Request>(&self, preferred: i16) -> Result<i16> {
        let name = api_name(R::KEY);
        let (bmin, bmax) = *self.apis.get(&R::KEY).ok_or_else(|| {
            ConnError::Protocol(format!(
                "broker {} does not support {name} (not in its ApiVersions)",
                self.addr
            ))
        })?;
        let ours = ApiKey::try_from(R::KEY)
            .map(|k| k.valid_versions())
            .map_err(|_| ConnError::Protocol(format!("unknown api key {}", R::KEY)))?;
        let v = preferred.min(bmax).min(ours.max);
        if v < bmin || v < ours.min {
            return Err(ConnError::Protocol(format!(
                "no common version of {name} with broker {}: broker {bmin}..={bmax}, client {}..={}",
                self.addr,
                ours.min,
                preferred.min(ours.max)
            )));
        }
        Ok(v)
    }

    fn next_frame<R: Request>(&mut self, version: i16, req: &R) -> Result<(BytesMut, i32)> {
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut out = BytesMut::new();
        encode_frame(&mut out, self.client_id, corr, version, req)?;
        Ok((out, corr))
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send_only<R: Request>(&mut self, version: i16, req: &R) -> Result<()> {
        let (out, _) = self.next_frame(version, req)?;
        let name = api_name(R::KEY);
        self.stream
            .write_all(&out)
            .map_err(|e| ConnError::Io(format!("{}: sending {name}: {e}", self.addr)))
    }

    /// Sends `req` as `version` and waits for its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let (out, corr) = self.next_frame(version, req)?;
        let name = api_name(R::KEY);
        let addr = self.addr.clone();
        let context = |e: ConnError| match e {
            ConnError::Io(m) => ConnError::Io(format!("{addr}: {name}: {m}")),
            ConnError::Protocol(m) => ConnError::Protocol(format!("{addr}: {name}: {m}")),
        };
        self.stream
            .write_all(&out)
            .map_err(|e| context(io_error(e)))?;
        read_frame(&mut self.stream, &mut self.buf, self.max_frame).map_err(context)?;
        let frame = self.buf.split().freeze();
        decode_response::<R>(frame, version, corr).map_err(context)
    }
}
