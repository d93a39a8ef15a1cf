//! Raft messages between the voters, over TCP on `controller.listener` (shard 0 only; never the
//! Kafka listener). Each node keeps one outgoing connection per peer, which carries everything it
//! sends that peer, and reads what each peer sends on the connection that peer opened.
//!
//! Every connection opens with a hello from the connecting node — its id, the voters it was
//! configured with, the cluster id of its data directory if it has one — and the acceptor's
//! answer. A node that is not a voter, voters that disagree, or another cluster's data
//! directory are refused, and the refusal is recorded as a conflict ([`Transport::conflict`]):
//! start-up stops on it with the reason, since a quorum built from nodes that disagree on who
//! votes can elect two leaders.
//!
//! Untrusted bytes: the hello is at most [`MAX_HELLO`] bytes and must arrive within
//! [`HELLO_TIMEOUT_MS`]; message frames are bounded by `wire::MAX_MESSAGE`; a message that does
//! not come from the peer that said hello, is not addressed to this node, or is one of Raft's
//! node-local kinds is dropped. Messages are best-effort as Raft expects: a full queue to a slow
//! or stopped peer drops them, and the leader is told the peer is unreachable so it probes again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;
use raft::prelude::{Message, MessageType};
use serde::{Deserialize, Serialize};

use super::driver::{Outbox, QuorumHandle};
use super::wire;
use crate::runtime::file::blocking;
use crate::runtime::net::{connect, Conn, Listener};
use crate::runtime::spawn;
use crate::timer::Timer;

/// Largest hello (a few hundred bytes in practice).
pub const MAX_HELLO: usize = 64 << 10;
/// How long an accepted connection may take to say hello, and a peer to answer one.
pub const HELLO_TIMEOUT_MS: u64 = 5_000;
/// Messages queued for one peer before more are dropped.
const QUEUE: usize = 4_096;
/// Connections accepted at once; each real peer keeps one, the rest are refused at accept.
const MAX_INBOUND: usize = 64;
/// Longest wait between two connection attempts to a peer that cannot be reached.
const MAX_BACKOFF_MS: u64 = 1_000;

/// Who this node is in the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node: u64,
    /// Every voter with its controller address, in id order.
    pub voters: Vec<(u64, String)>,
    /// This data directory's cluster id, if it has one yet.
    pub cluster_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Welcome,
    Refused(String),
}

/// The running transport: hands messages to per-peer senders, and remembers a conflict.
pub struct Transport {
    queues: RefCell<HashMap<u64, mpsc::Sender<Message>>>,
    conflict: RefCell<Option<String>>,
    /// This node as it says hello, with the cluster id once it is known.
    me: RefCell<Identity>,
}

impl Transport {
    /// The cluster id this node now knows it belongs to: later hellos carry it, and peers of
    /// another cluster are refused from now on.
    pub fn set_cluster_id(&self, id: &str) {
        self.me.borrow_mut().cluster_id = Some(id.to_string());
    }

    fn identity(&self) -> Identity {
        self.me.borrow().clone()
    }

    /// Why a peer and this node cannot form a quorum, if one said so.
    pub fn conflict(&self) -> Option<String> {
        self.conflict.borrow().clone()
    }

    fn note_conflict(&self, why: &str) {
        let mut c = self.conflict.borrow_mut();
        if c.is_none() {
            *c = Some(why.to_string());
        }
    }

    fn send(&self, messages: Vec<Message>, handle: &QuorumHandle) {
        let mut queues = self.queues.borrow_mut();
        for m in messages {
            if let Some(q) = queues.get_mut(&m.to) {
                // Full (peer slow or gone): dropped; Raft resends what matters, and a lost
                // snapshot is reported so the leader does not wait for it forever.
                if let Err(e) = q.try_send(m) {
                    let m = e.into_inner();
                    failed(m.to, &m, handle);
                }
            }
        }
    }
}

/// Starts listening on `listen` and sending to every other voter. Returns the transport and
/// the outbox the quorum driver sends through.
pub fn start(
    me: Identity,
    listen: SocketAddr,
    handle: QuorumHandle,
    timer: Timer,
) -> io::Result<(Rc<Transport>, Outbox)> {
    let listener = Listener::bind_exclusive(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("controller.listener: {e}")))?;
    let handle_for_outbox = handle.clone();
    let transport = Rc::new(Transport {
        queues: RefCell::new(HashMap::new()),
        conflict: RefCell::new(None),
        me: RefCell::new(me.clone()),
    });
    for (peer, addr) in me.voters.iter().filter(|(id, _)| *id != me.node) {
        let (tx, rx) = mpsc::channel(QUEUE);
        transport.queues.borrow_mut().insert(*peer, tx);
        spawn(send_loop(
            *peer,
            addr.clone(),
            rx,
            handle.clone(),
            transport.clone(),
            timer.clone(),
        ));
    }
    spawn(accept_loop(listener, handle, transport.clone(), timer));
    let sender = transport.clone();
    let outbox: Outbox = Rc::new(move |messages| sender.send(messages, &handle_for_outbox));
    Ok((transport, outbox))
}

/// Why a connection to a peer ended or never started.
enum Failure {
    Io(io::Error),
    Refused(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

async fn send_loop(
    peer: u64,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    handle: QuorumHandle,
    transport: Rc<Transport>,
    timer: Timer,
) {
    let mut backoff = 50;
    let mut reported = false;
    // Connect only when there is something to send.
    while let Some(first) = rx.next().await {
        let failure = match greet(&transport.identity(), &addr, &timer).await {
            Ok(conn) => {
                tracing::info!("metadata quorum: connected to voter {peer} at {addr}");
                backoff = 50;
                reported = false;
                if let Err(e) = pump(conn, first, &mut rx, peer, &handle).await {
                    tracing::info!("metadata quorum: connection to voter {peer} lost: {e}");
                    handle.unreachable(peer);
                    continue;
                }
                return;
            }
            Err(f) => f,
        };
        match failure {
            Failure::Refused(why) => {
                tracing::error!("metadata quorum: voter {peer} at {addr} refused this node: {why}");
                transport.note_conflict(&why);
            }
            Failure::Io(e) if !reported => {
                tracing::info!("metadata quorum: cannot reach voter {peer} at {addr}: {e}");
                reported = true;
            }
            Failure::Io(_) => {}
        }
        handle.unreachable(peer);
        failed(peer, &first, &handle);
        // What queued meanwhile is stale; Raft resends what still matters.
        while let Ok(m) = rx.try_recv() {
            failed(peer, &m, &handle);
        }
        timer.sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF_MS);
    }
}

/// A message that could not be sent: a snapshot's failure is reported so the leader retries it.
fn failed(peer: u64, m: &Message, handle: &QuorumHandle) {
    if m.get_msg_type() == MessageType::MsgSnapshot {
        handle.snapshot_sent(peer, false);
    }
}

/// Connects to a peer and says hello; the connection once welcomed.
async fn greet(me: &Identity, addr: &str, timer: &Timer) -> Result<Conn, Failure> {
    let target = {
        let name = addr.to_string();
        blocking(move || name.to_socket_addrs().map(|mut a| a.next()))
            .await?
            .ok_or_else(|| io::Error::other(format!("{addr} resolves to no address")))?
    };
    let mut conn = connect(target, Duration::from_millis(1_000)).await?;
    let hello = serde_json::to_vec(me).map_err(io::Error::other)?;
    conn.write_all(&wire::frame(&hello)).await?;
    let answer = timer
        .timeout(HELLO_TIMEOUT_MS, read_frame(&mut conn, MAX_HELLO))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to hello"))??;
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(Answer::Welcome) => Ok(conn),
        Ok(Answer::Refused(why)) => Err(Failure::Refused(why)),
        Err(e) => Err(Failure::Io(io::Error::other(format!(
            "bad answer to hello: {e}"
        )))),
    }
}

/// Sends `first` and then whatever the queue holds, batching what is ready into one write.
async fn pump(
    mut conn: Conn,
    first: Message,
    rx: &mut mpsc::Receiver<Message>,
    peer: u64,
    handle: &QuorumHandle,
) -> io::Result<()> {
    let mut next = Some(first);
    loop {
        let mut batch = Vec::new();
        let mut snapshots = 0;
        while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                snapshots += 1;
            }
            batch.extend_from_slice(&wire::encode(&m).map_err(io::Error::other)?);
            if batch.len() >= 1 << 20 {
                break;
            }
        }
        if let Err(e) = conn.write_all(&batch).await {
            for _ in 0..snapshots {
                handle.snapshot_sent(peer, false);
            }
            return Err(e);
        }
        for _ in 0..snapshots {
            handle.snapshot_sent(peer, true);
        }
        match rx.next().await {
            Some(m) => next = Some(m),
            None => return Ok(()),
        }
    }
}

/// The newest connection of each peer, and how to stop it when a newer one arrives.
type Current = Rc<RefCell<HashMap<u64, (u64, futures_channel::oneshot::Sender<()>)>>>;

async fn accept_loop(
    listener: Listener,
    handle: QuorumHandle,
    transport: Rc<Transport>,
    timer: Timer,
) {
    let current: Current = Rc::new(RefCell::new(HashMap::new()));
    let open = Rc::new(std::cell::Cell::new(0usize));
    let mut serial = 0u64;
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metadata quorum: accepting a connection: {e}");
                timer.sleep(100).await;
                continue;
            }
        };
        if open.get() >= MAX_INBOUND {
            // Peers hold one connection each; this many is someone else's doing.
            continue;
        }
        serial += 1;
        open.set(open.get() + 1);
        let (handle, transport, current, timer, open) = (
            handle.clone(),
            transport.clone(),
            current.clone(),
            timer.clone(),
            open.clone(),
        );
        spawn(async move {
            serve_peer(conn, serial, handle, transport, current, timer).await;
            open.set(open.get() - 1);
        });
    }
}

async fn serve_peer(
    mut conn: Conn,
    serial: u64,
    mut handle: QuorumHandle,
    transport: Rc<Transport>,
    current: Current,
    timer: Timer,
) {
    let hello = match timer
        .timeout(HELLO_TIMEOUT_MS, read_frame(&mut conn, MAX_HELLO))
        .await
    {
        Ok(Ok(h)) => h,
        _ => return,
    };
    let peer = match serde_json::from_slice::<Identity>(&hello) {
        Ok(peer) => peer,
        Err(e) => {
            let _ = answer(&mut conn, Answer::Refused(format!("bad hello: {e}"))).await;
            return;
        }
    };
    let me = transport.identity();
    if let Some(why) = refusal(&me, &peer) {
        // Only logged here: the hello is not authenticated, so a refusal on this side must not
        // stop this node. The connecting node records it (`send_loop`), and a real peer that
        // disagrees is refused by this node's own connection to it as well.
        tracing::error!("metadata quorum: refused node {}: {why}", peer.node);
        let _ = answer(&mut conn, Answer::Refused(why)).await;
        return;
    }
    if answer(&mut conn, Answer::Welcome).await.is_err() {
        return;
    }
    // This connection is the peer's now: the one before it (a lost connection the peer
    // replaced) stops at once instead of holding its buffers until it hears something.
    let (stop_tx, mut stop) = futures_channel::oneshot::channel::<()>();
    if let Some((_, older)) = current.borrow_mut().insert(peer.node, (serial, stop_tx)) {
        let _ = older.send(());
    }
    loop {
        let next = futures_lite::future::or(
            async { Some(read_frame(&mut conn, wire::MAX_MESSAGE).await) },
            async {
                let _ = (&mut stop).await;
                None
            },
        )
        .await;
        let body = match next {
            Some(Ok(b)) => b,
            Some(Err(_)) | None => break,
        };
        match wire::decode(&body) {
            Ok(m) if acceptable(&m, me.node, peer.node) => handle.deliver(m).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(
                    "metadata quorum: undecodable message from node {}: {e}",
                    peer.node
                );
                break;
            }
        }
    }
    let mut current = current.borrow_mut();
    if current.get(&peer.node).is_some_and(|(s, _)| *s == serial) {
        current.remove(&peer.node);
    }
}

/// Why `peer` may not join this node's quorum, if it may not.
pub fn refusal(me: &Identity, peer: &Identity) -> Option<String> {
    if peer.node == me.node || !me.voters.iter().any(|(id, _)| *id == peer.node) {
        return Some(format!(
            "node {} is not another voter of this quorum (voters {})",
            peer.node,
            voters_text(&me.voters)
        ));
    }
    if peer.voters != me.voters {
        return Some(format!(
            "controller.quorum.voters disagree: node {} has {}, node {} has {}",
            peer.node,
            voters_text(&peer.voters),
            me.node,
            voters_text(&me.voters)
        ));
    }
    match (&peer.cluster_id, &me.cluster_id) {
        (Some(a), Some(b)) if a != b => Some(format!(
            "node {} belongs to cluster {a}, node {} to cluster {b}",
            peer.node, me.node
        )),
        _ => None,
    }
}

fn voters_text(voters: &[(u64, String)]) -> String {
    voters
        .iter()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A message from `from` that this node (`me`) may step: addressed here, really from the peer
/// that said hello, and not one of Raft's node-local kinds (which only a node gives itself).
pub fn acceptable(m: &Message, me: u64, from: u64) -> bool {
    use MessageType::*;
    m.to == me
        && m.from == from
        && !matches!(
            m.get_msg_type(),
            MsgHup | MsgBeat | MsgUnreachable | MsgSnapStatus | MsgCheckQuorum
        )
}

async fn answer(conn: &mut Conn, a: Answer) -> io::Result<()> {
    let body = serde_json::to_vec(&a).map_err(io::Error::other)?;
    conn.write_all(&wire::frame(&body)).await
}

/// One frame's body, refusing a length over `max` before reading it.
async fn read_frame(conn: &mut Conn, max: usize) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    conn.read_exact(&mut header).await?;
    let n = u32::from_be_bytes(header) as usize;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes (max {max})"),
        ));
    }
    let mut body = vec![0u8; n];
    conn.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: u64, voters: &[u64], cluster: Option<&str>) -> Identity {
        Identity {
            node,
            voters: voters
                .iter()
                .map(|v| (*v, format!("127.0.0.1:{}", 9000 + v)))
                .collect(),
            cluster_id: cluster.map(str::to_string),
        }
    }

    #[test]
    fn peers_that_disagree_are_refused() {
        let me = id(1, &[1, 2, 3], Some("A"));
        assert_eq!(refusal(&me, &id(2, &[1, 2, 3], Some("A"))), None);
        assert_eq!(refusal(&me, &id(2, &[1, 2, 3], None)), None);
        let other_cluster = refusal(&me, &id(2, &[1, 2, 3], Some("B"))).unwrap();
        assert!(other_cluster.contains("cluster B"), "{other_cluster}");
        let disagree = refusal(&me, &id(2, &[1, 2, 4], None)).unwrap();
        assert!(disagree.contains("disagree"), "{disagree}");
        assert!(refusal(&me, &id(4, &[1, 2, 3], None)).is_some());
        assert!(refusal(&me, &id(1, &[1, 2, 3], None)).is_some());
    }

    #[test]
    fn only_messages_from_the_greeted_peer_to_this_node_are_stepped() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 2;
        m.to = 1;
        assert!(acceptable(&m, 1, 2));
        assert!(!acceptable(&m, 1, 3), "spoofed sender");
        assert!(!acceptable(&m, 3, 2), "for another node");
        m.set_msg_type(MessageType::MsgHup);
        assert!(!acceptable(&m, 1, 2), "a local message");
    }
}
