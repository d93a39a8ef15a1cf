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
use crate::wire::{Part, Response};

/// Bytes read per step while receiving a frame body: memory grows with what the peer actually
/// sends, not with what its size prefix claims.
const READ_CHUNK: usize = 64 * 1024;

pub async fn serve_connection(mut conn: Conn) {
    let shard = shard::current();
    let max = shard.config.int("socket.request.max.bytes").max(0) as usize;
    // Kafka's connections.max.idle.ms: a connection with no request for this long (or stuck
    // half-way through sending one) is closed, so idle or half-open clients cannot pile up.
    let idle_ms = shard.config.int("connections.max.idle.ms").max(1) as u64;
    let timer = shard.timer.clone();
    drop(shard);
    let peer = conn.peer_addr();
    let _counted = metrics::ConnectionGuard::new();
    loop {
        let mut prefix = [0u8; 4];
        match timer.timeout(idle_ms, conn.read_exact(&mut prefix)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return, // peer closed
            Err(_) => {
                tracing::debug!(
                    "{peer:?}: closing: idle for connections.max.idle.ms ({idle_ms} ms)"
                );
                return;
            }
        }
        let Some(len) = check_size(prefix, max) else {
            tracing::info!("{peer:?}: closing: request size {} is negative or above socket.request.max.bytes ({max})", i32::from_be_bytes(prefix));
            return;
        };
        let Ok(Ok(frame)) = timer.timeout(idle_ms, read_body(&mut conn, len)).await else {
            return;
        };
        // Recorded when dropped: at the end of this iteration, or on any early return.
        let mut timer = metrics::RequestTimer::start(&frame);
        match dispatch(frame).await {
            Outcome::Respond(response) => {
                timer.sent(response.len());
                if let Err(e) = write_response(&mut conn, response).await {
                    tracing::debug!("{peer:?}: closing: writing a response failed: {e}");
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

/// Writes a response: runs of in-memory parts in one vectored send, file parts from the page
/// cache (see `wire::response`).
async fn write_response(conn: &mut Conn, response: Response) -> std::io::Result<()> {
    let mut pending: Vec<Bytes> = Vec::new();
    for part in response.parts {
        match part {
            Part::Bytes(b) => pending.push(b),
            Part::File(f) => {
                flush_pending(conn, &mut pending).await?;
                crate::runtime::sendfile::send_file(conn, &f).await?;
            }
        }
    }
    flush_pending(conn, &mut pending).await
}

async fn flush_pending(conn: &mut Conn, pending: &mut Vec<Bytes>) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let slices: Vec<&[u8]> = pending.iter().map(|b| &b[..]).collect();
    conn.write_all_vectored(&slices).await?;
    pending.clear();
    Ok(())
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
