//! Client record validation: each rule of Kafka's LogValidator, for every codec.

use super::*;
use crate::log::batch::write_varlong;
use crate::log::batch_builder::{self, compressed, concat, with_payload};
use crate::runtime::file::run_local;

const NOW: i64 = 1_700_000_000_000;

fn check(records: &[u8]) -> Result<ValidatedBatch, LogError> {
    check_with(records, &LogConfig::default())
}

fn check_with(records: &[u8], cfg: &LogConfig) -> Result<ValidatedBatch, LogError> {
    run_local(validate_client_records(records, cfg, NOW))
}

fn invalid_record(r: Result<ValidatedBatch, LogError>) -> String {
    match r {
        Err(LogError::InvalidRecord(m)) => m,
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
}

#[test]
fn good_batches_of_every_codec_pass() {
    let plain = batch_builder::batch(50, NOW, 20);
    for codec in 0..=4 {
        let v = check(&compressed(&plain, codec)).unwrap();
        assert_eq!(v.span.pos, 0);
        assert_eq!(v.span.header.record_count, 50);
        assert_eq!(v.max_timestamp, NOW + 49, "codec {codec}");
    }
}

#[test]
fn one_batch_per_request() {
    let a = batch_builder::batch(1, NOW, 5);
    let m = invalid_record(check(&concat(&[a.clone(), a])));
    assert!(m.contains("exactly one record batch"), "{m}");
}

#[test]
fn magic_other_than_2_is_invalid_record() {
    let mut b = batch_builder::batch(1, NOW, 5);
    b[16] = 1;
    invalid_record(check(&b));
}

#[test]
fn unknown_codec_and_header_count_lies_are_invalid_record() {
    let plain = batch_builder::batch(1, NOW, 5);
    for codec in 5..=7 {
        let m = invalid_record(check(&compressed(&plain, codec)));
        assert!(m.contains("unknown compression codec"), "{m}");
    }
    // The first case of the issue: gzip, valid CRC, header claims 2^31-1 records holding one.
    let mut b = plain.clone();
    b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    batch_builder::fix_crc(&mut b);
    invalid_record(check(&compressed(&b, 1)));
}

#[test]
fn control_batches_and_missing_sequences_are_refused() {
    let mut b = batch_builder::batch(1, NOW, 5);
    b[22] |= 0x20;
    batch_builder::fix_crc(&mut b);
    let m = invalid_record(check(&b));
    assert!(m.contains("control"), "{m}");
    let b = batch_builder::idempotent_batch(1, NOW, 5, 7, 0, -1);
    invalid_record(check(&b));
}

#[test]
fn offset_deltas_must_count_from_zero() {
    // Two records with offset deltas 0 and 2: Kafka stores this uncompressed; we refuse it.
    let mut payload = Vec::new();
    for delta in [0i64, 2] {
        let mut body = vec![0u8, 0];
        write_varlong(&mut body, delta);
        body.extend_from_slice(&[1, 1, 0]); // key -1, value -1, 0 headers
        write_varlong(&mut payload, body.len() as i64);
        payload.extend_from_slice(&body);
    }
    let two = batch_builder::batch(2, NOW, 0);
    for codec in [0, 1, 3] {
        let b = compressed(&with_payload(&two, 0, &payload), codec);
        let m = invalid_record(check(&b));
        assert!(m.contains("offset delta 2"), "codec {codec}: {m}");
    }
}

#[test]
fn timestamps_outside_the_window_are_invalid_timestamp() {
    let cfg = LogConfig {
        timestamp_before_max_ms: 1_000,
        timestamp_after_max_ms: 500,
        ..LogConfig::default()
    };
    // Records at NOW-2000 .. NOW+2000 in steps of 1000: the first and the last two are out.
    let b = batch_builder::batch_with_timestamps(NOW - 2_000, &[0, 1_000, 2_000, 3_000, 4_000], 3);
    for codec in [0, 2, 4] {
        match check_with(&compressed(&b, codec), &cfg) {
            Err(LogError::InvalidTimestamp(errors)) => {
                let idx: Vec<i32> = errors.iter().map(|(i, _)| *i).collect();
                assert_eq!(idx, vec![0, 3, 4], "codec {codec}");
                assert!(errors[0].1.contains("out of range"), "{}", errors[0].1);
            }
            other => panic!("codec {codec}: {other:?}"),
        }
    }
    // Kafka 4's defaults: anything in the past, at most one hour ahead.
    let old = batch_builder::batch(1, 0, 3);
    assert!(check(&old).is_ok());
    let ahead = batch_builder::batch(1, NOW + 3_600_001, 3);
    assert!(matches!(check(&ahead), Err(LogError::InvalidTimestamp(_))));
    // -1 means "no timestamp" and is never out of range.
    let none = batch_builder::batch(1, -1, 3);
    assert!(check_with(&none, &cfg).is_ok());
    // LogAppendTime topics stamp their own time: no window.
    let lat = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..cfg
    };
    assert!(check_with(&ahead, &lat).is_ok());
}

#[test]
fn the_true_max_timestamp_is_reported() {
    let mut b = batch_builder::batch_with_timestamps(NOW, &[0, 7, 3], 3);
    b[35..43].copy_from_slice(&(NOW + 1_000).to_be_bytes()); // header lies
    batch_builder::fix_crc(&mut b);
    let v = check(&b).unwrap();
    assert_eq!(v.span.header.max_timestamp, NOW + 1_000);
    assert_eq!(v.max_timestamp, NOW + 7);
}

#[test]
fn compression_type_reencodes_to_the_topic_codec() {
    use crate::log::batch::validate_batch;
    use crate::log::record_walk::Codec;
    let plain = batch_builder::batch_with_timestamps(NOW, &[0, 4, 2], 30);
    let expected: Vec<_> = {
        let h = validate_batch(&plain).unwrap();
        let mut w = RecordWalker::new(&plain, &h).unwrap();
        std::iter::from_fn(|| w.next_record().unwrap()).collect()
    };
    let targets = [
        (Codec::None, 0),
        (Codec::Gzip, 1),
        (Codec::Snappy, 2),
        (Codec::Lz4, 3),
        (Codec::Zstd, 4),
    ];
    for source in 0..=4u8 {
        let batch = compressed(&plain, source);
        let v = check(&batch).unwrap();
        for (target, id) in targets {
            let cfg = LogConfig {
                compression: Some((target, None)),
                ..LogConfig::default()
            };
            let out = recompress_for_topic(&batch, &v.span.header, &cfg).unwrap();
            let Some(out) = out else {
                assert_eq!(source, id, "only a matching codec is kept as sent");
                continue;
            };
            let h = validate_batch(&out).expect("CRC and framing of the re-encoded batch");
            assert_eq!(h.compression(), id, "{source} -> {id}");
            assert_eq!(
                (
                    h.record_count,
                    h.base_timestamp,
                    h.max_timestamp,
                    h.producer_id
                ),
                (3, NOW, NOW + 4, -1)
            );
            let mut w = RecordWalker::new(&out, &h).unwrap();
            let got: Vec<_> = std::iter::from_fn(|| w.next_record().unwrap()).collect();
            assert_eq!(got, expected, "{source} -> {id}");
        }
    }
    // "producer" keeps every batch as sent.
    let batch = compressed(&plain, 3);
    let v = check(&batch).unwrap();
    assert!(
        recompress_for_topic(&batch, &v.span.header, &LogConfig::default())
            .unwrap()
            .is_none()
    );
}
