//! `[http]`: metrics scraped after a run and parsed as OpenMetrics, readiness that follows the
//! catalog and the store, the status page's token, signed media cards and range requests.

use std::collections::HashMap;
use std::time::Duration;

use openmetrics_parser::{MetricNumber, OpenMetricsValue};
use serde_json::Value;

use crate::spool_support::*;

const LONG: Duration = Duration::from_secs(120);
pub const CARD_SECRET: &str = "test-card-secret-0123456789abcdef0123456789";
pub const TOKEN: &str = "status-token-42";

/// An HTTP/1.1 client that treats every status as an answer, not an error, and follows no
/// redirect.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.body_mut().read_to_vec().unwrap();
    Answer {
        status: response.status().as_u16(),
        headers,
        body,
    }
}

/// The daemon's HTTP address, from its log line.
pub fn http_address(d: &Daemon) -> String {
    let log = d.log();
    let address = log
        .lines()
        .rev()
        .find_map(|l| l.split_once("serving http on ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no http address in the log:\n{log}"));
    format!("http://{address}")
}

/// A daemon with `[http]` on a free loopback port (and `extra` in the same section).
pub fn http_daemon(extra: &str) -> Daemon {
    Daemon::new("", &format!("[http]\nlisten = \"127.0.0.1:0\"\n{extra}"))
}

/// The scrape as a map from "name{label=value,…}" (labels sorted, `le` and such included for
/// histogram buckets) to value; parsing it as OpenMetrics checks the whole exposition.
pub fn scrape(base: &str) -> HashMap<String, f64> {
    let answer = get(&format!("{base}/metrics"), &[]);
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"].starts_with("application/openmetrics-text"),
        "{:?}",
        answer.headers
    );
    let text = answer.text();
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{text}"));
    let number = |n: &MetricNumber| n.as_f64();
    let mut values = HashMap::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labelset = sample.get_labelset().expect("labels match the family");
            let mut labels: Vec<String> = labelset.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = format!("{name}{{{}}}", labels.join(","));
            match &sample.value {
                OpenMetricsValue::Counter(c) => {
                    values.insert(key, number(&c.value));
                }
                OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => {
                    values.insert(key, number(g));
                }
                OpenMetricsValue::Histogram(h) => {
                    values.insert(format!("{key}:count"), h.count.unwrap_or(0) as f64);
                    values.insert(format!("{key}:sum"), h.sum.as_ref().map_or(0.0, number));
                }
                OpenMetricsValue::Info => {
                    values.insert(key, 1.0);
                }
                _ => {}
            }
        }
    }
    values
}

pub fn value(values: &HashMap<String, f64>, key: &str) -> f64 {
    *values
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in the scrape: {:#?}", sorted_keys(values)))
}

fn sorted_keys(values: &HashMap<String, f64>) -> Vec<&String> {
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    keys
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_after_a_run_count_what_happened() {
    let mut d = http_daemon("");
    d.start();
    let base = http_address(&d);
    assert_eq!(get(&format!("{base}/healthz"), &[]).status, 200);
    let tones: Vec<Vec<u8>> = [300.0, 400.0, 500.0]
        .iter()
        .map(|hz| tone_wav(*hz, 600))
        .collect();
    let mut dropped = Vec::new();
    for (i, tone) in tones.iter().enumerate() {
        d.drop_file(&format!("tone{i}.wav"), tone);
        dropped.push((format!("tone{i}.wav"), tone.len()));
    }
    d.wait_for(&["tone0.wav", "tone1.wav", "tone2.wav"], LONG);
    // Known bytes under new names: duplicates; then two rejections with different codes.
    for (name, bytes) in [
        ("again0.wav", tones[0].clone()),
        ("again1.wav", tones[1].clone()),
        ("empty.wav", Vec::new()),
        ("garbage.mp3", b"ID3 this is not an mp3 at all".repeat(40)),
    ] {
        d.drop_file(name, &bytes);
        dropped.push((name.to_string(), bytes.len()));
    }
    let records = d.wait_for(&["again0.wav", "again1.wav", "empty.wav", "garbage.mp3"], LONG);
    let code_of = |name: &str| -> String {
        let r: &Value = records.iter().find(|r| r["source"]["file_name"] == name).unwrap();
        r["error"]["code"].as_str().unwrap_or("").to_string()
    };
    let (empty_code, garbage_code) = (code_of("empty.wav"), code_of("garbage.mp3"));
    assert_eq!(empty_code, "empty-file");
    assert_ne!(garbage_code, "", "garbage is rejected");

    let values = scrape(&base);
    let stored = records.iter().filter(|r| r["event"] == "media.stored").count();
    assert_eq!(stored, 3);
    assert_eq!(
        value(&values, "mediaspool_jobs{outcome=stored,profile=voice}"),
        3.0
    );
    assert_eq!(
        value(&values, "mediaspool_jobs{outcome=duplicate,profile=voice}"),
        2.0
    );
    assert_eq!(value(&values, "mediaspool_dedup_hits{}"), 2.0);
    assert_eq!(
        value(&values, &format!("mediaspool_rejections{{code={empty_code}}}")),
        1.0
    );
    assert_eq!(
        value(&values, &format!("mediaspool_rejections{{code={garbage_code}}}")),
        1.0
    );
    let rejected: f64 = values
        .iter()
        .filter(|(k, _)| k.starts_with("mediaspool_jobs{outcome=rejected"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(rejected, 2.0);
    let input: usize = dropped.iter().map(|(_, n)| n).sum();
    assert_eq!(value(&values, "mediaspool_input_bytes{}"), input as f64);
    let output: u64 = records
        .iter()
        .filter(|r| r["event"] == "media.stored")
        .map(|r| r["media"]["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(value(&values, "mediaspool_output_bytes{}"), output as f64);
    assert_eq!(value(&values, "mediaspool_jobs_in_flight{}"), 0.0);
    assert_eq!(value(&values, "mediaspool_queued_files{}"), 0.0);
    assert_eq!(
        value(&values, "mediaspool_job_duration_seconds{outcome=stored}:count"),
        3.0
    );
    for stage in ["hash", "media", "store", "catalog"] {
        let n = value(
            &values,
            &format!("mediaspool_stage_duration_seconds{{stage={stage}}}:count"),
        );
        assert!(n >= 3.0, "{stage}: {n}");
    }
    assert_eq!(
        value(&values, "mediaspool_stage_duration_seconds{stage=hash}:count"),
        7.0,
        "every input is hashed once"
    );
    assert!(
        values.keys().any(|k| k.starts_with("mediaspool_build{")),
        "build info"
    );
    // The NDJSON sink has taken every record (it drains right after each commit).
    wait_until("an empty backlog", LONG, || {
        scrape(&base).get("mediaspool_sink_backlog_records{sink=ndjson}") == Some(&0.0)
    });
    let delivered = value(
        &scrape(&base),
        "mediaspool_deliveries{outcome=delivered,sink=ndjson}",
    );
    assert_eq!(delivered, 7.0);

    // Files waiting are the queue: stop taking (a hidden name is never taken), then count.
    assert_eq!(d.stop(LONG).code(), Some(0));
}

#[test]
fn readiness_follows_the_catalog_and_the_store() {
    let mut d = http_daemon("");
    d.start();
    let base = http_address(&d);
    let ready = || get(&format!("{base}/readyz"), &[]);
    assert_eq!(ready().status, 200, "{}", ready().text());

    d.catalog().cut_off();
    let answer = ready();
    assert_eq!(answer.status, 503);
    assert!(answer.text().contains("catalog"), "{}", answer.text());
    assert_eq!(
        get(&format!("{base}/healthz"), &[]).status,
        200,
        "alive all the same"
    );
    d.catalog().restore();
    assert_eq!(ready().status, 200, "{}", ready().text());

    let media = d.path().join("media");
    let gone = d.path().join("media.away");
    std::fs::rename(&media, &gone).unwrap();
    let answer = ready();
    assert_eq!(answer.status, 503);
    assert!(answer.text().contains("store"), "{}", answer.text());
    std::fs::rename(&gone, &media).unwrap();
    assert_eq!(ready().status, 200, "{}", ready().text());
    assert_eq!(d.stop(LONG).code(), Some(0));
}

/// `exp=…&sig=…` for a record, signed with the test key, expiring at `exp`.
pub fn signed_query(record_id: &str, exp: u64) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(CARD_SECRET.as_bytes()).unwrap();
    mac.update(format!("card.v1.{record_id}.{exp}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("exp={exp}&sig={sig}")
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The path and query of a record's card link, reached at `base` instead of the public URL.
pub fn card_link(base: &str, record: &Value) -> String {
    let url = record["card_url"].as_str().expect("records carry card_url");
    let rest = url
        .strip_prefix("https://media.example.com")
        .unwrap_or_else(|| panic!("{url} starts with the public URL"));
    format!("{base}{rest}")
}

pub fn card_config() -> String {
    format!(
        "token = \"{TOKEN}\"\npublic_url = \"https://media.example.com\"\ncard_secret = \"{CARD_SECRET}\"\nframe_ancestors = [\"https://crm.example.com\"]\n"
    )
}

#[test]
fn status_page_needs_its_token_and_cards_their_signature() {
    let mut d = http_daemon(&card_config());
    d.start();
    let base = http_address(&d);
    d.drop_file("hello.wav", &tone_wav(440.0, 1500));
    d.drop_file("empty.ogg", b"");
    let records = d.wait_for(&["hello.wav", "empty.ogg"], LONG);
    let record = records
        .iter()
        .find(|r| r["source"]["file_name"] == "hello.wav")
        .unwrap();
    let id = record["record_id"].as_str().unwrap();
    let rejected = records
        .iter()
        .find(|r| r["source"]["file_name"] == "empty.ogg")
        .unwrap();
    assert!(rejected["card_url"].is_null(), "a rejection has no card");

    // Status page: the token, as bearer or query; nothing without it, even on loopback.
    assert_eq!(get(&format!("{base}/"), &[]).status, 401);
    assert_eq!(get(&format!("{base}/?token=wrong"), &[]).status, 401);
    let page = get(&format!("{base}/?token={TOKEN}"), &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("hello.wav") && html.contains("empty-file"),
        "{html}"
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        get(&format!("{base}/"), &[("authorization", &bearer)]).status,
        200
    );
    assert!(page.headers["content-security-policy"].contains("frame-ancestors 'none'"));

    // The card, through its link.
    let link = card_link(&base, record);
    let card = get(&link, &[]);
    assert_eq!(card.status, 200, "{}", card.text());
    let csp = &card.headers["content-security-policy"];
    assert!(csp.contains("frame-ancestors https://crm.example.com;"), "{csp}");
    assert!(!card.headers.contains_key("x-frame-options"));
    let html = card.text();
    assert!(html.contains("<audio") && html.contains("hello.wav"), "{html}");

    // Its media, with ranges.
    let query = link.split_once('?').unwrap().1;
    let media = format!("{base}/card/{id}/media?{query}");
    let whole = get(&media, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.headers["content-type"], "audio/mpeg");
    assert_eq!(
        whole.body.len() as u64,
        record["media"]["bytes"].as_u64().unwrap()
    );
    let part = get(&media, &[("range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[100..200]);
    assert!(part.headers["content-range"].starts_with("bytes 100-199/"));
    let download = get(&format!("{media}&download=1"), &[]);
    assert_eq!(
        download.headers["content-disposition"],
        "attachment; filename=\"hello.mp3\""
    );
    let thumb = get(&format!("{base}/card/{id}/thumb?{query}"), &[]);
    assert_eq!(
        (thumb.status, thumb.headers["content-type"].as_str()),
        (200, "image/png")
    );

    // Bad, expired, or another record's signature: 403, and nothing in it.
    let exp = unix_now() + 600;
    let forged = signed_query("someone-else", exp);
    let expired = signed_query(id, unix_now() - 1);
    for url in [
        format!("{base}/card/{id}?exp={exp}&sig=AAAA"),
        format!("{base}/card/{id}?{forged}"),
        format!("{base}/card/{id}?{expired}"),
        format!("{base}/card/{id}/media?{expired}"),
        format!("{base}/card/0123456789abcdef0123456789abcdef?{query}"),
    ] {
        let answer = get(&url, &[]);
        assert_eq!(answer.status, 403, "{url}");
        assert!(answer.body.is_empty(), "{url}: {}", answer.text());
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    let answer = get(
        &format!("{base}/card/{unknown}?{}", signed_query(unknown, exp)),
        &[],
    );
    assert_eq!(answer.status, 404, "a signed id that names nothing");
    assert_eq!(d.stop(LONG).code(), Some(0));
}

/// Store calls give up after a few seconds, so an outage shows at once.
const IMPATIENT: &str = "timeout = \"2s\"\nretry_budget = \"3s\"";

#[test]
fn s3_store_readiness_card_media_and_store_metrics() {
    use crate::store_support::{Bucket, Proxy, S3Server, AWS_ENV};
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    let proxy = Proxy::start(server.port);
    let through_proxy = Bucket {
        endpoint: format!("http://127.0.0.1:{}", proxy.port),
        name: bucket.name.clone(),
    };
    let config = format!(
        "{}[http]\nlisten = \"127.0.0.1:0\"\n{}",
        through_proxy.config(IMPATIENT),
        card_config()
    );
    let mut d = Daemon::new("", &config);
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    d.start();
    let base = http_address(&d);
    let ready = || get(&format!("{base}/readyz"), &[]);
    assert_eq!(ready().status, 200, "{}", ready().text());

    d.drop_file("first.wav", &tone_wav(330.0, 800));
    let records = d.wait_for(&["first.wav"], LONG);
    let record = &records[0];
    let values = scrape(&base);
    assert!(value(&values, "mediaspool_store_requests{operation=put,outcome=ok}") >= 1.0);
    assert_eq!(value(&values, "mediaspool_uploads_paused{}"), 0.0);

    // The card's media come from the store: a redirect to a fresh link there, which the
    // card's policy allows.
    let link = card_link(&base, record);
    let card = get(&link, &[]);
    assert_eq!(card.status, 200, "{}", card.text());
    let origin = through_proxy.endpoint.clone();
    let csp = &card.headers["content-security-policy"];
    assert!(csp.contains(&format!("media-src 'self' {origin};")), "{csp}");
    let id = record["record_id"].as_str().unwrap();
    let query = link.split_once('?').unwrap().1;
    let media = get(&format!("{base}/card/{id}/media?{query}"), &[]);
    assert_eq!(media.status, 307);
    let location = &media.headers["location"];
    assert!(
        location.starts_with(&format!("{origin}/{}/", bucket.name)),
        "{location}"
    );
    let fetched = get(location, &[("range", "bytes=0-99")]);
    assert_eq!((fetched.status, fetched.body.len()), (206, 100));

    // The store goes away: not ready, and a job's upload pauses after its retries.
    proxy.set_target(None);
    let answer = ready();
    assert_eq!(answer.status, 503);
    assert!(answer.text().contains("store: "), "{}", answer.text());
    d.drop_file("second.wav", &tone_wav(550.0, 800));
    wait_until("uploads paused", LONG, || {
        scrape(&base).get("mediaspool_uploads_paused{}") == Some(&1.0)
    });
    let values = scrape(&base);
    let retries: f64 = values
        .iter()
        .filter(|(k, _)| k.starts_with("mediaspool_store_retries{"))
        .map(|(_, v)| v)
        .sum();
    assert!(retries >= 1.0, "{:#?}", sorted_keys(&values));
    assert!(values.iter().any(|(k, v)| k.contains("outcome=error")
        && k.starts_with("mediaspool_store_requests{")
        && *v >= 1.0));

    // Back: ready again, the waiting job goes through, uploads resume.
    proxy.set_target(Some(server.port));
    wait_until("ready again", LONG, || ready().status == 200);
    d.wait_for(&["second.wav"], Duration::from_secs(180));
    wait_until("uploads resumed", LONG, || {
        scrape(&base).get("mediaspool_uploads_paused{}") == Some(&0.0)
    });
    assert_eq!(d.stop(LONG).code(), Some(0));
}
