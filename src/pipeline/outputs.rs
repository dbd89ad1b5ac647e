//! The store steps of a job: putting a verified rendition (thumbnail, original, rendition, then
//! the marker saying they are all there) or a file kept as it came, and what the record says
//! about them.

use std::path::Path;
use std::sync::Arc;

use super::reuse::Marker;
use super::{base_record, Ctx, Facts, NewMedia, Stop};
use crate::catalog::{JobVerdict, StoredMedia};
use crate::config::OtherRoute;
use crate::failure::{ErrorCode, Failure};
use crate::hash::ContentHash;
use crate::media::{Probe, Rendition};
use crate::profile::{MediaKind, Profile};
use crate::records::{Event, MediaInfo, Record, ThumbnailInfo};
use crate::store::{keys, Metadata, ObjectClass, ObjectRef, Placed, PutRequest, StoreError};

/// Profile id under which files kept as they came are catalogued.
pub(super) const AS_IS: &str = "as-is";

pub(super) async fn store_rendition(
    ctx: &Arc<Ctx>,
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    rendition: &Rendition,
    facts: &Facts,
) -> Result<(Record, JobVerdict, Option<NewMedia>), Stop> {
    let hash = facts.hash.clone().expect("hashed");
    let mut record = base_record(Event::Stored, facts);
    let mut placed = Placed::new(ctx.store.as_ref());
    let put = async {
        let (media, thumbnail, original) =
            put_rendition(ctx, &mut placed, &hash, profile, input, probe, rendition).await?;
        record.media = Some(MediaInfo {
            kind: probe.kind.as_str().to_string(),
            ..media
        });
        record.thumbnail = thumbnail;
        record.original = original;
        put_marker(ctx, &mut placed, &hash, profile, &record).await
    }
    .await;
    if let Err(e) = put {
        if !e.is_transient() {
            placed.undo().await;
        }
        return Err(e.into());
    }
    attach_links(ctx, &mut record).await?;
    let stored = StoredMedia::from_record(&record).expect("media just set");
    Ok((
        record,
        JobVerdict::Done,
        Some((profile.id.clone(), probe.kind.as_str().to_string(), stored)),
    ))
}

/// Puts the marker saying that every output the record names is stored (see `reuse`): after
/// them, so that its presence means they are all there.
async fn put_marker(
    ctx: &Ctx,
    placed: &mut Placed<'_>,
    hash: &ContentHash,
    profile: &Profile,
    record: &Record,
) -> Result<(), StoreError> {
    let marker = Marker::of(record).expect("media set");
    let file = marker
        .to_file(&ctx.scratch)
        .map_err(|e| StoreError::io("the outputs marker", &e))?;
    placed
        .put(&PutRequest {
            key: &keys::outputs(&ctx.config.store.prefix, hash, &profile.id),
            path: file.path(),
            content_type: "application/json",
            metadata: &object_metadata(hash, Some(&profile.id)),
            class: ObjectClass::Output,
        })
        .await
}

/// What every object of these bytes carries: enough to know, from a HEAD on its key alone,
/// what it is and where it came from.
fn object_metadata(hash: &ContentHash, profile_id: Option<&str>) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("content_hash".into(), hash.to_string());
    if let Some(id) = profile_id {
        metadata.insert("profile_id".into(), id.to_string());
    }
    metadata
}

/// Puts thumbnail, original (if configured) and rendition, the rendition last: once it is
/// there, everything a record names is.
async fn put_rendition(
    ctx: &Ctx,
    placed: &mut Placed<'_>,
    hash: &ContentHash,
    profile: &Profile,
    input: &Path,
    probe: &Probe,
    rendition: &Rendition,
) -> Result<(MediaInfo, Option<ThumbnailInfo>, Option<ObjectRef>), StoreError> {
    let prefix = &ctx.config.store.prefix;
    let base = object_metadata(hash, Some(&profile.id));
    let thumbnail = match &rendition.thumbnail {
        Some(t) => {
            let key = keys::thumbnail(prefix, hash, &profile.id, &t.extension);
            let mut metadata = base.clone();
            metadata.insert("width".into(), t.width.to_string());
            metadata.insert("height".into(), t.height.to_string());
            placed
                .put(&PutRequest {
                    key: &key,
                    path: &t.path,
                    content_type: &t.mime,
                    metadata: &metadata,
                    class: ObjectClass::Output,
                })
                .await?;
            Some(ThumbnailInfo {
                mime: t.mime.clone(),
                width: t.width,
                height: t.height,
                url: String::new(),
                key,
            })
        }
        None => None,
    };
    let original = put_original(ctx, placed, hash, input, &probe.mime).await?;
    let key = keys::rendition(prefix, hash, &profile.id, &rendition.extension);
    let mut metadata = base;
    for (name, value) in [
        ("duration_ms", rendition.duration_ms.map(|v| v.to_string())),
        ("width", rendition.width.map(|v| v.to_string())),
        ("height", rendition.height.map(|v| v.to_string())),
    ] {
        if let Some(value) = value {
            metadata.insert(name.into(), value);
        }
    }
    placed
        .put(&PutRequest {
            key: &key,
            path: &rendition.path,
            content_type: &rendition.mime,
            metadata: &metadata,
            class: ObjectClass::Output,
        })
        .await?;
    // An object already under this key (put before a crash, or by another daemon) stays;
    // describe what is stored.
    let bytes = ctx
        .store
        .head(&key)
        .await?
        .ok_or_else(|| StoreError::transient(format!("{key} was put but is not there (yet)")))?
        .bytes;
    let media = MediaInfo {
        kind: String::new(),
        profile: Some(profile.name.clone()),
        profile_id: Some(profile.id.clone()),
        mime: rendition.mime.clone(),
        bytes,
        duration_ms: rendition.duration_ms,
        width: rendition.width,
        height: rendition.height,
        url: String::new(),
        key,
    };
    Ok((media, thumbnail, original))
}

/// Archives the input as it came, when `store.upload_originals` says so.
pub(super) async fn put_original(
    ctx: &Ctx,
    placed: &mut Placed<'_>,
    hash: &ContentHash,
    input: &Path,
    mime: &str,
) -> Result<Option<ObjectRef>, StoreError> {
    if !ctx.config.store.upload_originals {
        return Ok(None);
    }
    let key = keys::original(&ctx.config.store.prefix, hash);
    placed
        .put(&PutRequest {
            key: &key,
            path: input,
            content_type: mime,
            metadata: &object_metadata(hash, None),
            class: ObjectClass::Original,
        })
        .await?;
    Ok(Some(ObjectRef {
        key,
        url: String::new(),
    }))
}

/// Sets the URL of every object the record names from the store (fresh presigned links for
/// a duplicate too), and when they expire.
pub(super) async fn attach_links(ctx: &Ctx, record: &mut Record) -> Result<(), StoreError> {
    let mut expires: Option<time::OffsetDateTime> = None;
    let mut urls = Vec::new();
    if let Some(m) = record.media.as_mut() {
        urls.push((&m.key, &mut m.url));
    }
    if let Some(t) = record.thumbnail.as_mut() {
        urls.push((&t.key, &mut t.url));
    }
    if let Some(o) = record.original.as_mut() {
        urls.push((&o.key, &mut o.url));
    }
    for (key, url) in urls {
        let link = ctx.store.link(key).await?;
        *url = link.url;
        expires = match (expires, link.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    record.links_expire_at =
        expires.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    Ok(())
}

/// Files that are not media: kept byte for byte, or refused, per `routing.other`.
pub(super) async fn store_as_is(
    ctx: &Arc<Ctx>,
    input: &Path,
    probe: &Probe,
    facts: &Facts,
) -> Result<(Record, JobVerdict, Option<NewMedia>), Stop> {
    if ctx.config.routing.other == OtherRoute::Reject {
        return Err(Failure::new(
            ErrorCode::UNSUPPORTED_KIND,
            format!(
                "not audio, video or an image ({}), and routing.other = \"reject\"",
                probe.mime
            ),
        )
        .into());
    }
    let hash = facts.hash.clone().expect("hashed");
    let key = keys::original(&ctx.config.store.prefix, &hash);
    ctx.store
        .put_if_absent(&PutRequest {
            key: &key,
            path: input,
            content_type: &probe.mime,
            metadata: &object_metadata(&hash, None),
            class: ObjectClass::Output,
        })
        .await?;
    let object = ObjectRef {
        key,
        url: String::new(),
    };
    let mut record = base_record(Event::Stored, facts);
    record.media = Some(MediaInfo {
        kind: MediaKind::Other.as_str().to_string(),
        profile: None,
        profile_id: None,
        mime: probe.mime.clone(),
        bytes: probe.bytes,
        duration_ms: None,
        width: probe.width,
        height: probe.height,
        url: object.url.clone(),
        key: object.key.clone(),
    });
    record.original = Some(object);
    attach_links(ctx, &mut record).await?;
    let stored = StoredMedia::from_record(&record).expect("media just set");
    Ok((
        record,
        JobVerdict::Done,
        Some((AS_IS.to_string(), MediaKind::Other.as_str().to_string(), stored)),
    ))
}
