//! Choosing the owning shard of new partitions: balanced by partition count.
//!
//! Balancing by count (not by load) is deliberate: it is deterministic, needs no statistics, and
//! keeps a restart with the same shard count on the same layout, because the choice is persisted.

/// Picks a shard for each of `new_partitions` partitions, given how many each shard owns already.
/// Ties go to the lowest shard id, so results are deterministic.
pub fn place(counts: &mut [usize], new_partitions: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(new_partitions);
    if counts.is_empty() {
        return out;
    }
    for _ in 0..new_partitions {
        let (shard, _) = counts
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (**c, *i))
            .unwrap_or((0, &0));
        counts[shard] += 1;
        out.push(shard);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_and_fills_the_emptiest_first() {
        let mut counts = vec![0, 0];
        assert_eq!(place(&mut counts, 5), vec![0, 1, 0, 1, 0]);
        assert_eq!(place(&mut counts, 1), vec![1]);
        let mut skewed = vec![4, 0, 1];
        assert_eq!(place(&mut skewed, 4), vec![1, 1, 2, 1]);
        assert_eq!(skewed, vec![4, 3, 2]);
    }

    #[test]
    fn no_shards_places_nothing() {
        assert!(place(&mut [], 3).is_empty());
    }
}
