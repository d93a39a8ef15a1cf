//! The only module that knows glommio.
//!
//! A broker process runs one glommio `LocalExecutor` per shard, each pinned to its own core. Shards
//! share nothing; they talk through [`submit_to`], which ships a `Send` closure to the owning shard
//! over a channel mesh (one link per ordered pair of shards) and awaits its `Send` result. Everything
//! else a shard needs from the runtime (sockets, files, sleeping, spawning) is re-exported here as
//! project types so that no glommio type leaks into `server`, `shard` or `log`.

pub mod budget;
pub mod executor;
pub mod file;
pub mod file_cache;
pub mod iovec;
pub mod mesh;
pub mod net;
pub mod numa;
pub mod sendfile;
pub mod time;

pub use executor::{launch_shards, shard_count, shard_id, spawn, ShardSpec};
pub use mesh::{mesh_stats, start_receiving, submit_to, MeshStats, SubmitError};
pub use time::{monotonic_ms, now_ms, sleep, yield_if_needed};
