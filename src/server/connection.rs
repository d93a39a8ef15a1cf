//! One client connection: read a frame, answer it, repeat.
//!
//! Requests on one connection are handled one at a time and answered in order, exactly as Kafka
//! does (it mutes a connection until its response is sent); clients pipeline across connections
//! and partitions, not within one. Anything unanswerable closes the connection, which affects only
//! this client.

use bytes::{Bytes, BytesMut};

use super::dispatch::{dispatch, Outcome};
use crate::metrics;
use crate::runtime::net::Conn;
use crate::shard;
use crate::wire::frame::check_size;

/// Bytes read per step while receiving a frame body: memory grows with what the peer actually
/// sends, not with what its size prefix claims.
const READ_CHUNK: usize = 64 * 1024;

pub async fn serve_connection(mut conn: Conn) {
    let max = shard::current()
        .config
        .int("socket.request.max.bytes")
        .max(0) as usize;
    let peer = conn.peer_addr();
    let _counted = metrics::ConnectionGuard::new();
    loop {
        let mut prefix = [0u8; 4];
        if conn.read_exact(&mut prefix).await.is_err() {
            return; // peer closed
        }
        let Some(len) = check_size(prefix, max) else {
            tracing::info!("{peer:?}: closing: request size {} is negative or above socket.request.max.bytes ({max})", i32::from_be_bytes(prefix));
            return;
        };
        let Ok(frame) = read_body(&mut conn, len).await else {
            return;
        };
        // Recorded when dropped: at the end of this iteration, or on any early return.
        let mut timer = metrics::RequestTimer::start(&frame);
        match dispatch(frame).await {
            Outcome::Respond(bytes) => {
                timer.sent(bytes.len());
                if conn.write_all_vectored(&[&bytes]).await.is_err() {
                    return;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(why) => {
                timer.failed();
                tracing::info!("{peer:?}: closing connection: {why}");
                return;
            }
        }
    }
}

async fn read_body(conn: &mut Conn, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let start = buf.len();
        let step = (len - start).min(READ_CHUNK);
        buf.resize(start + step, 0);
        conn.read_exact(&mut buf[start..]).await?;
    }
    Ok(buf.freeze())
}
