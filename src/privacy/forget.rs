//! Erasure of one customer's (or one chat's) data: `mediaspool forget`.
//!
//! In: the subject, the catalog, the store and the spool. Out: every message of the subject
//! erased (see [`super::erase`]: objects no other customer's message needs, then the catalog
//! rows, delivered outbox rows included, with one `media.deleted` record per message), the
//! originals and manifests kept in `done/` and quarantined in `failed/` (with their error
//! files) deleted, and a [`Summary`] to keep. Files of the subject still in `incoming/` or
//! `work/` are named, not touched: they are being worked on, and erasing them under a running
//! daemon would make it lose track of a job; run `forget` again once they are done. A second
//! run finds nothing and changes nothing. The spool is matched by manifests: a customer or
//! chat id reaches mediaspool only through one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::clock;
use super::erase::Eraser;
use crate::catalog::{CatalogError, Subject};
use crate::records::DeletionReason;

/// What `forget` did, for a data-protection officer's file.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `{"customer_id": …}` or `{"chat_id": …}`.
    pub subject: BTreeMap<&'static str, String>,
    pub at: String,
    pub store: String,
    /// Messages erased, by event.
    pub messages: BTreeMap<String, usize>,
    /// Ids of the erased messages' records.
    pub record_ids: Vec<String>,
    /// Ids of the `media.deleted` records queued for the sinks.
    pub notice_ids: Vec<String>,
    pub outbox_rows_deleted: usize,
    pub objects_deleted: Vec<String>,
    /// Contents still referred to by other messages: only this subject's reference went.
    pub shared_contents_kept: usize,
    /// Files deleted from `done/` and `failed/`, relative to the spool.
    pub spool_files_deleted: Vec<String>,
    /// What could not be erased, and why. Empty when the erasure is complete.
    pub not_deleted: Vec<NotDeleted>,
}

#[derive(Debug, Serialize)]
pub struct NotDeleted {
    pub what: String,
    pub why: String,
}

impl Summary {
    pub fn complete(&self) -> bool {
        self.not_deleted.is_empty()
    }

    /// One line for stderr.
    pub fn line(&self) -> String {
        let messages: usize = self.messages.values().sum();
        let mut line = format!(
            "forget: {messages} messages, {} objects, {} spool files, {} outbox rows deleted; {} shared contents kept",
            self.objects_deleted.len(),
            self.spool_files_deleted.len(),
            self.outbox_rows_deleted,
            self.shared_contents_kept
        );
        if !self.complete() {
            line.push_str(&format!(
                "; {} NOT deleted (see not_deleted)",
                self.not_deleted.len()
            ));
        }
        line
    }
}

/// Erases everything of `subject`; see the module docs.
pub async fn forget(eraser: &Eraser<'_>, spool: &Path, subject: &Subject) -> Result<Summary, CatalogError> {
    let now = clock::now();
    let rows = eraser.catalog.messages_of(subject).await?;
    let mut messages = BTreeMap::new();
    for row in &rows {
        *messages.entry(row.event.clone()).or_insert(0) += 1;
    }
    let outcome = eraser.erase(&rows, DeletionReason::Erasure, now).await?;
    let erased: std::collections::HashSet<&str> = outcome
        .notices
        .iter()
        .filter_map(|n| n.deleted.as_ref().map(|d| d.record_id.as_str()))
        .collect();
    let mut not_deleted: Vec<NotDeleted> = outcome
        .failed
        .iter()
        .map(|(key, e)| NotDeleted {
            what: format!("object {key}"),
            why: e.to_string(),
        })
        .collect();
    for row in rows.iter().filter(|r| !erased.contains(r.record_id.as_str())) {
        not_deleted.push(NotDeleted {
            what: format!("record {}", row.record_id),
            why: "kept until its objects can be deleted".into(),
        });
    }
    let spool_files = tokio::task::block_in_place(|| erase_spool_files(spool, subject, &mut not_deleted));
    let (key, id) = match subject {
        Subject::Customer(id) => ("customer_id", id),
        Subject::Chat(id) => ("chat_id", id),
    };
    Ok(Summary {
        subject: BTreeMap::from([(key, id.clone())]),
        at: clock::format(now),
        store: eraser.store.describe(),
        messages,
        record_ids: rows
            .iter()
            .filter(|r| erased.contains(r.record_id.as_str()))
            .map(|r| r.record_id.clone())
            .collect(),
        notice_ids: outcome.notices.iter().map(|n| n.record_id.clone()).collect(),
        outbox_rows_deleted: outcome.rows.outbox_rows,
        objects_deleted: outcome.deleted_keys.into_iter().collect(),
        shared_contents_kept: outcome.kept_shared,
        spool_files_deleted: spool_files,
        not_deleted,
    })
}

/// Deletes the subject's files from `done/` and `failed/` (media, manifest, error file);
/// names those in `incoming/` and `work/` as not deleted. Returns what went, relative to the
/// spool.
fn erase_spool_files(spool: &Path, subject: &Subject, not_deleted: &mut Vec<NotDeleted>) -> Vec<String> {
    let mut deleted = Vec::new();
    let relative = |p: &Path| p.strip_prefix(spool).unwrap_or(p).display().to_string();
    for (dir, erase) in [
        ("done", true),
        ("failed", true),
        ("incoming", false),
        ("work", false),
    ] {
        for manifest in manifests_of(&spool.join(dir), subject, not_deleted) {
            let media = strip_suffix(&manifest, ".meta.json");
            let error = media.with_file_name(format!("{}.error.json", file_name(&media)));
            if !erase {
                not_deleted.push(NotDeleted {
                    what: relative(&media),
                    why: "still being processed; run forget again once it is done".into(),
                });
                continue;
            }
            for path in [media, manifest, error] {
                match std::fs::remove_file(&path) {
                    Ok(()) => deleted.push(relative(&path)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => not_deleted.push(NotDeleted {
                        what: relative(&path),
                        why: e.to_string(),
                    }),
                }
            }
        }
    }
    deleted.sort();
    deleted
}

/// Manifests in `dir` (not below it) naming the subject.
fn manifests_of(dir: &Path, subject: &Subject, not_deleted: &mut Vec<NotDeleted>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            not_deleted.push(NotDeleted {
                what: dir.display().to_string(),
                why: format!("cannot be listed: {e}"),
            });
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_manifest =
            file_name(&path).ends_with(".meta.json") && entry.file_type().is_ok_and(|t| t.is_file());
        if is_manifest && names_subject(&path, subject) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Whether a manifest names the subject. A manifest too large or not JSON names nobody (it
/// was quarantined unread, and so was never attributed to anyone).
fn names_subject(path: &Path, subject: &Subject) -> bool {
    const LARGEST: u64 = 16 * 1024 * 1024;
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= LARGEST);
    let Some(value) = small
        .then(|| std::fs::read(path).ok())
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
    else {
        return false;
    };
    let (field, id) = match subject {
        Subject::Customer(id) => ("customer_id", id),
        Subject::Chat(id) => ("chat_id", id),
    };
    value.get(field).and_then(|v| v.as_str()) == Some(id.as_str())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn strip_suffix(path: &Path, suffix: &str) -> PathBuf {
    let name = file_name(path);
    path.with_file_name(name.strip_suffix(suffix).unwrap_or(&name))
}
