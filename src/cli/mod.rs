//! The operator's command line: `shardlog topic ...` and `shardlog group ...`, talking to any
//! Kafka-compatible broker over the wire (like `rpk` or Kafka's `kafka-topics.sh` /
//! `kafka-consumer-groups.sh`).
//!
//! - [`client`]: a small blocking Kafka client (ApiVersions negotiation, routing to leaders
//!   and group coordinators).
//! - [`error`]: errors with Kafka's error names, and their exit codes.
//! - [`output`]: tables and JSON.
//! - [`topic`], [`group`], [`cluster`], [`produce`], [`consume`]: the commands.
//!
//! Exit codes: 0 success, 1 a broker error or an unreachable broker, 2 bad arguments (clap).

pub mod client;
pub mod cluster;
pub mod conn;
pub mod consume;
pub mod error;
pub mod group;
mod ops;
pub mod output;
pub mod produce;
pub mod time;
pub mod topic;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use client::{Client, ClientConfig};
use error::Result;
use output::Format;

/// Environment variable naming the bootstrap broker when `--bootstrap` is not given.
pub const BOOTSTRAP_ENV: &str = "SHARDLOG_BOOTSTRAP";
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Options every client command takes (accepted before or after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct ConnectOpts {
    /// Broker to connect to, HOST:PORT [env: SHARDLOG_BOOTSTRAP] [default: 127.0.0.1:9092].
    #[arg(long, short = 'b', global = true, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Seconds to wait for a TCP connection to a broker.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 5.0,
          value_parser = parse_seconds)]
    pub connect_timeout: f64,
    /// Seconds to wait for each broker response.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30.0,
          value_parser = parse_seconds)]
    pub request_timeout: f64,
}

fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds in (0, 3600], got {s:?}"
        )),
    }
}

impl ConnectOpts {
    pub fn client_config(&self) -> ClientConfig {
        let bootstrap = self
            .bootstrap
            .clone()
            .or_else(|| {
                std::env::var(BOOTSTRAP_ENV)
                    .ok()
                    .filter(|s| !s.trim().is_empty())
            })
            .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
        ClientConfig {
            bootstrap,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            request_timeout: Duration::from_secs_f64(self.request_timeout),
        }
    }
}

/// `shardlog topic ...`
#[derive(Args, Debug, Clone)]
pub struct TopicCli {
    #[command(flatten)]
    pub conn: ConnectOpts,
    #[command(subcommand)]
    pub command: topic::TopicCommand,
}

/// `shardlog group ...`
#[derive(Args, Debug, Clone)]
pub struct GroupCli {
    #[command(flatten)]
    pub conn: ConnectOpts,
    #[command(subcommand)]
    pub command: group::GroupCommand,
}

fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn run_topic(cli: TopicCli) -> ExitCode {
    finish((|| {
        let mut client = Client::connect(cli.conn.client_config())?;
        topic::run(&mut client, cli.command, cli.conn.format)
    })())
}

pub fn run_group(cli: GroupCli) -> ExitCode {
    finish((|| {
        let mut client = Client::connect(cli.conn.client_config())?;
        group::run(&mut client, cli.command, cli.conn.format)
    })())
}

/// `shardlog cluster ...`
#[derive(Args, Debug, Clone)]
pub struct ClusterCli {
    #[command(flatten)]
    pub conn: ConnectOpts,
    #[command(subcommand)]
    pub command: cluster::ClusterCommand,
}

pub fn run_cluster(cli: ClusterCli) -> ExitCode {
    finish((|| {
        let mut client = Client::connect(cli.conn.client_config())?;
        cluster::run(&mut client, cli.command, cli.conn.format)
    })())
}

/// `shardlog produce TOPIC`
#[derive(Args, Debug, Clone)]
pub struct ProduceCli {
    #[command(flatten)]
    pub conn: ConnectOpts,
    #[command(flatten)]
    pub args: produce::ProduceArgs,
}

pub fn run_produce(cli: ProduceCli) -> ExitCode {
    finish((|| {
        let mut client = Client::connect(cli.conn.client_config())?;
        produce::run(&mut client, cli.args, cli.conn.format)
    })())
}

/// `shardlog consume TOPIC` (its `--format` has a `raw` choice, so it does not share
/// [`ConnectOpts`]' format).
#[derive(Args, Debug, Clone)]
pub struct ConsumeCli {
    /// Broker to connect to, HOST:PORT [env: SHARDLOG_BOOTSTRAP] [default: 127.0.0.1:9092].
    #[arg(long, short = 'b', value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// Seconds to wait for a TCP connection to a broker.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_seconds)]
    pub connect_timeout: f64,
    /// Seconds to wait for each broker response.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub request_timeout: f64,
    #[command(flatten)]
    pub args: consume::ConsumeArgs,
}

pub fn run_consume(cli: ConsumeCli) -> ExitCode {
    let conn = ConnectOpts {
        bootstrap: cli.bootstrap,
        format: Format::Human,
        connect_timeout: cli.connect_timeout,
        request_timeout: cli.request_timeout,
    };
    finish((|| {
        let mut client = Client::connect(conn.client_config())?;
        consume::run(&mut client, cli.args)
    })())
}
