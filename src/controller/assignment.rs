//! Which brokers hold a new partition's replicas: Kafka's rack-unaware placement
//! (`assignReplicasToBrokersRackUnaware`), so a topic's leaders and replicas spread over the
//! registered brokers the way Kafka spreads them. A random start broker and replica shift make
//! topics created one after another land on different brokers first.

use crate::metadata::PartitionMeta;

/// Replica lists for partitions `first..first + count` over `brokers` (sorted ids), `rf`
/// replicas each, the first one leading. `start` and `shift` are random in Kafka; passed in
/// here so tests can fix them. Requires `1 <= rf <= brokers.len()`.
pub fn assign(
    brokers: &[i32],
    rf: usize,
    first: usize,
    count: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    if n == 0 || rf == 0 || rf > n {
        return Vec::new();
    }
    let start = start % n;
    let mut shift = shift % n;
    (first..first + count)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let lead = (p + start) % n;
            let mut replicas = vec![brokers[lead]];
            for j in 0..rf - 1 {
                // The followers: the brokers after the leader, shifted per round so two
                // partitions with one leader do not also share their followers.
                let i = (lead + 1 + (shift + j) % (n - 1)) % n;
                replicas.push(brokers[i]);
            }
            replicas
        })
        .collect()
}

/// Partitions with `replicas`, each led by its first replica at epoch 0, all in sync.
pub fn partitions(assignments: Vec<Vec<i32>>) -> Vec<PartitionMeta> {
    assignments
        .into_iter()
        .map(|replicas| PartitionMeta {
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(-1),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        })
        .collect()
}

/// A random number for `assign`'s start and shift.
pub fn random() -> usize {
    uuid::Uuid::new_v4().as_u64_pair().0 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_spread_evenly_and_replicas_are_distinct() {
        let brokers = [1, 2, 3];
        let a = assign(&brokers, 3, 0, 6, 0, 0);
        assert_eq!(a.len(), 6);
        for replicas in &a {
            let mut r = replicas.clone();
            r.sort();
            assert_eq!(r, vec![1, 2, 3], "{a:?}");
        }
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        // Partitions 0 and 3 share a leader; the shift gives them different first followers.
        assert_ne!(a[0][1], a[3][1], "{a:?}");
    }

    #[test]
    fn matches_kafkas_placement() {
        // Kafka: brokers 0..4, rf 3, startIndex 0, nextReplicaShift 0 (AdminUtilsTest's
        // testReplicaAssignment): partition 0 -> [0,1,2], 5 -> [0,2,3], 7 -> [2,4,0].
        let brokers = [0, 1, 2, 3, 4];
        let a = assign(&brokers, 3, 0, 10, 0, 0);
        assert_eq!(a[0], vec![0, 1, 2]);
        assert_eq!(a[1], vec![1, 2, 3]);
        assert_eq!(a[5], vec![0, 2, 3]);
        assert_eq!(a[7], vec![2, 4, 0]);
    }

    #[test]
    fn refuses_impossible_factors() {
        assert!(assign(&[1, 2], 3, 0, 1, 0, 0).is_empty());
        assert!(assign(&[], 1, 0, 1, 0, 0).is_empty());
        assert_eq!(assign(&[7], 1, 4, 2, 9, 9), vec![vec![7], vec![7]]);
    }
}
