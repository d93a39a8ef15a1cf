//! Raft messages between quorum nodes: each one a frame of `len: u32 BE` and the message's
//! protobuf encoding (raft-rs's own format). Frames from peers are untrusted: a length beyond
//! [`MAX_MESSAGE`] closes the connection before anything is allocated for it, and decoding is
//! bounded (protobuf 2.28 limits nesting to 100 levels and refuses unknown group fields instead
//! of recursing into them; the tests below feed it both).

use protobuf::Message as _;
use raft::prelude::Message;

/// Largest message accepted: append batches are at most 1 MiB (`core::MAX_APPEND_BYTES`) plus
/// one entry, which a metadata record never comes near.
pub const MAX_MESSAGE: usize = 16 << 20;

/// `m` as a frame.
pub fn encode(m: &Message) -> Result<Vec<u8>, String> {
    let body = m.write_to_bytes().map_err(|e| e.to_string())?;
    Ok(frame(&body))
}

/// `body` behind its `u32` length (every frame between quorum nodes: messages, hellos).
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The body length a frame header announces, if acceptable.
pub fn body_len(header: [u8; 4]) -> Result<usize, String> {
    let n = u32::from_be_bytes(header) as usize;
    if n > MAX_MESSAGE {
        return Err(format!("quorum message of {n} bytes (max {MAX_MESSAGE})"));
    }
    Ok(n)
}

/// Decodes a frame body.
pub fn decode(body: &[u8]) -> Result<Message, String> {
    Message::parse_from_bytes(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::{Entry, MessageType};

    #[test]
    fn messages_round_trip() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        let e = Entry {
            index: 3,
            data: b"{\"type\":\"DeleteTopic\",\"name\":\"t\"}".to_vec().into(),
            ..Default::default()
        };
        m.entries = vec![e].into();
        let frame = encode(&m).unwrap();
        let n = body_len([frame[0], frame[1], frame[2], frame[3]]).unwrap();
        assert_eq!(decode(&frame[4..4 + n]).unwrap(), m);
        assert!(body_len((MAX_MESSAGE as u32 + 1).to_be_bytes()).is_err());
    }

    #[test]
    fn hostile_bodies_are_refused_without_deep_recursion() {
        // 200,000 nested unknown groups (field 15, wire type 3: start group).
        let groups = vec![(15 << 3) | 3u8; 200_000];
        assert!(decode(&groups).is_err());
        // 200,000 nested length-delimited fields under `entries` (field 7): each level claims
        // the rest of the input as a nested message.
        let mut nested = Vec::new();
        for _ in 0..200_000 {
            nested.push((7 << 3) | 2);
        }
        assert!(decode(&nested).is_err());
        // Garbage.
        assert!(decode(&[0xff; 64]).is_err());
    }
}
