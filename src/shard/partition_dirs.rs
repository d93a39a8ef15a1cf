//! Partition directories on disk (`<data.dir>/<topic>-<partition>`): taking a deleted
//! partition's directory out of the way, and what start-up does with directories no topic owns.
//!
//! A deleted partition's directory is first renamed to `<dir>.<uuid>-delete` (one io_uring
//! `renameat`, atomic), then removed on the blocking-thread pool. The rename is what makes a
//! DeleteTopics followed at once by a CreateTopics of the same name safe: the new topic opens a
//! fresh directory, and the slow removal can only ever touch the old one. (Kafka renames to
//! `-delete` the same way.)
//!
//! At start, before any partition is opened: every `-delete` directory is removed (a crash
//! interrupted its removal); a partition directory of a topic the metadata log shows deleted
//! (the crash came between the commit and the rename) is removed too; any other directory that
//! looks like a partition but belongs to no topic in the metadata is renamed `<dir>.<uuid>-stray`
//! and kept, with a warning: the metadata, not the disk, says what exists, but data nobody
//! asked to delete is left for an operator to look at (Kafka 3.7+ does the same with strays).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::metadata::image::MetadataImage;
use crate::runtime::file::{blocking, rename};

const DELETE_SUFFIX: &str = "-delete";
const STRAY_SUFFIX: &str = "-stray";

/// `<data_dir>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// `(topic, partition)` of a directory name `<topic>-<partition>`, if it is one.
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, p) = name.rsplit_once('-')?;
    if topic.is_empty() || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, p.parse().ok()?))
}

fn renamed(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{}{suffix}", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

/// Takes a deleted partition's directory out of the way at once and removes it in the
/// background. A directory that is already gone is fine.
pub async fn delete_partition_dir(dir: &Path) -> std::io::Result<()> {
    let doomed = renamed(dir, DELETE_SUFFIX);
    match rename(dir, &doomed).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    crate::runtime::spawn(async move {
        let shown = doomed.display().to_string();
        if let Err(e) = blocking(move || remove_tree(&doomed)).await {
            tracing::error!("removing {shown}: {e}");
        }
    });
    Ok(())
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What start-up did to the data directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub removed: Vec<String>,
    pub strays: Vec<String>,
}

/// Start-up cleanup of `data_dir` against the replayed metadata (see the module docs).
/// `deleted`: topics the metadata log shows deleted and not created again. Blocking (directory
/// listing and removal): run it with [`blocking`].
pub fn clean_data_dir(
    data_dir: &Path,
    image: &MetadataImage,
    deleted: &HashSet<String>,
) -> std::io::Result<Cleanup> {
    let mut out = Cleanup::default();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(DELETE_SUFFIX) {
            remove_tree(&path)?;
            out.removed.push(name);
            continue;
        }
        if name.ends_with(STRAY_SUFFIX) {
            continue;
        }
        let Some((topic, p)) = parse_partition_dir(&name) else {
            continue;
        };
        let owned = image
            .topic(topic)
            .is_some_and(|t| usize::try_from(p).is_ok_and(|p| p < t.partitions.len()));
        if owned {
            continue;
        }
        if image.topic(topic).is_none() && deleted.contains(topic) {
            remove_tree(&path)?;
            out.removed.push(name);
        } else {
            let to = renamed(&path, STRAY_SUFFIX);
            std::fs::rename(&path, &to)?;
            tracing::warn!(
                "{} belongs to no topic in the metadata: kept as {}",
                path.display(),
                to.display()
            );
            out.strays.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::TopicMeta;
    use crate::metadata::MetadataRecord;

    #[test]
    fn partition_dir_names_parse() {
        assert_eq!(parse_partition_dir("orders-12"), Some(("orders", 12)));
        assert_eq!(parse_partition_dir("a-b-0"), Some(("a-b", 0)));
        assert_eq!(parse_partition_dir("__metadata"), None);
        assert_eq!(parse_partition_dir("t-0.abc-delete"), None);
        assert_eq!(parse_partition_dir("-3"), None);
    }

    #[test]
    fn start_up_removes_deleted_and_keeps_strays_aside() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in [
            "live-0",
            "live-1",
            "live-2",
            "gone-0",
            "old-0.0123-delete",
            "unknown-0",
            "__metadata",
        ] {
            std::fs::create_dir(d.join(n)).unwrap();
            std::fs::write(d.join(n).join("00000000000000000000.log"), b"x").unwrap();
        }
        let mut image = MetadataImage::default();
        let t = TopicMeta {
            name: "live".into(),
            id: uuid::Uuid::new_v4(),
            partitions: vec![crate::metadata::PartitionMeta::single(1); 2],
            configs: Default::default(),
        };
        image.apply(&MetadataRecord::CreateTopic { topic: t });
        let deleted: HashSet<String> = ["gone".to_string()].into();
        let c = clean_data_dir(d, &image, &deleted).unwrap();
        let mut removed = c.removed.clone();
        removed.sort();
        assert_eq!(removed, vec!["gone-0", "old-0.0123-delete"]);
        let mut strays = c.strays.clone();
        strays.sort();
        assert_eq!(strays, vec!["live-2", "unknown-0"]);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 5);
        assert_eq!(&left[..3], &["__metadata", "live-0", "live-1"]);
        assert!(left[3].starts_with("live-2.") && left[3].ends_with("-stray"));
        assert!(left[4].starts_with("unknown-0.") && left[4].ends_with("-stray"));
        // Strays are left alone on the next start.
        assert_eq!(
            clean_data_dir(d, &image, &deleted).unwrap(),
            Cleanup::default()
        );
    }
}
