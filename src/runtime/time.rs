//! Clocks and sleeping for shard code.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (Kafka timestamps are in this unit).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sleeps the current task without blocking the shard.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Lets the shard's other tasks run if this one has used up its time slice (glommio's
/// preemption check); costs almost nothing when there is time left. Long CPU work on a shard
/// (walking a big compressed batch) calls this every few thousand steps.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}

/// Milliseconds on a monotonic clock (since the first call in this process). Deadlines of delayed
/// operations use this, so a wall-clock step (NTP) never fires or stalls them.
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
