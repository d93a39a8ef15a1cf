//! Errors of the partition log, each mapping to the Kafka error code the broker returns.

use std::io;

/// Everything a [`crate::log::PartitionLog`] operation can fail with.
///
/// The broker turns these into protocol error codes with [`LogError::kafka_error_code`]; the
/// log itself never decides what a client sees. Validation errors (`Corrupt`, `InvalidRecord`,
/// `MessageTooLarge`, `RecordListTooLarge`, `OutOfOrderSequence`, `InvalidProducerEpoch`,
/// `InvalidRequest`) are raised before anything is written: an append is all-or-nothing with
/// respect to validation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A record batch failed a structural check: length, magic, CRC32C. Kafka: CORRUPT_MESSAGE.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// The batch is well formed but violates a rule (no records, offset delta inconsistent with
    /// the record count). Kafka: INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// Records whose timestamps lie outside the topic's `message.timestamp.before.max.ms` /
    /// `message.timestamp.after.max.ms` window: `(record index, message)` per record (Kafka's
    /// record errors). Kafka: INVALID_TIMESTAMP.
    #[error("One or more records have been rejected due to invalid timestamp")]
    InvalidTimestamp(Vec<(i32, String)>),
    /// One batch is larger than `max.message.bytes`. Kafka: MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// The whole produce record set is larger than `segment.bytes` (it must fit one segment).
    /// Kafka: RECORD_LIST_TOO_LARGE.
    #[error("record set of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u64 },
    /// A read or lookup asked for an offset outside `[log start, log end]`.
    /// Kafka: OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    /// An idempotent batch's sequence number does not follow the producer's last one (a gap or
    /// an old batch outside the 5-batch duplicate window), or a new epoch does not start at 0.
    /// Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// An idempotent batch carries an epoch older than the producer's current one (a zombie
    /// producer). Kafka (>= 2.7, for Produce): INVALID_PRODUCER_EPOCH.
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A request this log does not support: transactional batches (transactions are not
    /// implemented). Kafka: INVALID_REQUEST.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The log was closed (or deleted); the partition is being shut down or moved.
    /// Kafka: KAFKA_STORAGE_ERROR (the client refreshes metadata and retries).
    #[error("partition log is closed")]
    Closed,
    /// The disk failed us. The message names the operation and the file.
    /// Kafka: KAFKA_STORAGE_ERROR.
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    /// A file could not be (re)opened for an operation, e.g. no descriptor was free: the data is
    /// intact and a retry may succeed, so unlike a failed fdatasync this does not stop the log.
    /// Kafka: KAFKA_STORAGE_ERROR (retriable for clients).
    #[error("log file unavailable: {0}")]
    Unavailable(String),
}

impl LogError {
    /// The Kafka protocol error code for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::Corrupt(_) => 2,                 // CORRUPT_MESSAGE
            LogError::InvalidRecord(_) => 87,          // INVALID_RECORD
            LogError::InvalidTimestamp(_) => 32,       // INVALID_TIMESTAMP
            LogError::MessageTooLarge { .. } => 10,    // MESSAGE_TOO_LARGE
            LogError::RecordListTooLarge { .. } => 18, // RECORD_LIST_TOO_LARGE
            LogError::OffsetOutOfRange { .. } => 1,    // OFFSET_OUT_OF_RANGE
            LogError::OutOfOrderSequence(_) => 45,     // OUT_OF_ORDER_SEQUENCE_NUMBER
            LogError::InvalidProducerEpoch(_) => 47,   // INVALID_PRODUCER_EPOCH
            LogError::InvalidRequest(_) => 42,         // INVALID_REQUEST
            LogError::Closed => 56,                    // KAFKA_STORAGE_ERROR
            LogError::Io(_) => 56,                     // KAFKA_STORAGE_ERROR
            LogError::Unavailable(_) => 56,            // KAFKA_STORAGE_ERROR
        }
    }

    /// Per-record errors for the ProduceResponse (`record_errors`: batch index and message).
    pub fn record_errors(&self) -> Vec<(i32, String)> {
        match self {
            LogError::InvalidTimestamp(errors) => errors.clone(),
            _ => Vec::new(),
        }
    }
}
