//! What each command does, and the exit codes of SPEC.md: 0 success, 1 some inputs failed,
//! 2 bad usage or configuration, 130 interrupted.

mod bench;
mod check;
mod completions;
mod deliveries;
mod forget;
mod link;
mod man;
mod probe;
mod process;
mod purge;
mod query;
mod watch;

use std::process::ExitCode;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError};
use crate::delivery::Sinks;
use crate::privacy::redact;
use crate::profile::ProfileSet;

pub const EXIT_OK: u8 = 0;
pub const EXIT_SOME_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    crate::logging::init(cli.log_format, cli.verbose, cli.quiet);
    // Commands that need no configuration.
    match &cli.command {
        Command::Worker => return ExitCode::from(crate::worker::child::run()),
        Command::Completions { shell } => return ExitCode::from(completions::run(*shell)),
        Command::Man { command, dir } => return ExitCode::from(man::run(command.as_deref(), dir.as_deref())),
        _ => {}
    }
    let loaded = load(&cli);
    let code = match (&cli.command, loaded) {
        (Command::Check, loaded) => check::run(loaded),
        (_, Err(message)) => {
            eprintln!("mediaspool: {message}");
            EXIT_USAGE
        }
        (Command::Probe { files }, Ok(_)) => probe::run(files),
        (Command::Process { files, json }, Ok((config, profiles))) => {
            let report = process::Report {
                json: *json,
                summary: !cli.quiet,
            };
            process::run(config, profiles, files, report)
        }
        (Command::Watch, Ok((config, profiles))) => watch::run(config, profiles),
        (Command::Link { target }, Ok((config, _))) => link::run(&config, target),
        (Command::Purge { dry_run }, Ok((config, profiles))) => purge::run(config, profiles, *dry_run),
        (Command::Forget { customer, chat }, Ok((config, profiles))) => {
            let subject = match (customer, chat) {
                (Some(id), _) => crate::catalog::Subject::Customer(id.clone()),
                (None, Some(id)) => crate::catalog::Subject::Chat(id.clone()),
                (None, None) => unreachable!("clap requires one"),
            };
            forget::run(config, profiles, &subject)
        }
        (
            Command::Query {
                customer,
                chat,
                kind,
                tag,
                since,
                until,
            },
            Ok((config, _)),
        ) => {
            let times = (
                since.as_deref().map(query::parse_time).transpose(),
                until.as_deref().map(query::parse_time).transpose(),
            );
            match times {
                (Ok(since), Ok(until)) => {
                    let filter = crate::catalog::QueryFilter {
                        customer: customer.clone(),
                        chat: chat.clone(),
                        kind: kind.clone(),
                        tag: tag.clone(),
                        since,
                        until,
                    };
                    query::run(&config, &filter)
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("mediaspool: {e}");
                    EXIT_USAGE
                }
            }
        }
        (Command::Deliveries { sink, dead }, Ok((config, _))) => {
            deliveries::list(&config, sink.as_deref(), *dead)
        }
        (Command::Redrive { sink, record }, Ok((config, _))) => {
            deliveries::redrive(&config, sink.as_deref(), record.as_deref())
        }
        (Command::Worker | Command::Completions { .. } | Command::Man { .. }, _) => {
            unreachable!("handled above")
        }
        (Command::Bench(args), Ok((config, profiles))) => bench::run(&config, &profiles, args),
    };
    ExitCode::from(code)
}

/// Runs `f` to completion on a runtime of its own (commands that reach only the catalog).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
        .block_on(f)
}

/// The configured catalog, or `None` after saying on stderr why it cannot be opened.
async fn open_catalog(config: &Config) -> Option<std::sync::Arc<dyn crate::catalog::Catalog>> {
    match crate::catalog::open(&config.catalog.url).await {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("mediaspool: {e}");
            None
        }
    }
}

/// The job context and sinks of a command that works on the catalog and store as the daemon
/// does (`purge`, `forget`).
async fn open_context(config: Config, profiles: ProfileSet) -> Result<(crate::pipeline::Ctx, Sinks), String> {
    let sinks = crate::daemon::sinks(&config).map_err(|e| e.to_string())?;
    let ctx = crate::daemon::context(config, profiles, std::env::temp_dir())
        .await
        .map_err(|e| e.to_string())?;
    Ok((ctx, sinks))
}

/// How long a command's records may take to reach the sinks before it exits (those not
/// delivered wait in the outbox for the daemon).
const DELIVERY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Names on stderr each sink with records still waiting; how many wait in all.
async fn report_backlog(sinks: &Sinks, catalog: &Arc<dyn Catalog>) -> u64 {
    let mut waiting = 0;
    for sink in sinks.names() {
        let backlog = { catalog.sink_backlog(sink).await };
        if let Ok(b) = backlog {
            if b.waiting > 0 {
                eprintln!(
                    "mediaspool: {} record(s) wait for delivery to {sink}; `mediaspool watch` delivers them",
                    b.waiting
                );
                waiting += b.waiting;
            }
        }
    }
    waiting
}

/// Configuration and profiles, loaded and validated; every problem in one message.
fn load(cli: &Cli) -> Result<(Config, ProfileSet), String> {
    let (config, mut problems) = Config::read(cli.config.as_deref()).map_err(|e| e.to_string())?;
    redact::register_secret(&config.store.access_key);
    redact::register_secret(&config.http.token);
    for password in crate::catalog::postgres::url_passwords(&config.catalog.url) {
        redact::register_secret(&password);
    }
    for key in config.http.card_secret.split_whitespace() {
        redact::register_secret(key);
    }
    let profiles = ProfileSet::load(config.profiles_dir.as_deref());
    if let Err(e) = &profiles {
        problems.extend(e.problems.iter().cloned());
    }
    problems.extend(config.problems(profiles.as_ref().ok()));
    match profiles {
        Ok(profiles) if problems.is_empty() => Ok((config, profiles)),
        _ => Err(ConfigError::Invalid(problems).to_string()),
    }
}
