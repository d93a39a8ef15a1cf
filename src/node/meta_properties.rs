//! `<data.dir>/meta.properties`: which node and cluster a data directory belongs to, in Kafka's
//! format (`version`, `cluster.id`, `node.id`), written once and checked at every start.
//!
//! The cluster metadata names replicas by node id, so a data directory started again under
//! another `node.id` would host none of its own partitions; Kafka refuses such a start, and so
//! does this (as it does a directory from another cluster).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use crate::runtime::file::sync_dir_now;

const FILE: &str = "meta.properties";

/// Checks `data_dir`'s `meta.properties` against `node_id` and `cluster_id`, writing it (durably)
/// if there is none. Blocking: run it on the blocking-thread pool.
pub fn check_or_write(data_dir: &Path, node_id: i32, cluster_id: &str) -> io::Result<()> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
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
            let stored_cluster = props.get("cluster.id").map(String::as_str);
            if stored_cluster != Some(cluster_id) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: stored cluster.id {} does not match the metadata's cluster id \
                         {cluster_id}; this data directory belongs to another cluster",
                        path.display(),
                        stored_cluster.unwrap_or("(none)")
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = data_dir.join(format!("{FILE}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            write!(
                f,
                "#\n#Written by shardlog\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
            )?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir_now(data_dir)
        }
        Err(e) => Err(e),
    }
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

    #[test]
    fn written_once_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        check_or_write(dir.path(), 3, "abc").unwrap();
        check_or_write(dir.path(), 3, "abc").unwrap();
        let e = check_or_write(dir.path(), 4, "abc").unwrap_err();
        assert!(e.to_string().contains("stored node.id 3"), "{e}");
        let e = check_or_write(dir.path(), 3, "xyz").unwrap_err();
        assert!(e.to_string().contains("another cluster"), "{e}");
    }

    #[test]
    fn reads_kafkas_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "#\n#Mon Dec 07 12:00:00 UTC 2026\nnode.id=1\ndirectory.id=x\nversion=1\ncluster.id=Q1\n",
        )
        .unwrap();
        check_or_write(dir.path(), 1, "Q1").unwrap();
    }
}
