//! Clocks and sleeping for shard code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
