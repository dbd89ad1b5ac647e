//! Media cards: `/card/RECORD_ID?exp=…&sig=…`, a small page for a CRM's iframe (the player
//! with its poster or waveform, duration, kind, received time, tags, a download link), and
//! its media at `/card/RECORD_ID/media` and `/thumb` under the same signature, served with
//! range requests so players can seek. A bad or expired signature gets 403 with an empty body,
//! a well-signed id that names no stored media 404: a guessed id shows nothing. Only the
//! origins in `http.frame_ancestors` may frame a card.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{page, AppState, Shared};
use crate::records::Record;

#[derive(Debug, Deserialize)]
pub(super) struct Signed {
    exp: u64,
    sig: String,
    #[serde(default)]
    download: Option<String>,
}

/// A record's media as the card and the status page show it, with signed URLs.
#[derive(Debug, Serialize)]
pub(super) struct MediaView {
    kind: String,
    mime: String,
    duration: Option<String>,
    duration_seconds: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    media_url: String,
    thumb_url: Option<String>,
    download_url: String,
}

impl MediaView {
    /// Links signed afresh, valid for `ttl`; `None` for a record without media.
    pub(super) fn of(state: &AppState, record: &Record, ttl: std::time::Duration) -> Option<MediaView> {
        let query = state.ctx.card_links.query(&record.record_id, ttl);
        MediaView::with_query(record, &query)
    }

    /// Links under the signature `query` (`exp=…&sig=…`) a card was reached with.
    fn with_query(record: &Record, query: &str) -> Option<MediaView> {
        let media = record.media.as_ref()?;
        let base = format!("/card/{}", record.record_id);
        let seconds = media.duration_ms.map(|ms| ms as f64 / 1000.0);
        Some(MediaView {
            kind: media.kind.clone(),
            mime: media.mime.clone(),
            duration: seconds.map(clock),
            duration_seconds: seconds,
            width: media.width,
            height: media.height,
            media_url: format!("{base}/media?{query}"),
            thumb_url: record.thumbnail.as_ref().map(|_| format!("{base}/thumb?{query}")),
            download_url: format!("{base}/media?{query}&download=1"),
        })
    }
}

/// `m:ss.s`, as players show it.
fn clock(seconds: f64) -> String {
    let minutes = (seconds / 60.0).floor();
    format!("{}:{:04.1}", minutes as u64, seconds - minutes * 60.0)
}

#[derive(Debug, Serialize)]
struct CardView {
    file_name: String,
    received: String,
    tags: Vec<String>,
    media: MediaView,
}

fn card_csp(state: &AppState) -> String {
    format!(
        "default-src 'none'; img-src {media}; media-src {media}; style-src 'unsafe-inline'; \
         frame-ancestors {}; base-uri 'none'; form-action 'none'",
        state.frame_ancestors,
        media = state.media_sources,
    )
}

/// The record behind a signed link, or the status to answer instead, with an empty body: a
/// bad signature gets 403 whether the id exists or not.
async fn signed_record(state: &Shared, id: String, signed: &Signed) -> Result<Record, StatusCode> {
    if !state.ctx.card_links.verify(&id, signed.exp, &signed.sig) {
        return Err(StatusCode::FORBIDDEN);
    }
    match state.ctx.catalog.record(&id).await {
        Ok(Some(record)) if record.media.is_some() => Ok(record),
        Ok(_) => Err(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::warn!(error = %e, "card: catalog read failed");
            Err(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

pub(super) async fn card(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
) -> Response {
    let record = match signed_record(&state, id, &signed).await {
        Ok(record) => record,
        Err(status) => return status.into_response(),
    };
    let query = format!("exp={}&sig={}", signed.exp, signed.sig);
    let Some(media) = MediaView::with_query(&record, &query) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let view = CardView {
        file_name: record.source.file_name.clone(),
        received: record
            .received_at
            .clone()
            .unwrap_or_else(|| record.processed_at.clone()),
        tags: record.crm.tags.clone(),
        media,
    };
    let context = minijinja::Value::from(minijinja::value::Serde(&view));
    page(&state, "card.html", context, &card_csp(&state))
}

/// `/card/RECORD_ID/media` (with `download=1`: as an attachment) and `/card/RECORD_ID/thumb`.
pub(super) async fn object(
    State(state): State<Shared>,
    Path((id, part)): Path<(String, String)>,
    Query(signed): Query<Signed>,
    request: Request,
) -> Response {
    let record = match signed_record(&state, id, &signed).await {
        Ok(record) => record,
        Err(status) => return status.into_response(),
    };
    let media = record
        .media
        .as_ref()
        .expect("signed_record gives records with media");
    let (key, mime, download) = match (part.as_str(), &record.thumbnail) {
        ("media", _) => {
            let download = signed
                .download
                .is_some()
                .then(|| download_name(&record, &media.key));
            (&media.key, &media.mime, download)
        }
        ("thumb", Some(thumb)) => (&thumb.key, &thumb.mime, None),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    serve_object(&state, key, mime, download, request).await
}

/// The sender's file name with the stored object's extension, in ASCII for the header.
fn download_name(record: &Record, key: &str) -> String {
    let stem = std::path::Path::new(&record.source.file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.is_empty() {
        "media".to_string()
    } else {
        stem
    };
    match std::path::Path::new(key).extension() {
        Some(ext) => format!("{stem}.{}", ext.to_string_lossy()),
        None => stem,
    }
}

/// A stored object, with range requests (206) and its record's content type.
async fn serve_object(
    state: &AppState,
    key: &str,
    mime: &str,
    download: Option<String>,
    request: Request,
) -> Response {
    let link = match state.ctx.store.link(key).await {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(key, error = %e, "card: no link to a stored object");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    // A remote store serves ranges itself: the player is sent to a fresh link.
    let Some(path) = link.url.strip_prefix("file://") else {
        return redirect(&link.url);
    };
    let served = tower_http::services::ServeFile::new(path).try_call(request).await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            tracing::warn!(key, error = %e, "card: cannot read a stored object");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let is_content = response_is_content(response.status());
    let headers = response.headers_mut();
    if is_content {
        if let Ok(mime) = HeaderValue::from_str(mime) {
            headers.insert(header::CONTENT_TYPE, mime);
        }
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Only the card (same origin) may use the media; other sites cannot hot-link it.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if let Some(name) = download {
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// `307` to `url`, not to be cached past the link's own life.
fn redirect(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn response_is_content(status: StatusCode) -> bool {
    status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_like_a_player() {
        assert_eq!(clock(4.25), "0:04.2");
        assert_eq!(clock(75.0), "1:15.0");
    }
}
