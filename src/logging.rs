//! Log output with `tracing`: text or JSON lines on stderr, filtered per module.
//!
//! The filter uses RUST_LOG syntax (`info`, `shardlog::server=debug,info`, ...). For the broker it
//! comes from, highest first: `--log-level` / `--set log.level=...`, then the `RUST_LOG`
//! environment variable, then `log.level` from the config file or `SHARDLOG_LOG_LEVEL`, then
//! the default `info`. The format is the setting `log.format` (`--log-format text|json`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{BrokerConfig, Source};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter directive the broker logs with (see the module docs for the precedence).
pub fn broker_filter(config: &BrokerConfig, rust_log: Option<&str>) -> String {
    let rust_log = rust_log.map(str::trim).filter(|s| !s.is_empty());
    match (config.source("log.level"), rust_log) {
        (Source::CommandLine, _) | (_, None) => config.get("log.level").to_string(),
        (_, Some(r)) => r.to_string(),
    }
}

/// Installs the global subscriber. Fails (naming the setting) on a filter that does not parse.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| format!("config `log.level`: `{filter}` is not a valid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a write error (stderr closed: the broker's log pipe went away) tracing-subscriber
        // would report it with eprintln!, which panics on that same broken stderr — killing
        // whichever thread logged, e.g. the signal thread before it could request shutdown.
        .log_internal_errors(false);
    let r = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
    };
    r.map_err(|e| format!("installing the log subscriber: {e}"))
}

/// Logging for the broker, from its resolved configuration.
pub fn init_broker(config: &BrokerConfig) -> Result<(), String> {
    let format = match config.get("log.format") {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    init(format, &broker_filter(config, rust_log.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_level_beats_rust_log_which_beats_file_and_env() {
        let mut c = BrokerConfig::default();
        assert_eq!(broker_filter(&c, None), "info");
        assert_eq!(broker_filter(&c, Some("debug")), "debug");
        c.apply_toml("\"log.level\" = \"warn\"\n").unwrap();
        assert_eq!(broker_filter(&c, Some("debug")), "debug");
        assert_eq!(broker_filter(&c, Some("  ")), "warn");
        c.apply_sets(&["log.level=shardlog::server=debug,info".into()])
            .unwrap();
        assert_eq!(
            broker_filter(&c, Some("debug")),
            "shardlog::server=debug,info"
        );
        assert!(EnvFilter::try_new("shardlog::server=debug,info").is_ok());
    }
}
