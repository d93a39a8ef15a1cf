//! The records the coordinator writes to `__consumer_offsets`, in Kafka's own formats.
//!
//! kafka-protocol 0.18 does not ship the internal `OffsetCommitKey`/`GroupMetadataValue` schemas,
//! so they are hand-written here from Kafka's `group-coordinator/src/main/resources/common/message`
//! JSON definitions. Keeping Kafka's byte format means Kafka's own tooling
//! (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`) can read our topic, and a
//! future migration needs no conversion.
//!
//! | key version | key                                   | value versions we read (write) |
//! |-------------|---------------------------------------|--------------------------------|
//! | 0, 1        | OffsetCommitKey: group, topic, partition | OffsetCommitValue 0-3 (3)   |
//! | 2           | GroupMetadataKey: group               | GroupMetadataValue 0-3 (3)     |
//!
//! A null value is a tombstone: the offset (or the whole group) was deleted. All integers are
//! big-endian; strings are i16-length-prefixed UTF-8 (-1 = null), bytes i32-length-prefixed.
//! Newer, flexible value versions (OffsetCommitValue 4+, GroupMetadataValue 4+) are rejected as
//! `Unsupported` rather than misread: we never write them.
//!
//! Decoding never trusts a length: every length is checked against the bytes that remain before
//! anything is allocated, because these bytes come from disk.

use bytes::{BufMut, Bytes, BytesMut};

use crate::log::batch::{read_varlong, BatchHeader, HEADER_LEN};

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

/// OffsetCommitValue (what one committed offset carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 = unknown (clients before KIP-320).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member as persisted in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// GroupMetadataValue: enough to resume a stable group after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    Unsupported { what: &'static str, version: i16 },
    #[error("string is not UTF-8")]
    Utf8,
    #[error("negative length {0}")]
    NegativeLength(i64),
}

// ---- encoding ----------------------------------------------------------------------------

fn put_str(b: &mut BytesMut, s: &str) {
    // Group ids, topics, member ids are bounded well below i16::MAX by the protocol that carried
    // them in (they arrived as Kafka STRINGs); truncate defensively instead of corrupting.
    let bytes = s.as_bytes();
    let n = bytes.len().min(i16::MAX as usize);
    b.put_i16(n as i16);
    b.put_slice(&bytes[..n]);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len().min(i32::MAX as usize) as i32);
    b.put_slice(v);
}

/// Encodes a key (OffsetCommitKey v1 or GroupMetadataKey v2).
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(1);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            b.put_i16(2);
            put_str(&mut b, group);
        }
    }
    b.freeze()
}

/// Encodes OffsetCommitValue v3.
pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

/// Encodes GroupMetadataValue v3.
pub fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

// ---- decoding ----------------------------------------------------------------------------

/// A bounds-checked reader over one key or value.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, CodecError> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_be_bytes(a))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, CodecError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| CodecError::Utf8)
    }
    fn str(&mut self) -> Result<String, CodecError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
}

/// Decodes a key.
pub fn decode_key(buf: &[u8]) -> Result<RecordKey, CodecError> {
    let mut r = Reader::new(buf);
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        version => Err(CodecError::Unsupported {
            what: "key",
            version,
        }),
    }
}

/// Decodes OffsetCommitValue v0-v3.
pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetValue, CodecError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    match version {
        0..=2 => {
            let offset = r.i64()?;
            let metadata = r.str()?;
            let commit_timestamp = r.i64()?;
            // v1's expire timestamp follows; retention is the broker's setting now, as in Kafka.
            Ok(OffsetValue {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp,
            })
        }
        3 => Ok(OffsetValue {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.str()?,
            commit_timestamp: r.i64()?,
        }),
        version => Err(CodecError::Unsupported {
            what: "offset value",
            version,
        }),
    }
}

/// Decodes GroupMetadataValue v0-v3.
pub fn decode_group_value(buf: &[u8]) -> Result<GroupValue, CodecError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::Unsupported {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 {
        return Err(CodecError::NegativeLength(count.into()));
    }
    // Each member takes at least 2+2+2+2+4+4+4+4 bytes: bound the allocation by what remains.
    let remaining = buf.len().saturating_sub(r.pos);
    let mut members = Vec::with_capacity((count as usize).min(remaining / 24));
    for _ in 0..count {
        let member_id = r.str()?;
        let instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// One record of a batch: its offset, key and value (`None` = null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Splits a run of uncompressed RecordBatch v2 bytes (as `PartitionLog::read` returns them) into
/// records. Returns the records and the offset after the last complete batch. Compressed and
/// control batches are skipped (the coordinator writes neither; a compressed batch could only
/// come from a client producing to the internal topic, which Kafka forbids and we do not read).
/// Stops at the first batch that does not parse: replay then continues from the returned offset.
pub fn records_in(buf: &[u8]) -> (Vec<RawRecord>, Option<i64>) {
    let mut out = Vec::new();
    let mut next = None;
    let mut pos = 0usize;
    while pos + HEADER_LEN <= buf.len() {
        let Ok(h) = BatchHeader::parse(&buf[pos..]) else {
            break;
        };
        let end = pos + h.total_len();
        if end > buf.len() {
            break;
        }
        if h.compression() == 0 && !h.is_control() {
            parse_records(&buf[pos + HEADER_LEN..end], h.base_offset, &mut out);
        }
        next = Some(h.next_offset());
        pos = end;
    }
    (out, next)
}

fn parse_records(body: &[u8], base_offset: i64, out: &mut Vec<RawRecord>) {
    let mut pos = 0usize;
    while pos < body.len() {
        let Some(len) = read_varlong(body, &mut pos) else {
            return;
        };
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let Some(rec) = pos.checked_add(len).and_then(|end| body.get(pos..end)) else {
            return;
        };
        pos += len;
        let mut p = 1usize; // attributes
        let (Some(_ts), Some(delta)) = (read_varlong(rec, &mut p), read_varlong(rec, &mut p))
        else {
            return;
        };
        let Some(key) = read_nullable(rec, &mut p) else {
            return;
        };
        let Some(value) = read_nullable(rec, &mut p) else {
            return;
        };
        out.push(RawRecord {
            offset: base_offset.saturating_add(delta),
            key,
            value,
        });
    }
}

/// A varint-length-prefixed byte string; `Some(None)` for length -1, `None` if malformed.
fn read_nullable(rec: &[u8], pos: &mut usize) -> Option<Option<Bytes>> {
    let n = read_varlong(rec, pos)?;
    if n < 0 {
        return Some(None);
    }
    let end = pos.checked_add(usize::try_from(n).ok()?)?;
    let s = rec.get(*pos..end)?;
    *pos = end;
    Some(Some(Bytes::copy_from_slice(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch_builder::{build, RecordSpec};

    #[test]
    fn keys_round_trip_in_kafka_layout() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let b = encode_key(&k);
        assert_eq!(&b[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(decode_key(&b).unwrap(), k);
        let g = RecordKey::Group {
            group: "grp".into(),
        };
        assert_eq!(&encode_key(&g)[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(decode_key(&encode_key(&g)).unwrap(), g);
        assert!(matches!(
            decode_key(&[0, 9]),
            Err(CodecError::Unsupported { .. })
        ));
    }

    #[test]
    fn values_round_trip() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&v)).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(&encode_group_value(&g)).unwrap(), g);
    }

    #[test]
    fn old_offset_value_versions_decode() {
        // v1: offset, metadata, commit ts, expire ts.
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(10);
        b.put_i16(0);
        b.put_i64(5);
        b.put_i64(6);
        let v = decode_offset_value(&b).unwrap();
        assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (10, -1, 5));
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        // A group value claiming 2^31-1 members in a few bytes.
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i16(0);
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i64(0);
        b.put_i32(i32::MAX);
        assert_eq!(decode_group_value(&b), Err(CodecError::Truncated));
        assert_eq!(decode_key(&[0, 1, 0x7f, 0xff]), Err(CodecError::Truncated));
        assert_eq!(decode_offset_value(&[0, 3, 1]), Err(CodecError::Truncated));
        assert!(decode_offset_value(&[]).is_err());
    }

    #[test]
    fn records_are_split_out_of_batches() {
        let key = encode_key(&RecordKey::Group { group: "g".into() });
        let b1 = build(
            1,
            &[
                RecordSpec {
                    key: Some(key.to_vec()),
                    value: Some(b"v".to_vec()),
                    timestamp_delta: 0,
                },
                RecordSpec {
                    key: Some(key.to_vec()),
                    value: None,
                    timestamp_delta: 0,
                },
            ],
        );
        let mut b2 = b1.clone();
        crate::log::batch::set_base_offset(&mut b2, 2);
        let mut all = b1.clone();
        all.extend_from_slice(&b2);
        all.extend_from_slice(&b1[..20]); // a torn tail is ignored
        let (recs, next) = records_in(&all);
        assert_eq!(next, Some(4));
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[1].offset, 1);
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[3].offset, 3);
        assert_eq!(recs[0].key.as_deref(), Some(&key[..]));
    }
}
