//! Who may connect: Kafka's connection quotas, with Kafka's names and defaults
//! (`max.connections`, `max.connections.per.ip`, `max.connections.per.ip.overrides`,
//! `max.connection.creation.rate`; all unlimited by default, as in Kafka).
//!
//! A connection over `max.connections` or over its address's per-IP limit is accepted and closed
//! at once (Kafka closes per-IP excess the same way; for the broker-wide limit Kafka leaves new
//! connections waiting in the listen backlog, which a flood fills for everyone, so shardlog
//! refuses them instead). Connections beyond `max.connection.creation.rate` per second are not
//! accepted until the rate allows: like Kafka, the accept loops slow down and the kernel's
//! backlog holds the rest.
//!
//! The counts are process-wide: every shard accepts on the same port (SO_REUSEPORT), so a limit
//! per broker must see all shards' connections. This is the one piece of state the shards share
//! directly (an atomic and two short mutexes, never held across an await): it is touched once
//! when a connection opens and once when it closes, never per request, and a cross-shard call on
//! every accept would cost more than the lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The configured limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub per_ip_overrides: HashMap<IpAddr, usize>,
    /// New connections per second, broker-wide.
    pub creation_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: i32::MAX as usize,
            max_per_ip: i32::MAX as usize,
            per_ip_overrides: HashMap::new(),
            creation_rate: i32::MAX as u64,
        }
    }
}

/// Parses `max.connections.per.ip.overrides`: `host:count` pairs separated by commas, the host
/// an IP address (IPv6 in brackets or bare; the count follows the last colon) or `localhost`.
pub fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, count) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("`{item}` is not HOST:COUNT"))?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` in `{item}` is not a connection count"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = match host {
            "localhost" => vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16; 8])],
            _ => vec![host
                .parse()
                .map_err(|_| format!("`{host}` in `{item}` is not an IP address"))?],
        };
        for ip in ips {
            out.insert(ip, count);
        }
    }
    Ok(out)
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections(usize),
    MaxPerIp(IpAddr, usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MaxConnections(n) => write!(f, "max.connections ({n}) reached"),
            Refusal::MaxPerIp(ip, n) => write!(f, "{ip} has {n} connections, its limit"),
        }
    }
}

/// Connection counts against [`Limits`].
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Token bucket for the creation rate: (tokens, last refill).
    bucket: Mutex<(f64, Instant)>,
}

/// A counted connection; dropping it (when the connection ends) releases its place.
#[derive(Debug)]
pub struct Ticket {
    admission: &'static Admission,
    ip: Option<IpAddr>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(self.ip);
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        let burst = limits.creation_rate as f64;
        Admission {
            limits,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    /// Counts a new connection from `ip`, or says why it may not stay.
    pub fn admit(&'static self, ip: Option<IpAddr>) -> Result<Ticket, Refusal> {
        let max = self.limits.max_connections;
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Refusal::MaxConnections(max));
        }
        if let Some(ip) = ip {
            let limit = self
                .limits
                .per_ip_overrides
                .get(&ip)
                .copied()
                .unwrap_or(self.limits.max_per_ip);
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= limit {
                if *n == 0 {
                    per_ip.remove(&ip);
                }
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxPerIp(ip, limit));
            }
            *n += 1;
        }
        Ok(Ticket {
            admission: self,
            ip,
        })
    }

    fn release(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }

    /// Connections counted now.
    pub fn connections(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Takes one connection-creation token; `Some(wait)` if there is none yet, with how long
    /// until the next one.
    pub fn creation_delay(&self) -> Option<std::time::Duration> {
        let rate = self.limits.creation_rate as f64;
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * rate;
        b.0 = (b.0 + refill).min(rate.max(1.0));
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            return None;
        }
        Some(std::time::Duration::from_secs_f64((1.0 - b.0) / rate))
    }
}

static ADMISSION: OnceLock<Admission> = OnceLock::new();

/// Sets the process's limits (once, at start; later calls are ignored).
pub fn init(limits: Limits) {
    let _ = ADMISSION.set(Admission::new(limits));
}

/// The process's admission state (unlimited if [`init`] was never called).
pub fn get() -> &'static Admission {
    ADMISSION.get_or_init(|| Admission::new(Limits::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(limits: Limits) -> &'static Admission {
        Box::leak(Box::new(Admission::new(limits)))
    }

    #[test]
    fn total_and_per_ip_limits_and_release() {
        let a = leak(Limits {
            max_connections: 3,
            max_per_ip: 2,
            per_ip_overrides: parse_overrides("10.0.0.9:0").unwrap(),
            ..Limits::default()
        });
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let t1 = a.admit(Some(x)).unwrap();
        let _t2 = a.admit(Some(x)).unwrap();
        assert_eq!(a.admit(Some(x)).unwrap_err(), Refusal::MaxPerIp(x, 2));
        assert_eq!(
            a.admit(Some("10.0.0.9".parse().unwrap())).unwrap_err(),
            Refusal::MaxPerIp("10.0.0.9".parse().unwrap(), 0)
        );
        let _t3 = a.admit(Some(y)).unwrap();
        assert_eq!(a.admit(Some(y)).unwrap_err(), Refusal::MaxConnections(3));
        assert_eq!(a.connections(), 3);
        drop(t1);
        assert_eq!(a.connections(), 2);
        let _t4 = a.admit(Some(x)).unwrap();
    }

    #[test]
    fn overrides_parse_like_kafka() {
        let o = parse_overrides("127.0.0.1:200, [::1]:5,10.1.2.3:0").unwrap();
        assert_eq!(o.get(&"127.0.0.1".parse().unwrap()), Some(&200));
        assert_eq!(o.get(&"::1".parse().unwrap()), Some(&5));
        assert_eq!(o.get(&"10.1.2.3".parse().unwrap()), Some(&0));
        assert!(parse_overrides("").unwrap().is_empty());
        assert!(parse_overrides("nohost").is_err());
        assert!(parse_overrides("1.2.3.4:x").is_err());
        assert!(parse_overrides("example.com:3").is_err());
    }

    #[test]
    fn creation_rate_spaces_out_new_connections() {
        let a = leak(Limits {
            creation_rate: 10,
            ..Limits::default()
        });
        // A burst of the rate is allowed, then each needs ~1/rate s.
        for _ in 0..10 {
            assert_eq!(a.creation_delay(), None);
        }
        let wait = a.creation_delay().unwrap();
        assert!(wait <= std::time::Duration::from_millis(101), "{wait:?}");
    }
}
