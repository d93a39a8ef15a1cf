//! This node's placement log: `<data.dir>/__metadata/placement.log`, one [`PlacementRecord`] per
//! JSON line (the format and crash rules of `metadata::json_lines`), rewritten as a snapshot at
//! start when its history has grown long.

use std::io;
use std::path::Path;

use super::placement::{Placement, PlacementRecord};
use crate::metadata::json_lines::JsonLinesLog;

/// Records of history the log may carry beyond twice its snapshot before start-up rewrites it.
const COMPACT_SLACK: usize = 1_000;

pub struct PlacementLog {
    log: JsonLinesLog,
    /// Records in the file (to decide when to compact).
    records: usize,
}

impl PlacementLog {
    /// Opens (creating if needed) the log under `data_dir`, with the placement it holds.
    pub fn open(data_dir: &Path) -> io::Result<(PlacementLog, Placement)> {
        let path = data_dir.join("__metadata").join("placement.log");
        let (log, records): (_, Vec<PlacementRecord>) = JsonLinesLog::open(&path)?;
        let mut placement = Placement::default();
        records.iter().for_each(|r| placement.apply(r));
        let records = records.len();
        Ok((PlacementLog { log, records }, placement))
    }

    /// Appends records durably.
    pub fn append(&mut self, records: &[PlacementRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.log.append(records)?;
        self.records += records.len();
        Ok(())
    }

    /// Replaces the file with `placement`'s snapshot when the history is much longer than it.
    pub fn compact_if_long(&mut self, placement: &Placement) -> io::Result<()> {
        let snapshot = placement.snapshot_records();
        if self.records > 2 * snapshot.len() + COMPACT_SLACK {
            self.replace(placement)?;
        }
        Ok(())
    }

    /// Replaces the file with `placement`'s snapshot (atomically).
    pub fn replace(&mut self, placement: &Placement) -> io::Result<()> {
        let snapshot = placement.snapshot_records();
        self.log.rewrite(&snapshot)?;
        self.records = snapshot.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn placement_survives_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, pl) = PlacementLog::open(dir.path()).unwrap();
        assert_eq!(pl, Placement::default());
        let mut expect = Placement::default();
        for i in 0..3000u128 {
            let place = PlacementRecord::Place {
                topic: Uuid::from_u128(i),
                partitions: vec![(0, (i % 2) as usize)],
            };
            let mut rs = vec![place];
            if i % 3 != 0 {
                rs.push(PlacementRecord::Forget {
                    topic: Uuid::from_u128(i),
                });
            }
            rs.iter().for_each(|r| expect.apply(r));
            log.append(&rs).unwrap();
        }
        drop(log);
        let (mut log, pl) = PlacementLog::open(dir.path()).unwrap();
        assert_eq!(pl, expect);
        log.compact_if_long(&pl).unwrap();
        assert_eq!(log.records, 1000);
        drop(log);
        let (_, again) = PlacementLog::open(dir.path()).unwrap();
        assert_eq!(again, expect);
    }
}
