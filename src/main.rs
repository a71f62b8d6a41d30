#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    edge::cli::run(edge::cli::Cli::parse())
}
