//! Committed offsets of one group.
//!
//! Each entry remembers the `__consumer_offsets` offset of the record that set it. Appends can
//! complete out of order relative to each other (two commits in flight for one partition), and
//! replay sees every record ever written (no compaction yet), so "newest record wins" is decided
//! by that log position, never by arrival order: an entry is only replaced by a record written
//! later in the log. This makes live updates and replay agree.

use std::collections::BTreeMap;

use super::codec::OffsetValue;

/// One committed offset and where it was persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub value: OffsetValue,
    /// Offset of the record in `__consumer_offsets` that wrote it.
    pub log_offset: i64,
}

/// (topic, partition) → committed offset, ordered so fetches list topics deterministically.
#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    entries: BTreeMap<(String, i32), Committed>,
    /// Log positions of tombstones seen per partition, so a replayed older commit does not
    /// resurrect a deleted offset.
    deleted_at: BTreeMap<(String, i32), i64>,
}

impl OffsetStore {
    /// Applies a commit persisted at `log_offset`; ignored if a later record already decided.
    pub fn put(&mut self, topic: &str, partition: i32, value: OffsetValue, log_offset: i64) {
        let k = (topic.to_string(), partition);
        if self.deleted_at.get(&k).is_some_and(|d| *d > log_offset) {
            return;
        }
        match self.entries.get(&k) {
            Some(c) if c.log_offset > log_offset => {}
            _ => {
                self.entries.insert(k, Committed { value, log_offset });
            }
        }
    }

    /// Applies a tombstone persisted at `log_offset`.
    pub fn delete(&mut self, topic: &str, partition: i32, log_offset: i64) {
        let k = (topic.to_string(), partition);
        if self
            .entries
            .get(&k)
            .is_some_and(|c| c.log_offset < log_offset)
        {
            self.entries.remove(&k);
        }
        let d = self.deleted_at.entry(k).or_insert(log_offset);
        *d = (*d).max(log_offset);
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.entries
            .get(&(topic.to_string(), partition))
            .map(|c| &c.value)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every committed offset, ordered by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &OffsetValue)> {
        self.entries
            .iter()
            .map(|((t, p), c)| (t.as_str(), *p, &c.value))
    }

    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.entries.keys().map(|(t, _)| t.clone()).collect();
        t.dedup();
        t
    }

    /// The partitions whose offsets have expired at `now_ms`: those committed before
    /// `now_ms - retention_ms`, or — when the group became empty at `empty_since` — every offset
    /// once the group has been empty for the retention period (Kafka 2.1+, KIP-211: offsets of a
    /// group with members never expire; they age from the moment the group emptied).
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        empty_since: Option<i64>,
    ) -> Vec<(String, i32)> {
        self.entries
            .iter()
            .filter(|(_, c)| {
                let base = empty_since.unwrap_or(c.value.commit_timestamp);
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drops everything (group deleted).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(offset: i64, ts: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: ts,
        }
    }

    #[test]
    fn later_log_position_wins_whatever_the_order() {
        let mut s = OffsetStore::default();
        s.put("t", 0, v(10, 0), 5);
        s.put("t", 0, v(7, 0), 3); // completed late, written earlier: ignored
        assert_eq!(s.get("t", 0).unwrap().offset, 10);
        s.put("t", 0, v(12, 0), 6);
        assert_eq!(s.get("t", 0).unwrap().offset, 12);
    }

    #[test]
    fn tombstones_hide_older_commits_only() {
        let mut s = OffsetStore::default();
        s.put("t", 0, v(1, 0), 1);
        s.delete("t", 0, 2);
        assert!(s.get("t", 0).is_none());
        s.put("t", 0, v(0, 0), 1); // replayed duplicate from before the tombstone
        assert!(s.get("t", 0).is_none());
        s.put("t", 0, v(3, 0), 4);
        assert_eq!(s.get("t", 0).unwrap().offset, 3);
    }

    #[test]
    fn expiry_uses_empty_since_when_known() {
        let mut s = OffsetStore::default();
        s.put("a", 0, v(1, 100), 1);
        s.put("b", 0, v(1, 900), 2);
        assert_eq!(s.expired(1000, 500, None), vec![("a".to_string(), 0)]);
        assert_eq!(s.expired(1000, 500, Some(800)), vec![]);
        assert_eq!(s.expired(1300, 500, Some(800)).len(), 2);
    }
}
