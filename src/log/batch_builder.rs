//! Builders of valid uncompressed RecordBatch v2 blobs: the group coordinator's
//! `__consumer_offsets` records are written with [`build`], and tests (here, in `tests/` and in
//! the fuzz seeds) build their batches with the same code. No I/O.

use crate::log::batch::{write_varlong, HEADER_LEN};
use bytes::Bytes;

/// One record to put in a batch (key, value, timestamp offset from the batch's base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Added to the batch's base timestamp.
    pub timestamp_delta: i64,
}

/// Build a batch with base offset 0, producer id -1 (no idempotence), CreateTime.
/// `maxTimestamp` = base + the largest delta, CRC32C correct.
pub fn build(base_timestamp: i64, records: &[RecordSpec]) -> Vec<u8> {
    build_with_producer(base_timestamp, records, -1, -1, -1)
}

/// Like [`build`], with the idempotence fields set: producer id, producer epoch and base
/// sequence (the batch covers sequences `base_sequence ..= base_sequence + n - 1`, wrapping
/// past `i32::MAX` to 0 as Kafka's producer does).
pub fn build_with_producer(
    base_timestamp: i64,
    records: &[RecordSpec],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // attributes
        write_varlong(&mut rec, r.timestamp_delta);
        write_varlong(&mut rec, i as i64); // offsetDelta
        match &r.key {
            Some(k) => {
                write_varlong(&mut rec, k.len() as i64);
                rec.extend_from_slice(k);
            }
            None => write_varlong(&mut rec, -1),
        }
        match &r.value {
            Some(v) => {
                write_varlong(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => write_varlong(&mut rec, -1),
        }
        write_varlong(&mut rec, 0); // headers
        write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((HEADER_LEN - 12 + body.len()) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, fixed below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&(base_timestamp + max_delta).to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&body);
    fix_crc(&mut b);
    b
}

/// A batch of `n` records with null keys, `value_len`-byte values and timestamps
/// `base_timestamp + i`.
pub fn batch(n: usize, base_timestamp: i64, value_len: usize) -> Vec<u8> {
    let recs: Vec<RecordSpec> = (0..n)
        .map(|i| RecordSpec {
            key: None,
            value: Some(vec![(i % 251) as u8; value_len]),
            timestamp_delta: i as i64,
        })
        .collect();
    build(base_timestamp, &recs)
}

/// An idempotent batch of `n` records (as [`batch`]) from `producer_id` at `producer_epoch`,
/// starting at sequence `base_sequence`.
pub fn idempotent_batch(
    n: usize,
    base_timestamp: i64,
    value_len: usize,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let recs: Vec<RecordSpec> = (0..n)
        .map(|i| RecordSpec {
            key: None,
            value: Some(vec![(i % 251) as u8; value_len]),
            timestamp_delta: i as i64,
        })
        .collect();
    build_with_producer(
        base_timestamp,
        &recs,
        producer_id,
        producer_epoch,
        base_sequence,
    )
}

/// A batch with one record per entry of `deltas` (timestamp = base + delta).
pub fn batch_with_timestamps(base_timestamp: i64, deltas: &[i64], value_len: usize) -> Vec<u8> {
    let recs: Vec<RecordSpec> = deltas
        .iter()
        .map(|d| RecordSpec {
            key: None,
            value: Some(vec![7u8; value_len]),
            timestamp_delta: *d,
        })
        .collect();
    build(base_timestamp, &recs)
}

/// Recompute the CRC32C of a hand-edited batch.
pub fn fix_crc(b: &mut [u8]) {
    if b.len() >= HEADER_LEN {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Concatenate batches into one produce record set.
pub fn concat(batches: &[Vec<u8>]) -> Bytes {
    let mut out = Vec::new();
    for b in batches {
        out.extend_from_slice(b);
    }
    Bytes::from(out)
}

/// `batch` (an uncompressed batch from this module) with its records compressed by `codec`
/// (1 gzip, 2 snappy in Kafka's xerial framing, 3 lz4 frame, 4 zstd; 5-7 leave the bytes as
/// they are under that codec id), attributes and CRC set accordingly.
// Encoders writing into a Vec fail only on allocation failure, which aborts anyway.
#[allow(clippy::expect_used)]
pub fn compressed(batch: &[u8], codec: u8) -> Vec<u8> {
    let records = &batch[HEADER_LEN..];
    let payload = match crate::log::record_walk::Codec::from_id(codec) {
        Some(c) => crate::log::record_walk::compress(c, None, records).expect("compress"),
        None => records.to_vec(),
    };
    with_payload(batch, codec, &payload)
}

/// `batch`'s header (codec id `codec`, batchLength and CRC fixed) followed by `payload` as its
/// records: for building batches whose records lie.
pub fn with_payload(batch: &[u8], codec: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = batch[..HEADER_LEN].to_vec();
    b.extend_from_slice(payload);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let attrs = (i16::from_be_bytes([b[21], b[22]]) & !0x07) | i16::from(codec & 0x07);
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    fix_crc(&mut b);
    b
}
