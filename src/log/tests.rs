//! Tests of the partition log against real files in temporary directories.

use crate::log::batch::{validate_batch, BatchHeader, TimestampType};
use crate::log::batch_builder::{self, concat};
use crate::log::recovery::CLEAN_SHUTDOWN_MARKER;
use crate::log::segment::segment_paths;
use crate::log::{AppendInfo, LogConfig, LogError, PartitionLog};
use crate::runtime::file::run_local;
use crate::runtime::file::tests::resident_pages;
use bytes::Bytes;
use std::path::Path;

/// What a one-node `partition::Partition` does after each append: the high watermark follows
/// the log end (the log itself leaves that to its owner). These tests drive logs directly.
trait AppendVisible {
    async fn append_hw(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, LogError>;
}

impl AppendVisible for PartitionLog {
    async fn append_hw(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let r = self.append(records, now_ms).await;
        self.set_high_watermark(self.log_end_offset());
        r
    }
}

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: -1,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Parse a read result into validated batch headers (every CRC checked).
fn batches(b: &Bytes) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let h = validate_batch(&b[pos..]).expect("valid batch in read result");
        pos += h.total_len();
        out.push(h);
    }
    out
}

/// Append `n` single-batch produce requests of `records` records each.
async fn fill(log: &PartitionLog, n: usize, records: usize, ts: i64) {
    for i in 0..n {
        let b = batch_builder::batch(records, ts + i as i64, 20);
        log.append_hw(Bytes::from(b), ts + i as i64).await.unwrap();
    }
}

/// Every offset in [start, LEO) is readable, and the batch returned contains it.
async fn assert_all_readable(log: &PartitionLog) {
    for o in log.log_start_offset()..log.log_end_offset() {
        let b = log.read(o, 1 << 20, true).await.unwrap();
        let hs = batches(&b);
        assert!(!hs.is_empty(), "offset {o} read nothing");
        assert!(
            hs[0].base_offset <= o && o <= hs[0].last_offset(),
            "offset {o} got batch {}..={}",
            hs[0].base_offset,
            hs[0].last_offset()
        );
        // dense: consecutive batches follow each other
        for w in hs.windows(2) {
            assert_eq!(w[1].base_offset, w[0].last_offset() + 1);
        }
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn write_behind_starts_writeback_in_whole_chunks() {
    // A process-wide hint: other tests running meanwhile only issue a few more harmless
    // sync_file_range calls.
    crate::runtime::file::set_writeback_bytes(4096);
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let seg = log.active_segment();
        let mut last = 0;
        for _ in 0..40 {
            log.append_hw(Bytes::from(batch_builder::batch(3, 1000, 700)), 5000)
                .await
                .unwrap();
            let size = seg.size();
            // Everything up to the last whole chunk, never past what was written.
            assert_eq!(seg.written_back(), size - size % 4096);
            assert!(seg.written_back() >= last);
            last = seg.written_back();
        }
        assert!(last >= 4096 * 10, "40 appends of ~2 KB span many chunks");
        assert_all_readable(&log).await;
    });
}

#[test]
fn offsets_are_dense_across_appends() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 0);
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(3, 1000, 10)), 5000)
            .await
            .unwrap();
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!(a.log_append_time, -1);
        assert_eq!(a.log_start_offset, 0);
        // two batches in one request
        let set = concat(&[
            batch_builder::batch(2, 1000, 10),
            batch_builder::batch(4, 1000, 10),
        ]);
        let a = log.append_hw(set, 5000).await.unwrap();
        assert_eq!((a.base_offset, a.last_offset), (3, 8));
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(1, 1000, 10)), 5000)
            .await
            .unwrap();
        assert_eq!((a.base_offset, a.last_offset), (9, 9));
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.high_watermark(), 10);
        let all = batches(&log.read(0, 1 << 20, false).await.unwrap());
        let bases: Vec<i64> = all.iter().map(|h| h.base_offset).collect();
        assert_eq!(bases, vec![0, 3, 5, 9]);
        assert_all_readable(&log).await;
    });
}

#[test]
fn concurrent_appends_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let (a, b) = futures_lite::future::zip(
            log.append_hw(Bytes::from(batch_builder::batch(5, 0, 10)), 0),
            log.append_hw(Bytes::from(batch_builder::batch(7, 0, 10)), 0),
        )
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut ranges = [
            (a.base_offset, a.last_offset),
            (b.base_offset, b.last_offset),
        ];
        ranges.sort();
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges[1].0, ranges[0].1 + 1);
        assert_eq!(log.log_end_offset(), 12);
        assert_all_readable(&log).await;
    });
}

#[test]
fn invalid_batch_rejects_whole_set() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let good = batch_builder::batch(2, 0, 10);
        let mut bad = batch_builder::batch(2, 0, 10);
        let n = bad.len();
        bad[n - 1] ^= 1;
        let e = log.append_hw(concat(&[good, bad]), 0).await.unwrap_err();
        assert_eq!(e.kafka_error_code(), 2);
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);

        let mut c = cfg();
        c.max_message_bytes = 100;
        log.set_config(c);
        let e = log
            .append_hw(Bytes::from(batch_builder::batch(5, 0, 50)), 0)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::MessageTooLarge { .. }));
        assert_eq!(log.log_end_offset(), 0);
    });
}

#[test]
fn rolls_by_size_and_finds_offsets_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_bytes = 1000;
        let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
        fill(&log, 40, 3, 1000).await;
        assert_eq!(log.log_end_offset(), 120);
        let n = log.segment_count();
        assert!(n > 5, "expected several segments, got {n}");
        let bases = log.segment_bases();
        assert_eq!(bases[0], 0);
        for w in bases.windows(2) {
            assert!(w[1] > w[0]);
        }
        // every segment but the active respects segment.bytes
        for b in &bases[..bases.len() - 1] {
            let (l, _, _) = segment_paths(dir.path(), *b);
            assert!(file_len(&l) <= 1000);
        }
        assert_all_readable(&log).await;
        // reading from the start returns one segment's worth, then continues in the next
        let first = batches(&log.read(0, 1 << 20, false).await.unwrap());
        assert_eq!(first.last().unwrap().next_offset(), bases[1]);
        let second = batches(&log.read(bases[1], 1 << 20, false).await.unwrap());
        assert_eq!(second[0].base_offset, bases[1]);

        // reopen (unclean) finds the same layout and offsets
        drop(log);
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        assert_eq!(log.log_end_offset(), 120);
        assert_eq!(log.segment_bases(), bases);
        assert_all_readable(&log).await;
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(1, 0, 1)), 0)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 120);
    });
}

#[test]
fn rolls_by_age() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_ms = 1000;
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        // empty active segment never rolls
        assert!(!log.maybe_roll(1_000_000).await.unwrap());
        log.append_hw(Bytes::from(batch_builder::batch(1, 0, 5)), 10_000)
            .await
            .unwrap();
        log.append_hw(Bytes::from(batch_builder::batch(1, 0, 5)), 10_500)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), 1);
        // age counts from the first append into the segment
        log.append_hw(Bytes::from(batch_builder::batch(1, 0, 5)), 11_001)
            .await
            .unwrap();
        assert_eq!(log.segment_bases(), vec![0, 2]);
        assert!(log.maybe_roll(12_100).await.unwrap());
        assert_eq!(log.segment_bases(), vec![0, 2, 3]);
        assert!(!log.maybe_roll(99_999).await.unwrap()); // new one is empty
        assert_all_readable(&log).await;
    });
}

/// Appends a small, a big and a small batch of two records each (offsets 0..=1, 2..=3, 4..=5);
/// returns the small and the big batch's bytes.
async fn append_small_big_small(log: &PartitionLog) -> (Vec<u8>, Vec<u8>) {
    let small = batch_builder::batch(2, 0, 10);
    let big = batch_builder::batch(2, 0, 500);
    log.append_hw(Bytes::from(small.clone()), 0).await.unwrap();
    log.append_hw(Bytes::from(big.clone()), 0).await.unwrap();
    log.append_hw(Bytes::from(small.clone()), 0).await.unwrap();
    (small, big)
}

#[test]
fn read_limits_and_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let (small, big) = append_small_big_small(&log).await;

        // enough for exactly the first batch: only whole batches come back
        let b = log.read(0, small.len() + 10, false).await.unwrap();
        assert_eq!(b.len(), small.len());
        // first batch bigger than max_bytes
        assert!(log.read(2, 100, false).await.unwrap().is_empty());
        let b = log.read(3, 100, true).await.unwrap();
        assert_eq!(b.len(), big.len());
        assert_eq!(batches(&b)[0].base_offset, 2);
        // max_bytes smaller than a header, min_one_batch
        let b = log.read(0, 0, true).await.unwrap();
        assert_eq!(batches(&b).len(), 1);
        // offset in the middle of a batch returns the batch containing it
        let b = log.read(5, 1 << 20, false).await.unwrap();
        assert_eq!(batches(&b)[0].base_offset, 4);
        // at LEO: empty; beyond: out of range; negative: out of range
        assert!(log.read(6, 1 << 20, true).await.unwrap().is_empty());
        let e = log.read(7, 1 << 20, true).await.unwrap_err();
        assert!(matches!(
            e,
            LogError::OffsetOutOfRange {
                requested: 7,
                start: 0,
                end: 6
            }
        ));
        assert_eq!(e.kafka_error_code(), 1);
        assert!(log.read(-1, 10, true).await.is_err());
        // high watermark bounds consumer reads; read_up_to(LEO) does not
        log.set_high_watermark(4);
        let hs = batches(&log.read(0, 1 << 20, false).await.unwrap());
        assert_eq!(hs.last().unwrap().last_offset(), 3);
        assert!(log.read(4, 1 << 20, true).await.unwrap().is_empty());
        let hs = batches(&log.read_up_to(4, 1 << 20, true, 6).await.unwrap());
        assert_eq!(hs[0].base_offset, 4);
    });
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let seg0 = segment_paths(dir.path(), 0).0;
    let full_len;
    let last_batch_len;
    {
        let d = dir.path().to_path_buf();
        (full_len, last_batch_len) = run_local(async {
            let log = PartitionLog::open(&d, cfg()).await.unwrap();
            fill(&log, 20, 2, 0).await;
            let last = batch_builder::batch(3, 0, 40);
            log.append_hw(Bytes::from(last.clone()), 0).await.unwrap();
            assert_eq!(log.log_end_offset(), 43);
            // no close(): simulates a crash
            (log.size_bytes(), last.len() as u64)
        });
    }
    assert_eq!(file_len(&seg0), full_len);
    // chop 7 bytes off the last batch
    let f = std::fs::OpenOptions::new().write(true).open(&seg0).unwrap();
    f.set_len(full_len - 7).unwrap();
    drop(f);
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 40);
        assert_eq!(log.size_bytes(), full_len - last_batch_len);
        assert_all_readable(&log).await;
        // appends continue at the recovered end
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(1, 0, 1)), 0)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 40);
        assert_all_readable(&log).await;
    });
}

#[test]
fn garbage_tail_and_corrupt_batch_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg0 = segment_paths(dir.path(), 0).0;
    let d = dir.path().to_path_buf();
    let size = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        fill(&log, 10, 1, 0).await;
        log.size_bytes()
    });
    // garbage after the last batch, including something that looks like a header
    let mut bytes = std::fs::read(&seg0).unwrap();
    let one = bytes.len() / 10;
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(&seg0, &bytes).unwrap();
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.size_bytes(), size);
        assert_all_readable(&log).await;
    });
    assert_eq!(file_len(&seg0), size);
    // flip a payload byte in batch 6: batches 6.. are dropped (later bytes are not trusted)
    let mut bytes = std::fs::read(&seg0).unwrap();
    bytes[6 * one + 70] ^= 0x55;
    std::fs::write(&seg0, &bytes).unwrap();
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 6);
        assert_all_readable(&log).await;
    });
    // pure garbage file: everything truncated, log is empty but usable
    std::fs::write(&seg0, [0xFFu8; 333]).unwrap();
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 0);
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(2, 0, 1)), 0)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 0);
    });
}

#[test]
fn truncation_in_older_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.segment_bytes = 600;
    let d = dir.path().to_path_buf();
    let cc = c.clone();
    let bases = run_local(async {
        let log = PartitionLog::open(&d, cc).await.unwrap();
        fill(&log, 30, 2, 0).await;
        log.segment_bases()
    });
    assert!(bases.len() >= 3);
    // tear the end of the first segment
    let first = segment_paths(dir.path(), bases[0]).0;
    let len = file_len(&first);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    // delete its index so the tail check cannot start late
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, c).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        assert!(log.log_end_offset() < bases[1]);
        assert_all_readable(&log).await;
    });
    for b in &bases[1..] {
        assert!(!segment_paths(dir.path(), *b).0.exists());
    }
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (_, idx, tidx) = segment_paths(dir.path(), 0);
    let d = dir.path().to_path_buf();
    let (entries, tentries) = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        for i in 0..30 {
            log.append_hw(Bytes::from(batch_builder::batch(2, 1000 + i * 10, 30)), 0)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        (file_len(&idx), file_len(&tidx))
    });
    assert!(
        entries >= 8 * 5,
        "expected index entries, file is {entries} bytes"
    );
    assert!(tentries >= 12 * 5);
    let original_idx = std::fs::read(&idx).unwrap();
    let original_tidx = std::fs::read(&tidx).unwrap();

    for damage in 0..4 {
        match damage {
            0 => {
                std::fs::remove_file(&idx).unwrap();
                std::fs::remove_file(&tidx).unwrap();
            }
            1 => std::fs::write(&idx, [7u8; 13]).unwrap(), // bad size
            2 => {
                // monotonic but pointing into the middle of a batch
                let mut b = original_idx.clone();
                let n = b.len();
                b[n - 1] = b[n - 1].wrapping_add(3);
                std::fs::write(&idx, b).unwrap();
            }
            _ => {
                // non-monotonic time index
                let mut b = original_tidx.clone();
                b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
                std::fs::write(&tidx, b).unwrap();
            }
        }
        let d = dir.path().to_path_buf();
        run_local(async {
            // with the clean marker the CRC scan is skipped, but indexes are still checked
            let log = PartitionLog::open(&d, cfg()).await.unwrap();
            assert_eq!(log.log_end_offset(), 60);
            assert_all_readable(&log).await;
            assert_eq!(
                log.offset_for_timestamp(1155).await.unwrap(),
                Some((32, 1160))
            );
            log.close().await.unwrap();
        });
        assert_eq!(
            std::fs::read(&idx).unwrap(),
            original_idx,
            "damage {damage}"
        );
        assert_eq!(
            std::fs::read(&tidx).unwrap(),
            original_tidx,
            "damage {damage}"
        );
    }
}

#[test]
fn clean_shutdown_marker_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join(CLEAN_SHUTDOWN_MARKER);
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        fill(&log, 5, 2, 100).await;
        log.sync().await.unwrap();
        assert_eq!(log.flushed_offset(), 10);
        log.close().await.unwrap();
        let e = log
            .append_hw(Bytes::from(batch_builder::batch(1, 0, 1)), 0)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::Closed));
    });
    assert!(marker.exists());
    let d = dir.path().to_path_buf();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert!(!d.join(CLEAN_SHUTDOWN_MARKER).exists());
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.flushed_offset(), 10);
        assert_eq!(
            log.max_timestamp_and_offset().await.unwrap(),
            Some((105, 9))
        );
        assert_all_readable(&log).await;
        log.delete().await.unwrap();
    });
    assert!(!dir.path().exists());
}

#[test]
fn retention_by_time_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_bytes = 500;
        let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
        // timestamps 1000, 1001, ...
        fill(&log, 30, 2, 1000).await;
        let bases = log.segment_bases();
        let n = bases.len();
        assert!(n >= 4);
        // nothing configured: nothing deleted
        assert_eq!(log.apply_retention(1_000_000).await.unwrap(), 0);

        // by time: segments whose newest timestamp is older than now - retention
        c.retention_ms = 100;
        log.set_config(c.clone());
        // now - 100 = 1005: only segments with max ts < 1005 go
        let deleted = log.apply_retention(1105).await.unwrap();
        assert!(deleted >= 1);
        assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
        assert!(log.log_start_offset() > 0);
        assert!(!segment_paths(dir.path(), 0).0.exists());
        let e = log.read(0, 100, true).await.unwrap_err();
        assert!(matches!(e, LogError::OffsetOutOfRange { .. }));
        assert_all_readable(&log).await;
        // everything old: all but the active segment go, never the active one
        let remaining = log.apply_retention(1_000_000).await.unwrap();
        assert_eq!(deleted + remaining, n - 1);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), *bases.last().unwrap());
        assert_all_readable(&log).await;

        // by bytes
        c.retention_ms = -1;
        log.set_config(c.clone());
        fill(&log, 30, 2, 5000).await;
        let before = log.segment_count();
        c.retention_bytes = 1200;
        log.set_config(c);
        let d = log.apply_retention(0).await.unwrap();
        assert!(d >= 1);
        assert_eq!(log.segment_count(), before - d);
        assert!(log.size_bytes() <= 1200 + 500);
        // deleting one more segment would drop below the limit
        let first = log.segment_bases()[0];
        let first_size = file_len(&segment_paths(dir.path(), first).0);
        assert!(log.size_bytes() - first_size < 1200 || log.segment_count() == 1);
        let a = log
            .append_hw(Bytes::from(batch_builder::batch(1, 0, 1)), 0)
            .await
            .unwrap();
        assert_eq!(a.log_start_offset, log.log_start_offset());
        assert_all_readable(&log).await;
    });
}

#[test]
fn offset_for_timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_bytes = 700;
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        // batch i: base offset 3i, records at ts 100*i + {0, 1, 2}
        for i in 0..20 {
            let b = batch_builder::batch_with_timestamps(100 * i, &[0, 1, 2], 20);
            log.append_hw(Bytes::from(b), 0).await.unwrap();
        }
        assert!(log.segment_count() > 2);
        assert_eq!(log.offset_for_timestamp(-5).await.unwrap(), Some((0, 0)));
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 0)));
        // exact record timestamp inside a batch
        assert_eq!(
            log.offset_for_timestamp(701).await.unwrap(),
            Some((22, 701))
        );
        // between batches: first record of the next batch
        assert_eq!(
            log.offset_for_timestamp(703).await.unwrap(),
            Some((24, 800))
        );
        assert_eq!(
            log.offset_for_timestamp(1902).await.unwrap(),
            Some((59, 1902))
        );
        assert_eq!(log.offset_for_timestamp(1903).await.unwrap(), None);
        assert_eq!(
            log.max_timestamp_and_offset().await.unwrap(),
            Some((1902, 59))
        );
    });
}

#[test]
fn log_append_time_rewrites_with_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.timestamp_type = TimestampType::LogAppendTime;
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        log.set_leader_epoch(Some(3));
        let set = concat(&[
            batch_builder::batch(2, 10, 5),
            batch_builder::batch(3, 20, 5),
        ]);
        let a = log.append_hw(set, 777_000).await.unwrap();
        assert_eq!(a.log_append_time, 777_000);
        let hs = batches(&log.read(0, 1 << 20, false).await.unwrap());
        assert_eq!(hs.len(), 2);
        for h in &hs {
            assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(h.max_timestamp, 777_000);
            assert_eq!(h.partition_leader_epoch, 3);
        }
        assert_eq!(
            log.offset_for_timestamp(776_999).await.unwrap(),
            Some((0, 777_000))
        );
    });
}

#[test]
fn create_time_topic_keeps_client_timestamps_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let mut b = batch_builder::batch(2, 10, 5);
        b[12..16].copy_from_slice(&9i32.to_be_bytes()); // client-sent epoch, outside the CRC
        log.append_hw(Bytes::from(b), 123).await.unwrap();
        let hs = batches(&log.read(0, 1 << 20, false).await.unwrap());
        assert_eq!(hs[0].timestamp_type(), TimestampType::CreateTime);
        assert_eq!(hs[0].max_timestamp, 11);
        assert_eq!(hs[0].partition_leader_epoch, 9);
    });
}

#[test]
fn drop_behind_evicts_written_back_pages_and_they_stay_readable() {
    // Process-wide hints, never reset (every test that sets them sets the same values): other
    // tests running meanwhile or later may see some of their clean pages dropped too, which
    // only makes their reads go to the disk.
    crate::runtime::file::set_writeback_bytes(4096);
    crate::runtime::file::set_drop_behind_bytes(8192);
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let seg = log.active_segment();
        let append = |ts: i64| log.append_hw(Bytes::from(batch_builder::batch(3, ts, 700)), ts);
        for ts in 0..12 {
            append(ts).await.unwrap();
        }
        log.sync().await.unwrap(); // everything so far is clean: droppable for certain
        let synced = seg.written_back();
        assert!(synced >= 8192 + 4096, "written back {synced}");
        assert!(resident_pages(seg.log_path(), synced - 8192, synced) > 0);
        // Appending moves the drop point past `synced - 8192 .. synced`.
        for ts in 12.. {
            if seg.written_back() >= synced + 8192 {
                break;
            }
            append(ts).await.unwrap();
        }
        assert_eq!(resident_pages(seg.log_path(), synced - 8192, synced), 0);
        assert_all_readable(&log).await;
    });
}

#[test]
fn gathered_append_stores_the_request_bytes_with_offset_and_epoch_set() {
    // CreateTime topic: each batch is written as a rewritten 16-byte prefix plus the rest
    // straight from the request. The file must hold exactly the request's bytes with only
    // baseOffset and partitionLeaderEpoch changed, batch after batch.
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        log.set_leader_epoch(Some(7));
        let first = batch_builder::batch(1, 5, 30);
        log.append_hw(Bytes::from(first.clone()), 1).await.unwrap();
        let sizes = [(2, 40), (5, 3), (1, 900)];
        let set: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&(n, len)| batch_builder::batch(n, 100, len))
            .collect();
        log.append_hw(concat(&set), 2).await.unwrap();

        let mut expected = Vec::new();
        let mut next = 0i64;
        for (b, n) in std::iter::once((&first, 1)).chain(set.iter().zip(sizes.map(|s| s.0))) {
            let mut b = b.clone();
            b[0..8].copy_from_slice(&next.to_be_bytes());
            b[12..16].copy_from_slice(&7i32.to_be_bytes());
            expected.extend_from_slice(&b);
            next += n as i64;
        }
        let (log_path, _, _) = segment_paths(dir.path(), 0);
        assert_eq!(std::fs::read(log_path).unwrap(), expected);
        assert_eq!(log.log_end_offset(), 9);
    });
}

#[test]
fn create_time_topic_clears_a_client_set_log_append_time_bit() {
    // The bit is covered by the CRC, so this set takes the copying path: attributes and CRC
    // are rewritten, the other batch of the set is stored unchanged.
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let mut marked = batch_builder::batch(2, 10, 5);
        marked[22] |= 0x08; // attributes low byte
        batch_builder::fix_crc(&mut marked);
        let plain = batch_builder::batch(1, 30, 5);
        log.append_hw(concat(&[marked, plain.clone()]), 99)
            .await
            .unwrap();
        let read = log.read(0, 1 << 20, false).await.unwrap();
        let hs = batches(&read);
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].timestamp_type(), TimestampType::CreateTime);
        assert_eq!(hs[0].max_timestamp, 11);
        let mut plain = plain;
        plain[0..8].copy_from_slice(&2i64.to_be_bytes());
        assert_eq!(&read[hs[0].total_len()..], &plain[..]);
    });
}

#[test]
fn record_set_larger_than_segment_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_bytes = 200;
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        let e = log
            .append_hw(Bytes::from(batch_builder::batch(10, 0, 50)), 0)
            .await
            .unwrap_err();
        assert_eq!(e.kafka_error_code(), 18);
        // a set that fits an empty segment but not the current one rolls first
        let b = batch_builder::batch(1, 0, 100);
        log.append_hw(Bytes::from(b.clone()), 0).await.unwrap();
        log.append_hw(Bytes::from(b), 0).await.unwrap();
        assert_eq!(log.segment_bases(), vec![0, 1]);
    });
}

#[test]
fn recovery_at_every_truncation_point() {
    let dir = tempfile::tempdir().unwrap();
    let seg0 = segment_paths(dir.path(), 0).0;
    let mut c = cfg();
    c.index_interval_bytes = 50;
    let (ends, original) = run_local(async {
        let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
        let mut ends = vec![(0u64, 0i64)];
        for i in 0..5 {
            log.append_hw(Bytes::from(batch_builder::batch(i + 1, 0, 13)), 0)
                .await
                .unwrap();
            ends.push((log.size_bytes(), log.log_end_offset()));
        }
        log.close().await.unwrap();
        (ends, std::fs::read(&seg0).unwrap())
    });
    run_local(async {
        for cut in 0..=original.len() {
            // The clean marker may or may not be there. Without it (a crash), a cut inside a
            // batch is a torn write and is truncated. With it, nothing was in flight: a cut
            // inside a batch is damage from outside, and the partition stays offline with the
            // file untouched instead of losing data.
            let marker = cut % 2 == 0;
            if marker {
                std::fs::write(dir.path().join(CLEAN_SHUTDOWN_MARKER), b"").unwrap();
            }
            std::fs::write(&seg0, &original[..cut]).unwrap();
            let expect = ends
                .iter()
                .rev()
                .find(|(size, _)| *size <= cut as u64)
                .unwrap();
            if marker && expect.0 != cut as u64 {
                let e = PartitionLog::open(dir.path(), c.clone()).await.unwrap_err();
                assert!(
                    matches!(&e, LogError::Corrupt(m) if m.contains(".log at byte")),
                    "{e}"
                );
                assert_eq!(std::fs::metadata(&seg0).unwrap().len(), cut as u64);
                continue;
            }
            let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
            assert_eq!(
                (log.size_bytes(), log.log_end_offset()),
                *expect,
                "cut at {cut}"
            );
            assert_all_readable(&log).await;
        }
    });
}

#[test]
fn garbage_files_never_panic() {
    // xorshift: deterministic pseudo-random bytes
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    run_local(async {
        for round in 0..60 {
            let dir = tempfile::tempdir().unwrap();
            let (l, x, t) = segment_paths(dir.path(), 0);
            // start from a real log, then damage it in random ways
            {
                let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
                for _ in 0..(next() % 12) {
                    let n = (next() % 4 + 1) as usize;
                    log.append_hw(Bytes::from(batch_builder::batch(n, 0, 30)), 0)
                        .await
                        .unwrap();
                }
                if round % 3 == 0 {
                    log.close().await.unwrap();
                }
            }
            for p in [&l, &x, &t] {
                if next() % 2 == 0 {
                    continue;
                }
                if round % 3 == 0 && p == &l {
                    // After a clean shutdown the log's payload is trusted (no CRC scan, as in
                    // Kafka); only crash damage to the log is in scope, indexes are always.
                    continue;
                }
                let mut b = std::fs::read(p).unwrap_or_default();
                match next() % 3 {
                    0 => {
                        let len = (next() % 400) as usize;
                        b = (0..len).map(|_| next() as u8).collect();
                    }
                    1 if !b.is_empty() => {
                        for _ in 0..(next() % 5 + 1) {
                            let i = (next() as usize) % b.len();
                            b[i] = next() as u8;
                        }
                    }
                    _ => b.extend((0..(next() % 100)).map(|_| next() as u8)),
                }
                std::fs::write(p, b).unwrap();
            }
            match PartitionLog::open(dir.path(), cfg()).await {
                Ok(log) => {
                    assert_all_readable(&log).await;
                    let leo = log.log_end_offset();
                    let a = log
                        .append_hw(Bytes::from(batch_builder::batch(1, 0, 1)), 0)
                        .await
                        .unwrap();
                    assert_eq!(a.base_offset, leo);
                }
                Err(e) => panic!("round {round}: open failed: {e}"),
            }
        }
    });
}

// ---- read_slice (zero-copy fetch): where the data is, with Kafka's FileRecords semantics ----

/// The bytes a slice covers, read back through the slice's own descriptor.
fn slice_bytes(s: &crate::runtime::file::FileSlice) -> Bytes {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(s.fd.try_clone().unwrap());
    let mut buf = vec![0u8; s.len];
    f.read_exact_at(&mut buf, s.pos).unwrap();
    Bytes::from(buf)
}

#[test]
fn read_slice_returns_whole_batches_like_read() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        fill(&log, 10, 3, 1000).await;
        let all = log.read(0, 1 << 20, false).await.unwrap();
        assert_eq!(batches(&all).len(), 10);
        let one = all.len() / 10; // fill() makes batches of equal size

        let s = log.read_slice(0, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (0, all.len()));
        assert_eq!(slice_bytes(&s), all);
        // max_bytes on a batch boundary: exactly those batches, as read() returns them
        let s = log.read_slice(0, 3 * one, false).await.unwrap().unwrap();
        assert_eq!(s.len, 3 * one);
        assert_eq!(slice_bytes(&s), log.read(0, 3 * one, false).await.unwrap());
        // from the first offset of the third batch
        let s = log.read_slice(6, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (2 * one as u64, 8 * one));
        assert_eq!(slice_bytes(&s), log.read(6, 1 << 20, false).await.unwrap());
        // the descriptor is made once per segment, not per read
        let again = log.read_slice(0, 1, true).await.unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&s.fd, &again.fd));
    });
}

#[test]
fn read_slice_cuts_inside_a_batch_like_kafka() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        fill(&log, 10, 3, 1000).await;
        let one = log.read(0, 1 << 20, false).await.unwrap().len() / 10;
        let max = 2 * one + one / 2;

        let s = log.read_slice(0, max, false).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (0, max));
        let b = slice_bytes(&s);
        // two whole batches (what read() returns), then the start of the third, cut short
        let whole = log.read(0, max, false).await.unwrap();
        assert_eq!(whole.len(), 2 * one);
        assert_eq!(b.slice(..2 * one), whole);
        let third = log.read(6, one, false).await.unwrap();
        assert_eq!(b.slice(2 * one..), third.slice(..one / 2));
    });
}

#[test]
fn read_slice_first_batch_larger_than_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let (small, big) = append_small_big_small(&log).await;

        // without min_one_batch: nothing
        assert!(log.read_slice(2, 100, false).await.unwrap().is_none());
        assert!(log.read_slice(0, 0, false).await.unwrap().is_none());
        // with it: exactly the first batch, not a byte more (though more data follows)
        let s = log.read_slice(3, 100, true).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (small.len() as u64, big.len()));
        let hs = batches(&slice_bytes(&s));
        assert_eq!((hs.len(), hs[0].base_offset), (1, 2));
        let s = log.read_slice(0, 0, true).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (0, small.len()));
    });
}

#[test]
fn read_slice_from_the_middle_of_a_batch_starts_at_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        fill(&log, 5, 4, 1000).await; // batches 0..=3, 4..=7, ...
        let one = log.read(0, 1 << 20, false).await.unwrap().len() / 5;

        let s = log.read_slice(7, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!(s.pos, one as u64);
        assert_eq!(batches(&slice_bytes(&s))[0].base_offset, 4);
        let s = log.read_slice(8, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!(s.pos, 2 * one as u64);
        // index entries every 200 bytes: a lookup far into the segment lands right too
        let s = log.read_slice(18, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!((s.pos, s.len), (4 * one as u64, one));
    });
}

#[test]
fn read_slice_out_of_range_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        assert!(log.read_slice(0, 1 << 20, true).await.unwrap().is_none()); // empty log
        fill(&log, 3, 2, 1000).await; // LEO 6
        assert!(log.read_slice(6, 1 << 20, true).await.unwrap().is_none());
        let e = log.read_slice(7, 1 << 20, true).await.unwrap_err();
        assert!(matches!(
            e,
            LogError::OffsetOutOfRange {
                requested: 7,
                start: 0,
                end: 6
            }
        ));
        assert!(matches!(
            log.read_slice(-1, 10, true).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
    });
}

#[test]
fn read_slice_stops_at_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        fill(&log, 6, 2, 1000).await; // batches 0..=1, 2..=3, ..., 10..=11
        let one = log.read(0, 1 << 20, false).await.unwrap().len() / 6;
        log.set_high_watermark(6);

        let s = log.read_slice(0, 1 << 20, false).await.unwrap().unwrap();
        assert_eq!(s.len, 3 * one);
        assert_eq!(slice_bytes(&s), log.read(0, 1 << 20, false).await.unwrap());
        // max_bytes before the bound still cuts (inside a batch)
        let s = log
            .read_slice(0, 2 * one + 10, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.len, 2 * one + 10);
        // at or past the bound: nothing
        assert!(log.read_slice(6, 1 << 20, true).await.unwrap().is_none());
        assert!(log.read_slice(9, 1 << 20, true).await.unwrap().is_none());
    });
}

#[test]
fn read_slice_across_segment_roll_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let mut c = cfg();
        c.segment_bytes = 1000;
        let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
        fill(&log, 40, 3, 1000).await;
        let bases = log.segment_bases();
        assert!(bases.len() > 5);

        // Walking the log with slices: one segment per call, each slice ends where its
        // segment ends, and together they hold every batch once, in order.
        let mut next = 0;
        let mut calls = 0;
        while let Some(s) = log.read_slice(next, 1 << 20, false).await.unwrap() {
            let b = slice_bytes(&s);
            assert_eq!(b, log.read(next, 1 << 20, false).await.unwrap());
            let hs = batches(&b);
            assert_eq!(hs[0].base_offset, next);
            next = hs.last().unwrap().next_offset();
            calls += 1;
            assert_eq!(next, *bases.get(calls).unwrap_or(&120));
        }
        assert_eq!((next, calls), (120, bases.len()));
        // from the middle of the second segment
        let s = log
            .read_slice(bases[1] + 1, 1 << 20, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batches(&slice_bytes(&s))[0].base_offset, bases[1]);

        // A slice taken before retention deletes its segment stays readable.
        let old = log.read_slice(0, 1 << 20, false).await.unwrap().unwrap();
        let old_bytes = slice_bytes(&old);
        c.retention_ms = 1;
        log.set_config(c);
        assert!(log.apply_retention(1_000_000).await.unwrap() >= 1);
        assert!(!segment_paths(dir.path(), 0).0.exists());
        assert_eq!(slice_bytes(&old), old_bytes);
        assert!(matches!(
            log.read_slice(0, 1 << 20, true).await.unwrap_err(),
            LogError::OffsetOutOfRange { .. }
        ));
    });
}

#[test]
fn a_whole_batch_out_of_order_keeps_the_partition_offline_and_deletes_nothing() {
    // A CRC-valid batch whose offsets do not follow on is not a torn write (the base offset
    // lies outside the CRC, so a bug or a hand edit can produce it): recovery must not
    // truncate there and delete every later segment; the open fails naming file and position.
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.segment_bytes = 400;
    run_local(async {
        let log = PartitionLog::open(dir.path(), c.clone()).await.unwrap();
        for i in 0..12 {
            log.append_hw(Bytes::from(batch_builder::batch(2, i, 40)), i)
                .await
                .unwrap();
        }
        assert!(log.segment_count() >= 3, "{:?}", log.segment_bases());
        log.close().await.unwrap();
    });
    let seg0 = segment_paths(dir.path(), 0).0;
    let mut bytes = std::fs::read(&seg0).unwrap();
    // The last batch of the first segment: walk the headers to find it.
    let mut pos = 0;
    let mut last = 0;
    while pos < bytes.len() {
        last = pos;
        pos += validate_batch(&bytes[pos..]).unwrap().total_len();
    }
    bytes[last..last + 8].copy_from_slice(&0i64.to_be_bytes());
    std::fs::write(&seg0, &bytes).unwrap();
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != CLEAN_SHUTDOWN_MARKER)
            .collect();
        v.sort();
        v
    };
    let files_before = names();
    for with_marker in [true, false] {
        if with_marker {
            std::fs::write(dir.path().join(CLEAN_SHUTDOWN_MARKER), b"").unwrap();
        }
        let e = run_local(PartitionLog::open(dir.path(), c.clone())).unwrap_err();
        assert!(
            matches!(&e, LogError::Corrupt(m) if m.contains("00000000000000000000.log at byte")
                && m.contains(&format!("byte {last}"))),
            "{e}"
        );
        assert_eq!(std::fs::read(&seg0).unwrap(), bytes, "nothing truncated");
    }
    assert_eq!(files_before, names(), "no file deleted");
}

#[test]
fn segment_index_bytes_rolls_when_the_offset_index_is_full_and_jitter_shortens_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let c = LogConfig {
            index_max_entries: 2,
            ..cfg()
        };
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        // index.interval.bytes is 200: every batch of ~300 bytes past the first adds an entry.
        for i in 0..12 {
            log.append_hw(Bytes::from(batch_builder::batch(5, i, 50)), i)
                .await
                .unwrap();
        }
        assert!(log.segment_count() >= 3, "{:?}", log.segment_bases());
    });
    // Jitter: with segment.ms 1000 and up to 1000 ms of jitter, segments of many partitions
    // roll at different ages, all no later than segment.ms.
    let mut rolled_early = 0;
    for p in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let rolled = run_local(async {
            let c = LogConfig {
                segment_ms: 1_000,
                segment_jitter_ms: 1_000,
                ..cfg()
            };
            let log = PartitionLog::open(&dir.path().join(format!("t-{p}")), c)
                .await
                .unwrap();
            log.append_hw(Bytes::from(batch_builder::batch(1, 0, 5)), 0)
                .await
                .unwrap();
            let base = log.active_segment().roll_base_ms();
            let early = log.maybe_roll(base + 600).await.unwrap();
            let late = early || log.maybe_roll(base + 1_001).await.unwrap();
            assert!(late, "rolled by segment.ms at the latest");
            early
        });
        rolled_early += usize::from(rolled);
    }
    assert!(
        (1..20).contains(&rolled_early),
        "{rolled_early} of 20 rolled early"
    );
}

#[test]
fn logs_with_more_segments_than_the_descriptor_budget_append_roll_read_sync_and_reopen() {
    // Eight partitions of several segments each under a budget of three open files: every
    // operation reopens what the cache closed, and nothing is lost or misread.
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    run_local(async {
        crate::runtime::file_cache::set_budget(3);
        let mut c = cfg();
        c.segment_bytes = 1000;
        let mut logs = Vec::new();
        for d in &dirs {
            logs.push(PartitionLog::open(d.path(), c.clone()).await.unwrap());
        }
        for round in 0..10 {
            for log in &logs {
                fill(log, 4, 3, 1000 + round).await;
                log.sync().await.unwrap();
                assert!(crate::runtime::file_cache::stats().open <= 3);
            }
        }
        for log in &logs {
            assert_eq!(log.log_end_offset(), 120);
            assert!(log.segment_count() > 5);
            assert_all_readable(log).await;
            assert!(log.read_slice(0, 1 << 20, true).await.unwrap().is_some());
            assert_eq!(log.flushed_offset(), 120);
        }
        assert!(crate::runtime::file_cache::stats().open <= 3);
        for log in &logs {
            log.close().await.unwrap();
        }
        drop(logs);
        for d in &dirs {
            let log = PartitionLog::open(d.path(), c.clone()).await.unwrap();
            assert_eq!(log.log_end_offset(), 120);
            assert_all_readable(&log).await;
        }
        crate::runtime::file_cache::set_budget(0);
    });
}

/// A follower's log fed what a leader's log reads back ends up byte for byte the same: offsets,
/// leader epochs and producer state kept, segments rolled where they must be.
#[test]
fn a_follower_log_is_a_byte_for_byte_copy_of_the_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let (leader_dir, follower_dir) = (dir.path().join("l"), dir.path().join("f"));
    run_local(async {
        let small = LogConfig {
            segment_bytes: 2048,
            ..cfg()
        };
        let leader = PartitionLog::open(&leader_dir, small.clone())
            .await
            .unwrap();
        leader.set_leader_epoch(Some(3));
        fill(&leader, 5, 4, 1_000).await;
        leader.set_leader_epoch(Some(7));
        let idem = batch_builder::idempotent_batch(3, 2_000, 20, 42, 1, 0);
        leader.append_hw(Bytes::from(idem), 2_000).await.unwrap();
        fill(&leader, 20, 3, 3_000).await;
        let all = read_everything(&leader).await;
        assert!(
            leader.segment_count() > 1,
            "the test wants several segments"
        );

        let follower = PartitionLog::open(&follower_dir, small).await.unwrap();
        // In two fetches, cut at a batch boundary.
        let first_two: usize = batches(&all)[..2].iter().map(|h| h.total_len()).sum();
        let mut epochs = Vec::new();
        let info = follower
            .append_as_follower(all.slice(..first_two), 9_000, |e, o| epochs.push((e, o)))
            .await
            .unwrap();
        assert_eq!((info.base_offset, epochs.clone()), (0, vec![(3, 0)]));
        let info = follower
            .append_as_follower(all.slice(first_two..), 9_000, |e, o| epochs.push((e, o)))
            .await
            .unwrap();
        assert_eq!(info.last_offset, leader.log_end_offset() - 1);
        // Each call reports its first batch's epoch too (the cache keeps the first start).
        epochs.dedup_by_key(|e| e.0);
        assert_eq!(epochs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 7]);
        assert_eq!(epochs[1].1, 20, "epoch 7 starts after five batches of four");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        // (Reads stop at the high watermark, which the leader tells a follower.)
        assert_eq!(follower.high_watermark(), 0);
        follower.set_high_watermark(follower.log_end_offset());
        assert_eq!(read_everything(&follower).await, all);
        assert!(follower.segment_count() > 1);
        assert_eq!(
            follower.producer_state(42).map(|p| p.last_seq()),
            leader.producer_state(42).map(|p| p.last_seq())
        );
        assert_all_readable(&follower).await;

        // Anything but the next offset is refused and changes nothing.
        let end = follower.log_end_offset();
        let again = follower
            .append_as_follower(all.clone(), 9_000, |_, _| {})
            .await;
        assert!(
            matches!(again, Err(LogError::InvalidRecord(_))),
            "{again:?}"
        );
        let mut corrupt = all.slice(..first_two).to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(follower
            .append_as_follower(Bytes::from(corrupt), 9_000, |_, _| {})
            .await
            .is_err());
        assert_eq!(follower.log_end_offset(), end);

        // And it survives a reopen as it is.
        follower.close().await.unwrap();
        let reopened = PartitionLog::open(&follower_dir, cfg()).await.unwrap();
        assert_eq!(reopened.log_end_offset(), end);
        reopened.set_high_watermark(end);
        assert_eq!(read_everything(&reopened).await, all);
    });
}

/// The whole log, read segment by segment.
async fn read_everything(log: &PartitionLog) -> Bytes {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let b = log.read(offset, 1 << 20, true).await.unwrap();
        offset = batches(&b).last().unwrap().next_offset();
        out.extend_from_slice(&b);
    }
    Bytes::from(out)
}

/// A replica's log cut back to where it agrees with its leader: whole batches from the one
/// holding the offset on are gone (later segments deleted, the containing one cut), the
/// producer state forgets them, appends continue at the new end, and a reopen finds the same.
#[test]
fn truncation_cuts_back_to_a_batch_boundary_and_appends_continue_there() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let small = LogConfig {
            segment_bytes: 2048,
            ..cfg()
        };
        let log = PartitionLog::open(dir.path(), small.clone()).await.unwrap();
        fill(&log, 30, 4, 1_000).await; // offsets 0..120, several segments
        let before_idem = log.log_end_offset();
        let idem = batch_builder::idempotent_batch(3, 5_000, 20, 42, 0, 0);
        log.append_hw(Bytes::from(idem.clone()), 5_000)
            .await
            .unwrap();
        fill(&log, 30, 4, 6_000).await;
        let all = read_everything(&log).await;
        let bases: Vec<i64> = batches(&all).iter().map(|h| h.base_offset).collect();
        let segments_before = log.segment_count();
        assert!(segments_before > 3, "{segments_before} segments");

        // Past the end, or below the start: nothing / refused.
        let end = log.log_end_offset();
        assert_eq!(log.truncate_to(end + 5).await.unwrap(), end);
        // Mid-batch: the whole batch holding the offset goes.
        let cut = log.truncate_to(before_idem + 1).await.unwrap();
        assert_eq!(cut, before_idem);
        assert_eq!(log.log_end_offset(), before_idem);
        assert!(log.high_watermark() <= before_idem);
        assert!(log.segment_count() < segments_before);
        let kept = read_everything(&log).await;
        assert_eq!(
            &all[..kept.len()],
            &kept[..],
            "what remains is the original prefix"
        );
        assert_eq!(batches(&kept).last().unwrap().next_offset(), before_idem);
        assert!(
            log.producer_state(42).is_none(),
            "the producer's batch was cut away"
        );
        assert_all_readable(&log).await;

        // The producer's batch is not a duplicate any more: it goes in again, at the new end.
        let again = log.append_hw(Bytes::from(idem), 7_000).await.unwrap();
        assert_eq!((again.base_offset, again.duplicate), (before_idem, false));
        assert_eq!(log.producer_state(42).map(|p| p.last_seq()), Some(2));
        let mid = bases[3];
        assert_eq!(log.truncate_to(mid).await.unwrap(), mid, "a batch boundary");
        let more = log
            .append_hw(Bytes::from(batch_builder::batch(2, 8_000, 20)), 8_000)
            .await
            .unwrap();
        assert_eq!(more.base_offset, mid);
        assert_all_readable(&log).await;

        // Reopened: the same log.
        let end = log.log_end_offset();
        let content = read_everything(&log).await;
        log.close().await.unwrap();
        let reopened = PartitionLog::open(dir.path(), small.clone()).await.unwrap();
        assert_eq!(reopened.log_end_offset(), end);
        assert_eq!(read_everything(&reopened).await, content);

        // All the way back to the start.
        assert_eq!(reopened.truncate_to(0).await.unwrap(), 0);
        assert_eq!(reopened.log_end_offset(), 0);
        let first = reopened
            .append_hw(Bytes::from(batch_builder::batch(1, 9_000, 20)), 9_000)
            .await
            .unwrap();
        assert_eq!(first.base_offset, 0);
        reopened.close().await.unwrap();
        let last = PartitionLog::open(dir.path(), small).await.unwrap();
        assert_eq!(last.log_end_offset(), 1);
        assert_eq!(last.segment_count(), 1);
    });
}

/// A log whose start DeleteRecords put inside a batch, cut back to that start: it starts over
/// empty there (Kafka's truncateFullyAndStartAt) instead of ending below its own start.
#[test]
fn truncation_to_a_start_inside_a_batch_starts_the_log_over() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        fill(&log, 3, 4, 1_000).await; // batches 0-3, 4-7, 8-11
        assert_eq!(log.delete_records_before(6).await.unwrap(), 6);
        assert_eq!(log.truncate_to(6).await.unwrap(), 6);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
        let next = log
            .append_hw(Bytes::from(batch_builder::batch(2, 2_000, 20)), 2_000)
            .await
            .unwrap();
        assert_eq!(next.base_offset, 6);
        assert_all_readable(&log).await;
        log.close().await.unwrap();
        let reopened = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        assert_eq!(
            (reopened.log_start_offset(), reopened.log_end_offset()),
            (6, 8)
        );
    });
}
