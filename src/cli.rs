//! The command line: `edge serve`, `edge check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, EMBEDDED_DEFAULT};

/// Exit code for a bad configuration (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for a failure to start (EX_UNAVAILABLE).
pub const EXIT_START: u8 = 69;

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "Edge CDN caching proxy and origin shield for video streaming")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the edge (default config: ./edge.toml, else the built-in demo config).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print a one-line summary.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: Option<&Path>) -> Result<(String, Config), (String, ConfigError)> {
    match path {
        Some(p) => {
            let shown = p.display().to_string();
            Config::load(p).map(|c| (shown.clone(), c)).map_err(|e| (shown, e))
        }
        None if Path::new("edge.toml").exists() => load(Some(Path::new("edge.toml"))),
        None => Config::parse(EMBEDDED_DEFAULT, Path::new("."))
            .map(|c| ("built-in edge.toml".to_string(), c))
            .map_err(|e| ("built-in edge.toml".to_string(), e)),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pingora_cache::meta=error,edge=info,edge::access=off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).try_init();
}

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { config } => match load(Some(&config)) {
            Ok((_, c)) => {
                println!("{}", c.summary());
                ExitCode::SUCCESS
            }
            Err((file, e)) => {
                eprintln!("{file}: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve { config } => {
            let config = match load(config.as_deref()) {
                Ok((_, c)) => c,
                Err((file, e)) => {
                    eprintln!("{file}: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_tracing();
            match crate::server::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edge: {e}");
                    ExitCode::from(EXIT_START)
                }
            }
        }
    }
}
