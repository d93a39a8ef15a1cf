//! Opening a partition directory: find the segments, check or rebuild their indexes, validate
//! the tail, truncate what a crash tore, and compute the log end offset.
//!
//! What is checked, and why:
//! - Every segment: the offset index and time index get Kafka's sanity check (entry-size
//!   multiple, monotonic, positions inside the log) plus a probe of the batch at the last
//!   offset-index entry (its base offset must match). A failing index is rebuilt from the log
//!   ("rebuild, don't checksum").
//! - Every segment: the batches after the last index entry are walked (headers, cheap) to find
//!   the exact end, next offset and max timestamp; a torn tail there is truncated.
//! - After an unclean shutdown (no marker), the *last* segment is fully re-validated, batch by
//!   batch, length and CRC32C, because that is where writes were in flight. Older segments are
//!   checked at their tail with CRCs too.
//! - Only what a crash can tear is truncated. A torn write leaves bytes that fail the framing or
//!   the CRC, and only after an unclean stop: the first such batch ends the segment, everything
//!   after it is truncated (appends are sequential, so later bytes were written after it), and
//!   if that happens in a segment that is not the last one, the later segments are removed too,
//!   as Kafka does. That loses nothing acknowledged: every sync (acks=-1, flush.*) syncs older
//!   segments first, so a torn older segment means no sync completed after it.
//! - What a crash cannot produce is never "repaired" by deleting data: a complete batch with a
//!   valid CRC whose offsets do not follow on (or leave the segment's u32 range), a gap between
//!   segments, or any invalid batch after a clean shutdown. The partition then stays offline
//!   (KAFKA_STORAGE_ERROR to clients, like Kafka's log-directory failure) and the error names
//!   the file and the position, for an operator to look at; other partitions are unaffected.
//! - Nothing here panics on file contents; bad bytes become truncation or an offline partition,
//!   bad indexes a rebuild.

use crate::log::batch::BatchHeader;
use crate::log::error::LogError;
use crate::log::segment::{segment_paths, ScanEnd, Segment};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Name of the clean-shutdown marker in a partition directory.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".shardlog_clean_shutdown";

/// Base offsets of the segments in `dir`, ascending. Index files without a `.log` are
/// orphans (a crash during deletion) and are removed; unknown files are ignored.
///
/// Uses `std::fs` (a directory listing has no io_uring equivalent in glommio): call it on the
/// blocking pool, as [`recover`] does through [`list_segments`].
pub fn list_segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match ext {
            "log" => logs.push(base),
            "index" | "timeindex" => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            tracing::warn!(path = %path.display(), "removing orphan index file");
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(logs)
}

/// What a walk of a segment established.
struct Walk {
    end: ScanEnd,
    /// A whole, CRC-valid batch that breaks the offset order or the u32 range: not something a
    /// crash produces (position, reason).
    inconsistent: Option<(u64, String)>,
    next_offset: i64,
    max_ts: i64,
    offset_of_max: i64,
    /// Index entries recomputed for the walked range.
    index: Vec<(i64, u64)>,
    time_index: Vec<(i64, i64)>,
}

/// Walk `seg` from `from` (a batch boundary whose batch has base offset >= `expect_next`),
/// checking offsets increase, and optionally CRCs; recompute the index entries appends would
/// have created from there (`from` itself is taken as already indexed).
async fn walk(
    seg: &Segment,
    from: u64,
    file_size: u64,
    expect_next: i64,
    init_max: (i64, i64),
    validate_crc: bool,
    index_interval_bytes: u32,
) -> Result<Walk, LogError> {
    let base = seg.base_offset();
    let mut next = expect_next;
    let (mut max_ts, mut offset_of_max) = init_max;
    let mut index = Vec::new();
    let mut time_index = Vec::new();
    let mut since_index: u64 = 0;
    let mut bad: Option<(u64, String)> = None;
    let end = seg
        .scan(from, file_size, validate_crc, |pos, h: &BatchHeader| {
            if h.base_offset < next || h.last_offset() < h.base_offset {
                bad = Some((
                    pos,
                    format!(
                        "batch offsets {}..={} do not follow {next}",
                        h.base_offset,
                        h.last_offset()
                    ),
                ));
                return false;
            }
            if h.last_offset() - base > i64::from(u32::MAX) || pos > u64::from(u32::MAX) {
                bad = Some((pos, "batch beyond the segment's u32 range".into()));
                return false;
            }
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                offset_of_max = h.base_offset;
            }
            if since_index > u64::from(index_interval_bytes) {
                index.push((h.base_offset, pos));
                if time_index.last().is_none_or(|&(t, _)| max_ts > t) {
                    time_index.push((max_ts, offset_of_max));
                }
                since_index = 0;
            }
            since_index += h.total_len() as u64;
            next = h.next_offset();
            true
        })
        .await?;
    let (end, inconsistent) = match (end, bad) {
        (ScanEnd::Stopped(pos, _), Some(bad)) => (ScanEnd::End(pos), Some(bad)),
        (e, _) => (e, None),
    };
    Ok(Walk {
        end,
        inconsistent,
        next_offset: next,
        max_ts,
        offset_of_max,
        index,
        time_index,
    })
}

/// The error that keeps a partition offline: log contents no crash can produce.
fn not_a_crash(path: &Path, pos: u64, reason: &str) -> LogError {
    LogError::Corrupt(format!(
        "{} at byte {pos}: {reason}. This is not a torn write, so nothing is truncated or \
         deleted: the partition stays offline until the file is repaired or removed",
        path.display()
    ))
}

fn file_age_base_ms(path: &Path, now_ms: i64) -> i64 {
    // The segment's age for segment.ms: its creation time if the filesystem records it,
    // else its last modification. Blocking metadata call, once per segment at open.
    std::fs::metadata(path)
        .ok()
        .and_then(|m| m.created().or_else(|_| m.modified()).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(now_ms)
}

/// The segments of `dir` (base offset, age base for `segment.ms`), listed on the blocking-thread
/// pool: `read_dir` and `stat` would otherwise stall the shard, and partitions are opened while
/// it serves others (CreateTopics, CreatePartitions).
async fn list_segments(dir: &Path, now_ms: i64) -> Result<Vec<(i64, i64)>, LogError> {
    let dir = dir.to_path_buf();
    crate::runtime::file::blocking(move || {
        let bases = list_segment_bases(&dir)?;
        Ok(bases
            .into_iter()
            .map(|b| (b, file_age_base_ms(&segment_paths(&dir, b).0, now_ms)))
            .collect())
    })
    .await
}

/// Open and recover every segment of `dir`. Returns the segments in base-offset order (at
/// least one: an empty log gets segment 0 — or `first_base` if given).
pub(crate) async fn recover(
    dir: &Path,
    clean: bool,
    index_interval_bytes: u32,
    now_ms: i64,
) -> Result<Vec<Segment>, LogError> {
    let listed = list_segments(dir, now_ms).await?;
    let bases: Vec<i64> = listed.iter().map(|(b, _)| *b).collect();
    let mut out: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
    let mut i = 0;
    while i < bases.len() {
        let (base, age_base) = listed[i];
        let is_last = i + 1 == bases.len();
        let seg = Segment::open_files(dir, base).await?;
        let file_size = seg.size();

        // Sanity checks; a failing one means a full rebuild of both indexes.
        let mut sane = match (seg.index.sane(file_size), seg.time_index.sane()) {
            (Ok(()), Ok(())) => true,
            (a, b) => {
                tracing::warn!(segment = base, index = ?a.err(), time_index = ?b.err(),
                    "index failed its sanity check; rebuilding");
                false
            }
        };
        if sane {
            if let Some((offset, pos)) = seg.index.last() {
                let ok = seg
                    .header_at(pos)
                    .await
                    .is_some_and(|h| h.base_offset == offset);
                if !ok {
                    tracing::warn!(
                        segment = base,
                        "last index entry does not point at its batch; rebuilding"
                    );
                    sane = false;
                }
            }
        }

        let mut full = !sane || (!clean && is_last);
        let mut truncated_at: Option<u64> = None;
        let walk_result = loop {
            let (from, expect, init) = if full {
                (0, base, (-1, -1))
            } else {
                let (o, p) = seg.index.last().unwrap_or((base, 0));
                let init = seg.time_index.last().unwrap_or((-1, -1));
                (p, o, init)
            };
            let w = walk(
                &seg,
                from,
                file_size,
                expect,
                init,
                !clean || full,
                index_interval_bytes,
            )
            .await?;
            if let Some((pos, reason)) = &w.inconsistent {
                return Err(not_a_crash(seg.log_path(), *pos, reason));
            }
            match &w.end {
                ScanEnd::Invalid { pos, reason } if !full => {
                    // Truncation may invalidate index entries: redo it as a full rebuild.
                    tracing::warn!(
                        segment = base,
                        pos,
                        reason,
                        "invalid batch in the tail; rescanning"
                    );
                    full = true;
                    continue;
                }
                ScanEnd::Invalid { pos, reason } if clean => {
                    // The log was synced and closed: no write was in flight to tear.
                    return Err(not_a_crash(
                        seg.log_path(),
                        *pos,
                        &format!("{reason}, after a clean shutdown"),
                    ));
                }
                ScanEnd::Invalid { pos, reason } => {
                    tracing::warn!(
                        segment = base,
                        pos,
                        reason,
                        file_size,
                        "truncating torn or corrupt segment tail"
                    );
                    truncated_at = Some(*pos);
                }
                _ => {}
            }
            break w;
        };

        let size = match (&walk_result.end, truncated_at) {
            (_, Some(p)) => p,
            (ScanEnd::End(p), None) => *p,
            (_, None) => file_size,
        };
        if size < file_size {
            seg.truncate_log(size).await?;
        }
        if full {
            seg.index.replace(&walk_result.index).await?;
            seg.time_index.replace(&walk_result.time_index).await?;
        } else {
            // The tail walk also recomputed the entries an index lost or never got (missing
            // file, crash before the index write): add them, so a missing index is rebuilt
            // without a second pass. Pushes that would break monotonicity are ignored.
            for &(o, p) in &walk_result.index {
                seg.index.push(o, p);
            }
            for &(t, o) in &walk_result.time_index {
                seg.time_index.maybe_push(t, o);
            }
            seg.index.flush().await?;
            seg.time_index.flush().await?;
        }
        let roll_base = if size == 0 { now_ms } else { age_base };
        seg.set_recovered(
            size,
            walk_result.next_offset,
            walk_result.max_ts,
            walk_result.offset_of_max,
            roll_base,
        );

        if let Some(next_base) = bases.get(i + 1) {
            // A segment that ends short of the next one's base lost its tail (e.g. power loss
            // kept the next segment's creation but not these bytes). Offsets in the gap are gone:
            // treat it as a truncation, so later segments (and producer snapshots past the new
            // end, which would answer retries of lost batches as duplicates) are dropped.
            if truncated_at.is_none() && seg.next_offset() != *next_base && clean {
                return Err(not_a_crash(
                    seg.log_path(),
                    size,
                    &format!(
                        "the segment ends at offset {} but the next one starts at {next_base}, \
                         after a clean shutdown",
                        seg.next_offset()
                    ),
                ));
            }
            if truncated_at.is_none() && seg.next_offset() != *next_base {
                tracing::warn!(
                    segment = base,
                    next_offset = seg.next_offset(),
                    next_segment = next_base,
                    "segment ends before the next segment's base: dropping later segments"
                );
                truncated_at = Some(size);
            }
            if truncated_at.is_some() {
                // Offsets after the truncation point are gone; later segments would leave a
                // hole, so they go too (Kafka does the same).
                for later in &bases[i + 1..] {
                    tracing::warn!(segment = later, "removing segment after a truncated one");
                    let (l, x, t) = segment_paths(dir, *later);
                    for p in [l, x, t] {
                        // io_uring unlink; an absent file counts as removed.
                        crate::runtime::file::remove_file(&p).await?;
                    }
                }
                out.push(seg);
                break;
            }
        }
        out.push(seg);
        i += 1;
    }
    if out.is_empty() {
        out.push(Segment::create(dir, 0, now_ms).await?);
    }
    Ok(out)
}
