//! RecordBatch v2 (magic 2): header parsing, validation and the few in-place rewrites the broker
//! is allowed to make.
//!
//! Layout (all big endian; `records` follow the 61-byte header):
//!
//! ```text
//! off  size field                 covered by CRC
//!   0     8 baseOffset            no   (assigned by the broker)
//!   8     4 batchLength           no   (bytes after this field: total = 12 + batchLength)
//!  12     4 partitionLeaderEpoch  no   (stamped by the leader)
//!  16     1 magic (= 2)           no
//!  17     4 crc (CRC32C of bytes 21..end)
//!  21     2 attributes            yes  bits 0-2 compression, 3 timestamp type (1 = LogAppendTime),
//!                                      4 transactional, 5 control
//!  23     4 lastOffsetDelta       yes
//!  27     8 baseTimestamp         yes
//!  35     8 maxTimestamp          yes
//!  43     8 producerId            yes
//!  51     2 producerEpoch         yes
//!  53     4 baseSequence          yes
//!  57     4 recordCount           yes
//!  61   ... records               yes
//! ```
//!
//! Because baseOffset and partitionLeaderEpoch lie before the CRC'd range, assigning offsets
//! and stamping the epoch never requires a CRC recomputation; only the LogAppendTime rewrite
//! (attributes + maxTimestamp) does. Compressed batches are stored exactly as sent: nothing here
//! ever decompresses (the records inside a batch are [`crate::log::record_walk`]'s job).

use crate::log::error::LogError;

/// Size of the fixed v2 header (Kafka's `RECORD_BATCH_OVERHEAD`).
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength`-counted part: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest possible size of one uncompressed record.
const MIN_RECORD_LEN: usize = 7;
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// How record timestamps of a topic are set (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    #[default]
    CreateTime,
    /// The broker stamps every batch with its append time.
    LogAppendTime,
}

fn be_i64(b: &[u8], off: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], off: usize) -> i16 {
    i16::from_be_bytes([b[off], b[off + 1]])
}

/// A decoded copy of a v2 batch header.
///
/// Invariants (guaranteed by [`BatchHeader::parse`]): `magic == 2` and
/// `batch_length >= MIN_BATCH_LENGTH`, so `total_len() >= HEADER_LEN`. Nothing is implied
/// about the CRC or the records: see [`verify_crc`] and [`validate_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parse the header at the start of `buf` (which may hold more than one batch or only the
    /// header). Checks only what is needed to walk a log safely: enough bytes, magic 2, and a
    /// `batchLength` that covers at least the header.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        if buf.len() < HEADER_LEN {
            return Err(LogError::Corrupt(format!(
                "truncated batch header: {} of {HEADER_LEN} bytes",
                buf.len()
            )));
        }
        let magic = buf[OFF_MAGIC] as i8;
        if magic != 2 {
            return Err(LogError::Corrupt(format!(
                "unsupported magic {magic} (only v2 record batches are accepted)"
            )));
        }
        let batch_length = be_i32(buf, OFF_LENGTH);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(LogError::Corrupt(format!(
                "batch length {batch_length} smaller than the header"
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, OFF_BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, OFF_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, OFF_CRC) as u32,
            attributes: be_i16(buf, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(buf, OFF_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(buf, OFF_PRODUCER_ID),
            producer_epoch: be_i16(buf, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(buf, OFF_BASE_SEQUENCE),
            record_count: be_i32(buf, OFF_RECORD_COUNT),
        })
    }

    /// Size of the whole batch in bytes (header + records).
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(MIN_BATCH_LENGTH) as usize
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta.max(0)))
    }

    /// The next offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// The batch's timestamp type bit.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Check the CRC32C of a complete batch (`batch.len() == total_len()`).
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), LogError> {
    if batch.len() < HEADER_LEN {
        return Err(LogError::Corrupt("truncated batch".into()));
    }
    let actual = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    if actual != header.crc {
        return Err(LogError::Corrupt(format!(
            "CRC mismatch at batch with base offset {}: stored {:#010x}, computed {actual:#010x}",
            header.base_offset, header.crc
        )));
    }
    Ok(())
}

/// Fully validate the batch at the start of `buf`: header, length within `buf`, CRC, record
/// count and offset delta. Returns the header; the batch is `buf[..header.total_len()]`.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_len();
    if total > buf.len() {
        return Err(LogError::Corrupt(format!(
            "batch length {total} exceeds the {} bytes available",
            buf.len()
        )));
    }
    verify_crc(&buf[..total], &header)?;
    if header.record_count < 1 {
        return Err(LogError::InvalidRecord(format!(
            "record count {} (a batch needs at least one record)",
            header.record_count
        )));
    }
    // An uncompressed record takes at least 7 bytes (length, attributes, timestamp delta,
    // offset delta, key length, value length, header count: one varint byte each). A count
    // the bytes cannot hold would make us hand out offsets for records that do not exist.
    // (Compressed batches are never decompressed, so their count is taken on trust.)
    if header.compression() == 0
        && header.record_count as usize > (total - HEADER_LEN) / MIN_RECORD_LEN
    {
        return Err(LogError::InvalidRecord(format!(
            "record count {} does not fit in {} bytes of records",
            header.record_count,
            total - HEADER_LEN
        )));
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(LogError::InvalidRecord(format!(
            "lastOffsetDelta {} inconsistent with record count {}",
            header.last_offset_delta, header.record_count
        )));
    }
    Ok(header)
}

/// One validated batch inside a produce record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// Byte position of the batch inside the record set.
    pub pos: usize,
    /// The batch's header as received.
    pub header: BatchHeader,
}

/// Split a produce request's `records` into batches, validating every one of them
/// (all-or-nothing: the first bad batch fails the whole set, nothing is written).
///
/// Rejects an empty set, trailing bytes that do not form a batch, and any batch whose total size
/// exceeds `max_message_bytes` (Kafka compares the batch's full size, header included).
pub fn split_and_validate(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchSpan>, LogError> {
    if records.is_empty() {
        return Err(LogError::InvalidRecord("no record batches".into()));
    }
    let mut spans = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        // Check the size limit before the CRC: no point checksumming a batch we will refuse,
        // and a length field that claims more than max.message.bytes is reported as such.
        if rest.len() >= LOG_OVERHEAD {
            let claimed = be_i32(rest, OFF_LENGTH);
            if claimed >= 0 {
                let total = LOG_OVERHEAD + claimed as usize;
                if total > max_message_bytes && total <= rest.len() {
                    return Err(LogError::MessageTooLarge {
                        size: total,
                        max: max_message_bytes,
                    });
                }
            }
        }
        let header = validate_batch(rest)?;
        spans.push(BatchSpan { pos, header });
        pos += header.total_len();
    }
    Ok(spans)
}

/// Overwrite the base offset of the batch at the start of `batch` (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= LOG_OVERHEAD {
        batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Bytes at the start of a batch that lie before the CRC'd range and that the broker rewrites
/// (baseOffset, partitionLeaderEpoch; batchLength in between stays).
pub const UNCHECKED_PREFIX: usize = OFF_MAGIC;

/// The first [`UNCHECKED_PREFIX`] bytes of `batch` (a validated batch, so at least
/// `HEADER_LEN` long) as they are stored: with `base_offset` and, if given, the leader epoch.
/// Lets an append write the rest of the batch straight from the request's buffer.
pub fn stored_prefix(batch: &[u8], base_offset: i64, epoch: Option<i32>) -> [u8; UNCHECKED_PREFIX] {
    let mut prefix = [0u8; UNCHECKED_PREFIX];
    prefix.copy_from_slice(&batch[..UNCHECKED_PREFIX]);
    prefix[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    if let Some(e) = epoch {
        prefix[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&e.to_be_bytes());
    }
    prefix
}

/// Overwrite the partition leader epoch (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if batch.len() >= HEADER_LEN {
        batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }
}

fn rewrite_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Stamp a complete batch with LogAppendTime: set attributes bit 3 and maxTimestamp = `now_ms`,
/// then recompute the CRC (both fields are covered by it). Like Kafka, baseTimestamp and the
/// record deltas are left alone: consumers use maxTimestamp for every record of such a batch.
/// Returns false (and changes nothing) if `batch` is shorter than a header.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> bool {
    if batch.len() < HEADER_LEN {
        return false;
    }
    let attrs = be_i16(batch, OFF_ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    rewrite_crc(batch);
    true
}

/// For a CreateTime topic: store the batch as CreateTime with maxTimestamp `max_timestamp`
/// (clearing a LogAppendTime bit a client set, and correcting a maxTimestamp that disagrees with
/// the records, as Kafka's LogValidator does), recomputing the CRC only if something changed.
/// Returns whether the batch was modified.
pub fn set_create_time(batch: &mut [u8], max_timestamp: i64) -> bool {
    if batch.len() < HEADER_LEN {
        return false;
    }
    let attrs = be_i16(batch, OFF_ATTRIBUTES);
    if attrs & ATTR_LOG_APPEND_TIME == 0 && be_i64(batch, OFF_MAX_TIMESTAMP) == max_timestamp {
        return false;
    }
    let attrs = attrs & !ATTR_LOG_APPEND_TIME;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    rewrite_crc(batch);
    true
}

/// Decode a zig-zag varint (Kafka's varint/varlong) at `*pos`, advancing it.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Append a zig-zag varint (works for both varint and varlong fields).
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch_builder;

    #[test]
    fn good_batch_validates() {
        let b = batch_builder::batch(3, 1_000, 10);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.compression(), 0);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    }

    #[test]
    fn bad_crc_is_corrupt() {
        let mut b = batch_builder::batch(2, 0, 5);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        let e = validate_batch(&b).unwrap_err();
        assert!(matches!(e, LogError::Corrupt(_)), "{e}");
        assert_eq!(e.kafka_error_code(), 2);
    }

    #[test]
    fn truncated_is_corrupt() {
        let b = batch_builder::batch(2, 0, 5);
        for cut in [0, 10, HEADER_LEN - 1, HEADER_LEN, b.len() - 1] {
            let e = split_and_validate(&b[..cut], 1 << 20).unwrap_err();
            assert!(
                matches!(e, LogError::Corrupt(_) | LogError::InvalidRecord(_)),
                "cut {cut}: {e}"
            );
        }
    }

    #[test]
    fn wrong_magic_is_corrupt() {
        let mut b = batch_builder::batch(1, 0, 5);
        b[16] = 1;
        assert!(matches!(validate_batch(&b), Err(LogError::Corrupt(_))));
    }

    #[test]
    fn negative_or_tiny_length_is_corrupt() {
        let mut b = batch_builder::batch(1, 0, 5);
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(validate_batch(&b), Err(LogError::Corrupt(_))));
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(validate_batch(&b), Err(LogError::Corrupt(_))));
    }

    #[test]
    fn inconsistent_count_is_invalid_record() {
        let mut b = batch_builder::batch(3, 0, 5);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        batch_builder::fix_crc(&mut b);
        let e = validate_batch(&b).unwrap_err();
        assert!(matches!(e, LogError::InvalidRecord(_)));
        assert_eq!(e.kafka_error_code(), 87);
    }

    #[test]
    fn record_count_must_fit_uncompressed_bytes() {
        let mut b = batch_builder::batch(1, 0, 0);
        b[23..27].copy_from_slice(&999i32.to_be_bytes());
        b[57..61].copy_from_slice(&1000i32.to_be_bytes());
        batch_builder::fix_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(LogError::InvalidRecord(_))
        ));
    }

    #[test]
    fn split_multiple_and_size_limit() {
        let a = batch_builder::batch(2, 0, 5);
        let b = batch_builder::batch(4, 0, 50);
        let set = batch_builder::concat(&[a.clone(), b.clone()]);
        let spans = split_and_validate(&set, 1 << 20).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].pos, a.len());
        assert_eq!(spans[1].header.record_count, 4);
        let e = split_and_validate(&set, a.len()).unwrap_err();
        assert!(matches!(e, LogError::MessageTooLarge { .. }));
        assert_eq!(e.kafka_error_code(), 10);
        // Trailing garbage after valid batches fails the whole set.
        let mut bad = set.to_vec();
        bad.extend_from_slice(&[1, 2, 3]);
        assert!(split_and_validate(&bad, 1 << 20).is_err());
        assert!(split_and_validate(&[], 1 << 20).is_err());
    }

    #[test]
    fn rewrites_keep_crc_valid() {
        let mut b = batch_builder::batch(3, 1_000, 8);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 44);

        assert!(set_log_append_time(&mut b, 99_999));
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(h.base_timestamp, 1_000);

        assert!(set_create_time(&mut b, 1_002));
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(h.max_timestamp, 1_002);
        assert!(!set_create_time(&mut b, 1_002));
        // A maxTimestamp that disagrees with the records is corrected.
        assert!(set_create_time(&mut b, 1_001));
        assert_eq!(validate_batch(&b).unwrap().max_timestamp, 1_001);
    }

    #[test]
    fn varint_roundtrip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_varlong(&[0x80, 0x80], &mut 0), None);
    }
}
