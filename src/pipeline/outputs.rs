//! The store steps of a job: putting a verified rendition (thumbnail, original, rendition) or a
//! file kept as it came, and what the record says about them.

use std::path::Path;
use std::sync::Arc;

use super::{base_record, blocking, Ctx, Facts, NewMedia, Rejection};
use crate::catalog::{JobVerdict, StoredMedia};
use crate::config::OtherRoute;
use crate::failure::{ErrorCode, Failure};
use crate::hash::ContentHash;
use crate::media::{Probe, Rendition};
use crate::profile::{MediaKind, Profile};
use crate::records::{Event, MediaInfo, Record, ThumbnailInfo};
use crate::store::{keys, Placed};

/// Profile id under which files kept as they came are catalogued.
pub(super) const AS_IS: &str = "as-is";

pub(super) async fn store_rendition(
    ctx: &Arc<Ctx>,
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    rendition: Rendition,
    facts: &Facts,
) -> Result<(Record, JobVerdict, Option<NewMedia>), Rejection> {
    let hash = facts.hash.clone().expect("hashed");
    let mut record = base_record(Event::Stored, facts);
    let (profile_for_store, input) = (profile.clone(), input.to_path_buf());
    let (media, thumbnail, original) = blocking(ctx, move |c| {
        put_rendition(c, &hash, &profile_for_store, &input, &rendition)
    })
    .await
    .map_err(|e| e.failure())?;
    record.media = Some(MediaInfo {
        kind: probe.kind.as_str().to_string(),
        ..media
    });
    record.thumbnail = thumbnail;
    record.original = original;
    record.retention_until = retention_until(ctx, facts, profile.settings.retention_days);
    let stored = StoredMedia::from_record(&record).expect("media just set");
    Ok((
        record,
        JobVerdict::Done,
        Some((profile.id.clone(), probe.kind.as_str().to_string(), stored)),
    ))
}

/// Puts thumbnail, original (if configured) and rendition; removes them again if any put fails.
fn put_rendition(
    ctx: &Ctx,
    hash: &ContentHash,
    profile: &Profile,
    input: &Path,
    rendition: &Rendition,
) -> Result<(MediaInfo, Option<ThumbnailInfo>, Option<crate::store::ObjectRef>), crate::store::StoreError> {
    let prefix = &ctx.config.store.prefix;
    let mut placed = Placed::new(&ctx.store);
    let thumbnail = match &rendition.thumbnail {
        Some(t) => {
            let object = placed.put(&keys::thumbnail(prefix, hash, &profile.id, &t.extension), &t.path)?;
            Some(ThumbnailInfo {
                mime: t.mime.clone(),
                width: t.width,
                height: t.height,
                url: object.url,
                key: object.key,
            })
        }
        None => None,
    };
    let original = if ctx.config.store.upload_originals {
        Some(placed.put(&keys::original(prefix, hash), input)?)
    } else {
        None
    };
    let object = placed.put(
        &keys::rendition(prefix, hash, &profile.id, &rendition.extension),
        &rendition.path,
    )?;
    placed.keep();
    // An object already under this key (put before a crash) stays; describe what is stored.
    let bytes = ctx.store.size(&object.key)?;
    let media = MediaInfo {
        kind: String::new(),
        profile: Some(profile.name.clone()),
        profile_id: Some(profile.id.clone()),
        mime: rendition.mime.clone(),
        bytes,
        duration_ms: rendition.duration_ms,
        width: rendition.width,
        height: rendition.height,
        url: object.url,
        key: object.key,
    };
    Ok((media, thumbnail, original))
}

/// Files that are not media: kept byte for byte, or refused, per `routing.other`.
pub(super) async fn store_as_is(
    ctx: &Arc<Ctx>,
    input: &Path,
    probe: &Probe,
    facts: &Facts,
) -> Result<(Record, JobVerdict, Option<NewMedia>), Rejection> {
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
    let (input, prefix) = (input.to_path_buf(), ctx.config.store.prefix.clone());
    let (object, _) = blocking(ctx, move |c| {
        c.store.put_file(&keys::original(&prefix, &hash), &input)
    })
    .await
    .map_err(|e| e.failure())?;
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
    record.retention_until = retention_until(ctx, facts, None);
    let stored = StoredMedia::from_record(&record).expect("media just set");
    Ok((
        record,
        JobVerdict::Done,
        Some((AS_IS.to_string(), MediaKind::Other.as_str().to_string(), stored)),
    ))
}

/// Retention: the manifest's, else the profile's, else the policy's; none when 0.
fn retention_until(ctx: &Ctx, facts: &Facts, profile_days: Option<u32>) -> Option<String> {
    let days = facts
        .manifest
        .as_ref()
        .and_then(|m| m.retention_days)
        .or(profile_days)
        .unwrap_or(ctx.config.policy.retention_days);
    if days == 0 {
        return None;
    }
    let until = time::OffsetDateTime::now_utc().checked_add(time::Duration::days(i64::from(days)))?;
    until.format(&time::format_description::well_known::Rfc3339).ok()
}
