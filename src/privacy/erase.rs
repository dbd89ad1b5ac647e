//! Erasing a set of messages: the step retention and `forget` share.
//!
//! In: catalog rows of the messages to erase. Out: the objects no other message needs gone
//! from the store (in batches, each rendition's outputs marker before its outputs), then — in one catalog transaction — the messages' rows, their
//! jobs', their outbox rows (delivered or not: they carry the record) and the renditions no
//! message refers to any more, with one `media.deleted` record per message queued for every
//! sink. Bytes another message still refers to stay, and so do their rows: only this message's
//! reference goes. A message whose objects could not all be deleted keeps its rows, so the
//! next run tries again; what failed is in [`Outcome::failed`]. Fails with [`CatalogError`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use time::OffsetDateTime;

use super::clock;
use crate::catalog::{Catalog, CatalogError, Erased, Erasure, MessageRow, UnneededMedia};
use crate::delivery::Routes;
use crate::hash::ContentHash;
use crate::pipeline::Ctx;
use crate::records::{Deletion, DeletionReason, Event, Record, SourceInfo};
use crate::store::{Store, StoreError};

/// What erasure works with: the catalog, the store, and the routes notices take to the sinks.
pub struct Eraser<'a> {
    pub catalog: &'a dyn Catalog,
    pub store: &'a dyn Store,
    pub routes: &'a Routes,
}

/// What one or more erasures did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages erased, with the `media.deleted` record of each.
    pub messages: usize,
    pub notices: Vec<Record>,
    /// Objects deleted from the store.
    pub deleted_keys: BTreeSet<String>,
    /// Distinct contents of erased messages that stay, still another message's.
    pub kept_shared: usize,
    /// Objects that could not be deleted, and why; their messages stay for the next run.
    pub failed: Vec<(String, StoreError)>,
    /// Rows removed from the catalog.
    pub rows: Erased,
}

impl Outcome {
    pub fn absorb(&mut self, other: Outcome) {
        self.messages += other.messages;
        self.notices.extend(other.notices);
        self.deleted_keys.extend(other.deleted_keys);
        self.kept_shared += other.kept_shared;
        self.failed.extend(other.failed);
        self.rows.messages += other.rows.messages;
        self.rows.outbox_rows += other.rows.outbox_rows;
        self.rows.media_rows += other.rows.media_rows;
    }
}

impl<'a> Eraser<'a> {
    /// The daemon's catalog, store and sinks.
    pub fn of(ctx: &'a Ctx) -> Eraser<'a> {
        Eraser {
            catalog: ctx.catalog.as_ref(),
            store: ctx.store.as_ref(),
            routes: &ctx.routes,
        }
    }

    /// Erases these messages (see the module docs), at `now`.
    pub async fn erase(
        &self,
        rows: &[MessageRow],
        reason: DeletionReason,
        now: OffsetDateTime,
    ) -> Result<Outcome, CatalogError> {
        let ids: Vec<String> = rows.iter().map(|r| r.record_id.clone()).collect();
        let unneeded = self.catalog.unneeded_media(&ids).await?;
        let (deleted, failed) = self.delete_objects(&unneeded).await;
        // Contents whose objects did not all go keep their messages and rows for the next run.
        let blocked: HashSet<&str> = unneeded
            .iter()
            .filter(|m| objects_of(m).iter().any(|k| !deleted.contains(k)))
            .map(|m| m.content_hash.as_str())
            .collect();
        let mut keys_by_hash: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut media = Vec::new();
        for m in unneeded
            .iter()
            .filter(|m| !blocked.contains(m.content_hash.as_str()))
        {
            keys_by_hash
                .entry(m.content_hash.as_str())
                .or_default()
                .extend(objects_of(m));
            media.push((m.content_hash.clone(), m.profile_id.clone()));
        }
        let going: Vec<&MessageRow> = rows
            .iter()
            .filter(|r| !r.content_hash.as_deref().is_some_and(|h| blocked.contains(h)))
            .collect();
        let notices: Vec<Record> = going
            .iter()
            .map(|row| {
                let keys = row
                    .content_hash
                    .as_deref()
                    .and_then(|h| keys_by_hash.get(h))
                    .cloned()
                    .unwrap_or_default();
                notice(row, reason, keys, now)
            })
            .collect();
        let going_ids: Vec<String> = going.iter().map(|r| r.record_id.clone()).collect();
        let routed: Vec<(Record, Vec<String>)> = notices
            .iter()
            .map(|n| {
                let sinks = self.routes.for_record(n).into_iter().map(str::to_string);
                (n.clone(), sinks.collect())
            })
            .collect();
        let erasure = Erasure {
            record_ids: going_ids,
            media,
            notices: routed,
        };
        let erased = self.catalog.erase(&erasure).await?;
        // A rejected message's bytes were never stored: nothing of them is kept.
        let kept_shared = going
            .iter()
            .filter(|r| r.event != Event::Rejected.as_str())
            .filter_map(|r| r.content_hash.as_deref())
            .filter(|h| !keys_by_hash.contains_key(h))
            .collect::<HashSet<_>>()
            .len();
        Ok(Outcome {
            messages: erased.messages,
            deleted_keys: deleted,
            notices,
            kept_shared,
            failed,
            rows: erased,
        })
    }
}

impl Eraser<'_> {
    /// Deletes the objects of `unneeded`, the markers first: a marker says its outputs are all
    /// there (see `pipeline::reuse`), so it must never outlive one of them. Outputs whose
    /// marker could not be deleted stay. What was deleted, and what failed with why.
    async fn delete_objects(
        &self,
        unneeded: &[UnneededMedia],
    ) -> (BTreeSet<String>, Vec<(String, StoreError)>) {
        let markers: BTreeSet<String> = unneeded.iter().filter_map(UnneededMedia::marker).collect();
        let mut failed = self.delete(&markers).await;
        let kept_markers: HashSet<String> = failed.iter().map(|(k, _)| k.clone()).collect();
        let outputs: BTreeSet<String> = unneeded
            .iter()
            .filter(|m| m.marker().is_none_or(|k| !kept_markers.contains(&k)))
            .flat_map(UnneededMedia::keys)
            .collect();
        failed.extend(self.delete(&outputs).await);
        let not_deleted: HashSet<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
        let deleted = markers
            .iter()
            .filter(|k| !kept_markers.contains(*k))
            .chain(&outputs)
            .filter(|k| !not_deleted.contains(k.as_str()))
            .cloned()
            .collect();
        (deleted, failed)
    }

    async fn delete(&self, keys: &BTreeSet<String>) -> Vec<(String, StoreError)> {
        if keys.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = keys.iter().cloned().collect();
        self.store.delete_many(&keys).await
    }
}

/// Every object of a rendition: its marker, then what records name.
fn objects_of(m: &UnneededMedia) -> Vec<String> {
    m.marker().into_iter().chain(m.keys()).collect()
}

/// The `media.deleted` record of one erased message: the message's CRM fields, so a receiver
/// can find its copy, and the deleted record's id.
fn notice(row: &MessageRow, reason: DeletionReason, keys: Vec<String>, now: OffsetDateTime) -> Record {
    let hash = row.content_hash.as_deref().and_then(ContentHash::parse);
    let mut record = Record::new(
        Event::Deleted,
        &row.record_id,
        hash.as_ref(),
        SourceInfo::default(),
    );
    record.content_hash = row.content_hash.clone();
    record.crm = row.crm.clone();
    record.processed_at = clock::format(now);
    record.deleted = Some(Deletion {
        record_id: row.record_id.clone(),
        reason,
        keys,
    });
    record
}
