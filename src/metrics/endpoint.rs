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

use super::snapshot::{render, ShardSnapshot};
use crate::config::BrokerConfig;
use crate::runtime::net::{Conn, Listener};
use crate::runtime::{self, sleep, submit_to};

/// Largest request head we read; anything longer is answered 404 and closed.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that does not send its request head within this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A shard that does not answer within this long is left out of the scrape.
const SHARD_TIMEOUT: Duration = Duration::from_secs(5);

/// What a scrape runs on each shard (on that shard's thread): its registry plus the gauges of
/// its state. Given by the caller, so this module needs nothing from the layers above it.
pub type LocalSnapshot = fn() -> ShardSnapshot;

/// Starts the endpoint if `metrics.listen` is set; call on shard 0 once it accepts Kafka clients.
pub fn start_configured(config: &BrokerConfig, local: LocalSnapshot) {
    match config.metrics_listen() {
        Ok(None) => tracing::info!("metrics endpoint disabled (metrics.listen is empty)"),
        Ok(Some(addr)) => match start(addr, local) {
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
pub fn start(addr: SocketAddr, local: LocalSnapshot) -> std::io::Result<SocketAddr> {
    let listener = Listener::bind_exclusive(addr)?;
    let bound = listener.local_addr()?;
    runtime::spawn(accept_loop(listener, local));
    Ok(bound)
}

async fn accept_loop(listener: Listener, local: LocalSnapshot) {
    loop {
        match listener.accept().await {
            Ok(conn) => runtime::spawn(serve(conn, local)),
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(mut conn: Conn, local: LocalSnapshot) {
    let head = futures_lite::future::or(async { Some(read_head(&mut conn).await) }, async {
        sleep(READ_TIMEOUT).await;
        None
    })
    .await;
    let Some(Ok(head)) = head else { return };
    let response = match route(&head) {
        Route::Metrics => {
            let body = render(&gather(local).await);
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
pub async fn gather(local: LocalSnapshot) -> Vec<ShardSnapshot> {
    let calls = (0..runtime::shard_count()).map(|s| async move {
        let call = async { submit_to(s, move || async move { local() }).await.ok() };
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
