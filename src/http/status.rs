//! The status page: the queue, jobs in flight with their stage and age, the last records with
//! their thumbnails and players, the last failures, the sinks' backlogs. Server-rendered; a
//! small script refreshes its sections in place (`?partial=1` gives just the sections).
//! Behind `http.token` (bearer or `?token=`); with no token set, loopback clients only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::card::MediaView;
use super::health::{queued, sinks};
use super::{page, AppState, Shared};
use crate::metrics;
use crate::records::Record;

/// How many records and failures the page lists.
const RECENT_RECORDS: usize = 20;
const RECENT_FAILURES: usize = 10;

fn status_csp(state: &AppState) -> String {
    let media = &state.media_sources;
    format!(
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src {media}; \
         media-src {media}; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusQuery {
    token: Option<String>,
    #[serde(default)]
    partial: Option<String>,
}

/// Whether the client may see the status page.
fn authorized(state: &AppState, peer: SocketAddr, headers: &HeaderMap, param: Option<&str>) -> bool {
    let token = &state.ctx.config.http.token;
    if token.is_empty() {
        return peer.ip().is_loopback();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // blake3 digests compare in constant time.
    bearer
        .or(param)
        .is_some_and(|offered| blake3::hash(offered.as_bytes()) == blake3::hash(token.as_bytes()))
}

pub(super) async fn status(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<StatusQuery>,
) -> Response {
    if !authorized(&state, peer, &headers, query.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
        )
            .into_response();
    }
    let view = StatusView::read(&state).await;
    let template = if query.partial.is_some() {
        "status_sections.html"
    } else {
        "status.html"
    };
    page(
        &state,
        template,
        minijinja::Value::from(minijinja::value::Serde(&view)),
        &status_csp(&state),
    )
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("templates/status.js"),
    )
        .into_response()
}

#[derive(Debug, Serialize)]
struct StatusView {
    version: &'static str,
    queued: u64,
    jobs: Vec<JobView>,
    records: Vec<RecordView>,
    failures: Vec<FailureView>,
    sinks: Vec<SinkView>,
    uploads_paused: bool,
    /// Why a section could not be read (the catalog did not answer).
    catalog_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct JobView {
    file_name: String,
    stage: &'static str,
    age: String,
}

#[derive(Debug, Serialize)]
struct RecordView {
    record_id: String,
    file_name: String,
    event: &'static str,
    processed_at: String,
    media: Option<MediaView>,
}

#[derive(Debug, Serialize)]
struct FailureView {
    file_name: String,
    code: String,
    message: String,
    stage: String,
    processed_at: String,
}

#[derive(Debug, Serialize)]
struct SinkView {
    name: String,
    backlog: u64,
    dead_letters: u64,
}

impl StatusView {
    async fn read(state: &Shared) -> StatusView {
        let catalog = &state.ctx.catalog;
        let (records, failures, queued, sinks) = tokio::join!(
            catalog.recent(RECENT_RECORDS, false),
            catalog.recent(RECENT_FAILURES, true),
            queued(state),
            sinks(state)
        );
        let catalog_error = [&records, &failures]
            .into_iter()
            .find_map(|r| r.as_ref().err().map(|e| e.to_string()));
        let (records, failures) = (records.unwrap_or_default(), failures.unwrap_or_default());
        StatusView {
            version: env!("CARGO_PKG_VERSION"),
            queued,
            jobs: metrics::in_flight()
                .into_iter()
                .map(|j| JobView {
                    file_name: j.file_name,
                    stage: j.stage.as_str(),
                    age: format!("{:.1} s", j.started.elapsed().as_secs_f64()),
                })
                .collect(),
            records: records
                .iter()
                .map(|r| RecordView {
                    record_id: r.record_id.clone(),
                    file_name: r.source.file_name.clone(),
                    event: r.event.as_str(),
                    processed_at: r.processed_at.clone(),
                    media: MediaView::of(state, r, super::links::STATUS_LINK_TTL),
                })
                .collect(),
            failures: failures.iter().filter_map(failure_view).collect(),
            sinks: sinks
                .into_iter()
                .map(|(name, backlog, dead_letters)| SinkView {
                    name,
                    backlog,
                    dead_letters,
                })
                .collect(),
            uploads_paused: metrics::uploads_paused(),
            catalog_error,
        }
    }
}

fn failure_view(record: &Record) -> Option<FailureView> {
    let error = record.error.as_ref()?;
    Some(FailureView {
        file_name: record.source.file_name.clone(),
        code: error.code.id().to_string(),
        message: error.message.clone(),
        stage: error.stage().to_string(),
        processed_at: record.processed_at.clone(),
    })
}
