//! `__consumer_offsets` log bytes as the group coordinator loads them: batches split into
//! records, then every key and value decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::group::codec::{decode_group_value, decode_key, decode_offset_value, records_in};

fuzz_target!(|data: &[u8]| {
    let (records, _) = records_in(data);
    for r in records {
        if let Some(k) = &r.key {
            let _ = decode_key(k);
        }
        if let Some(v) = &r.value {
            let _ = decode_offset_value(v);
            let _ = decode_group_value(v);
        }
    }
    let _ = decode_key(data);
    let _ = decode_offset_value(data);
    let _ = decode_group_value(data);
});
