//! The record walker against every codec, and against records that lie.

use super::*;
use crate::log::batch::{write_varlong, BatchHeader};
use crate::log::batch_builder::{self, compressed, with_payload};

fn walk_all(batch: &[u8]) -> Result<Vec<RecordInfo>, WalkError> {
    let h = BatchHeader::parse(batch).expect("header");
    let mut w = RecordWalker::new(batch, &h)?;
    let mut out = Vec::new();
    while let Some(r) = w.next_record()? {
        out.push(r);
    }
    Ok(out)
}

/// A raw record: attributes 0, the given deltas, key "k", value "v", no headers.
fn record(ts_delta: i64, offset_delta: i64) -> Vec<u8> {
    let mut body = vec![0u8];
    write_varlong(&mut body, ts_delta);
    write_varlong(&mut body, offset_delta);
    write_varlong(&mut body, 1);
    body.push(b'k');
    write_varlong(&mut body, 1);
    body.push(b'v');
    write_varlong(&mut body, 0);
    let mut out = Vec::new();
    write_varlong(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

#[test]
fn every_codec_walks_the_same_records() {
    let plain = batch_builder::batch(500, 1_000, 37);
    let expected = walk_all(&plain).unwrap();
    assert_eq!(expected.len(), 500);
    for (i, r) in expected.iter().enumerate() {
        assert_eq!(r.offset_delta, i as i32);
        assert_eq!(r.timestamp_delta, i as i64);
        assert_eq!((r.key_len, r.value_len, r.header_count), (-1, 37, 0));
    }
    for codec in 1..=4 {
        let b = compressed(&plain, codec);
        assert_eq!(walk_all(&b).unwrap(), expected, "codec {codec}");
    }
}

#[test]
fn raw_snappy_without_xerial_framing_walks() {
    // librdkafka writes one raw snappy block; snappy-java (Kafka) accepts it.
    let plain = batch_builder::batch(20, 0, 10);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[HEADER_LEN..])
        .unwrap();
    let b = with_payload(&plain, 2, &raw);
    assert_eq!(walk_all(&b).unwrap().len(), 20);
}

#[test]
fn unknown_codecs_and_garbage_payloads_fail() {
    let plain = batch_builder::batch(3, 0, 10);
    for codec in 5..=7 {
        assert_eq!(
            walk_all(&compressed(&plain, codec)).unwrap_err(),
            WalkError::UnknownCodec(codec)
        );
    }
    let garbage: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    for codec in 1..=4 {
        let e = walk_all(&with_payload(&plain, codec, &garbage)).unwrap_err();
        assert!(
            matches!(e, WalkError::Decompress(_) | WalkError::Invalid(_)),
            "codec {codec}: {e:?}"
        );
    }
    // A gzip stream whose content is not a record set.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &garbage).unwrap();
    let e = walk_all(&with_payload(&plain, 1, &enc.finish().unwrap())).unwrap_err();
    assert!(matches!(e, WalkError::Invalid(_)), "{e:?}");
}

fn set_count(b: &mut [u8], count: i32) {
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    batch_builder::fix_crc(b);
}

#[test]
fn record_count_must_match_the_records_for_every_codec() {
    for codec in 0..=4 {
        let plain = batch_builder::batch(3, 0, 10);
        for claimed in [1, 2, 4, i32::MAX] {
            let mut b = plain.clone();
            set_count(&mut b, claimed);
            let b = compressed(&b, codec);
            let e = walk_all(&b).unwrap_err();
            assert!(
                matches!(e, WalkError::Invalid(_)),
                "codec {codec} count {claimed}: {e:?}"
            );
        }
    }
}

#[test]
fn lying_record_fields_fail() {
    let plain = batch_builder::batch(1, 0, 0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("length too long", {
            let mut r = record(0, 0);
            r[0] += 10;
            r
        }),
        ("length too short", {
            let mut r = record(0, 0);
            r[0] -= 2;
            r
        }),
        ("negative length", {
            let mut r = vec![];
            write_varlong(&mut r, -3);
            r.extend_from_slice(&[0; 8]);
            r
        }),
        ("varint longer than 5 bytes", {
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0,
            ]
        }),
        ("key larger than the record", {
            let mut body = vec![0u8, 0, 0];
            write_varlong(&mut body, i64::from(i32::MAX));
            body.extend_from_slice(&[0; 4]);
            let mut r = vec![];
            write_varlong(&mut r, body.len() as i64);
            r.extend_from_slice(&body);
            r
        }),
        ("negative header count", {
            let mut body = vec![0u8, 0, 0];
            write_varlong(&mut body, -1);
            write_varlong(&mut body, -1);
            write_varlong(&mut body, -1);
            let mut r = vec![];
            write_varlong(&mut r, body.len() as i64);
            r.extend_from_slice(&body);
            r
        }),
        ("huge header count", {
            let mut body = vec![0u8, 0, 0];
            write_varlong(&mut body, -1);
            write_varlong(&mut body, -1);
            write_varlong(&mut body, i64::from(i32::MAX));
            let mut r = vec![];
            write_varlong(&mut r, body.len() as i64);
            r.extend_from_slice(&body);
            r
        }),
        ("truncated record", record(0, 0)[..5].to_vec()),
        ("trailing bytes", {
            let mut r = record(0, 0);
            r.extend_from_slice(&[0, 0]);
            r
        }),
    ];
    for (what, payload) in cases {
        for codec in [0u8, 1, 4] {
            let b = with_payload(&plain, 0, &payload);
            let b = compressed(&b, codec);
            let e = walk_all(&b).unwrap_err();
            assert!(
                matches!(e, WalkError::Invalid(_)),
                "{what}, codec {codec}: {e:?}"
            );
        }
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    // 1M valid 7-byte records (all offset delta 0: the walker checks the grammar, the
    // validator the deltas) under a header claiming 2^31-1 records: the walk stops once the
    // decompressed bytes pass the limit instead of running through gigabytes.
    let one = [0x0cu8, 0, 0, 0, 1, 1, 0];
    let records: Vec<u8> = one.iter().copied().cycle().take(7 << 20).collect();
    let payload = zstd::stream::encode_all(&records[..], 1).unwrap();
    assert!(payload.len() < 64 << 10, "{} bytes", payload.len());
    let mut plain = batch_builder::batch(1, 0, 0);
    set_count(&mut plain, i32::MAX);
    let b = with_payload(&plain, 4, &payload);
    let h = BatchHeader::parse(&b).unwrap();
    let mut w = RecordWalker::with_limit(&b, &h, 1 << 20).unwrap();
    let e = loop {
        match w.next_record() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the walk ended"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, WalkError::Decompress(_)), "{e:?}");
    assert!(w.records_read() < (1 << 20) / 7 + 1);
    // The real limit for a batch of that size is far below what the header's count implies.
    assert!(max_decompressed(payload.len()) < 7 * i32::MAX as u64);
}

#[test]
fn find_record_by_timestamp_in_every_codec() {
    crate::runtime::file::run_local(async {
        let plain = batch_builder::batch_with_timestamps(100, &[0, 5, 3, 10], 4);
        for codec in 0..=4 {
            let mut b = compressed(&plain, codec);
            crate::log::batch::set_base_offset(&mut b, 20);
            assert_eq!(find_record(&b, |t| t >= 0).await, Some((20, 100)));
            assert_eq!(find_record(&b, |t| t >= 104).await, Some((21, 105)));
            assert_eq!(find_record(&b, |t| t >= 106).await, Some((23, 110)));
            assert_eq!(find_record(&b, |t| t >= 111).await, None);
            assert_eq!(find_record(&b, |t| t == 103).await, Some((22, 103)));
        }
    });
}
