//! The HTTP server of `[http] listen`: metrics, health, the status page and media cards.
//!
//! In: the daemon's shared job context (catalog, store, configuration), the spool directory,
//! and a stop signal. Out: `/metrics` (OpenMetrics text), `/healthz`, `/readyz`, the status
//! page `/` (behind `http.token`, or loopback only without one), and `/card/RECORD_ID` with
//! its media, reached only through signed links (see [`links`]). Nothing listens unless
//! `http.listen` is set. Fails only to bind; a request never fails the daemon. Async (axum on
//! the daemon's runtime); file checks run on blocking threads, the catalog is asked through its
//! async interface.

mod card;
mod health;
pub mod links;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pipeline::Ctx;

pub use links::CardLinks;

/// What every request handler shares.
struct AppState {
    ctx: Arc<Ctx>,
    /// `spool/incoming`: its files are the queue.
    incoming: PathBuf,
    /// `spool/work`: readiness checks it is writable.
    work: PathBuf,
    templates: minijinja::Environment<'static>,
    /// The `frame-ancestors` sources of a card's Content-Security-Policy.
    frame_ancestors: String,
    /// Where pages may load media and images from: this server, and a remote store's origin
    /// (its media links redirect there).
    media_sources: String,
}

type Shared = Arc<AppState>;

/// How long the server may take to finish open requests once the daemon has stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running server.
pub struct Server {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Waits for the server to end after its stop signal, at most [`STOP_GRACE`].
    pub async fn stopped(self) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// Binds `http.listen` and serves until `stop` turns true; `None` when no address is set.
pub async fn start(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) -> std::io::Result<Option<Server>> {
    let listen = ctx.config.http.listen.clone();
    if listen.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(AppState {
        incoming: ctx.config.spool.dir.join("incoming"),
        work: ctx.config.spool.dir.join("work"),
        templates: templates(),
        frame_ancestors: frame_ancestors(&ctx.config.http.frame_ancestors),
        media_sources: media_sources(ctx.store.as_ref()).await,
        ctx,
    });
    let app = router(state);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!("serving http on {address}");
    Ok(Some(Server { address, task }))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/", get(status::status))
        .route("/status.js", get(status::script))
        .route("/card/{id}", get(card::card))
        .route("/card/{id}/{part}", get(card::object))
        .with_state(state)
}

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("style.css", include_str!("templates/style.css")),
        ("status.html", include_str!("templates/status.html")),
        (
            "status_sections.html",
            include_str!("templates/status_sections.html"),
        ),
        ("card.html", include_str!("templates/card.html")),
    ] {
        env.add_template(name, source).expect("templates are valid");
    }
    env
}

fn frame_ancestors(origins: &[String]) -> String {
    if origins.is_empty() {
        "'none'".to_string()
    } else {
        origins.join(" ")
    }
}

/// `'self'`, and the origin of the store's links when they are not local files. A link is
/// made without a request (a public URL, or presigned locally).
async fn media_sources(store: &dyn crate::store::Store) -> String {
    let link = tokio::time::timeout(Duration::from_secs(5), store.link("origin-probe")).await;
    let origin = match link {
        Ok(Ok(link)) => origin(&link.url),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot make a store link: pages will not show media from the store");
            None
        }
        Err(_) => None,
    };
    match origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_string(),
    }
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{host}"))
}

/// Renders `template` as an HTML page with its security headers (`csp` is its
/// Content-Security-Policy), or a 500 that names the problem in the log only.
fn page(state: &AppState, template: &str, context: minijinja::Value, csp: &str) -> Response {
    let rendered = state
        .templates
        .get_template(template)
        .and_then(|t| t.render(context));
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(template, error = %e, "cannot render a page");
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = axum::response::Html(body).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Links carry their signature or token: never pass them on.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Runs `f` on a blocking thread with the shared state.
async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Option<T> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state)).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_links() {
        assert_eq!(
            origin("https://b.s3.eu-west-1.amazonaws.com/k/x.mp3?X-Amz-Signature=1").as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:9000/bucket/k").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(origin("file:///var/lib/mediaspool/media/k"), None);
    }
}
