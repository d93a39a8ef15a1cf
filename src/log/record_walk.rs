//! Walks the records inside one RecordBatch v2 one at a time, decompressing as it goes.
//!
//! Every check of the records of a batch (produce validation, [`crate::log::validator`]) and
//! every search inside one (ListOffsets by time, max timestamp) goes through [`RecordWalker`].
//! Its memory is bounded by the codec's own window and one read buffer, never by the batch's
//! record count: nothing here collects records. A compressed batch may expand to at most
//! [`max_decompressed`] bytes (a bound on the CPU one batch can cost a shard: a gzip "bomb"
//! of 2^31 seven-byte records would otherwise be walked for minutes).
//!
//! Record layout (v2; varints are zig-zag, `length` counts the bytes after itself):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value |
//! headerCount varint | headerCount x (keyLength varint | key | valueLength varint | value)
//! ```
//!
//! Codecs are those of Kafka: 1 gzip (one gzip member; bytes after it are ignored, as Java's
//! `GZIPInputStream` does), 2 snappy (xerial framing, or one raw snappy block when the xerial
//! magic is absent, as snappy-java falls back), 3 lz4 (LZ4 frame), 4 zstd.

use crate::log::batch::{BatchHeader, HEADER_LEN};
use std::io::{self, Read};

/// Compression codec ids of the batch attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec for an attributes id; `None` for 5, 6 and 7, which Kafka does not define.
    pub fn from_id(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    /// Kafka's name (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Why the records of a batch cannot be walked. All of them are refused with INVALID_RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// Compression codec id 5, 6 or 7.
    UnknownCodec(u8),
    /// The compressed payload does not decompress (or expands past the limit).
    Decompress(String),
    /// A record does not parse, or the records do not agree with the batch header.
    Invalid(String),
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::UnknownCodec(id) => write!(f, "unknown compression codec id {id}"),
            WalkError::Decompress(m) => write!(f, "records do not decompress: {m}"),
            WalkError::Invalid(m) => f.write_str(m),
        }
    }
}

/// The fields of one record that checks and searches need (key, value and headers are
/// skipped, not copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position of the record in the batch, from 0.
    pub index: i32,
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// -1 for a null key.
    pub key_len: i32,
    /// -1 for a null value.
    pub value_len: i32,
    pub header_count: i32,
}

/// The most bytes a compressed batch of `compressed_len` bytes may expand to.
pub fn max_decompressed(compressed_len: usize) -> u64 {
    (128u64 << 20).max(32 * compressed_len as u64)
}

/// Size of the read buffer between a decompressor and the record parser.
const STREAM_BUF: usize = 32 << 10;

/// A cursor over the record bytes: straight from the batch, or out of a decompressor.
enum Input<'a> {
    Slice {
        buf: &'a [u8],
        pos: usize,
    },
    Stream {
        reader: Box<dyn Read + 'a>,
        buf: Box<[u8]>,
        pos: usize,
        len: usize,
        eof: bool,
        /// Bytes produced so far, against `limit`.
        produced: u64,
        limit: u64,
    },
}

impl Input<'_> {
    /// Makes at least one byte available unless the data has ended; false at the end.
    fn fill(&mut self) -> Result<bool, WalkError> {
        match self {
            Input::Slice { buf, pos } => Ok(*pos < buf.len()),
            Input::Stream {
                reader,
                buf,
                pos,
                len,
                eof,
                produced,
                limit,
            } => {
                while *pos == *len {
                    if *eof {
                        return Ok(false);
                    }
                    let n = loop {
                        match reader.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(WalkError::Decompress(e.to_string())),
                        }
                    };
                    *pos = 0;
                    *len = n;
                    *eof = n == 0;
                    *produced += n as u64;
                    if *produced > *limit {
                        return Err(WalkError::Decompress(format!(
                            "the records expand past {limit} bytes"
                        )));
                    }
                }
                Ok(true)
            }
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, WalkError> {
        if !self.fill()? {
            return Ok(None);
        }
        Ok(Some(match self {
            Input::Slice { buf, pos } => {
                *pos += 1;
                buf[*pos - 1]
            }
            Input::Stream { buf, pos, .. } => {
                *pos += 1;
                buf[*pos - 1]
            }
        }))
    }

    /// Skips `n` bytes; false if the data ends first.
    fn skip(&mut self, mut n: usize) -> Result<bool, WalkError> {
        while n > 0 {
            if !self.fill()? {
                return Ok(false);
            }
            let step = match self {
                Input::Slice { buf, pos } => {
                    let step = n.min(buf.len() - *pos);
                    *pos += step;
                    step
                }
                Input::Stream { pos, len, .. } => {
                    let step = n.min(*len - *pos);
                    *pos += step;
                    step
                }
            };
            n -= step;
        }
        Ok(true)
    }
}

/// Iterates over the records of one batch, checking each against the record grammar and the
/// batch header's record count (Kafka's `DefaultRecord.readFrom` and the batch iterator's
/// "Incorrect declared batch size" checks).
pub struct RecordWalker<'a> {
    input: Input<'a>,
    count: i32,
    read: i32,
    /// Bytes of record data consumed so far (for the per-record length check).
    consumed: u64,
    finished: bool,
}

impl<'a> RecordWalker<'a> {
    /// A walker over `batch` (a whole batch whose header is `header`; its CRC should already be
    /// checked). Fails for an unknown codec or a compressed payload whose framing is unreadable.
    pub fn new(batch: &'a [u8], header: &BatchHeader) -> Result<RecordWalker<'a>, WalkError> {
        let end = header.total_len().min(batch.len());
        let payload_len = end.saturating_sub(HEADER_LEN);
        Self::with_limit(batch, header, max_decompressed(payload_len))
    }

    /// [`RecordWalker::new`] with another decompression limit (bytes).
    pub fn with_limit(
        batch: &'a [u8],
        header: &BatchHeader,
        limit: u64,
    ) -> Result<RecordWalker<'a>, WalkError> {
        let end = header.total_len().min(batch.len());
        let payload = batch.get(HEADER_LEN..end).unwrap_or(&[]);
        let codec = Codec::from_id(header.compression())
            .ok_or(WalkError::UnknownCodec(header.compression()))?;
        if codec == Codec::None {
            return Ok(RecordWalker {
                input: Input::Slice {
                    buf: payload,
                    pos: 0,
                },
                count: header.record_count,
                read: 0,
                consumed: 0,
                finished: false,
            });
        }
        let reader = decompressor(codec, payload, limit)?;
        Ok(RecordWalker {
            input: Input::Stream {
                reader,
                buf: vec![0u8; STREAM_BUF].into_boxed_slice(),
                pos: 0,
                len: 0,
                eof: false,
                produced: 0,
                limit,
            },
            count: header.record_count,
            read: 0,
            consumed: 0,
            finished: false,
        })
    }

    /// Records read so far.
    pub fn records_read(&self) -> i32 {
        self.read
    }

    /// The next record, or `None` once the header's record count is reached and no bytes are
    /// left over.
    pub fn next_record(&mut self) -> Result<Option<RecordInfo>, WalkError> {
        if self.finished {
            return Ok(None);
        }
        if self.read >= self.count {
            self.finished = true;
            if self.input.fill()? {
                return Err(WalkError::Invalid(format!(
                    "incorrect declared batch size: bytes remain after the {} records the \
                     header declares",
                    self.count
                )));
            }
            return Ok(None);
        }
        let Some(len) = self.varint_or_end()? else {
            return Err(WalkError::Invalid(format!(
                "incorrect declared batch size: the header declares {} records, the batch \
                 holds {}",
                self.count, self.read
            )));
        };
        if len < 0 {
            return Err(self.invalid(format!("negative record length {len}")));
        }
        let len = len as u64;
        let start = self.consumed;
        let attributes = self.byte_within(start, len)?;
        let timestamp_delta = self.varlong_within(start, len)?;
        let offset_delta = self.varint_within(start, len)?;
        let key_len = self.bytes_field(start, len, "key")?;
        let value_len = self.bytes_field(start, len, "value")?;
        let header_count = self.varint_within(start, len)?;
        if header_count < 0 {
            return Err(self.invalid(format!("invalid number of record headers {header_count}")));
        }
        for _ in 0..header_count {
            let key = self.varint_within(start, len)?;
            if key < 0 {
                return Err(self.invalid(format!("invalid negative header key size {key}")));
            }
            self.skip_within(start, len, key as u64)?;
            self.bytes_field(start, len, "header value")?;
        }
        let body = self.consumed - start;
        if body != len {
            return Err(self.invalid(format!(
                "invalid record size: expected {len} bytes in the record payload, read {body}"
            )));
        }
        let info = RecordInfo {
            index: self.read,
            attributes,
            timestamp_delta,
            offset_delta,
            key_len,
            value_len,
            header_count,
        };
        self.read += 1;
        Ok(Some(info))
    }

    fn invalid(&self, what: String) -> WalkError {
        WalkError::Invalid(format!("record {}: {what}", self.read))
    }

    fn truncated(&self) -> WalkError {
        self.invalid("record truncated (found invalid record structure)".into())
    }

    /// A varint length-prefixed byte field (-1 = null); returns its length.
    fn bytes_field(&mut self, start: u64, len: u64, what: &str) -> Result<i32, WalkError> {
        let n = self.varint_within(start, len)?;
        if n < -1 {
            return Err(self.invalid(format!("invalid {what} size {n}")));
        }
        if n > 0 {
            self.skip_within(start, len, n as u64)?;
        }
        Ok(n)
    }

    fn check_within(&self, start: u64, len: u64) -> Result<(), WalkError> {
        if self.consumed - start > len {
            return Err(self.invalid(format!(
                "invalid record size: the fields run past the record's {len} bytes"
            )));
        }
        Ok(())
    }

    fn byte_within(&mut self, start: u64, len: u64) -> Result<u8, WalkError> {
        let b = self.input.byte()?.ok_or_else(|| self.truncated())?;
        self.consumed += 1;
        self.check_within(start, len)?;
        Ok(b)
    }

    fn skip_within(&mut self, start: u64, len: u64, n: u64) -> Result<(), WalkError> {
        // Never skip past the record: a key length of 2^31 in a compressed stream would
        // otherwise decompress gigabytes before failing.
        if self.consumed - start + n > len {
            return Err(self.invalid(format!(
                "invalid record size: a field of {n} bytes runs past the record's {len} bytes"
            )));
        }
        if !self.input.skip(n as usize)? {
            return Err(self.truncated());
        }
        self.consumed += n;
        Ok(())
    }

    /// A zig-zag varint of at most 5 bytes that fits an i32; `None` if the data ended before
    /// its first byte.
    fn varint_or_end(&mut self) -> Result<Option<i32>, WalkError> {
        let Some(first) = self.input.byte()? else {
            return Ok(None);
        };
        self.consumed += 1;
        let mut raw = u64::from(first & 0x7f);
        let mut b = first;
        let mut i = 1;
        while b & 0x80 != 0 {
            if i == 5 {
                return Err(self.invalid("varint is longer than 5 bytes".into()));
            }
            b = self.input.byte()?.ok_or_else(|| self.truncated())?;
            self.consumed += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            i += 1;
        }
        if raw > u64::from(u32::MAX) {
            return Err(self.invalid("varint does not fit 32 bits".into()));
        }
        let raw = raw as u32;
        Ok(Some(((raw >> 1) as i32) ^ -((raw & 1) as i32)))
    }

    fn varint_within(&mut self, start: u64, len: u64) -> Result<i32, WalkError> {
        let v = self.varint_or_end()?.ok_or_else(|| self.truncated())?;
        self.check_within(start, len)?;
        Ok(v)
    }

    /// A zig-zag varlong of at most 10 bytes.
    fn varlong_within(&mut self, start: u64, len: u64) -> Result<i64, WalkError> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = self.input.byte()?.ok_or_else(|| self.truncated())?;
            self.consumed += 1;
            if i == 9 && b > 1 {
                return Err(self.invalid("varlong does not fit 64 bits".into()));
            }
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.check_within(start, len)?;
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.invalid("varlong is longer than 10 bytes".into()))
    }
}

/// The first record of a CreateTime batch whose timestamp satisfies `pred`, as
/// `(offset, timestamp)`: for ListOffsets by time (`ts >= target`) and MAX_TIMESTAMP
/// (`ts == max`), which must name the exact record as Kafka does. Walks with bounded memory and
/// lets the shard's other tasks run every few thousand records. `None` for a LogAppendTime batch
/// (every record carries the batch's timestamp), when no record qualifies, or when the records
/// do not parse (the caller then answers with the batch).
pub async fn find_record(batch: &[u8], mut pred: impl FnMut(i64) -> bool) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.timestamp_type() == crate::log::batch::TimestampType::LogAppendTime {
        return None;
    }
    let mut walker = RecordWalker::new(batch, &header).ok()?;
    while let Some(r) = walker.next_record().ok()? {
        let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
        if pred(ts) {
            return Some((
                header.base_offset.wrapping_add(i64::from(r.offset_delta)),
                ts,
            ));
        }
        if (r.index + 1) % 4096 == 0 {
            crate::runtime::yield_if_needed().await;
        }
    }
    None
}

/// A reader of the decompressed bytes of `payload` (the records part of a batch compressed
/// with `codec`). Snappy checks its blocks' declared sizes against `limit`; the caller bounds
/// what it reads from the others.
pub fn decompressor<'a>(
    codec: Codec,
    payload: &'a [u8],
    limit: u64,
) -> Result<Box<dyn Read + 'a>, WalkError> {
    Ok(match codec {
        Codec::None => Box::new(payload),
        Codec::Gzip => Box::new(flate2::read::GzDecoder::new(payload)),
        Codec::Snappy => Box::new(SnappyReader::new(payload, limit)?),
        Codec::Lz4 => {
            Box::new(lz4::Decoder::new(payload).map_err(|e| WalkError::Decompress(e.to_string()))?)
        }
        Codec::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| WalkError::Decompress(e.to_string()))?,
        ),
    })
}

/// Compresses `records` (the records part of a batch) with `codec` the way Kafka's producers
/// and broker write it: gzip (one member), snappy in snappy-java's xerial framing with 32 KiB
/// blocks, lz4 frames of independent 64 KiB blocks without checksums (what Kafka's
/// `KafkaLZ4BlockOutputStream` writes and its reader requires), zstd. `level`: the codec's
/// level (`compression.*.level`), `None` for its default.
pub fn compress(codec: Codec, level: Option<i32>, records: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match codec {
        Codec::None => Ok(records.to_vec()),
        Codec::Gzip => {
            let level = level.map_or(6, |l| l.clamp(1, 9) as u32);
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(records)?;
            e.finish()
        }
        Codec::Snappy => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // version 1, compatible 1
            let mut enc = snap::raw::Encoder::new();
            for chunk in records.chunks(32 << 10) {
                let c = enc.compress_vec(chunk).map_err(io::Error::other)?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(level.map_or(9, |l| l.clamp(1, 17) as u32))
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())?;
            e.write_all(records)?;
            let (out, result) = e.finish();
            result.map(|()| out)
        }
        Codec::Zstd => zstd::stream::encode_all(records, level.unwrap_or(3)),
    }
}

/// Kafka's snappy framing (snappy-java's `SnappyOutputStream`): an 8-byte magic, two 4-byte
/// version fields, then blocks of `u32 length | raw snappy block`. Without the magic the whole
/// payload is one raw snappy block (snappy-java's fallback, and what librdkafka writes).
/// Holds one decompressed block at a time.
struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    pos: usize,
    limit: u64,
    produced: u64,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(payload: &'a [u8], limit: u64) -> Result<SnappyReader<'a>, WalkError> {
        let framed = payload.len() >= XERIAL_HEADER_LEN && payload.starts_with(XERIAL_MAGIC);
        let mut r = SnappyReader {
            rest: if framed {
                &payload[XERIAL_HEADER_LEN..]
            } else {
                payload
            },
            framed,
            block: Vec::new(),
            pos: 0,
            limit,
            produced: 0,
        };
        if !framed {
            let raw = r.rest;
            r.rest = &[];
            r.decode(raw)?;
        }
        Ok(r)
    }

    /// Decompresses one raw snappy block into `self.block`, checking its declared size first.
    fn decode(&mut self, raw: &[u8]) -> Result<(), WalkError> {
        let n = snap::raw::decompress_len(raw).map_err(|e| WalkError::Decompress(e.to_string()))?;
        // A snappy element yields at most ~21.3 bytes per input byte: a larger declared size
        // is a lie, refused before allocating for it.
        if n as u64 > 22 * raw.len() as u64 || self.produced + n as u64 > self.limit {
            return Err(WalkError::Decompress(format!(
                "snappy block declares {n} bytes for {} compressed bytes",
                raw.len()
            )));
        }
        self.block.resize(n, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut self.block)
            .map_err(|e| WalkError::Decompress(e.to_string()))?;
        self.produced += n as u64;
        self.pos = 0;
        Ok(())
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.framed || self.rest.is_empty() {
                return Ok(0);
            }
            if self.rest.len() < 4 {
                return Err(io::Error::other("truncated snappy block length"));
            }
            let n = u32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]])
                as usize;
            let Some(raw) = self.rest.get(4..4 + n) else {
                return Err(io::Error::other("truncated snappy block"));
            };
            self.rest = &self.rest[4 + n..];
            self.decode(raw)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
