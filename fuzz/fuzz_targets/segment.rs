//! A partition directory as recovery finds it after a crash: the input is cut into a segment's
//! `.log`, `.index` and `.timeindex` files (two length bytes each for the index files), the log
//! is opened (recovery: sanity checks, scans, truncation or an offline error), then every batch
//! is read back and a lookup by time is made.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::log::segment::segment_paths;
use shardlog::log::{LogConfig, PartitionLog};
use shardlog::runtime::file::run_local;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let ix = usize::from(u16::from_be_bytes([data[0], data[1]])) % (data.len() - 3);
    let tx = usize::from(u16::from_be_bytes([data[2], data[3]])) % (data.len() - 3 - ix + 1);
    let rest = &data[4..];
    let (index, rest) = rest.split_at(ix.min(rest.len()));
    let (time_index, log) = rest.split_at(tx.min(rest.len()));
    let Ok(dir) = tempfile::tempdir() else { return };
    let (l, x, t) = segment_paths(dir.path(), 0);
    if std::fs::write(&l, log).is_err()
        || std::fs::write(&x, index).is_err()
        || std::fs::write(&t, time_index).is_err()
    {
        return;
    }
    run_local(async {
        let config = LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let Ok(log) = PartitionLog::open(dir.path(), config).await else {
            return;
        };
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            match log.read(offset, 1 << 16, true).await {
                Ok(b) if !b.is_empty() => match shardlog::log::batch::BatchHeader::parse(&b) {
                    Ok(h) => offset = h.next_offset().max(offset + 1),
                    Err(_) => break,
                },
                _ => break,
            }
        }
        let _ = log.offset_for_timestamp(0).await;
        let _ = log.max_timestamp_and_offset().await;
    });
});
