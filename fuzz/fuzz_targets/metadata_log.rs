//! The metadata log of an older shardlog (converted at start) and the placement log as read at
//! start: a data directory holding the input as both `__metadata/metadata.log` and
//! `__metadata/placement.log`; every metadata record that parses (old-format ones converted)
//! applied to a metadata image, the image encoded as a quorum snapshot and decoded again, and
//! the placement brought in line with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::metadata::image::MetadataImage;
use shardlog::metadata::legacy::convert;
use shardlog::metadata::store;
use shardlog::node::placement_log::PlacementLog;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let meta = dir.path().join("__metadata");
    if std::fs::create_dir_all(&meta).is_err()
        || std::fs::write(meta.join("metadata.log"), data).is_err()
        || std::fs::write(meta.join("placement.log"), data).is_err()
    {
        return;
    }
    let mut image = MetadataImage::default();
    if let Ok(stored) = store::read(dir.path()) {
        for r in &convert(stored, 1).records {
            image.apply(r);
        }
    }
    let _ = MetadataImage::decode_snapshot(&image.encode_snapshot());
    let _ = MetadataImage::decode_snapshot(data);
    if let Ok((_, placement)) = PlacementLog::open(dir.path()) {
        let _ = placement.reconcile(&image, 1, 4);
    }
});
