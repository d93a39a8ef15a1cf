//! Which `__consumer_offsets` partition (and so which shard) a group lives on.
//!
//! Kafka places a group on partition `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`,
//! where `hashCode` is Java's `String.hashCode` over UTF-16 code units. We use the same function so
//! that a data directory's layout matches Kafka's (tools that read `__consumer_offsets` find each
//! group where Kafka would put it) and so that placement is stable across restarts: it depends only
//! on the group id and the partition count, never on the shard count. The shard is then whichever
//! shard owns that partition in the metadata image.

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping on
/// overflow (Java `int` arithmetic).
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: `n & 0x7fffffff`. Not `i32::abs`, which overflows on `i32::MIN` (Kafka's
/// helper maps it to 0 rather than to a negative number).
pub fn kafka_abs(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The `__consumer_offsets` partition of `group_id` when the topic has `partitions` partitions
/// (`partitions` < 1 is treated as 1, so the result is always a valid index).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    kafka_abs(java_string_hashcode(group_id)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashcode_matches_java() {
        // Values computed with Java's "...".hashCode().
        assert_eq!(java_string_hashcode(""), 0);
        assert_eq!(java_string_hashcode("a"), 97);
        assert_eq!(java_string_hashcode("hello"), 99_162_322);
        assert_eq!(java_string_hashcode("my-group"), -1_906_497_762);
        // Overflowing: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        // Characters outside the BMP hash as two UTF-16 surrogates: "😀" = \uD83D\uDE00.
        assert_eq!(
            java_string_hashcode("😀"),
            0xD83Di32.wrapping_mul(31).wrapping_add(0xDE00)
        );
        // Non-ASCII BMP: "é" = \u00E9.
        assert_eq!(java_string_hashcode("é"), 0xE9);
    }

    #[test]
    fn partition_is_kafka_abs_mod_n() {
        assert_eq!(kafka_abs(i32::MIN), 0);
        assert_eq!(kafka_abs(-1), i32::MAX);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // A negative hash: Kafka masks the sign bit, it does not negate.
        assert_eq!(
            partition_for("my-group", 50),
            (-1_906_497_762i32 & 0x7fff_ffff) % 50
        );
        for g in ["a", "b", "group-17", "x".repeat(300).as_str()] {
            let p = partition_for(g, 7);
            assert!((0..7).contains(&p));
        }
        assert_eq!(partition_for("anything", 0), 0);
    }
}
