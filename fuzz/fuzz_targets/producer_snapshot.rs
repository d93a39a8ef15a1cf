//! A producer-state snapshot file as read back at open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::log::producer_state::ProducerStateManager;

fuzz_target!(|data: &[u8]| {
    let _ = ProducerStateManager::decode_snapshot(data);
});
