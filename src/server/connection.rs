//! One client connection: read a frame, answer it, repeat.
//!
//! Requests on one connection are handled in arrival order and answered in that order, as with
//! Kafka. One refinement: a request whose work is done except for waiting (an acks=-1 produce
//! whose records are appended but not yet synced) does not hold up the *reading* of requests the
//! client already pipelined behind it. Those are handled (appended, in order) while the sync
//! runs, so one fdatasync covers them all; responses still leave strictly in request order.
//! Anything unanswerable closes the connection, which affects only this client.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::dispatch::{dispatch, Outcome};
use super::frame_reader::{Frame, FrameReader, ReadError};
use crate::metrics::{self, RequestTimer};
use crate::runtime::budget::{BudgetPermit, ByteBudget};
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
    /// The request's bytes of the shard's `queued.max.request.bytes`, held until it is answered.
    _permit: Option<BudgetPermit>,
}

thread_local! {
    /// This shard's `queued.max.request.bytes` budget, made on first use (`None`: no limit).
    static REQUEST_BUDGET: std::cell::OnceCell<Option<Rc<ByteBudget>>> =
        const { std::cell::OnceCell::new() };
}

fn request_budget() -> Option<Rc<ByteBudget>> {
    REQUEST_BUDGET.with(|b| {
        b.get_or_init(|| {
            let bytes = shard::current().config.int("queued.max.request.bytes");
            (bytes > 0).then(|| Rc::new(ByteBudget::new(bytes as u64)))
        })
        .clone()
    })
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
    let session = super::session::Session::plaintext(peer);
    let link = Link {
        peer,
        timer: timer.clone(),
        idle_ms,
    };
    let _counted = metrics::ConnectionGuard::new();
    let mut input = FrameReader::new(max, request_budget());
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        let Frame {
            bytes: frame,
            permit,
        } = if pending.is_empty() {
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
                Ok(Some(frame)) if is_produce(&frame.bytes) => frame,
                Ok(Some(frame)) => {
                    // Only produces are read ahead: anything else (a long-poll fetch, a group
                    // join) could wait, and must not delay the answers queued before it.
                    while !pending.is_empty() {
                        if !send_ready(&mut conn, &link, &mut pending).await {
                            return;
                        }
                    }
                    frame
                }
                Ok(None) => {
                    if !send_ready(&mut conn, &link, &mut pending).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // Answer what was already handled (its effects happened) before closing.
                    while !pending.is_empty() {
                        if !send_ready(&mut conn, &link, &mut pending).await {
                            break;
                        }
                    }
                    return closing(&peer, e, max);
                }
            }
        };
        // Recorded when dropped: once the response is written, or on any early return.
        let request_timer = RequestTimer::start(&frame);
        let outcome = if is_fetch(&frame) && pending.is_empty() {
            // A long-poll fetch may wait up to max_wait_ms; if its client goes away meanwhile,
            // drop it at once (its waiters on the partitions' shards go with it) instead of
            // holding its state until the deadline.
            let closed = async {
                conn.peer_closed().await;
                None
            };
            match futures_lite::future::or(async { Some(dispatch(frame, &session).await) }, closed)
                .await
            {
                Some(outcome) => outcome,
                None => {
                    tracing::debug!("{peer:?}: closed while its fetch waited; fetch dropped");
                    crate::metrics::with(|m| m.fetches_cancelled.inc());
                    return;
                }
            }
        } else {
            dispatch(frame, &session).await
        };
        // Queued even when it could be sent right away: if the client already pipelined more
        // requests, they are handled first and the answers leave together (see `send_ready`).
        pending.push_back(Pending {
            outcome,
            timer: request_timer,
            _permit: permit,
        });
    }
}

fn is_produce(frame: &Bytes) -> bool {
    frame.get(..2) == Some(&[0, 0][..])
}

fn is_fetch(frame: &Bytes) -> bool {
    frame.get(..2) == Some(&[0, 1][..])
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

/// Answers from the front of the queue: waits for the oldest if it is deferred, then writes it
/// together with every answer behind it that is already known, in one write (one `sendmsg` for
/// in-memory parts). A pipelining client (a producer with 5 requests in flight) then gets several
/// answers per system call and per wake-up instead of one each. `false`: close the connection.
async fn send_ready(conn: &mut Conn, link: &Link, pending: &mut VecDeque<Pending>) -> bool {
    let mut parts: Vec<Part> = Vec::new();
    let mut timers: Vec<RequestTimer> = Vec::new();
    while let Some(mut p) = pending.pop_front() {
        if let Outcome::Later(later) = &mut p.outcome {
            let ready = match timers.is_empty() {
                true => Some(later.as_mut().await),
                false => futures_lite::future::poll_once(later.as_mut()).await,
            };
            match ready {
                Some(outcome) => p.outcome = outcome,
                None => {
                    // Not done yet: write what is ready; it is next in line.
                    pending.push_front(p);
                    break;
                }
            }
        }
        match p.outcome {
            Outcome::Respond(response) => {
                p.timer.sent(response.len());
                parts.extend(response.parts);
                timers.push(p.timer);
            }
            Outcome::NoResponse => {}
            Outcome::Close(why) => {
                // What came before it is still answered (its effects happened).
                p.timer.failed();
                write_batch(conn, link, parts).await;
                tracing::info!("{:?}: closing connection: {why}", link.peer);
                return false;
            }
            Outcome::Later(_) => {
                p.timer.failed();
                tracing::error!("{:?}: closing: a deferred answer deferred again", link.peer);
                return false;
            }
        }
    }
    // The timers record when dropped: after the write.
    let ok = write_batch(conn, link, parts).await;
    drop(timers);
    ok
}

/// Writes the parts of one or more responses; `false` (after logging why): close.
async fn write_batch(conn: &mut Conn, link: &Link, parts: Vec<Part>) -> bool {
    if parts.is_empty() {
        return true;
    }
    let peer = &link.peer;
    match link
        .timer
        .timeout(link.idle_ms, write_response(conn, Response { parts }))
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
