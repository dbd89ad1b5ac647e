use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mediaspool::cli::Cli::parse();
    mediaspool::commands::run(cli)
}
