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

/// Milliseconds on a monotonic clock (since the first call in this process). Deadlines of delayed
/// operations use this, so a wall-clock step (NTP) never fires or stalls them.
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
