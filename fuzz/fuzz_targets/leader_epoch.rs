//! A `leader-epoch-checkpoint` file as read back when a partition opens (Kafka's text format).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::partition::leader_epoch::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(entries) = decode(text) {
            // What decode accepts satisfies the cache's invariants.
            assert!(entries.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
            assert!(entries.iter().all(|(e, o)| *e >= 0 && *o >= 0));
        }
    }
});
