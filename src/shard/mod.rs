//! A shard: the partitions one core owns, its copy of the metadata, and the partition-level
//! operations other shards ask it to run.
//!
//! All state is shard-local (`Rc`/`RefCell`, no locks); other shards reach it only through
//! `runtime::submit_to(shard, ...)`, which runs the closure here.

pub mod partition_dirs;
pub mod partition_ops;
pub mod publish;
pub mod scrape;
pub mod state;
pub mod waiters;

pub use state::{current, install, Shard, TopicPartition};
