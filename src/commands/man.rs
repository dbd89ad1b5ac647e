//! `mediaspool man [COMMAND]`, `mediaspool man --dir DIR`: manual pages in roff, made from the
//! CLI definition: mediaspool(1), and mediaspool-COMMAND(1) for each command, each with the
//! examples its `--help` shows. Out: a page on stdout, or every page written into DIR.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

use super::{EXIT_OK, EXIT_USAGE};
use crate::cli::Cli;

pub fn run(command: Option<&str>, dir: Option<&Path>) -> u8 {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let print = |cmd| page(cmd).and_then(|roff| std::io::stdout().lock().write_all(&roff));
    let result = match (dir, command) {
        (Some(dir), _) => write_all(&cli, dir),
        (None, None) => print(&cli),
        (None, Some(name)) => match visible_commands(&cli).find(|c| c.get_name() == name) {
            Some(sub) => print(sub),
            None => {
                let names: Vec<&str> = visible_commands(&cli).map(clap::Command::get_name).collect();
                eprintln!("mediaspool: no command {name:?}; commands: {}", names.join(", "));
                return EXIT_USAGE;
            }
        },
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("mediaspool: cannot write the manual pages: {e}");
            EXIT_USAGE
        }
    }
}

fn visible_commands(cli: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cli.get_subcommands().filter(|c| !c.is_hide_set())
}

/// mediaspool.1 and every command's page into `dir` (created if missing); prints each path.
fn write_all(cli: &clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for cmd in std::iter::once(cli).chain(visible_commands(cli)) {
        let path = dir.join(Man::new(cmd.clone()).get_filename());
        std::fs::write(&path, page(cmd)?)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// One page: clap_mangen's sections, with the `--help` examples in an EXAMPLES section of
/// their own (as written, not refilled into a paragraph). Characters beyond ASCII (–, ×, →)
/// are written as `\[uXXXX]` escapes, which groff and mandoc read whatever the locale.
fn page(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut roff = Vec::new();
    write_page(cmd, &mut roff)?;
    let text = String::from_utf8(roff).expect("roff from UTF-8 strings is UTF-8");
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            ascii.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    Ok(ascii.into_bytes())
}

fn write_page(cmd: &clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if let Some(examples) = cmd.get_after_help() {
        let text = examples.to_string();
        let mut roff = Roff::default();
        roff.control("SH", ["EXAMPLES"]).control("nf", []);
        for line in text.lines().skip_while(|l| l.ends_with(':')) {
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []).to_writer(w)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}
