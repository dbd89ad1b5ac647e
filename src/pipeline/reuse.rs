//! Outputs another daemon already made, found in the store rather than in the catalog.
//!
//! Daemons that share a bucket but not a catalog (each its own SQLite) cannot see each other's
//! rows. So once a job has stored every output of some bytes with a profile (thumbnail,
//! original, rendition), it puts one object more beside them: `…/<profile id>/outputs.json`,
//! the [`Marker`], holding what a record says about them (kind, the source's type and codecs,
//! the rendition's and thumbnail's facts and keys). It is put last, so its presence means every
//! output is there: a daemon that died half-way left no marker, and the next job on those
//! bytes renders again (its puts find the outputs already made and leave them as they are). A
//! rejected job removes what it created marker first, and erasure deletes markers before the
//! outputs, so an incomplete set never carries one. What it holds depends only on the bytes
//! and the profile, so a second write of it (two daemons at once on a store that ignores
//! conditional writes) is harmless.
//!
//! In: a job whose bytes the catalog does not know with the profile routing picks. Out: the
//! marker found, or `None` (then the job does its media work). [`find`] reads the markers of
//! the profiles routing could pick for these bytes — one per kind (audio, video, image), at
//! once: one round trip — and, only when one is there, HEADs the objects it names (at once
//! too), so a marker whose outputs were removed since is not trusted. Fails with the store's
//! errors; a marker that cannot be read as one is ignored (the media work is done instead).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::manifest::{check_manifest, load_manifest};
use super::outputs::{attach_links, put_original, AS_IS};
use super::{base_record, repeat, wanted_profile_id, Ctx, Done, Facts, JobInput, Stop};
use crate::catalog::{JobVerdict, StoredMedia};
use crate::hash::ContentHash;
use crate::metrics;
use crate::profile::MediaKind;
use crate::records::{Event, MediaInfo, Record, SourceInfo, ThumbnailInfo};
use crate::store::{keys, Placed, StoreError};

const SCHEMA: &str = "mediaspool.outputs/v1";

/// What the marker of a set of outputs holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Marker {
    schema: String,
    /// The input's type, container and codecs, as probing found them (no name: that is the
    /// sender's, not the bytes').
    pub source: SourceInfo,
    /// The rendition (its `kind` is that of the input); no URL.
    pub media: MediaInfo,
    pub thumbnail: Option<ThumbnailInfo>,
}

impl Marker {
    /// The marker of the outputs a record of newly stored media names.
    pub fn of(record: &Record) -> Option<Marker> {
        let media = MediaInfo {
            url: String::new(),
            ..record.media.clone()?
        };
        let thumbnail = record.thumbnail.clone().map(|t| ThumbnailInfo {
            url: String::new(),
            ..t
        });
        Some(Marker {
            schema: SCHEMA.into(),
            source: SourceInfo {
                file_name: String::new(),
                ..record.source.clone()
            },
            media,
            thumbnail,
        })
    }

    /// Written as a file to put (in `dir`).
    pub fn to_file(&self, dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
        let file = tempfile::Builder::new()
            .prefix("outputs-")
            .suffix(".json")
            .tempfile_in(dir)?;
        serde_json::to_writer(file.as_file(), self)?;
        Ok(file)
    }

    pub fn kind(&self) -> MediaKind {
        serde_json::from_value(serde_json::Value::String(self.media.kind.clone())).unwrap_or(MediaKind::Other)
    }

    pub fn profile_id(&self) -> Option<&str> {
        self.media.profile_id.as_deref()
    }
}

/// The marker of outputs of these bytes with a profile routing would pick now, if every object
/// it names is in the store.
pub(super) async fn find(ctx: &Ctx, facts: &Facts, hash: &ContentHash) -> Result<Option<Marker>, StoreError> {
    let mut profile_ids: Vec<String> = [MediaKind::Audio, MediaKind::Video, MediaKind::Image]
        .into_iter()
        .filter_map(|kind| wanted_profile_id(ctx, kind, facts))
        .filter(|id| id != AS_IS)
        .collect();
    profile_ids.sort();
    profile_ids.dedup();
    let prefix = &ctx.config.store.prefix;
    let reads = profile_ids.iter().map(|id| {
        let key = keys::outputs(prefix, hash, id);
        async move {
            ctx.store
                .get(&key)
                .await
                .map(|got| got.map(|bytes| (key, id, bytes)))
        }
    });
    let found = futures::future::try_join_all(reads).await?;
    let Some((key, id, bytes)) = found.into_iter().flatten().next() else {
        return Ok(None);
    };
    let marker = match serde_json::from_slice::<Marker>(&bytes) {
        Ok(m) if m.schema == SCHEMA && m.profile_id() == Some(id.as_str()) => m,
        Ok(_) | Err(_) => {
            tracing::warn!(key, "an outputs marker that is not one; doing the media work");
            return Ok(None);
        }
    };
    let named = std::iter::once(&marker.media.key).chain(marker.thumbnail.as_ref().map(|t| &t.key));
    let heads = named.map(|key| async move { ctx.store.head(key).await.map(|info| (key, info)) });
    let mut bytes = 0;
    for (named, info) in futures::future::try_join_all(heads).await? {
        let Some(info) = info else {
            tracing::warn!(key, missing = %named, "outputs marker found, but an object it names is gone; making them again");
            return Ok(None);
        };
        if named == &marker.media.key {
            bytes = info.bytes;
        }
    }
    Ok(Some(Marker {
        media: MediaInfo {
            bytes,
            ..marker.media
        },
        ..marker
    }))
}

/// A job whose outputs the store already holds (see the module docs): recorded as stored, with
/// no media work. `None` when there are none, or when the manifest routes the bytes to
/// another profile after all.
pub(super) async fn stored_before(
    ctx: &Arc<Ctx>,
    input: &JobInput,
    facts: &mut Facts,
) -> Result<Option<Done>, Stop> {
    let hash = facts.hash.clone().expect("hashed before");
    facts.job.stage(metrics::Stage::store);
    let Some(marker) = find(ctx, facts, &hash).await? else {
        return Ok(None);
    };
    let kind = marker.kind();
    // The record needs the manifest: wait for it now, as for a duplicate.
    load_manifest(ctx, &input.manifest, facts, true).await?;
    check_manifest(ctx, &input.path, facts, true).await?;
    if let Some(done) = repeat(ctx, input, facts).await? {
        return Ok(Some(done));
    }
    let tags = facts
        .manifest
        .as_ref()
        .map(|m| m.tags.clone())
        .unwrap_or_default();
    let profile = ctx
        .config
        .routing
        .profile_for(kind, &tags, &ctx.profiles)
        .and_then(|name| ctx.profiles.get(&name).cloned())
        .filter(|p| Some(p.id.as_str()) == marker.profile_id());
    let Some(profile) = profile else {
        return Ok(None);
    };
    let mut record = base_record(Event::Stored, facts);
    record.source.describe(
        marker.source.mime.as_deref(),
        marker.source.container.as_deref(),
        &marker.source.codecs,
    );
    let mime = marker
        .source
        .mime
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    record.original = put_original(
        ctx,
        &mut Placed::new(ctx.store.as_ref()),
        &hash,
        &input.path,
        &mime,
    )
    .await?;
    record.media = Some(MediaInfo {
        profile: Some(profile.name.clone()),
        ..marker.media
    });
    record.thumbnail = marker.thumbnail;
    attach_links(ctx, &mut record).await?;
    tracing::info!(
        file = %input.file_name, profile = %profile.name,
        "outputs already in the store (made by another daemon): no media work"
    );
    metrics::outputs_reused();
    let stored = StoredMedia::from_record(&record).expect("media just set");
    let kind = kind.as_str().to_string();
    Ok(Some((record, JobVerdict::Done, Some((profile.id, kind, stored)))))
}
