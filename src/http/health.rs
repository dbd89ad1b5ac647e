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

/// How long the store may take to answer a readiness probe.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// 200 `ready`, or 503 with one line per reason.
pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    let (local, store) = tokio::join!(blocking(&state, not_ready), store_problems(&state));
    let mut problems = local.unwrap_or_else(|| vec!["readiness check panicked".to_string()]);
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

/// Every reason on this host the daemon cannot do its work now: the catalog, the spool.
fn not_ready(state: &AppState) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = state.ctx.catalog.ping() {
        problems.push(format!("catalog: {e}"));
    }
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
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.ctx.store.check()).await {
        Ok(problems) => problems.into_iter().map(|p| format!("store: {p}")).collect(),
        Err(_) => vec![format!(
            "store: {} did not answer within {} s",
            state.ctx.store.describe(),
            STORE_CHECK_TIMEOUT.as_secs()
        )],
    }
}

pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    let snapshot = blocking(&state, snapshot).await.unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::render(&snapshot),
    )
        .into_response()
}

/// The gauges read at each scrape: files waiting in `incoming/`, and each sink's backlog and
/// dead letters.
fn snapshot(state: &AppState) -> metrics::Snapshot {
    metrics::Snapshot {
        queued: queued(state),
        sinks: sinks(state),
    }
}

/// Files waiting in `incoming/` (what the daemon will take; partial and hidden names are not).
pub(super) fn queued(state: &AppState) -> u64 {
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
pub(super) fn sinks(state: &AppState) -> Vec<(String, u64, u64)> {
    let Ok(backlog) = state.ctx.catalog.backlog() else {
        return Vec::new();
    };
    state
        .ctx
        .routes
        .names()
        .map(|sink| {
            let (waiting, dead) = backlog
                .iter()
                .find(|(s, ..)| s == sink)
                .map_or((0, 0), |(_, w, d)| (*w, *d));
            (sink.to_string(), waiting, dead)
        })
        .collect()
}
