//! HTTP sinks (`[sinks.NAME]`): each record as one request, signed per Standard Webhooks.
//!
//! In: records of one chat, in order. Out: for each, one request made by the sink's
//! [`RequestTemplate`] (the record's JSON by default, or a preset's or template's body) with
//! `webhook-id` (the record id), `webhook-timestamp` and, with a `secret`, `webhook-signature`.
//! Connections are kept alive and reused (rustls); redirects are not followed. A 2xx answer is
//! delivered; 410 Gone disables the sink; 429/503 (honouring `Retry-After`), 408, 502, 504,
//! 401/403, 3xx and network errors pause the whole sink; other answers fail the one record.
//! Errors never carry the URL, the secret or header values (see [`Redactor`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

use super::request::{expand_env, Rendered, RequestSpec, RequestTemplate};
use super::retry::{parse_retry_after, Backoff};
use super::signing::{signature_header, Secret};
use super::sink::{Delivering, Outcome, Outgoing, Scope, Sink};
use super::Preset;
use crate::config::SinkConfig;

/// At most this much of a refusal's body goes into the delivery's last error.
const ERROR_EXCERPT: usize = 300;

pub struct HttpSink {
    name: String,
    client: reqwest::Client,
    request: RequestTemplate,
    secrets: Vec<Secret>,
    redactor: Redactor,
    timeout: Duration,
    concurrency: usize,
    backoff: Backoff,
    give_up_after: Duration,
}

impl HttpSink {
    /// Builds the sink: `${VAR}`s from `env`, the preset or template compiled, the client made.
    /// Every problem is listed.
    pub fn build(
        name: &str,
        config: &SinkConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HttpSink, Vec<String>> {
        let mut problems = Vec::new();
        let mut redactor = Redactor::default();
        let expand =
            |text: &str, what: &str, problems: &mut Vec<String>, redactor: &mut Redactor| match expand_env(
                text, env,
            ) {
                Ok(expanded) => {
                    redactor.add_expansions(text, env);
                    expanded
                }
                Err(missing) => {
                    problems.extend(missing.into_iter().map(|m| format!("{what}: {m}")));
                    String::new()
                }
            };
        let secret_text = expand(&config.secret, "secret", &mut problems, &mut redactor);
        redactor.add(&secret_text);
        let secrets = Secret::parse_list(&secret_text)
            .map_err(|e| problems.push(format!("secret: {e}")))
            .unwrap_or_default();
        let url = expand(&config.url, "url", &mut problems, &mut redactor);
        let mut headers = BTreeMap::new();
        for (header, value) in &config.headers {
            let value = expand(value, &format!("headers.{header}"), &mut problems, &mut redactor);
            if looks_secret(header) {
                redactor.add(&value);
            }
            headers.insert(header.clone(), value);
        }
        let params: BTreeMap<String, String> = config
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    expand(v, &format!("params.{k}"), &mut problems, &mut redactor),
                )
            })
            .collect();
        let (spec, base) = match request_spec(config, &url, headers) {
            Ok(pair) => pair,
            Err(e) => {
                problems.push(e);
                return Err(problems);
            }
        };
        let request = RequestTemplate::compile(&spec, &base, &params)
            .map_err(|p| problems.extend(p))
            .ok();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("mediaspool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| problems.push(format!("HTTP client: {e}")))
            .ok();
        // Log lines from anywhere (a library quoting a header, a panic) pass the process-wide
        // redaction too.
        for value in &redactor.secrets {
            crate::privacy::redact::register_secret(value);
        }
        match (request, client) {
            (Some(request), Some(client)) if problems.is_empty() => Ok(HttpSink {
                name: name.to_string(),
                client,
                request,
                secrets,
                redactor,
                timeout: config.timeout,
                concurrency: config.concurrency.max(1),
                backoff: Backoff {
                    min: config.retry_min,
                    max: config.retry_max,
                },
                give_up_after: config.give_up_after,
            }),
            _ => Err(problems),
        }
    }

    /// The request for a record, as it would be sent (before the Standard Webhooks headers).
    pub fn render(&self, record_json: &str) -> Result<Rendered, String> {
        self.request
            .render(record_json)
            .map_err(|e| self.redactor.clean(&e))
    }

    /// The Standard Webhooks headers for a body sent at `timestamp`.
    pub fn webhook_headers(&self, record_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        let mut headers = vec![
            ("webhook-id".to_string(), record_id.to_string()),
            ("webhook-timestamp".to_string(), timestamp.to_string()),
        ];
        if !self.secrets.is_empty() {
            headers.push((
                "webhook-signature".to_string(),
                signature_header(&self.secrets, record_id, timestamp, body),
            ));
        }
        headers
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    async fn send(&self, record: &Outgoing) -> Outcome {
        let rendered = match self.render(&record.body) {
            Ok(r) => r,
            Err(error) => {
                return Outcome::Undeliverable {
                    error: format!("request template: {error}"),
                }
            }
        };
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut request = self
            .client
            .request(rendered.method, &rendered.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in rendered.headers.into_iter().chain(self.webhook_headers(
            &record.record_id,
            timestamp,
            &rendered.body,
        )) {
            request = request.header(name, value);
        }
        let response = match request.body(rendered.body).send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed {
                    error: self.redactor.clean(&transport_error(&e)),
                    scope: Scope::Sink,
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Read the answer whole, so the connection goes back to the pool.
        let excerpt = read_excerpt(response).await;
        if status.is_success() {
            return Outcome::Delivered;
        }
        let error = self.redactor.clean(&refusal(status, &excerpt));
        match classify(status) {
            Some(scope) => Outcome::Failed {
                error,
                scope,
                retry_after,
            },
            None => Outcome::Gone { error },
        }
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, records: &'a [Outgoing]) -> Delivering<'a> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(records.len());
            for record in records {
                let outcome = self.send(record).await;
                let delivered = outcome == Outcome::Delivered;
                outcomes.push(outcome);
                if !delivered {
                    break;
                }
            }
            outcomes
        })
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.backoff.delay(attempt)
    }

    fn give_up_after(&self) -> Option<Duration> {
        Some(self.give_up_after)
    }
}

/// The request text of a sink: its preset's (with `url` as the API's base address), or its own
/// template, or the record as it is (`standard-webhooks`). Returns the spec and the base.
fn request_spec(
    config: &SinkConfig,
    url: &str,
    headers: BTreeMap<String, String>,
) -> Result<(RequestSpec, String), String> {
    let preset =
        Preset::named(&config.preset).ok_or_else(|| format!("preset {:?} is not known", config.preset))?;
    let base = if url.is_empty() {
        preset.default_base.to_string()
    } else {
        url.to_string()
    };
    if base.is_empty() {
        return Err(format!("url is required with preset {:?}", preset.name));
    }
    let mut spec = preset.spec();
    if !config.method.is_empty() {
        spec.method = config.method.clone();
    }
    if let Some(template) = &config.template {
        spec.body = Some(template.clone());
    }
    // The sink's own headers come after (and over) the preset's.
    spec.headers.extend(headers);
    Ok((spec, base))
}

/// What a non-2xx status means: `None` for 410 Gone, else how far the failure reaches.
fn classify(status: StatusCode) -> Option<Scope> {
    match status.as_u16() {
        410 => None,
        // The receiver as a whole cannot take anything now, or refuses our credentials, or
        // wants us elsewhere: nothing else would fare better.
        300..=399 | 401 | 403 | 407 | 408 | 429 | 502 | 503 | 504 => Some(Scope::Sink),
        _ => Some(Scope::Record),
    }
}

fn refusal(status: StatusCode, excerpt: &str) -> String {
    let mut text = format!("HTTP {status}");
    if status.is_redirection() {
        text.push_str(": redirects are not followed; set the sink's url to the final address");
    } else if !excerpt.is_empty() {
        text.push_str(": ");
        text.push_str(excerpt);
    }
    text
}

/// A network error in words, without the URL (which may itself be a credential).
fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if bytes.len() < ERROR_EXCERPT {
            bytes.extend_from_slice(&chunk);
        }
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_EXCERPT)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Header names whose values are credentials.
fn looks_secret(header: &str) -> bool {
    let h = header.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "key",
        "cookie",
        "signature",
        "password",
    ]
    .iter()
    .any(|w| h.contains(w))
}

/// Masks credentials in text bound for logs and the catalog: the secret, sensitive header
/// values and every value read from `${VAR}`.
#[derive(Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

pub const MASK: &str = "***";

impl Redactor {
    fn add(&mut self, value: &str) {
        let value = value.trim();
        let key = value.strip_prefix("whsec_");
        for v in std::iter::once(value).chain(value.split_whitespace()).chain(key) {
            // Very short values would mask ordinary words.
            if v.len() >= 4 && !self.secrets.iter().any(|s| s == v) {
                self.secrets.push(v.to_string());
            }
        }
        // Longest first, so a value containing another is masked whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// The values of the `${VAR}`s in `template`.
    fn add_expansions(&mut self, template: &str, env: &dyn Fn(&str) -> Option<String>) {
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            if let Some(value) = env(&after[..end]) {
                self.add(&value);
            }
            rest = &after[end + 1..];
        }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}
