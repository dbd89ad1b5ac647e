//! `mediaspool forget --customer ID | --chat ID`: erasure of one customer's or chat's data
//! (see `privacy::forget`). The summary goes to stdout as JSON (a file to keep), one line to
//! stderr; the `media.deleted` records are delivered to the sinks before the command ends.
//! Exit 1 when anything could not be deleted; the summary's `not_deleted` says what and why.

use super::{DELIVERY_WITHIN, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::catalog::Subject;
use crate::config::Config;
use crate::privacy::{forget, Eraser};
use crate::profile::ProfileSet;

pub fn run(config: Config, profiles: ProfileSet, subject: &Subject) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(async {
        let spool = config.spool.dir.clone();
        let (ctx, sinks) = match super::open_context(config, profiles).await {
            Ok(opened) => opened,
            Err(message) => {
                eprintln!("mediaspool: {message}");
                return EXIT_USAGE;
            }
        };
        let summary = match forget::forget(&Eraser::of(&ctx), &spool, subject).await {
            Ok(summary) => summary,
            Err(e) => {
                eprintln!("mediaspool: nothing was erased from the catalog: {e}");
                return EXIT_SOME_FAILED;
            }
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serialises")
        );
        eprintln!("{}", summary.line());
        for item in &summary.not_deleted {
            eprintln!("not deleted: {}: {}", item.what, item.why);
        }
        sinks.deliver_due(&ctx.catalog, DELIVERY_WITHIN).await;
        super::report_backlog(&sinks, &ctx.catalog).await;
        if summary.complete() {
            EXIT_OK
        } else {
            EXIT_SOME_FAILED
        }
    })
}
