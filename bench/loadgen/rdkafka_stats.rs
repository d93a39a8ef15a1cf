//! What librdkafka's statistics (`statistics.interval.ms`) add to the per-record measurements:
//! how many Produce (or Fetch) requests were sent and how many bytes went over the wire. A
//! librdkafka client hides its requests, so these counters are the only way to report
//! batches/s and MB/s in rdkafka mode. Each sample is kept with the time it was served, and a
//! window's share is interpolated linearly between the samples around its edges.
//!
//! Plain data, no librdkafka types: compiled and tested in every build, used only with the
//! rdkafka-client feature.
#![cfg_attr(not(feature = "rdkafka-client"), allow(dead_code))]

use std::collections::HashMap;
use std::time::Instant;

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub requests: u64,
    pub bytes: u64,
}

/// Which side a client is on: the request it counts and the direction of its bytes.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    /// Produce requests, bytes sent.
    Produce,
    /// Fetch requests, bytes received.
    Fetch,
}

// Only the fields used; serde skips the rest of librdkafka's (large) statistics object.
#[derive(Deserialize)]
struct RawStats {
    #[serde(default)]
    brokers: HashMap<String, RawBroker>,
}

#[derive(Deserialize)]
struct RawBroker {
    #[serde(default)]
    txbytes: u64,
    #[serde(default)]
    rxbytes: u64,
    #[serde(default)]
    req: HashMap<String, i64>,
}

/// Sums the counters over all brokers (a client also talks to its bootstrap entry; those
/// Metadata bytes are noise next to the data).
pub fn parse(json: &[u8], side: Side) -> Option<Counters> {
    let raw: RawStats = serde_json::from_slice(json).ok()?;
    let (request, mut c) = match side {
        Side::Produce => ("Produce", Counters::default()),
        Side::Fetch => ("Fetch", Counters::default()),
    };
    for b in raw.brokers.values() {
        c.requests += b.req.get(request).copied().unwrap_or(0).max(0) as u64;
        c.bytes += match side {
            Side::Produce => b.txbytes,
            Side::Fetch => b.rxbytes,
        };
    }
    Some(c)
}

/// Samples of one client's counters over time.
pub struct Samples {
    /// The client's creation: all counters were zero then.
    created: Instant,
    list: Vec<(Instant, Counters)>,
}

impl Samples {
    pub fn new(created: Instant) -> Samples {
        Samples {
            created,
            list: Vec::new(),
        }
    }

    pub fn push(&mut self, at: Instant, c: Counters) {
        self.list.push((at, c));
    }

    pub fn last_at(&self) -> Option<Instant> {
        self.list.last().map(|(t, _)| *t)
    }

    pub fn last(&self) -> Counters {
        self.list.last().map(|(_, c)| *c).unwrap_or_default()
    }

    /// Counters at time t: linear between the samples around t, the last sample after it.
    fn at(&self, t: Instant) -> (f64, f64) {
        let mut prev = (self.created, Counters::default());
        for &(ts, c) in &self.list {
            if ts >= t {
                let span = ts.saturating_duration_since(prev.0).as_secs_f64();
                let f = if span > 0.0 {
                    t.saturating_duration_since(prev.0).as_secs_f64() / span
                } else {
                    1.0
                };
                let lerp = |a: u64, b: u64| a as f64 + f * (b as f64 - a as f64);
                return (
                    lerp(prev.1.requests, c.requests),
                    lerp(prev.1.bytes, c.bytes),
                );
            }
            prev = (ts, c);
        }
        (prev.1.requests as f64, prev.1.bytes as f64)
    }

    /// The counters' growth between two times, rounded.
    pub fn between(&self, from: Instant, to: Instant) -> Counters {
        Self::growth(self.at(from), self.at(to))
    }

    /// The growth from `from` up to the first sample at or after `to`: for a catch-up consumer
    /// that had every byte it counted in hand by `to` (librdkafka fetches ahead), which
    /// interpolation would partly cut off.
    pub fn through(&self, from: Instant, to: Instant) -> Counters {
        let end = match self.list.iter().find(|(t, _)| *t >= to) {
            Some((_, c)) => (c.requests as f64, c.bytes as f64),
            None => self.at(to),
        };
        Self::growth(self.at(from), end)
    }

    fn growth((r0, b0): (f64, f64), (r1, b1): (f64, f64)) -> Counters {
        Counters {
            requests: (r1 - r0).max(0.0).round() as u64,
            bytes: (b1 - b0).max(0.0).round() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_librdkafka_statistics() {
        let json = br#"{"name":"p#producer-1","type":"producer","ts":1,"brokers":{
            "127.0.0.1:9092/bootstrap":{"txbytes":100,"rxbytes":50,"req":{"Metadata":2,"Produce":0}},
            "127.0.0.1:9092/1":{"txbytes":1000000,"rxbytes":4000,"req":{"Produce":40,"Fetch":7}},
            "GroupCoordinator":{"txbytes":10,"rxbytes":10}
        },"topics":{}}"#;
        assert_eq!(
            parse(json, Side::Produce),
            Some(Counters {
                requests: 40,
                bytes: 1_000_110
            })
        );
        assert_eq!(
            parse(json, Side::Fetch),
            Some(Counters {
                requests: 7,
                bytes: 4060
            })
        );
        assert_eq!(parse(b"not json", Side::Fetch), None);
    }

    #[test]
    fn window_share_is_interpolated() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let c = |requests, bytes| Counters { requests, bytes };
        let mut s = Samples::new(t0);
        s.push(ms(100), c(10, 1000));
        s.push(ms(200), c(30, 3000));
        s.push(ms(300), c(30, 3000));
        // 150..250: half of 10..30 plus nothing.
        assert_eq!(s.between(ms(150), ms(250)), c(10, 1000));
        // From creation (zero) to the middle of the first interval.
        assert_eq!(s.between(t0, ms(50)), c(5, 500));
        // Past the last sample: the last value.
        assert_eq!(s.between(ms(100), ms(900)), c(20, 2000));
        assert_eq!(s.through(ms(50), ms(150)), c(25, 2500));
        assert_eq!(s.through(ms(50), ms(900)), c(25, 2500));
        assert_eq!(s.last(), c(30, 3000));
        assert_eq!(s.last_at(), Some(ms(300)));
        assert_eq!(Samples::new(t0).between(t0, ms(10)), c(0, 0));
    }
}
