//! One client connection: read a frame, answer it, repeat.
//!
//! Requests on one connection are handled in arrival order and answered in that order, as with
//! Kafka. One refinement: a request whose work is done except for waiting (an acks=-1 produce
//! whose records are appended but not yet synced) does not hold up the *reading* of requests the
//! client already pipelined behind it. Those are handled (appended, in order) while the sync
//! runs, so one fdatasync covers them all; responses still leave strictly in request order.
//! Anything unanswerable closes the connection, which affects only this client.

use std::collections::VecDeque;

use bytes::Bytes;

use super::dispatch::{dispatch, Outcome};
use super::frame_reader::{FrameReader, ReadError};
use crate::metrics::{self, RequestTimer};
use crate::runtime::net::Conn;
use crate::shard;
use crate::wire::{Part, Response};

/// Requests a connection may have answered-but-unsent. Kafka clients keep at most 5 in flight
/// per connection (idempotent producers); the bound keeps memory per connection small whatever
/// a client does.
const MAX_PENDING: usize = 16;

/// A handled request waiting for its turn to be answered.
struct Pending {
    outcome: Outcome,
    timer: RequestTimer,
}

pub async fn serve_connection(mut conn: Conn) {
    let shard = shard::current();
    let max = shard.config.int("socket.request.max.bytes").max(0) as usize;
    // Kafka's connections.max.idle.ms: a connection with no request for this long (or stuck
    // half-way through sending one) is closed, so idle or half-open clients cannot pile up.
    let idle_ms = shard.config.int("connections.max.idle.ms").max(1) as u64;
    let timer = shard.timer.clone();
    drop(shard);
    let peer = conn.peer_addr();
    let link = Link {
        peer,
        timer: timer.clone(),
        idle_ms,
    };
    let _counted = metrics::ConnectionGuard::new();
    let mut input = FrameReader::new(max);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        let frame = if pending.is_empty() {
            match timer.timeout(idle_ms, input.next(&mut conn)).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => return closing(&peer, e, max),
                Err(_) => {
                    tracing::debug!(
                        "{peer:?}: closing: idle for connections.max.idle.ms ({idle_ms} ms)"
                    );
                    return;
                }
            }
        } else {
            // Something awaits its turn: take a request only if it is already here, otherwise
            // answer the oldest one (which may mean waiting for its sync).
            // Once a Close is queued nothing after it may run (Kafka stops at a bad request).
            let closing_queued = pending
                .back()
                .is_some_and(|p| matches!(p.outcome, Outcome::Close(_)));
            let next = match pending.len() < MAX_PENDING && !closing_queued {
                true => input.try_next(&conn),
                false => Ok(None),
            };
            match next {
                Ok(Some(frame)) if is_produce(&frame) => frame,
                Ok(Some(frame)) => {
                    // Only produces are read ahead: anything else (a long-poll fetch, a group
                    // join) could wait, and must not delay the answers queued before it.
                    while let Some(p) = pending.pop_front() {
                        if !send(&mut conn, &link, p).await {
                            return;
                        }
                    }
                    frame
                }
                Ok(None) => {
                    let Some(p) = pending.pop_front() else {
                        continue;
                    };
                    if !send(&mut conn, &link, p).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // Answer what was already handled (its effects happened) before closing.
                    while let Some(p) = pending.pop_front() {
                        if !send(&mut conn, &link, p).await {
                            break;
                        }
                    }
                    return closing(&peer, e, max);
                }
            }
        };
        // Recorded when dropped: once the response is written, or on any early return.
        let request_timer = RequestTimer::start(&frame);
        let outcome = dispatch(frame).await;
        let answer = Pending {
            outcome,
            timer: request_timer,
        };
        if pending.is_empty() && !matches!(answer.outcome, Outcome::Later(_)) {
            if !send(&mut conn, &link, answer).await {
                return;
            }
        } else {
            pending.push_back(answer);
        }
    }
}

fn is_produce(frame: &Bytes) -> bool {
    frame.get(..2) == Some(&[0, 0][..])
}

fn closing(peer: &Option<std::net::SocketAddr>, e: ReadError, max: usize) {
    match e {
        ReadError::Io(_) => {} // peer closed or reset
        ReadError::BadSize(size) => tracing::info!(
            "{peer:?}: closing: request size {size} is negative or above socket.request.max.bytes ({max})"
        ),
    }
}

/// What `send` needs to know about the connection.
struct Link {
    peer: Option<std::net::SocketAddr>,
    timer: crate::timer::Timer,
    idle_ms: u64,
}

/// Waits for a handled request's answer if need be and writes it. `false`: close the connection.
/// A client that stops reading cannot hold the connection (and, with zero-copy, the file
/// ranges it was being sent) for longer than `connections.max.idle.ms`.
async fn send(conn: &mut Conn, link: &Link, p: Pending) -> bool {
    let peer = &link.peer;
    let Pending { outcome, mut timer } = p;
    let outcome = match outcome {
        Outcome::Later(later) => later.await,
        other => other,
    };
    match outcome {
        Outcome::Respond(response) => {
            timer.sent(response.len());
            match link
                .timer
                .timeout(link.idle_ms, write_response(conn, response))
                .await
            {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::debug!("{peer:?}: closing: writing a response failed: {e}");
                    false
                }
                Err(_) => {
                    tracing::info!(
                        "{peer:?}: closing: the client read nothing for connections.max.idle.ms"
                    );
                    false
                }
            }
        }
        Outcome::NoResponse => true,
        Outcome::Close(why) => {
            timer.failed();
            tracing::info!("{peer:?}: closing connection: {why}");
            false
        }
        Outcome::Later(_) => {
            timer.failed();
            tracing::error!("{peer:?}: closing: a deferred answer deferred again");
            false
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
