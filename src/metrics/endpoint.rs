//! The Prometheus endpoint: a minimal HTTP/1.1 responder on shard 0.
//!
//! `GET /metrics` gathers a [`ShardSnapshot`] from every shard (`submit_to`, so each shard reads
//! its own registry on its own thread) and answers `200` with the text exposition format; any
//! other request gets `404`. One request per connection, then close (`Connection: close`):
//! Prometheus scrapes rarely, so keep-alive buys nothing and this stays tiny.
//!
//! The listener is bound without SO_REUSEPORT: a second broker on the same machine must not
//! silently share the port (scrapes would alternate between the two). If the port is taken, the
//! broker logs an error and runs without the endpoint — metrics are never a reason to refuse
//! Kafka traffic.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;

use super::registry;
use super::snapshot::{render, ShardSnapshot, Value};
use crate::config::BrokerConfig;
use crate::runtime::net::{Conn, Listener};
use crate::runtime::{self, sleep, submit_to};
use crate::shard;

/// Largest request head we read; anything longer is answered 404 and closed.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that does not send its request head within this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A shard that does not answer within this long is left out of the scrape.
const SHARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the endpoint if `metrics.listen` is set; call on shard 0 once it accepts Kafka clients.
pub fn start_configured(config: &BrokerConfig) {
    match config.metrics_listen() {
        Ok(None) => tracing::info!("metrics endpoint disabled (metrics.listen is empty)"),
        Ok(Some(addr)) => match start(addr) {
            Ok(local) => tracing::info!("metrics: Prometheus text on http://{local}/metrics"),
            Err(e) => tracing::error!(
                "metrics endpoint not started, the broker runs without it: {e} (set metrics.listen to a free HOST:PORT, or empty to disable)"
            ),
        },
        Err(e) => tracing::error!("metrics endpoint not started: {e}"),
    }
}

/// Binds `addr` and serves scrapes on the current shard (call on shard 0 only). Returns the bound
/// address (useful with port 0), or the bind error.
pub fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = Listener::bind_exclusive(addr)?;
    let local = listener.local_addr()?;
    runtime::spawn(accept_loop(listener));
    Ok(local)
}

async fn accept_loop(listener: Listener) {
    loop {
        match listener.accept().await {
            Ok(conn) => runtime::spawn(serve(conn)),
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(mut conn: Conn) {
    let head = futures_lite::future::or(async { Some(read_head(&mut conn).await) }, async {
        sleep(READ_TIMEOUT).await;
        None
    })
    .await;
    let Some(Ok(head)) = head else { return };
    let response = match route(&head) {
        Route::Metrics => {
            let body = render(&gather().await);
            http_response("200 OK", "text/plain; version=0.0.4; charset=utf-8", &body)
        }
        Route::NotFound => {
            http_response("404 Not Found", "text/plain; charset=utf-8", "not found\n")
        }
    };
    let _ = conn.write_all_vectored(&[response.as_bytes()]).await;
}

/// Reads until the end of the request head (`\r\n\r\n`), the size limit, or EOF.
async fn read_head(conn: &mut Conn) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST_HEAD {
        let n = conn.read_some(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
}

/// `GET /metrics` (any query string, HTTP/1.0 or 1.1) → metrics; anything else → 404.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    match (method, path, version) {
        (Some("GET"), Some("/metrics"), Some(v)) if v.starts_with("HTTP/1.") => Route::Metrics,
        _ => Route::NotFound,
    }
}

fn http_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Collects every shard's snapshot, in shard order; a shard that does not answer in time is left
/// out (and logged) rather than stalling the scrape.
pub async fn gather() -> Vec<ShardSnapshot> {
    let calls = (0..runtime::shard_count()).map(|s| async move {
        let call = async { submit_to(s, || async { local_snapshot() }).await.ok() };
        let timeout = async {
            sleep(SHARD_TIMEOUT).await;
            None
        };
        let r = futures_lite::future::or(call, timeout).await;
        if r.is_none() {
            tracing::warn!("metrics: shard {s} did not answer; left out of this scrape");
        }
        r
    });
    join_all(calls).await.into_iter().flatten().collect()
}

/// This shard's snapshot: its registry plus gauges read from the shard's state.
pub fn local_snapshot() -> ShardSnapshot {
    let id = runtime::shard_id();
    let mut snap = registry::read(|m| m.snapshot(id)).unwrap_or(ShardSnapshot {
        shard: id,
        samples: Vec::new(),
    });
    let shard = shard::current();
    let logs = shard.logs();
    snap.push("shardlog_partitions", Value::Gauge(logs.len() as f64));
    snap.push(
        "shardlog_log_size_bytes",
        Value::Gauge(logs.iter().map(|l| l.size_bytes()).sum::<u64>() as f64),
    );
    let files = runtime::file_cache::stats();
    snap.push("shardlog_log_open_files", Value::Gauge(files.open as f64));
    snap.push(
        "shardlog_log_open_files_max",
        Value::Gauge(files.budget as f64),
    );
    snap.push(
        "shardlog_log_file_opens_total",
        Value::Counter(files.opened),
    );
    snap.push(
        "shardlog_log_file_evictions_total",
        Value::Counter(files.evicted),
    );
    snap.push(
        "shardlog_timer_tasks",
        Value::Gauge(shard.timer.len() as f64),
    );
    snap.push(
        "shardlog_fetch_waiters",
        Value::Gauge(shard.waiters.pending_waiters() as f64),
    );
    snap.push(
        "shardlog_log_syncs_total",
        Value::Counter(shard.waiters.syncs.get()),
    );
    snap.push(
        "shardlog_acks_all_appends_total",
        Value::Counter(shard.waiters.acks_all_appends.get()),
    );
    let mesh = runtime::mesh_stats();
    snap.push(
        "shardlog_cross_shard_calls_total",
        Value::Counter(mesh.calls_sent),
    );
    snap.push(
        "shardlog_cross_shard_calls_in_flight",
        Value::Gauge(mesh.calls_in_flight as f64),
    );
    snap.push(
        "shardlog_cross_shard_jobs_total",
        Value::Counter(mesh.jobs_received),
    );
    snap.push(
        "shardlog_cross_shard_jobs_running",
        Value::Gauge(mesh.jobs_running as f64),
    );
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b""), Route::NotFound);
        assert_eq!(route(b"\xff\xfe garbage"), Route::NotFound);
    }

    #[test]
    fn response_has_length_and_closes() {
        let r = http_response("200 OK", "text/plain; version=0.0.4", "a 1\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 4\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\na 1\n"));
    }
}
