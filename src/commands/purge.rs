//! `mediaspool purge [--dry-run]`: retention applied now (see `privacy::retention`).
//! `--dry-run` prints what would go on stdout: one JSON object per expired message
//! (`record_id`, `event`, `retention_until`), then one per object (`key`). Otherwise the
//! `media.deleted` records are delivered to the sinks before the command ends, and a summary
//! goes to stderr; exit 1 if an object could not be deleted (its message stays for the next
//! purge).

use super::{DELIVERY_WITHIN, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::config::Config;
use crate::privacy::{clock, retention, Eraser};
use crate::profile::ProfileSet;

pub fn run(config: Config, profiles: ProfileSet, dry_run: bool) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(async {
        let (ctx, sinks) = match super::open_context(config, profiles).await {
            Ok(opened) => opened,
            Err(message) => {
                eprintln!("mediaspool: {message}");
                return EXIT_USAGE;
            }
        };
        let eraser = Eraser::of(&ctx);
        let now = clock::now();
        let at = clock::format(now);
        if dry_run {
            let (rows, keys) = match retention::plan(&eraser, now).await {
                Ok(plan) => plan,
                Err(e) => {
                    eprintln!("mediaspool: {e}");
                    return EXIT_SOME_FAILED;
                }
            };
            for row in &rows {
                let line = serde_json::json!({
                    "record_id": row.record_id, "event": row.event, "retention_until": row.retention_until,
                });
                println!("{line}");
            }
            for key in &keys {
                println!("{}", serde_json::json!({ "key": key }));
            }
            eprintln!(
                "purge --dry-run at {at}: {} messages and {} objects would be deleted",
                rows.len(),
                keys.len()
            );
            return EXIT_OK;
        }
        let purged = match retention::purge(&eraser, now).await {
            Ok(purged) => purged,
            Err(e) => {
                eprintln!("mediaspool: {e}");
                return EXIT_SOME_FAILED;
            }
        };
        sinks.deliver_due(&ctx.catalog, DELIVERY_WITHIN).await;
        let o = &purged.outcome;
        eprintln!(
            "purge at {at}: {} messages, {} objects and {} outbox rows deleted; {} contents kept for younger messages; {} media.deleted records",
            o.messages,
            o.deleted_keys.len(),
            o.rows.outbox_rows,
            o.kept_shared,
            o.notices.len()
        );
        for (key, e) in &o.failed {
            eprintln!("not deleted: {key}: {e}");
        }
        super::report_backlog(&sinks, &ctx.catalog).await;
        if purged.incomplete {
            EXIT_SOME_FAILED
        } else {
            EXIT_OK
        }
    })
}
