//! The load generator's connections: `shardlog::cli::conn` (the one blocking Kafka connection
//! both the CLI and this tool use) with this tool's client id, frame limit and timeouts. The hot
//! paths (produce writer/reader, fetch loop) pipeline on their own sockets with `encode_frame` /
//! `read_frame` / `decode_response`; `Conn::call` is for setup requests.

use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::protocol::Request;
use shardlog::cli::conn::{self as wire, Timeouts};

pub use shardlog::cli::conn::{decode_response, Conn, CORRELATION_ID_RANGE};

pub const CLIENT_ID: &str = "shardlog-bench";

/// A frame larger than this is treated as a protocol error (guards against garbage lengths).
const MAX_FRAME: usize = 1 << 30;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type Result<T> = std::result::Result<T, String>;

/// A TCP connection with TCP_NODELAY and `io_timeout` on reads and writes, so a stuck broker is
/// an error.
pub fn connect(addr: &str, io_timeout: Duration) -> Result<TcpStream> {
    let t = Timeouts {
        connect: CONNECT_TIMEOUT,
        io: io_timeout,
    };
    Ok(wire::connect(addr, t)?)
}

/// A connection for setup requests, after the ApiVersions handshake.
pub fn open(addr: &str) -> Result<Conn> {
    let t = Timeouts {
        connect: CONNECT_TIMEOUT,
        io: Duration::from_secs(30),
    };
    Ok(Conn::open(addr, CLIENT_ID, t, MAX_FRAME)?)
}

/// Appends a complete request frame for `req` to `out`.
pub fn encode_frame<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<()> {
    Ok(wire::encode_frame(
        out,
        CLIENT_ID,
        correlation_id,
        version,
        req,
    )?)
}

/// Reads one response frame (without its size prefix) into `buf`, replacing its contents.
pub fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<()> {
    Ok(wire::read_frame(stream, buf, MAX_FRAME)?)
}
