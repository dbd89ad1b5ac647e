//! What retention and erasure ask of a catalog, as the [`Catalog`](super::Catalog) methods
//! `expired`, `messages_of`, `unneeded_media` and `erase` take and return them: which messages
//! are due to go (expired, or of one customer or chat), which renditions no other message
//! needs, and removing the rows of those messages in one transaction with the
//! `media.deleted` records that announce it.

use super::StoredMedia;
use crate::records::{Crm, Record};

/// A message as erasure needs it: its record's identity, bytes and CRM fields.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub record_id: String,
    pub event: String,
    pub content_hash: Option<String>,
    pub retention_until: Option<String>,
    pub crm: Crm,
}

/// Whose messages `forget` erases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Customer(String),
    Chat(String),
}

/// A rendition no message outside the set being erased refers to.
#[derive(Debug, Clone)]
pub struct UnneededMedia {
    pub content_hash: String,
    pub profile_id: String,
    pub media: StoredMedia,
}

impl UnneededMedia {
    /// The store keys of the rendition, its thumbnail and the original, as records name them.
    pub fn keys(&self) -> Vec<String> {
        let m = &self.media;
        std::iter::once(m.media.key.clone())
            .chain(m.thumbnail.as_ref().map(|t| t.key.clone()))
            .chain(m.original.as_ref().map(|o| o.key.clone()))
            .collect()
    }

    /// The marker saying the rendition's outputs are all stored (see `pipeline::reuse`), when
    /// it is a rendition (files kept as they came have none).
    pub fn marker(&self) -> Option<String> {
        self.media
            .media
            .profile_id
            .as_ref()
            .map(|_| crate::store::keys::outputs_beside(&self.media.media.key))
    }
}

/// One erasure, committed at once.
#[derive(Debug, Clone, Default)]
pub struct Erasure {
    /// Messages whose rows go: the message, its job, its outbox rows and their deliveries.
    pub record_ids: Vec<String>,
    /// Renditions whose objects are gone: (content hash, profile id). A row goes only if no
    /// message (but a rejected one) refers to its bytes any more when the transaction runs.
    pub media: Vec<(String, String)>,
    /// The `media.deleted` records, one per message, each with the sinks it goes to.
    pub notices: Vec<(Record, Vec<String>)>,
}

/// Rows an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub messages: usize,
    pub outbox_rows: usize,
    pub media_rows: usize,
}

/// A message row with its CRM fields: the record's own `crm` (message id, channel…) when it
/// could be read (`crm`, JSON), else the tags column (JSON); customer and chat from their
/// columns either way.
pub(super) fn with_crm(
    mut row: MessageRow,
    crm: Option<&str>,
    tags: &str,
    (customer_id, chat_id): (Option<String>, Option<String>),
) -> Result<MessageRow, super::CatalogError> {
    row.crm = match crm {
        Some(crm) => serde_json::from_str(crm)?,
        None => Crm {
            tags: serde_json::from_str(tags)?,
            ..Crm::default()
        },
    };
    (row.crm.customer_id, row.crm.chat_id) = (customer_id, chat_id);
    Ok(row)
}
