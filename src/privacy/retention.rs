//! Retention: how long a message's media and record are kept, and purging what has expired.
//!
//! A message's days are, the most specific first: its manifest's `retention_days`, else the
//! longest of `policy.retention_tags` over its tags (so a `legal-hold` tag keeps media longer
//! than anything else it is tagged with; 0 there means forever), else its profile's
//! `retention_days`, else `policy.retention_days`; 0 keeps it forever. The record carries the
//! resulting `retention_until`, fixed when the message is processed.
//!
//! [`purge`] erases every message whose `retention_until` has passed, in batches; a message's
//! bytes stay in the store while a younger message (or one kept forever) still refers to them.
//! [`run_periodically`] does it every `policy.purge_interval` in the daemon.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::clock;
use super::erase::{Eraser, Outcome};
use crate::catalog::{CatalogError, MessageRow};
use crate::config::PolicyConfig;
use crate::pipeline::Ctx;
use crate::records::DeletionReason;

/// Messages erased per catalog transaction.
const BATCH: usize = 1000;

/// The days a message is kept (0: forever), the most specific setting winning.
pub fn days(
    policy: &PolicyConfig,
    manifest_days: Option<u32>,
    tags: &[String],
    profile_days: Option<u32>,
) -> u32 {
    let forever_longest = |d: &u32| if *d == 0 { u32::MAX } else { *d };
    let by_tags = tags
        .iter()
        .filter_map(|t| policy.retention_tags.get(t).copied())
        .max_by_key(forever_longest);
    manifest_days
        .or(by_tags)
        .or(profile_days)
        .unwrap_or(policy.retention_days)
}

/// When a message processed at `now` and kept `days` expires; `None` for 0 (forever).
pub fn until(days: u32, now: OffsetDateTime) -> Option<String> {
    if days == 0 {
        return None;
    }
    now.checked_add(time::Duration::days(i64::from(days)))
        .map(clock::format)
}

/// What a purge did.
#[derive(Debug, Default)]
pub struct Purged {
    pub outcome: Outcome,
    /// Batches that left messages in place because an object could not be deleted.
    pub incomplete: bool,
}

/// Erases every message expired at `now`. Stops early when the store fails (the rest waits
/// for the next purge).
pub async fn purge(eraser: &Eraser<'_>, now: OffsetDateTime) -> Result<Purged, CatalogError> {
    let now_text = clock::format(now);
    let mut purged = Purged::default();
    // Messages left in place by a failed delete are passed over for the rest of this run.
    let mut after = String::new();
    loop {
        let rows = eraser.catalog.expired(&now_text, &after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        let last = last.record_id.clone();
        let outcome = eraser.erase(&rows, DeletionReason::Retention, now).await?;
        let failed = !outcome.failed.is_empty();
        purged.outcome.absorb(outcome);
        if failed {
            purged.incomplete = true;
            after = last;
            if purged.outcome.failed.iter().any(|(_, e)| e.is_transient()) {
                break;
            }
        }
    }
    Ok(purged)
}

/// What a purge at `now` would erase: the expired messages, and the keys that would leave
/// the store with them.
pub async fn plan(
    eraser: &Eraser<'_>,
    now: OffsetDateTime,
) -> Result<(Vec<MessageRow>, BTreeSet<String>), CatalogError> {
    let now_text = clock::format(now);
    let mut rows = Vec::new();
    loop {
        let after = rows
            .last()
            .map_or(String::new(), |r: &MessageRow| r.record_id.clone());
        let batch = eraser.catalog.expired(&now_text, &after, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        rows.extend(batch);
    }
    let ids: Vec<String> = rows.iter().map(|r| r.record_id.clone()).collect();
    let keys = eraser
        .catalog
        .unneeded_media(&ids)
        .await?
        .iter()
        .flat_map(|m| m.keys())
        .collect();
    Ok((rows, keys))
}

/// The daemon's purge: at start, then every `policy.purge_interval`, until `stop` turns
/// true. The `media.deleted` records it commits are drained like any job's.
pub async fn run_periodically(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(ctx.config.policy.purge_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match purge(&Eraser::of(&ctx), clock::now()).await {
            Ok(purged) => {
                let o = &purged.outcome;
                if o.messages > 0 {
                    tracing::info!(
                        messages = o.messages,
                        objects = o.deleted_keys.len(),
                        "retention: deleted expired media and records"
                    );
                    ctx.committed.ring();
                }
                for (key, e) in &o.failed {
                    tracing::warn!(key, error = %e, "retention: could not delete; tried again at the next purge");
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention: purge failed; tried again at the next purge"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(default: u32, tags: &[(&str, u32)]) -> PolicyConfig {
        PolicyConfig {
            retention_days: default,
            retention_tags: tags.iter().map(|(t, d)| (t.to_string(), *d)).collect(),
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn the_most_specific_setting_wins() {
        let p = policy(30, &[("legal-hold", 3650), ("marketing", 90), ("forever", 0)]);
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(days(&p, None, &[], None), 30, "the default");
        assert_eq!(days(&p, None, &[], Some(7)), 7, "the profile's");
        assert_eq!(
            days(&p, None, &tags(&["marketing"]), Some(7)),
            90,
            "a tag over the profile"
        );
        assert_eq!(
            days(&p, None, &tags(&["marketing", "legal-hold"]), None),
            3650,
            "the longest tag"
        );
        assert_eq!(
            days(&p, None, &tags(&["marketing", "forever"]), None),
            0,
            "forever is longest"
        );
        assert_eq!(
            days(&p, Some(1), &tags(&["legal-hold"]), Some(7)),
            1,
            "the manifest's over all"
        );
        assert_eq!(days(&p, None, &tags(&["other"]), None), 30, "an unlisted tag");
    }

    #[test]
    fn zero_days_never_expire() {
        let now = clock::parse("2026-11-28T10:00:00.5Z").unwrap();
        assert_eq!(until(0, now), None);
        assert_eq!(until(2, now).unwrap(), "2026-11-30T10:00:00Z");
    }
}
