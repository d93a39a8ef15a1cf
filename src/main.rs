//! The `shardlog` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use shardlog::config::{BrokerConfig, Source, BROKER_SETTINGS, TOPIC_SETTINGS};

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
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// List every broker and topic setting with its default and meaning.
    List {
        /// Print the Markdown reference table embedded in README.md.
        #[arg(long)]
        markdown: bool,
    },
    /// Print the effective configuration (after --config and --set) with each value's source.
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
    /// Node id (setting `node.id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// TOML file of settings: a flat table of Kafka-style keys, e.g. `"num.partitions" = 3`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Any setting as key=value (repeatable); wins over --config.
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
        if let Some(n) = self.node_id {
            sets.push(format!("node.id={n}"));
        }
        sets.extend(self.sets.iter().cloned());
        config.apply_sets(&sets).map_err(|e| e.to_string())?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
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
            println!("Broker settings (use with --set KEY=VALUE or in the --config TOML file):");
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
                    let src = match src {
                        Source::Default => "default",
                        Source::File => "file",
                        Source::CommandLine => "command line",
                    };
                    println!("{k} = {v:?}  # {src}");
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
