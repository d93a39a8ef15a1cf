//! The metadata quorum's untrusted inputs: the bytes as a message body from a peer, and as a
//! node's Raft log (`raft.log`) opened at start and handed to a one-voter Raft node.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::quorum::core::QuorumCore;
use shardlog::quorum::log_store::QuorumLog;
use shardlog::quorum::wire;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode(data);
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("raft.log"), data).is_err() {
        return;
    }
    if let Ok((_, recovered)) = QuorumLog::open(dir.path()) {
        let _ = QuorumCore::new(1, &[1], recovered);
    }
});
