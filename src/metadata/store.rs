//! The metadata log: `<data.dir>/__metadata/metadata.log`, one JSON record per line, each line
//! written and fdatasync-ed before the change is applied anywhere. The file format and its crash
//! rules are [`JsonLinesLog`]'s; lines an older shardlog wrote are read as
//! [`super::legacy::StoredRecord::Legacy`] and converted at start.

use std::io;
use std::path::Path;

use super::json_lines::JsonLinesLog;
use super::legacy::StoredRecord;
use super::MetadataRecord;

pub struct MetadataStore {
    log: JsonLinesLog,
}

impl MetadataStore {
    /// Opens (creating if needed) the log under `data_dir` and returns it with every valid record.
    pub fn open(data_dir: &Path) -> io::Result<(MetadataStore, Vec<StoredRecord>)> {
        let (log, records) = JsonLinesLog::open(&data_dir.join("__metadata").join("metadata.log"))?;
        Ok((MetadataStore { log }, records))
    }

    /// Appends records durably (written and fdatasync-ed) before returning.
    pub fn append(&mut self, records: &[MetadataRecord]) -> io::Result<()> {
        self.log.append(records)
    }

    /// Replaces the whole log with `records` (a snapshot of the current state), atomically.
    pub fn rewrite(&mut self, records: &[MetadataRecord]) -> io::Result<()> {
        self.log.rewrite(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionMeta, TopicMeta};
    use std::collections::BTreeMap;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn current(stored: Vec<StoredRecord>) -> Vec<MetadataRecord> {
        stored
            .into_iter()
            .map(|s| match s {
                StoredRecord::Current(r) => r,
                StoredRecord::Legacy(l) => panic!("unexpected legacy record {l:?}"),
            })
            .collect()
    }

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::CreateTopic {
            topic: TopicMeta {
                name: name.into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![PartitionMeta::single(1); 2],
                configs: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn replays_what_was_appended_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, recs) = MetadataStore::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        s.append(&[topic("a"), topic("b")]).unwrap();
        drop(s);
        let path = dir.path().join("__metadata/metadata.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"DeleteTo").unwrap();
        drop(f);
        let (mut s, recs) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 2);
        s.append(&[MetadataRecord::DeleteTopic { name: "a".into() }])
            .unwrap();
        drop(s);
        let (_, recs) = MetadataStore::open(dir.path()).unwrap();
        let recs = current(recs);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2], MetadataRecord::DeleteTopic { name: "a".into() });
    }

    #[test]
    fn rewrite_replaces_the_history_with_a_snapshot_that_replays_to_the_same_image() {
        use crate::metadata::image::MetadataImage;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = MetadataStore::open(dir.path()).unwrap();
        s.append(&[MetadataRecord::ClusterId { id: "c".into() }])
            .unwrap();
        for i in 0..50 {
            s.append(&[topic(&format!("t{i}"))]).unwrap();
            if i % 2 == 0 {
                s.append(&[MetadataRecord::DeleteTopic {
                    name: format!("t{i}"),
                }])
                .unwrap();
            }
        }
        s.append(&[MetadataRecord::ProducerIdBlock { end: 3000 }])
            .unwrap();
        let (mut s, history) = MetadataStore::open(dir.path()).unwrap();
        let history = current(history);
        let mut image = MetadataImage::default();
        history.iter().for_each(|r| image.apply(r));
        let snap = image.snapshot_records();
        assert_eq!(snap.len(), 2 + 25);
        s.rewrite(&snap).unwrap();
        // Appends go on after the snapshot.
        s.append(&[topic("late")]).unwrap();
        drop(s);
        let (_, replayed) = MetadataStore::open(dir.path()).unwrap();
        let replayed = current(replayed);
        assert_eq!(replayed.len(), snap.len() + 1);
        let mut again = MetadataImage::default();
        replayed[..snap.len()].iter().for_each(|r| again.apply(r));
        assert_eq!(again.snapshot_records(), snap);
        assert!(!dir.path().join("__metadata/metadata.log.tmp").exists());
    }
}
