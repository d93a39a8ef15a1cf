//! Idempotent-producer tests of the partition log: duplicate detection, sequence and epoch
//! errors, and the state's survival across clean and unclean restarts, rolls and retention.

use crate::log::batch_builder::{self, concat};
use crate::log::producer_state::{list_snapshots, snapshot_path};
use crate::log::recovery::CLEAN_SHUTDOWN_MARKER;
use crate::log::segment::segment_paths;
use crate::log::{AppendInfo, LogConfig, LogError, PartitionLog, TimestampType};
use crate::runtime::file::run_local;
use bytes::Bytes;
use std::path::Path;

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

/// An idempotent batch of `n` records.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    batch_builder::idempotent_batch(n, 1_000, 20, pid, epoch, seq)
}

/// A client that numbers its batches like Kafka's producer does.
struct Producer {
    pid: i64,
    epoch: i16,
    seq: i32,
}

impl Producer {
    fn new(pid: i64) -> Self {
        Producer {
            pid,
            epoch: 0,
            seq: 0,
        }
    }
    /// The next batch of `n` records (and advance the sequence, wrapping like Kafka).
    fn next(&mut self, n: usize) -> Vec<u8> {
        let b = idem(self.pid, self.epoch, self.seq, n);
        self.seq = crate::log::producer_state::last_sequence(self.seq, n as i32 - 1);
        self.seq = if self.seq == i32::MAX {
            0
        } else {
            self.seq + 1
        };
        b
    }
}

async fn append(log: &PartitionLog, b: &[u8]) -> Result<AppendInfo, LogError> {
    log.append(Bytes::copy_from_slice(b), 5_000).await
}

async fn ok(log: &PartitionLog, b: &[u8]) -> AppendInfo {
    let a = append(log, b).await.unwrap();
    assert!(!a.duplicate, "unexpected duplicate: {a:?}");
    a
}

/// `b` is answered as a duplicate of `orig` and the log did not change.
async fn assert_dup(log: &PartitionLog, b: &[u8], orig: &AppendInfo) {
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    let a = append(log, b).await.unwrap();
    assert!(a.duplicate, "expected a duplicate, got {a:?}");
    assert_eq!(
        (a.base_offset, a.last_offset),
        (orig.base_offset, orig.last_offset)
    );
    assert_eq!(a.log_append_time, orig.log_append_time);
    assert_eq!(a.log_start_offset, log.log_start_offset());
    assert_eq!((log.log_end_offset(), log.size_bytes()), (leo, size));
}

/// Appending `b` fails with Kafka error `code` and the log did not change.
async fn assert_err(log: &PartitionLog, b: &[u8], code: i16) {
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    let e = append(log, b).await.unwrap_err();
    assert_eq!(e.kafka_error_code(), code, "{e}");
    assert_eq!((log.log_end_offset(), log.size_bytes()), (leo, size));
}

#[test]
fn exact_retry_is_answered_with_the_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        ok(&log, &batch_builder::batch(2, 0, 5)).await; // offsets 0..=1, not idempotent
        let mut p = Producer::new(7);
        let b = p.next(3);
        let a = ok(&log, &b).await;
        assert_eq!((a.base_offset, a.last_offset), (2, 4));
        assert_dup(&log, &b, &a).await;
        assert_dup(&log, &b, &a).await;
        // the producer continues where it was
        let a2 = ok(&log, &p.next(1)).await;
        assert_eq!(a2.base_offset, 5);
        // non-idempotent batches are never deduplicated
        let plain = batch_builder::batch(1, 0, 5);
        ok(&log, &plain).await;
        ok(&log, &plain).await;
        assert_eq!(log.log_end_offset(), 8);
        let st = log.producer_state(7).unwrap();
        assert_eq!((st.epoch, st.last_seq(), st.last_offset()), (0, 3, 5));
    });
}

#[test]
fn duplicate_anywhere_in_the_five_batch_window() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let mut p = Producer::new(1);
        let mut q = Producer::new(2);
        let mut sent = Vec::new();
        for i in 0..6 {
            let b = p.next(2);
            let a = ok(&log, &b).await;
            sent.push((b, a));
            // another producer and plain batches interleave
            ok(&log, &q.next(1)).await;
            if i % 2 == 0 {
                ok(&log, &batch_builder::batch(1, 0, 1)).await;
            }
        }
        // 3 back from the newest
        let (b, a) = &sent[sent.len() - 3];
        assert_dup(&log, b, a).await;
        // the oldest still in the window (5 back) and the newest
        let (b, a) = &sent[1];
        assert_dup(&log, b, a).await;
        let (b, a) = &sent[5];
        assert_dup(&log, b, a).await;
        // 6 back: fell out of the window, an old sequence now
        assert_err(&log, &sent[0].0, 45).await;
        // same sequences, newer epoch: not a duplicate but a bump that must start at 0
        assert_err(&log, &idem(1, 1, 2, 2), 45).await;
    });
}

#[test]
fn gaps_and_overlaps_are_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        ok(&log, &idem(3, 0, 0, 2)).await; // seq 0..=1
        assert_err(&log, &idem(3, 0, 3, 1), 45).await; // gap
        assert_err(&log, &idem(3, 0, 1, 2), 45).await; // overlaps, not an exact retry
        assert_err(&log, &idem(3, 0, 0, 1), 45).await; // same first seq, other last seq
        ok(&log, &idem(3, 0, 2, 1)).await;
        // an unknown producer may start anywhere (Kafka: no state → any sequence)
        ok(&log, &idem(4, 5, 1_000, 1)).await;
        ok(&log, &idem(4, 5, 1_001, 1)).await;
        assert_err(&log, &idem(4, 5, 1_003, 1), 45).await;
    });
}

#[test]
fn epoch_bump_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let old = idem(9, 2, 0, 2);
        ok(&log, &old).await;
        ok(&log, &idem(9, 2, 2, 2)).await;
        // a new epoch must start at 0
        assert_err(&log, &idem(9, 3, 4, 1), 45).await;
        assert_err(&log, &idem(9, 3, 1, 1), 45).await;
        let bumped = ok(&log, &idem(9, 3, 0, 1)).await;
        let st = log.producer_state(9).unwrap();
        assert_eq!((st.epoch, st.last_seq(), st.batches().count()), (3, 0, 1));
        // the old epoch is fenced, even for a retry of one of its batches
        assert_err(&log, &old, 47).await;
        assert_err(&log, &idem(9, 2, 4, 1), 47).await;
        assert_dup(&log, &idem(9, 3, 0, 1), &bumped).await;
        ok(&log, &idem(9, 3, 1, 1)).await;
        // a jump of several epochs is a bump too
        ok(&log, &idem(9, 10, 0, 1)).await;
        assert_eq!(log.producer_state(9).unwrap().epoch, 10);
    });
}

#[test]
fn sequence_wraps_after_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let mut p = Producer {
            pid: 5,
            epoch: 1,
            seq: i32::MAX - 3,
        };
        ok(&log, &p.next(2)).await; // MAX-3 ..= MAX-2
        let straddling = p.next(3); // MAX-1, MAX, 0
        let a = ok(&log, &straddling).await;
        assert_eq!(log.producer_state(5).unwrap().last_seq(), 0);
        assert_dup(&log, &straddling, &a).await;
        assert_eq!(p.seq, 1);
        ok(&log, &p.next(1)).await;
        // exact wrap at a batch boundary: after a batch ending at MAX comes 0
        let mut q = Producer {
            pid: 6,
            epoch: 0,
            seq: i32::MAX - 1,
        };
        ok(&log, &q.next(2)).await; // MAX-1 ..= MAX
        assert_eq!(q.seq, 0);
        assert_err(&log, &idem(6, 0, 1, 1), 45).await;
        // sequences are never negative (Kafka's LogValidator: INVALID_RECORD)
        assert_err(&log, &idem(6, 0, i32::MIN, 1), 87).await;
        ok(&log, &q.next(1)).await;
    });
}

#[test]
fn batches_of_one_request_are_checked_in_order_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let set = concat(&[
            idem(1, 0, 0, 2),
            batch_builder::batch(1, 0, 1),
            idem(1, 0, 2, 3),
        ]);
        let a = log.append(set.clone(), 0).await.unwrap();
        assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 5, false));
        assert_eq!(log.producer_state(1).unwrap().last_seq(), 4);
        // second batch out of order: nothing of the set is written
        let bad = concat(&[idem(1, 0, 5, 1), idem(1, 0, 7, 1)]);
        let e = log.append(bad, 0).await.unwrap_err();
        assert_eq!(e.kafka_error_code(), 45);
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.producer_state(1).unwrap().last_seq(), 4);
        // a retried set: answered with the first duplicate found (Kafka's behaviour)
        let dup = log.append(set, 0).await.unwrap();
        assert!(dup.duplicate);
        assert_eq!((dup.base_offset, dup.last_offset), (0, 1));
        assert_eq!(log.log_end_offset(), 6);
    });
}

#[test]
fn transactional_and_malformed_idempotent_batches_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        let mut b = idem(1, 0, 0, 1);
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes()); // transactional
        batch_builder::fix_crc(&mut b);
        assert_err(&log, &b, 42).await;
        assert_err(&log, &idem(1, 0, -1, 1), 87).await; // producer id without a sequence
        assert!(log.producer_state(1).is_none());
    });
}

#[test]
fn duplicate_on_log_append_time_topic_returns_the_original_time() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let c = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..cfg()
        };
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        let b = idem(1, 0, 0, 2);
        let a = log.append(Bytes::from(b.clone()), 77_000).await.unwrap();
        assert_eq!(a.log_append_time, 77_000);
        let d = log.append(Bytes::from(b), 99_000).await.unwrap();
        assert!(d.duplicate);
        assert_eq!((d.base_offset, d.log_append_time), (0, 77_000));
        assert_eq!(log.log_end_offset(), 2);
    });
}

/// Append from producers 1 and 2 (interleaved with plain batches); return producer 1 and the
/// (batch, answer) of its batches.
async fn history(log: &PartitionLog, n: usize) -> (Producer, Producer, Vec<(Vec<u8>, AppendInfo)>) {
    let mut p = Producer::new(1);
    let mut q = Producer::new(2);
    let mut sent = Vec::new();
    for i in 0..n {
        let b = p.next(2);
        let a = ok(log, &b).await;
        sent.push((b, a));
        if i % 3 == 0 {
            ok(log, &q.next(1)).await;
            ok(log, &batch_builder::batch(2, 0, 10)).await;
        }
    }
    (p, q, sent)
}

/// After a restart: the last 5 batches of producer 1 are duplicates, older ones out of order,
/// and both producers continue in sequence (a gap is still refused: the state is known).
async fn assert_state_restored(
    log: &PartitionLog,
    p: &mut Producer,
    q: &mut Producer,
    sent: &[(Vec<u8>, AppendInfo)],
) {
    for (b, a) in &sent[sent.len() - 5..] {
        assert_dup(log, b, a).await;
    }
    assert_err(log, &sent[sent.len() - 6].0, 45).await;
    let skipped = idem(p.pid, p.epoch, p.seq + 1, 1);
    assert_err(log, &skipped, 45).await;
    assert_err(log, &idem(q.pid, q.epoch, q.seq + 5, 1), 45).await;
    ok(log, &p.next(1)).await;
    ok(log, &q.next(1)).await;
}

#[test]
fn state_survives_clean_restart_via_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (mut p, mut q, sent, leo) = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        let (p, q, sent) = history(&log, 12).await;
        log.close().await.unwrap();
        (p, q, sent, log.log_end_offset())
    });
    assert!(d.join(CLEAN_SHUTDOWN_MARKER).exists());
    assert!(snapshot_path(&d, leo).exists());
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), leo);
        assert_state_restored(&log, &mut p, &mut q, &sent).await;
    });
}

#[test]
fn state_survives_unclean_restart_via_log_replay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (mut p, mut q, sent) = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        history(&log, 12).await
        // no close(): a crash
    });
    assert!(list_snapshots(&d).unwrap().is_empty());
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        // the replay was saved as a snapshot at the log end
        assert_eq!(list_snapshots(&d).unwrap(), vec![log.log_end_offset()]);
        assert_state_restored(&log, &mut p, &mut q, &sent).await;
    });
}

#[test]
fn unclean_restart_after_rolls_replays_from_the_last_roll_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let c = LogConfig {
        segment_bytes: 600,
        ..cfg()
    };
    let (mut p, mut q, sent, bases) = run_local(async {
        let log = PartitionLog::open(&d, c.clone()).await.unwrap();
        let (p, q, sent) = history(&log, 25).await;
        (p, q, sent, log.segment_bases())
    });
    assert!(bases.len() >= 4, "{bases:?}");
    // one snapshot per roll, the newest 2 kept, at segment bases
    let snaps = list_snapshots(&d).unwrap();
    assert_eq!(snaps, bases[bases.len() - 2..].to_vec());
    run_local(async {
        let log = PartitionLog::open(&d, c).await.unwrap();
        assert_state_restored(&log, &mut p, &mut q, &sent).await;
    });
}

#[test]
fn corrupt_snapshot_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (mut p, mut q, sent, leo) = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        let (p, q, sent) = history(&log, 12).await;
        log.close().await.unwrap();
        (p, q, sent, log.log_end_offset())
    });
    let snap = snapshot_path(&d, leo);
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snap, &bytes).unwrap();
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        // replaced by a good one
        let good = std::fs::read(&snap).unwrap();
        assert_ne!(good, bytes);
        assert!(crate::log::producer_state::ProducerStateManager::decode_snapshot(&good).is_ok());
        assert_state_restored(&log, &mut p, &mut q, &sent).await;
    });
    // also a truncated (empty) snapshot file
    std::fs::write(snapshot_path(&d, 0), b"").unwrap();
    let mut p2 = Producer::new(1);
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert!(!snapshot_path(&d, 0).exists());
        // producer 1 is known: a fresh start at seq 0 is refused as out of order
        assert_err(&log, &p2.next(1), 45).await;
    });
}

#[test]
fn snapshot_past_the_recovered_end_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let first = idem(1, 0, 0, 2);
    let last = idem(1, 0, 2, 3);
    let (a_first, full_len) = run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        let a = ok(&log, &first).await;
        ok(&log, &last).await;
        log.close().await.unwrap();
        (a, log.size_bytes())
    });
    assert!(snapshot_path(&d, 5).exists());
    // The last batch is torn after all (the stop was not clean after all).
    std::fs::remove_file(d.join(CLEAN_SHUTDOWN_MARKER)).unwrap();
    let seg0 = segment_paths(&d, 0).0;
    assert_eq!(file_len(&seg0), full_len);
    let f = std::fs::OpenOptions::new().write(true).open(&seg0).unwrap();
    f.set_len(full_len - 7).unwrap();
    drop(f);
    run_local(async {
        let log = PartitionLog::open(&d, cfg()).await.unwrap();
        assert_eq!(log.log_end_offset(), 2);
        assert!(!snapshot_path(&d, 5).exists());
        // the lost batch is not a duplicate: its retry is written
        let a = ok(&log, &last).await;
        assert_eq!((a.base_offset, a.last_offset), (2, 4));
        assert_dup(&log, &first, &a_first).await;
        assert_dup(&log, &last, &a).await;
    });
}

#[test]
fn state_survives_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let c = LogConfig {
        segment_bytes: 600,
        ..cfg()
    };
    // Producer 2 writes only at the start; retention then deletes all of its batches.
    let (mut p, mut q, sent) = run_local(async {
        let log = PartitionLog::open(&d, c.clone()).await.unwrap();
        let mut q = Producer::new(2);
        ok(&log, &q.next(1)).await;
        ok(&log, &q.next(1)).await;
        let mut p = Producer::new(1);
        let mut sent = Vec::new();
        for _ in 0..30 {
            let b = p.next(2);
            let a = ok(&log, &b).await;
            sent.push((b, a));
        }
        assert!(log.segment_count() >= 5);
        log.set_config(LogConfig {
            retention_bytes: 1_000,
            ..c.clone()
        });
        assert!(log.apply_retention(0).await.unwrap() >= 3);
        let start = log.log_start_offset();
        assert!(start > 2, "producer 2's batches are gone");
        assert!(list_snapshots(&d).unwrap().iter().all(|s| *s >= start));
        assert!(!list_snapshots(&d).unwrap().is_empty());
        // in memory, producer 2 is still known
        assert_eq!(log.producer_state(2).unwrap().last_seq(), 1);
        assert_dup(&log, &sent[29].0, &sent[29].1).await;
        (p, q, sent)
    });
    // unclean restart: snapshot from the last roll + replay
    run_local(async {
        let log = PartitionLog::open(&d, c.clone()).await.unwrap();
        assert_eq!(log.producer_state(2).unwrap().last_seq(), 1);
        assert_dup(&log, &sent[29].0, &sent[29].1).await;
        assert_err(&log, &idem(2, 0, 5, 1), 45).await;
        ok(&log, &q.next(1)).await;
        ok(&log, &p.next(1)).await;
        log.close().await.unwrap();
    });
    // clean restart
    run_local(async {
        let log = PartitionLog::open(&d, c).await.unwrap();
        assert_eq!(log.producer_state(2).unwrap().last_seq(), 2);
        assert_err(&log, &idem(2, 0, 5, 1), 45).await;
        // still in producer 2's window though deleted by retention: answered as a duplicate
        // with its original offsets, as Kafka does
        let d = append(&log, &idem(2, 0, 0, 1)).await.unwrap();
        assert!(d.duplicate);
        assert_eq!(d.base_offset, 0);
        assert!(d.log_start_offset > 0);
        ok(&log, &q.next(1)).await;
        ok(&log, &p.next(1)).await;
    });
}

#[test]
fn producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let log = PartitionLog::open(dir.path(), cfg()).await.unwrap();
        ok(&log, &idem(1, 0, 0, 1)).await; // max timestamp 1000
        assert_eq!(log.expire_producers(1_500, 1_000).await.unwrap(), 0);
        assert_eq!(log.expire_producers(2_000, 1_000).await.unwrap(), 1);
        assert!(log.producer_states().is_empty());
        // unknown again: any sequence is accepted
        ok(&log, &idem(1, 0, 57, 1)).await;
    });
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn producer_ids_per_partition_are_bounded_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    run_local(async {
        let c = LogConfig {
            max_producer_ids: 100,
            ..cfg()
        };
        let log = PartitionLog::open(dir.path(), c).await.unwrap();
        // 1,000 producers, each with one batch; later producers have later timestamps.
        for pid in 0..1_000i64 {
            let b = batch_builder::idempotent_batch(1, 1_000 + pid, 5, pid, 0, 0);
            log.append_from_client(Bytes::from(b), 2_000).await.unwrap();
        }
        let states = log.producer_states();
        assert!(states.len() <= 100, "{} producers kept", states.len());
        assert!(states.len() >= 90);
        // The newest are the ones kept, and they still detect a retried batch.
        assert!(log.producer_state(999).is_some());
        assert!(log.producer_state(0).is_none());
        let retry = batch_builder::idempotent_batch(1, 1_999, 5, 999, 0, 0);
        let info = log
            .append_from_client(Bytes::from(retry), 2_000)
            .await
            .unwrap();
        assert!(info.duplicate);
    });
}
