//! The command line: `picket run`, `picket check-config`, `picket version`, and
//! `picket store check|stats|snapshot` (cli/store.rs).

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
    /// Print the version.
    Version,
    /// Look after a data directory: check, stats, snapshot.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Store { command } => store::run(command),
        Command::Version => {
            println!("picket {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
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
