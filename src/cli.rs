//! The command line: `edge serve`, `edge check`, `edge sign`, `edge certs`, `edge purge`
//! ([`purge`]: purges through a running edge's admin API).
//!
//! `check`, `serve` and `sign` load the config the same way ([`Config::load`]: parse, then
//! the start-up I/O), so `edge check` reports an unreadable key file exactly as `serve` would.

pub mod ops;
pub mod purge;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, EMBEDDED_DEFAULT};

/// Exit code for a bad configuration (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for bad command-line input (EX_USAGE).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure to start (EX_UNAVAILABLE).
pub const EXIT_START: u8 = 69;

#[derive(Debug, Parser)]
#[command(
    name = "edge",
    version,
    about = "Edge CDN caching proxy and origin shield for video streaming"
)]
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
        /// Take over from the edge running on the same cache folder: receive its listening
        /// sockets, then its cache folder, without refusing a connection (README, "Upgrade").
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and print a one-line summary.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a signed URL for URL, with a key from the config's [tokens].
    Sign(SignArgs),
    /// Generate a development CA and a certificate for NAMES (reuses the CA if present).
    #[cfg(feature = "dev-certs")]
    Certs {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Comma-separated DNS names and IP addresses.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1,edge.test"
        )]
        names: Vec<String>,
    },
    /// Purge URLs (or, with --prefix, everything under them) through a running edge's admin API.
    Purge(purge::PurgeArgs),
    /// Ask a running edge to re-read its config (POST /admin/reload); prints what changed.
    Reload(ops::AdminArgs),
    /// Ask a running edge to fail readiness while it keeps serving (POST /admin/drain).
    Drain(ops::AdminArgs),
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Key id to sign with (default: [tokens] current).
    #[arg(long)]
    key_id: Option<String>,
    /// Path prefix (ending in '/') or exact path the token grants.
    #[arg(long)]
    acl: String,
    /// Lifetime, e.g. 2h.
    #[arg(long, default_value = "2h")]
    ttl: String,
    /// Bind the token to a client address or network.
    #[arg(long)]
    ip: Option<String>,
    /// Highest rendition (pixel height) the viewer may see.
    #[arg(long)]
    max_height: Option<u32>,
    #[arg(long, value_enum, default_value_t = SignStyle::Path)]
    style: SignStyle,
    url: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignStyle {
    Path,
    Query,
}

fn sign_command(a: SignArgs) -> ExitCode {
    let config = match load(a.config.as_deref()) {
        Ok((_, c)) => c,
        Err((file, e)) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(tokens) = &config.tokens else {
        eprintln!("edge sign: the config has no [tokens] section");
        return ExitCode::from(EXIT_CONFIG);
    };
    let ttl = match crate::config::units::parse_duration(&a.ttl) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edge sign: --ttl: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = crate::token::Claims::new(a.acl, now + ttl.as_secs());
    claims.ip = a.ip;
    claims.mh = a.max_height;
    if let Err(e) = claims.validate() {
        eprintln!("edge sign: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let style = match a.style {
        SignStyle::Path => crate::token::url::Style::Path,
        SignStyle::Query => crate::token::url::Style::Query,
    };
    match tokens.sign_url(a.key_id.as_deref(), &claims, &a.url, style) {
        Ok(u) => {
            println!("{u}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge sign: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The config file: the one named, else `./edge.toml` when it exists; `None`: the built-in
/// copy.
fn source(path: Option<&Path>) -> Option<std::path::PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None => Path::new("edge.toml").exists().then(|| "edge.toml".into()),
    }
}

fn load(path: Option<&Path>) -> Result<(String, Config), (String, ConfigError)> {
    match source(path) {
        Some(p) => {
            let shown = p.display().to_string();
            Config::load(&p)
                .map(|c| (shown.clone(), c))
                .map_err(|e| (shown, e))
        }
        None => Config::load_str(EMBEDDED_DEFAULT, Path::new("."))
            .map(|c| ("built-in edge.toml".to_string(), c))
            .map_err(|e| ("built-in edge.toml".to_string(), e)),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,pingora_cache::meta=error,edge=info")
    });
    use tracing_subscriber::prelude::*;
    // foyer reports a failed disk write only in its log: the disk tier's layer counts those
    // reports under a filter of its own, whatever RUST_LOG shows.
    let log = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(crate::cache::disk::FoyerErrors::layer())
        .try_init();
}

/// What `edge check` finds about the cache folder's filesystem.
enum Finding {
    /// Works but will hurt (exit status stays 0).
    Warning(String),
    /// The edge would refuse to start.
    Error(String),
}

/// `edge check` on the machine rather than the file: a disk tier its filesystem cannot hold is
/// an error, by the rule the cache obeys when it opens ([`crate::cache::room::config_error`]).
/// A cache folder that does not exist yet may be a volume mounted later (a container's): its
/// nearest existing ancestor's filesystem is only a guess, so a shortfall there is a warning.
fn disk_room(config: &Config) -> Option<Finding> {
    let cache = &config.cache;
    if cache.disk == 0 {
        return None;
    }
    match crate::cache::room::Room::measure(&cache.dir) {
        Ok(room) => {
            let e = crate::cache::room::config_error(cache.disk, cache.block_size() as u64, room)?;
            Some(if cache.dir.exists() {
                Finding::Error(format!("cache.disk: {e}"))
            } else {
                Finding::Warning(format!(
                    "cache.disk: {e} (cache.dir {} does not exist yet: measured on the filesystem it would be created on)",
                    cache.dir.display()
                ))
            })
        }
        Err(e) => Some(Finding::Warning(format!(
            "cache.dir: cannot measure the filesystem of {}: {e}",
            cache.dir.display()
        ))),
    }
}

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { config } => match load(Some(&config)) {
            Ok((file, c)) => {
                println!("{}", c.summary());
                match disk_room(&c) {
                    None => ExitCode::SUCCESS,
                    Some(Finding::Warning(w)) => {
                        eprintln!("{file}: warning: {w}");
                        ExitCode::SUCCESS
                    }
                    Some(Finding::Error(e)) => {
                        eprintln!("{file}: {e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            }
            Err((file, e)) => {
                eprintln!("{file}: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Sign(args) => sign_command(args),
        Command::Purge(args) => purge::run(args),
        Command::Reload(args) => ops::reload(args),
        Command::Drain(args) => ops::drain(args),
        #[cfg(feature = "dev-certs")]
        Command::Certs { out, names } => match crate::tls::certs::generate_dev(&out, &names) {
            Ok(p) => {
                println!(
                    "certificate {} and key {} for {}",
                    p.cert.display(),
                    p.key.display(),
                    p.names.join(", ")
                );
                println!(
                    "{} development CA {}: trust it with `curl --cacert {}` or import it into a browser",
                    if p.ca_created { "new" } else { "reused" },
                    p.ca_cert.display(),
                    p.ca_cert.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edge certs: {e}");
                ExitCode::from(EXIT_START)
            }
        },
        Command::Serve {
            config: config_path,
            upgrade,
        } => {
            let config = match load(config_path.as_deref()) {
                Ok((_, c)) => c,
                Err((file, e)) => {
                    eprintln!("{file}: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_tracing();
            // A reload re-reads the same file (from the same working directory).
            match crate::server::run(config, source(config_path.as_deref()), upgrade) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edge: {e}");
                    ExitCode::from(EXIT_START)
                }
            }
        }
    }
}
