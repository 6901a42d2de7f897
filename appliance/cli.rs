//! The command line: `picket run`, `picket check-config`, `picket check rules`,
//! `picket query`, `picket store check|stats|snapshot` (cli/store.rs), `picket silence
//! add|list|expire` (cli/silence.rs), `picket version`.

mod silence;
mod store;

use crate::config::{Config, ConfigError};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "picket",
    version,
    about = "Observability appliance: host metrics, a Prometheus-compatible store and API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (collect, store, serve) until SIGTERM or SIGINT.
    Run {
        /// Config file (TOML); without it the embedded defaults of config/picket.toml apply.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Data directory; overrides storage.path.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Address to serve the API on; overrides api.listen.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Check a config file and exit non-zero with the file, line and key of each problem.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Evaluate a PromQL expression on a running server and print it as `promtool query` does.
    Query(QueryArgs),
    /// Check files without running: `picket check rules FILE...`.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Print the version.
    Version,
    /// Look after a data directory: check, stats, snapshot.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Silence alerts on a running Picket: add, list, expire.
    Silence {
        #[command(subcommand)]
        command: silence::SilenceCommand,
    },
}

/// `picket query EXPR [--time T | --start S --end E --step D] [--server URL]`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The PromQL expression.
    #[arg(value_name = "EXPR")]
    pub expr: String,
    /// Evaluation time of an instant query (RFC 3339 or Unix seconds); the server's now
    /// when omitted.
    #[arg(long, value_name = "T", conflicts_with_all = ["start", "end", "step"])]
    pub time: Option<String>,
    /// Start of a range query (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "S", requires_all = ["end", "step"])]
    pub start: Option<String>,
    /// End of a range query.
    #[arg(long, value_name = "E", requires = "start")]
    pub end: Option<String>,
    /// Step of a range query (a duration such as 30s, or seconds).
    #[arg(long, value_name = "D", requires = "start")]
    pub step: Option<String>,
    /// Base URL of the Prometheus API to ask.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9464")]
    pub server: String,
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check Prometheus rule files like `promtool check rules`: exit 1 with `FILE:LINE: reason`
    /// for each problem.
    Rules {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Store { command } => store::run(command),
        Command::Silence { command } => silence::run(command),
        Command::Version => {
            println!("picket {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Query(args) => run_query(args),
        Command::Check {
            what: CheckCommand::Rules { files },
        } => check_rules(&files),
        Command::CheckConfig { file } => match Config::load(&file) {
            // The rule files the config names are part of it: systemd runs check-config
            // before start, and a broken rule file would stop `run`.
            Ok(cfg) => match crate::rules::load_rule_files(&cfg.rules.rule_files) {
                Ok(_) => {
                    println!("{}: OK", file.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in errors {
                        eprintln!("picket: invalid rule file: {e}");
                    }
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("{}", describe(&e));
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            data_dir,
            listen,
        } => {
            init_logging();
            let mut cfg = match config {
                Some(path) => match Config::load(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{}", describe(&e));
                        return ExitCode::FAILURE;
                    }
                },
                None => Config::default_config(),
            };
            if let Some(d) = data_dir {
                cfg.storage.path = d;
            }
            if let Some(l) = listen {
                cfg.api.listen = l;
            }
            match crate::app::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("picket: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints the result to stdout, or `Error: <errorType>: <error>` to stderr and exits 1.
fn run_query(args: QueryArgs) -> ExitCode {
    use crate::query::client::{QueryKind, query};
    let kind = match (args.start, args.end, args.step) {
        (Some(start), Some(end), Some(step)) => QueryKind::Range { start, end, step },
        _ => QueryKind::Instant { time: args.time },
    };
    match query(&args.server, &args.expr, &kind) {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `picket check rules`: promtool's output (`Checking FILE`, `  SUCCESS: N rules found`
/// or `  FAILED:` and one `FILE:LINE: reason` line per problem), exit 1 if any file fails.
fn check_rules(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match crate::rules::file::load_file(f) {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found");
            }
            Err(errors) => {
                failed = true;
                println!("  FAILED:");
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn describe(e: &ConfigError) -> String {
    format!("picket: invalid configuration: {e}")
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PICKET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
