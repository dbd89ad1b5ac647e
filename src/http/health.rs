//! `/healthz` (the process serves), `/readyz` (catalog and store answer, the spool is
//! writable) and `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{blocking, AppState, Shared};
use crate::ingest::spool::is_candidate;
use crate::metrics;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// How long the catalog or the store may take to answer a readiness probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// 200 `ready`, or 503 with one line per reason.
pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    let (catalog, spool, store) = tokio::join!(
        catalog_problems(&state),
        blocking(&state, spool_problems),
        store_problems(&state)
    );
    let mut problems = catalog;
    problems.extend(spool.unwrap_or_else(|| vec!["readiness check panicked".to_string()]));
    problems.extend(store);
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        for p in &problems {
            tracing::debug!(problem = %p, "not ready");
        }
        let body = format!("not ready\n{}\n", problems.join("\n"));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Whether the catalog answers now, asked once, without the patience jobs get.
async fn catalog_problems(state: &AppState) -> Vec<String> {
    match tokio::time::timeout(CHECK_TIMEOUT, state.ctx.catalog.ping()).await {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(e)) => vec![format!("catalog: {e}")],
        Err(_) => vec![format!(
            "catalog: {} did not answer within {} s",
            state.ctx.catalog.describe(),
            CHECK_TIMEOUT.as_secs()
        )],
    }
}

/// Every reason on this host the daemon cannot take files now: the spool not writable.
fn spool_problems(state: &AppState) -> Vec<String> {
    let mut problems = Vec::new();
    for dir in [&state.incoming, &state.work] {
        let probe = tempfile::Builder::new().prefix(".readyz-").tempfile_in(dir);
        if let Err(e) = probe {
            problems.push(format!("spool: cannot write in {}: {e}", dir.display()));
        }
    }
    problems
}

/// Whether the store takes objects now, asked through the store interface (once, without the
/// patience jobs get).
async fn store_problems(state: &AppState) -> Vec<String> {
    match tokio::time::timeout(CHECK_TIMEOUT, state.ctx.store.check()).await {
        Ok(problems) => problems.into_iter().map(|p| format!("store: {p}")).collect(),
        Err(_) => vec![format!(
            "store: {} did not answer within {} s",
            state.ctx.store.describe(),
            CHECK_TIMEOUT.as_secs()
        )],
    }
}

pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    let (queued, sinks) = tokio::join!(queued(&state), sinks(&state));
    let snapshot = metrics::Snapshot { queued, sinks };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::render(&snapshot),
    )
        .into_response()
}

/// Files waiting in `incoming/` (what the daemon will take; partial and hidden names are not),
/// counted on a blocking thread.
pub(super) async fn queued(state: &Shared) -> u64 {
    blocking(state, queued_now).await.unwrap_or(0)
}

fn queued_now(state: &AppState) -> u64 {
    let Ok(entries) = std::fs::read_dir(&state.incoming) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| is_candidate(&e.file_name().to_string_lossy()))
        .count() as u64
}

/// Each configured sink with its deliveries still waiting and its dead letters. When the
/// catalog cannot be read, no sink is listed rather than every one shown as empty.
pub(super) async fn sinks(state: &AppState) -> Vec<(String, u64, u64)> {
    let mut sinks = Vec::new();
    for sink in state.ctx.routes.names() {
        let Ok(backlog) = state.ctx.catalog.sink_backlog(sink).await else {
            return Vec::new();
        };
        sinks.push((sink.to_string(), backlog.waiting, backlog.dead));
    }
    sinks
}
