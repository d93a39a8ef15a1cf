//! The metadata log: `<data.dir>/__metadata/metadata.log`, one JSON record per line, each line
//! written and fdatasync-ed before the change is applied anywhere.
//!
//! JSON lines keep the file inspectable by operators. A crash can tear only the last line; replay
//! stops at the first line that does not parse and truncates it, which loses only a change that was
//! never acknowledged. Metadata changes are rare, so this uses blocking std::fs on shard 0; the
//! stall is one small write + sync per topic operation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::MetadataRecord;

pub struct MetadataStore {
    path: PathBuf,
    file: File,
}

impl MetadataStore {
    /// Opens (creating if needed) the log under `data_dir` and returns it with every valid record.
    pub fn open(data_dir: &Path) -> io::Result<(MetadataStore, Vec<MetadataRecord>)> {
        let dir = data_dir.join("__metadata");
        fs::create_dir_all(&dir).map_err(|e| with_path(e, "creating", &dir))?;
        let path = dir.join("metadata.log");
        let mut records = Vec::new();
        let mut valid_len = 0u64;
        if path.exists() {
            let f = File::open(&path).map_err(|e| with_path(e, "opening", &path))?;
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| with_path(e, "reading", &path))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                match serde_json::from_slice::<MetadataRecord>(&line) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        tracing::warn!(
                            "metadata log {}: stopping replay at a bad record: {e}",
                            path.display()
                        );
                        break;
                    }
                }
                valid_len += n as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| with_path(e, "opening", &path))?;
        // Drop a torn or corrupt tail so new records follow the last good one.
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)
                .map_err(|e| with_path(e, "truncating", &path))?;
        }
        Ok((MetadataStore { path, file }, records))
    }

    /// Appends records durably (written and fdatasync-ed) before returning.
    pub fn append(&mut self, records: &[MetadataRecord]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        // On any failure, cut the file back to where it was: a torn line left behind would end
        // replay there and silently drop every record appended after it.
        let before = self
            .file
            .metadata()
            .map_err(|e| with_path(e, "reading size of", &self.path))?
            .len();
        let written = self
            .file
            .write_all(&buf)
            .map_err(|e| with_path(e, "writing", &self.path))
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(|e| with_path(e, "syncing", &self.path))
            });
        if written.is_err() {
            let _ = self.file.set_len(before);
        }
        written
    }
}

impl MetadataStore {
    /// Replaces the whole log with `records` (a snapshot of the current state): written to
    /// `metadata.log.tmp`, fdatasync-ed, renamed over the log, and the directory synced, so a
    /// crash at any point leaves either the old log or the new one, never a mix.
    pub fn rewrite(&mut self, records: &[MetadataRecord]) -> io::Result<()> {
        let tmp = self.path.with_extension("log.tmp");
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        {
            let mut f = File::create(&tmp).map_err(|e| with_path(e, "creating", &tmp))?;
            f.write_all(&buf)
                .and_then(|()| f.sync_data())
                .map_err(|e| with_path(e, "writing", &tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| with_path(e, "renaming", &tmp))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| with_path(e, "syncing", dir))?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| with_path(e, "opening", &self.path))?;
        Ok(())
    }
}

fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TopicMeta;
    use std::collections::BTreeMap;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::CreateTopic {
            topic: TopicMeta {
                name: name.into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![0, 1],
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
        let mut image = MetadataImage::default();
        history.iter().for_each(|r| image.apply(r));
        let snap = image.snapshot_records();
        assert_eq!(snap.len(), 2 + 25);
        s.rewrite(&snap).unwrap();
        // Appends go on after the snapshot.
        s.append(&[topic("late")]).unwrap();
        drop(s);
        let (_, replayed) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(replayed.len(), snap.len() + 1);
        let mut again = MetadataImage::default();
        replayed[..snap.len()].iter().for_each(|r| again.apply(r));
        assert_eq!(again.snapshot_records(), snap);
        assert!(!dir.path().join("__metadata/metadata.log.tmp").exists());
    }
}
