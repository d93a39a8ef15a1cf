//! The metadata log of shardlog before the metadata quorum: `<data.dir>/__metadata/metadata.log`,
//! one JSON record per line (`json_lines`). Read once, at the first start of a newer shardlog,
//! to become the quorum's first snapshot (`controller::bootstrap`); lines of the oldest format
//! read as [`super::legacy::StoredRecord::Legacy`].

use std::io;
use std::path::Path;

use super::json_lines::JsonLinesLog;
use super::legacy::StoredRecord;

/// Every valid record of the log under `data_dir` (a torn or corrupt tail ends the replay and
/// is cut off, as it always was).
pub fn read(data_dir: &Path) -> io::Result<Vec<StoredRecord>> {
    let (_, records) = JsonLinesLog::open(&data_dir.join("__metadata").join("metadata.log"))?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{MetadataRecord, PartitionMeta, TopicMeta};
    use std::collections::BTreeMap;

    #[test]
    fn replays_what_was_written_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let topic = MetadataRecord::CreateTopic {
            topic: TopicMeta {
                name: "a".into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![PartitionMeta::single(1); 2],
                configs: BTreeMap::new(),
            },
        };
        let mut text = serde_json::to_string(&topic).unwrap();
        text.push_str("\n{\"type\":\"DeleteTopic\",\"name\":\"a\"}\n{\"type\":\"DeleteTo");
        std::fs::create_dir_all(dir.path().join("__metadata")).unwrap();
        std::fs::write(dir.path().join("__metadata/metadata.log"), text).unwrap();
        let recs = read(dir.path()).unwrap();
        assert_eq!(
            recs,
            vec![
                StoredRecord::Current(topic),
                StoredRecord::Current(MetadataRecord::DeleteTopic { name: "a".into() })
            ]
        );
    }
}
