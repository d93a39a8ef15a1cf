//! `<data.dir>/meta.properties`: which node and cluster a data directory belongs to, in Kafka's
//! format (`version`, `cluster.id`, `node.id`), written once and checked at every start.
//!
//! The cluster metadata names replicas by node id, so a data directory started again under
//! another `node.id` would host none of its own partitions; Kafka refuses such a start, and so
//! does this. As in Kafka, the file is where the cluster id comes from once it exists: a metadata
//! log that lost its cluster id record (or never wrote it before a crash) takes it from here, and
//! only a metadata log naming another cluster is refused.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::runtime::file::replace_file_now;

const FILE: &str = "meta.properties";

/// Checks `data_dir`'s `meta.properties` against `node_id` and returns the cluster id it holds,
/// `None` if there is no file yet. Errors if the file belongs to another node or is incomplete.
/// Blocking: run it on the blocking-thread pool.
pub fn stored_cluster_id(data_dir: &Path, node_id: i32) -> io::Result<Option<String>> {
    let path = data_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let props = parse(&text);
    let stored_node = props.get("node.id").map(String::as_str);
    if stored_node != Some(node_id.to_string().as_str()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: stored node.id {} does not match the configured node.id {node_id}; \
                 this data directory belongs to another node",
                path.display(),
                stored_node.unwrap_or("(none)")
            ),
        ));
    }
    match props.get("cluster.id").filter(|c| !c.is_empty()) {
        Some(id) => Ok(Some(id.clone())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no cluster.id", path.display()),
        )),
    }
}

/// Checks `data_dir`'s `meta.properties` against `node_id` and returns the cluster id to use.
/// `in_metadata`: the cluster id the metadata log holds, if any; `new_id()` makes one when
/// neither the file nor the metadata has one. Writes the file (durably) if there is none.
/// Blocking: run it on the blocking-thread pool.
pub fn settle(
    data_dir: &Path,
    node_id: i32,
    in_metadata: Option<&str>,
    new_id: impl FnOnce() -> String,
) -> io::Result<String> {
    let Some(stored_cluster) = stored_cluster_id(data_dir, node_id)? else {
        let id = in_metadata.map_or_else(new_id, str::to_string);
        write(data_dir, node_id, &id)?;
        return Ok(id);
    };
    match in_metadata {
        Some(id) if id != stored_cluster => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: stored cluster.id {stored_cluster} does not match the metadata log's cluster \
                 id {id}; this data directory belongs to another cluster",
                data_dir.join(FILE).display()
            ),
        )),
        _ => Ok(stored_cluster),
    }
}

fn write(data_dir: &Path, node_id: i32, cluster_id: &str) -> io::Result<()> {
    let text =
        format!("#\n#Written by shardlog\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    replace_file_now(&data_dir.join(FILE), text.as_bytes())
}

/// Java properties, the subset Kafka writes: `key=value` lines, `#` comments.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> String {
        "new".to_string()
    }

    #[test]
    fn written_once_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(settle(dir.path(), 3, Some("abc"), fresh).unwrap(), "abc");
        assert_eq!(settle(dir.path(), 3, Some("abc"), fresh).unwrap(), "abc");
        let e = settle(dir.path(), 4, Some("abc"), fresh).unwrap_err();
        assert!(e.to_string().contains("stored node.id 3"), "{e}");
        let e = settle(dir.path(), 3, Some("xyz"), fresh).unwrap_err();
        assert!(e.to_string().contains("another cluster"), "{e}");
    }

    #[test]
    fn the_file_supplies_the_cluster_id_a_metadata_log_lacks() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(settle(dir.path(), 1, None, fresh).unwrap(), "new");
        // The metadata log lost its ClusterId record (or a crash came before it was written).
        assert_eq!(
            settle(dir.path(), 1, None, || "other".to_string()).unwrap(),
            "new"
        );
    }

    #[test]
    fn reads_kafkas_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "#\n#Mon Dec 07 12:00:00 UTC 2026\nnode.id=1\ndirectory.id=x\nversion=1\ncluster.id=Q1\n",
        )
        .unwrap();
        assert_eq!(settle(dir.path(), 1, Some("Q1"), fresh).unwrap(), "Q1");
    }
}
