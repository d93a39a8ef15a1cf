//! What a producer's records must satisfy before they are stored: Kafka's `LogValidator` for
//! appends from clients (`AppendOrigin.CLIENT`).
//!
//! Replication copies whatever a leader stores and every consumer reads it, so nothing a client
//! sends is stored unless Apache Kafka would store it too. Checks, in order (each answered as
//! Kafka 4.4 answers it, asked with `scripts/kafka.sh`; see `tests/hostile_produce.rs`):
//!
//! 1. Magic 2 only (INVALID_RECORD), then the batch framing, size and CRC of
//!    [`split_and_validate`] (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE).
//! 2. Exactly one batch per partition per request (INVALID_RECORD).
//! 3. Header rules of [`check_client_batch`]: at least one record, `lastOffsetDelta = count - 1`,
//!    no control batches, a sequence for every producer id (INVALID_RECORD).
//! 4. Every record walked, compressed or not ([`RecordWalker`], bounded memory): the record
//!    grammar, exactly `recordCount` records and no byte after them, offset deltas 0..n-1
//!    (INVALID_RECORD). Kafka 4.4 answers UNKNOWN_SERVER_ERROR for an unknown codec id, a payload
//!    that does not decompress, an over-long varint and (compressed only) an offset-delta gap:
//!    unhandled exceptions in its validator. We answer INVALID_RECORD with a message, which
//!    clients treat the same way (not retriable) and which names the problem. For an
//!    uncompressed batch with an offset-delta gap Kafka stores it anyway; we refuse it, since
//!    its records would carry offsets the batch header does not cover.
//! 5. On CreateTime topics, every record timestamp (other than -1, "none") within
//!    `[now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]`
//!    (INVALID_TIMESTAMP, one record error per record, as Kafka).
//!
//! The batch's true max timestamp is returned: Kafka rewrites a header whose `maxTimestamp`
//! disagrees with its records instead of refusing it, and so does the append.

use crate::log::batch::{
    split_and_validate, BatchHeader, BatchSpan, TimestampType, HEADER_LEN, LOG_OVERHEAD,
};
use crate::log::error::LogError;
use crate::log::producer_state::check_client_batch;
use crate::log::record_walk::{
    compress, decompressor, max_decompressed, Codec, RecordWalker, WalkError,
};
use crate::log::LogConfig;
use std::io::Read;

/// Byte of the magic field in a batch header.
const OFF_MAGIC: usize = 16;
/// Records walked between two chances for other tasks of the shard to run.
const RECORDS_PER_YIELD: i32 = 4096;
/// Record errors kept for one answer (Kafka keeps all; a batch can hold millions).
const MAX_RECORD_ERRORS: usize = 100;
/// A record timestamp meaning "none" (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// A client's record set that passed validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidatedBatch {
    /// The single batch, at position 0.
    pub span: BatchSpan,
    /// The largest record timestamp (`baseTimestamp + delta`) of a CreateTime batch; the
    /// header's own value for a LogAppendTime batch.
    pub max_timestamp: i64,
}

/// Validates a produce request's records for one partition. Long batches yield to the shard's
/// other tasks while they are walked.
pub async fn validate_client_records(
    records: &[u8],
    cfg: &LogConfig,
    now_ms: i64,
) -> Result<ValidatedBatch, LogError> {
    if let Some(&magic) = records.get(OFF_MAGIC) {
        if magic != 2 {
            return Err(LogError::InvalidRecord(format!(
                "record batch magic {} (produce requests v3 and later carry magic 2 only)",
                magic as i8
            )));
        }
    }
    let spans = split_and_validate(records, cfg.max_message_bytes)?;
    let span = match spans.as_slice() {
        [one] => *one,
        _ => {
            return Err(LogError::InvalidRecord(format!(
                "a produce request carries exactly one record batch per partition, found {}",
                spans.len()
            )))
        }
    };
    let header = span.header;
    check_client_batch(&header)?;
    let batch = &records[span.pos..span.pos + header.total_len()];
    debug_assert!(batch.len() >= HEADER_LEN);

    let check_times = cfg.timestamp_type == TimestampType::CreateTime
        && header.timestamp_type() == TimestampType::CreateTime;
    let earliest = now_ms.saturating_sub(cfg.timestamp_before_max_ms.max(0));
    let latest = now_ms.saturating_add(cfg.timestamp_after_max_ms.max(0));
    let mut bad_times: Vec<(i32, String)> = Vec::new();
    let mut max_timestamp = i64::MIN;

    let mut walker = RecordWalker::new(batch, &header).map_err(walk_error)?;
    while let Some(r) = walker.next_record().map_err(walk_error)? {
        if r.offset_delta != r.index {
            return Err(LogError::InvalidRecord(format!(
                "record {} has offset delta {} (records of a batch have deltas 0, 1, 2, ...)",
                r.index, r.offset_delta
            )));
        }
        // Java adds longs with wrap-around; so do we, to name the same timestamp.
        let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
        max_timestamp = max_timestamp.max(ts);
        let out_of_range = check_times && ts != NO_TIMESTAMP && (ts < earliest || ts > latest);
        if out_of_range {
            // Kafka answers every bad record; the first MAX_RECORD_ERRORS say enough.
            if bad_times.len() < MAX_RECORD_ERRORS {
                bad_times.push((
                    r.index,
                    format!(
                        "Timestamp {ts} of message with offset {} is out of range. The \
                         timestamp should be within [{earliest}, {latest}]",
                        r.offset_delta
                    ),
                ));
            }
        }
        if (r.index + 1) % RECORDS_PER_YIELD == 0 {
            crate::runtime::yield_if_needed().await;
        }
    }
    if !bad_times.is_empty() {
        return Err(LogError::InvalidTimestamp(bad_times));
    }
    Ok(ValidatedBatch {
        span,
        max_timestamp: match header.timestamp_type() {
            TimestampType::CreateTime => max_timestamp,
            TimestampType::LogAppendTime => header.max_timestamp,
        },
    })
}

/// The batch re-encoded with the topic's codec, when `compression.type` names one other than
/// the batch's (Kafka's LogValidator recompresses the same way; `uncompressed` decompresses):
/// same header fields, records decompressed and compressed again, CRC recomputed. `None` when
/// the batch is stored as sent (`producer`, or the codec already matches). The batch must have
/// passed [`validate_client_records`].
pub fn recompress_for_topic(
    batch: &[u8],
    header: &BatchHeader,
    cfg: &LogConfig,
) -> Result<Option<Vec<u8>>, LogError> {
    let Some((target, level)) = cfg.compression else {
        return Ok(None);
    };
    let source = Codec::from_id(header.compression())
        .ok_or(WalkError::UnknownCodec(header.compression()))
        .map_err(walk_error)?;
    if source == target {
        return Ok(None);
    }
    let payload = &batch[HEADER_LEN..header.total_len()];
    let limit = max_decompressed(payload.len());
    let mut records = Vec::new();
    decompressor(source, payload, limit)
        .map_err(walk_error)?
        .take(limit + 1)
        .read_to_end(&mut records)
        .map_err(|e| walk_error(WalkError::Decompress(e.to_string())))?;
    if records.len() as u64 > limit {
        return Err(walk_error(WalkError::Decompress(format!(
            "the records expand past {limit} bytes"
        ))));
    }
    let compressed = compress(target, level, &records)?;
    let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&compressed);
    if out.len() > cfg.max_message_bytes {
        return Err(LogError::MessageTooLarge {
            size: out.len(),
            max: cfg.max_message_bytes,
        });
    }
    let length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| LogError::MessageTooLarge {
            size: out.len(),
            max: cfg.max_message_bytes,
        })?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (header.attributes & !0x07) | codec_id(target);
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

fn codec_id(c: Codec) -> i16 {
    match c {
        Codec::None => 0,
        Codec::Gzip => 1,
        Codec::Snappy => 2,
        Codec::Lz4 => 3,
        Codec::Zstd => 4,
    }
}

fn walk_error(e: WalkError) -> LogError {
    LogError::InvalidRecord(e.to_string())
}

#[cfg(test)]
mod tests;
