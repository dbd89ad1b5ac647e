//! `mediaspool completions SHELL`: the shell's completion script, made from the CLI definition.

use clap::CommandFactory;

use super::EXIT_OK;
use crate::cli::Cli;

pub fn run(shell: clap_complete::Shell) -> u8 {
    let mut cli = visible_cli();
    clap_complete::generate(shell, &mut cli, "mediaspool", &mut std::io::stdout());
    EXIT_OK
}

/// The command line without its hidden commands (the worker), which clap_complete would
/// otherwise offer.
fn visible_cli() -> clap::Command {
    let cli = Cli::command();
    let visible: Vec<clap::Command> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    clap::Command::new("mediaspool")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(visible)
}
