//! The metadata log as replayed at start: opened from a data directory holding the input as
//! `__metadata/metadata.log`, every record that parses applied to a metadata image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::metadata::image::MetadataImage;
use shardlog::metadata::store::MetadataStore;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let meta = dir.path().join("__metadata");
    if std::fs::create_dir_all(&meta).is_err()
        || std::fs::write(meta.join("metadata.log"), data).is_err()
    {
        return;
    }
    if let Ok((_, records)) = MetadataStore::open(dir.path()) {
        let mut image = MetadataImage::default();
        for r in &records {
            image.apply(r);
        }
    }
});
