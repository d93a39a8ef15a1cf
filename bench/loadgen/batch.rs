//! RecordBatch v2 (magic 2): built by hand once up front, patched in place for end-to-end
//! timestamps, and read back from Fetch responses by header only.
//!
//! Batch header layout (byte offsets): baseOffset 0, batchLength 8, partitionLeaderEpoch 12,
//! magic 16, crc 17, attributes 21, lastOffsetDelta 23, baseTimestamp 27, maxTimestamp 35,
//! producerId 43, producerEpoch 51, baseSequence 53, recordCount 57, records 61.

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Lz4, Zstd};

const HEADER_LEN: usize = 61;
const CRC_START: usize = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Lz4,
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// A record batch ready to send, plus where each record's value starts (uncompressed only).
#[derive(Clone)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub records: u32,
    /// Offsets (within `bytes`) of each record value; empty for compressed batches.
    pub value_offsets: Vec<usize>,
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

fn varint_len(v: i64) -> usize {
    let mut tmp = Vec::with_capacity(10);
    put_varint(&mut tmp, v);
    tmp.len()
}

/// Cheap deterministic pseudo-random generator (xorshift64*) for payload bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A record value of random uppercase letters.
pub fn random_value(size: usize, rng: &mut Rng) -> impl Iterator<Item = u8> + '_ {
    (0..size).map(move |_| b'A' + (rng.next() % 26) as u8)
}

/// Builds one batch of `records` records with `record_size`-byte values (null keys, no headers).
/// Values are random uppercase letters, like kafka-producer-perf-test's payloads, so that
/// compression has realistic work to do.
pub fn build(
    records: u32,
    record_size: usize,
    codec: Codec,
    timestamp_ms: i64,
    rng: &mut Rng,
) -> Result<Batch, String> {
    // Records section (uncompressed), remembering value offsets relative to its start.
    let mut body = Vec::with_capacity(records as usize * (record_size + 16));
    let mut value_offsets = Vec::with_capacity(records as usize);
    for i in 0..records {
        let i = i as i64;
        // attributes(1) + timestampDelta(0 → 1 byte) + offsetDelta + key len(-1) + value len +
        // value + header count(0)
        let inner = 1 + 1 + varint_len(i) + 1 + varint_len(record_size as i64) + record_size + 1;
        put_varint(&mut body, inner as i64);
        body.push(0); // attributes
        put_varint(&mut body, 0); // timestampDelta
        put_varint(&mut body, i); // offsetDelta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, record_size as i64);
        value_offsets.push(body.len());
        body.extend(random_value(record_size, rng));
        put_varint(&mut body, 0); // no headers
    }

    let payload: Vec<u8> = match codec {
        Codec::None => body,
        Codec::Lz4 => compress::<Lz4>(&body)?,
        Codec::Zstd => compress::<Zstd>(&body)?,
    };

    let mut b = Vec::with_capacity(HEADER_LEN + payload.len());
    b.put_i64(0); // baseOffset (the broker assigns it)
    b.put_i32((HEADER_LEN - 12 + payload.len()) as i32); // batchLength
    b.put_i32(-1); // partitionLeaderEpoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, below
    b.put_i16(codec.attribute());
    b.put_i32(records as i32 - 1); // lastOffsetDelta
    b.put_i64(timestamp_ms); // baseTimestamp
    b.put_i64(timestamp_ms); // maxTimestamp
    b.put_i64(-1); // producerId
    b.put_i16(-1); // producerEpoch
    b.put_i32(-1); // baseSequence
    b.put_i32(records as i32);
    b.extend_from_slice(&payload);
    let value_offsets = if codec == Codec::None {
        value_offsets.into_iter().map(|o| o + HEADER_LEN).collect()
    } else {
        Vec::new()
    };
    let mut batch = Batch {
        bytes: b,
        records,
        value_offsets,
    };
    fix_crc(&mut batch.bytes);
    Ok(batch)
}

fn compress<C: Compressor<BytesMut, BufMut = BytesMut>>(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    C::compress(&mut out, |tmp: &mut BytesMut| {
        tmp.extend_from_slice(body);
        Ok(())
    })
    .map_err(|e| format!("compressing batch: {e}"))?;
    Ok(out.to_vec())
}

/// Recomputes the CRC32C of a batch that starts at `batch[0]`.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Writes `ns` (big-endian u64, ns since the epoch) into the first 8 bytes of every value of the
/// batch at `batch_start` within `buf`, and fixes the CRC.
pub fn stamp(buf: &mut [u8], batch_start: usize, batch: &Batch, ns: u64) {
    let end = batch_start + batch.bytes.len();
    for &off in &batch.value_offsets {
        let at = batch_start + off;
        buf[at..at + 8].copy_from_slice(&ns.to_be_bytes());
    }
    fix_crc(&mut buf[batch_start..end]);
}

/// What a walk over a partition's fetched bytes found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scan {
    pub records: u64,
    pub bytes: u64,
    pub batches: u64,
    /// The offset to fetch next, if at least one complete batch was seen.
    pub next_offset: Option<i64>,
}

/// Walks the complete batches in `data` (a trailing partial batch is ignored) and counts records
/// from the batch headers, without decompressing. `on_value` is called with the first 8 bytes of
/// each record value when given (uncompressed batches only).
pub fn scan(data: &[u8], mut on_value: Option<&mut dyn FnMut(u64)>) -> Result<Scan, String> {
    let mut s = Scan::default();
    let mut pos = 0;
    while data.len() - pos >= HEADER_LEN {
        let h = &data[pos..];
        let base = i64::from_be_bytes(h[0..8].try_into().map_err(|_| "short batch")?);
        let len = i32::from_be_bytes(h[8..12].try_into().map_err(|_| "short batch")?);
        if len < (HEADER_LEN - 12) as i32 {
            return Err(format!("batch at offset {base}: bad length {len}"));
        }
        let total = 12 + len as usize;
        if total > h.len() {
            break; // partial batch at the end of a size-limited fetch
        }
        if h[16] != 2 {
            return Err(format!(
                "batch at offset {base}: magic {} (only v2 record batches are supported)",
                h[16]
            ));
        }
        let attrs = i16::from_be_bytes([h[21], h[22]]);
        let last_delta = i32::from_be_bytes(h[23..27].try_into().map_err(|_| "short batch")?);
        let count = i32::from_be_bytes(h[57..61].try_into().map_err(|_| "short batch")?);
        let control = attrs & 0x20 != 0;
        if !control {
            s.records += count.max(0) as u64;
            s.bytes += total as u64;
            if let Some(f) = on_value.as_mut() {
                if attrs & 7 != 0 {
                    return Err("end-to-end mode needs uncompressed batches".into());
                }
                walk_values(&h[HEADER_LEN..total], count, &mut **f)?;
            }
        }
        s.batches += 1;
        s.next_offset = Some(base + last_delta as i64 + 1);
        pos += total;
    }
    Ok(s)
}

fn get_varint(data: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *data.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        z |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err("varint too long".into());
        }
    }
    Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
}

fn walk_values(records: &[u8], count: i32, f: &mut dyn FnMut(u64)) -> Result<(), String> {
    let mut pos = 0;
    for _ in 0..count {
        let len = get_varint(records, &mut pos)?;
        let next = pos + len.max(0) as usize;
        pos += 1; // attributes
        get_varint(records, &mut pos)?; // timestampDelta
        get_varint(records, &mut pos)?; // offsetDelta
        let klen = get_varint(records, &mut pos)?;
        pos += klen.max(0) as usize;
        let vlen = get_varint(records, &mut pos)?;
        if vlen >= 8 && pos + 8 <= records.len() {
            let mut ns = [0u8; 8];
            ns.copy_from_slice(&records[pos..pos + 8]);
            f(u64::from_be_bytes(ns));
        }
        pos = next;
        if pos > records.len() {
            return Err("record runs past its batch".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_scan_roundtrip() {
        let mut rng = Rng::new(1);
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let b = build(10, 100, codec, 0, &mut rng).unwrap_or_else(|e| panic!("{e}"));
            let s = scan(&b.bytes, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.records, 10);
            assert_eq!(s.next_offset, Some(10));
            // The library's decoder agrees (CRC, lengths, decompression).
            let mut bytes = bytes::Bytes::from(b.bytes.clone());
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
                .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(set.records.len(), 10);
            assert_eq!(set.records[9].offset, 9);
            assert_eq!(set.records[3].value.as_ref().map(|v| v.len()), Some(100));
        }
        let b = build(3, 16, Codec::None, 0, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = b.bytes.clone();
        stamp(&mut buf, 0, &b, 42);
        let mut seen = Vec::new();
        scan(&buf, Some(&mut |ns| seen.push(ns))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, vec![42, 42, 42]);
        assert_eq!(
            crc32c::crc32c(&buf[21..]).to_be_bytes(),
            [buf[17], buf[18], buf[19], buf[20]]
        );
    }
}
