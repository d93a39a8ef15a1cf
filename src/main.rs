//! The `shardlog` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use shardlog::config::{BrokerConfig, BROKER_SETTINGS, TOPIC_SETTINGS};

// Fetches and produces allocate and free buffers of up to a few MiB per request on every shard.
// glibc's malloc serves those from fresh mmaps (or trims them back to the kernel) so each request
// page-faults and zeroes its memory again; mimalloc keeps per-thread pages for reuse. Measured in
// docs/PERFORMANCE.md ("allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "shardlog",
    version,
    about = "A Kafka-compatible, thread-per-core streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker (defaults: data in ./data, listener 127.0.0.1:9092, one shard per core).
    Start(StartArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Topics on any Kafka-compatible broker: create, list, describe, delete, add-partitions.
    Topic(shardlog::cli::TopicCli),
    /// Consumer groups on any Kafka-compatible broker: list, describe, reset-offsets, delete.
    Group(shardlog::cli::GroupCli),
    /// The cluster: id, controller, brokers, topic count.
    Cluster(shardlog::cli::ClusterCli),
    /// Produce stdin lines to a topic (one record per line).
    Produce(shardlog::cli::ProduceCli),
    /// Consume records from a topic to stdout.
    Consume(shardlog::cli::ConsumeCli),
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ConfigCommand {
    /// List every broker and topic setting with its default and meaning.
    List {
        /// Print the Markdown reference table embedded in README.md.
        #[arg(long)]
        markdown: bool,
    },
    /// Print the effective configuration (defaults < --config < SHARDLOG_* env < --set) with each
    /// value's source.
    Print(StartArgs),
}

#[derive(Args, Clone)]
struct StartArgs {
    /// Data directory (setting `data.dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listener address HOST:PORT (setting `listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Address advertised to clients, HOST:PORT (setting `advertise`).
    #[arg(long)]
    advertise: Option<String>,
    /// Number of shards (setting `cores`; 0 = every usable core).
    #[arg(long)]
    cores: Option<usize>,
    /// CPUs for the shards, a Linux CPU list like `0,2-3`: shard i pinned to the i-th (setting
    /// `cpuset`; `--cores` defaults to its size).
    #[arg(long, value_name = "LIST")]
    cpuset: Option<String>,
    /// Node id (setting `node.id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// Prometheus endpoint HOST:PORT, empty to disable (setting `metrics.listen`).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// TOML file of settings: a flat table of Kafka-style keys, e.g. `"num.partitions" = 3`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log line format (setting `log.format`).
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
    /// Log filter in RUST_LOG syntax, e.g. `shardlog::server=debug,info` (setting `log.level`;
    /// given here it wins over RUST_LOG).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Any setting as key=value (repeatable); wins over SHARDLOG_* variables and --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl StartArgs {
    fn resolve(&self) -> Result<BrokerConfig, String> {
        let mut config = BrokerConfig::default();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            config.apply_toml(&text).map_err(|e| e.to_string())?;
        }
        config
            .apply_env(std::env::vars())
            .map_err(|e| e.to_string())?;
        let mut sets = Vec::new();
        if let Some(d) = &self.data_dir {
            sets.push(format!("data.dir={}", d.display()));
        }
        if let Some(l) = &self.listen {
            sets.push(format!("listen={l}"));
        }
        if let Some(a) = &self.advertise {
            sets.push(format!("advertise={a}"));
        }
        if let Some(c) = self.cores {
            sets.push(format!("cores={c}"));
        }
        if let Some(c) = &self.cpuset {
            sets.push(format!("cpuset={c}"));
        }
        if let Some(n) = self.node_id {
            sets.push(format!("node.id={n}"));
        }
        if let Some(m) = &self.metrics_listen {
            sets.push(format!("metrics.listen={m}"));
        }
        if let Some(f) = &self.log_format {
            sets.push(format!("log.format={f}"));
        }
        if let Some(l) = &self.log_level {
            sets.push(format!("log.level={l}"));
        }
        sets.extend(self.sets.iter().cloned());
        config.apply_sets(&sets).map_err(|e| e.to_string())?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start(_)) {
        // Client commands: RUST_LOG or `info`, text. (The broker's logging follows its config.)
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let filter = if filter.trim().is_empty() {
            "info".into()
        } else {
            filter
        };
        let _ = shardlog::logging::init(shardlog::logging::LogFormat::Text, &filter);
        // A client command piped into `head` ends quietly when the pipe closes, as Unix tools
        // do, instead of panicking in `println!` (Rust ignores SIGPIPE by default; the broker
        // keeps that, since its sockets report EPIPE as errors).
        // SAFETY: restoring a signal's default disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Cluster(c) => shardlog::cli::run_cluster(c),
        Command::Produce(p) => shardlog::cli::run_produce(p),
        Command::Consume(c) => shardlog::cli::run_consume(c),
        Command::Topic(t) => shardlog::cli::run_topic(t),
        Command::Group(g) => shardlog::cli::run_group(g),
        Command::Start(args) => {
            let config = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = shardlog::logging::init_broker(&config) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            match shardlog::server::run_broker(config) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config(ConfigCommand::List { markdown: true }) => {
            print!("{}", shardlog::config::markdown_reference());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::List { markdown: false }) => {
            println!("Broker settings (use with --set KEY=VALUE, in the --config TOML file, or as SHARDLOG_<KEY> variables: dots as underscores, upper case):");
            for s in BROKER_SETTINGS {
                println!(
                    "  {:<34} default {:<12} {}",
                    s.name,
                    format!("{:?}", s.default),
                    s.doc
                );
            }
            println!(
                "\nTopic settings (CreateTopics configs; default = the broker setting named):"
            );
            for (s, broker) in TOPIC_SETTINGS {
                println!("  {:<34} from {:<32} {}", s.name, broker, s.doc);
            }
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Print(args)) => match args.resolve() {
            Ok(c) => {
                for (k, v, src) in c.entries() {
                    let var = shardlog::config::env_var_name(k);
                    println!("{k} = {v:?}  # {} (env {var})", src.label());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
