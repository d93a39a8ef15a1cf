//! One broker calling another over the Kafka protocol (a request forwarded to the quorum's
//! leader). A connection per call: these calls are rare; replica fetching will keep its own
//! connections.

use std::net::ToSocketAddrs;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Request;

use crate::runtime::file::blocking;
use crate::runtime::net::connect;
use crate::shard;
use crate::wire::client::{decode_response_frame, encode_request_frame};

/// The client id of calls between brokers (a broker does not forward such a call again).
pub const PEER_CLIENT_ID: &str = "shardlog-broker";

/// Largest response accepted from a peer.
const MAX_RESPONSE: usize = 16 << 20;

/// Sends `req` (version `version`) to the broker at `host:port` and returns its response;
/// `Err` if it cannot be reached or does not answer within `timeout_ms`.
pub async fn call<R: Request>(
    host: &str,
    port: i32,
    version: i16,
    req: &R,
    timeout_ms: u64,
) -> Result<R::Response, String> {
    let mut frame = BytesMut::new();
    encode_request_frame(&mut frame, PEER_CLIENT_ID, 1, version, req)?;
    let target = format!("{host}:{port}");
    let exchange = async {
        let name = target.clone();
        let addr = blocking(move || name.to_socket_addrs().map(|mut a| a.next()))
            .await
            .map_err(|e| format!("resolving {target}: {e}"))?
            .ok_or_else(|| format!("{target} resolves to no address"))?;
        let mut conn = connect(addr, Duration::from_millis(timeout_ms))
            .await
            .map_err(|e| e.to_string())?;
        conn.write_all(&frame).await.map_err(|e| e.to_string())?;
        let mut size = [0u8; 4];
        conn.read_exact(&mut size)
            .await
            .map_err(|e| e.to_string())?;
        let n = i32::from_be_bytes(size);
        if n < 4 || n as usize > MAX_RESPONSE {
            return Err(format!("{target} answered a frame of {n} bytes"));
        }
        let mut body = vec![0u8; n as usize];
        conn.read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        decode_response_frame::<R>(Bytes::from(body), version, 1)
    };
    shard::current()
        .timer
        .timeout(timeout_ms, exchange)
        .await
        .map_err(|_| format!("{target} did not answer within {timeout_ms} ms"))?
}
