//! A produce record set, validated as the broker validates a client's records: framing, CRC,
//! then every record walked. The first byte picks a codec id that is written into the first
//! batch's attributes with its CRC fixed, so inputs get past the CRC and into each decompressor
//! (gzip, snappy, lz4, zstd, and the unknown ids 5-7).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::log::batch::split_and_validate;
use shardlog::log::record_walk::RecordWalker;
use shardlog::log::batch_builder::fix_crc;

fuzz_target!(|data: &[u8]| {
    let Some((&codec, rest)) = data.split_first() else {
        return;
    };
    let mut records = rest.to_vec();
    if records.len() >= 61 {
        records[22] = (records[22] & !0x07) | (codec & 0x07);
        records[16] = 2; // magic
        let len = (records.len() - 12) as i32;
        records[8..12].copy_from_slice(&len.to_be_bytes());
        fix_crc(&mut records);
    }
    let Ok(spans) = split_and_validate(&records, usize::MAX) else {
        return;
    };
    for s in spans {
        let batch = &records[s.pos..s.pos + s.header.total_len()];
        // A bound far below the default keeps each input fast; the limit logic is the same.
        if let Ok(mut w) = RecordWalker::with_limit(batch, &s.header, 8 << 20) {
            while let Ok(Some(_)) = w.next_record() {}
        }
    }
});
