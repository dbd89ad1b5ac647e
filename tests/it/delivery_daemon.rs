//! `mediaspool watch` delivering to a real receiver on 127.0.0.1: a kill -9 in the middle of a
//! delivery loses nothing, and credentials appear in no log line (human or JSON, at -vv) and in
//! no `deliveries` or `check` output.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::delivery::{sink, SECRET};
use crate::receiver::{Answer, Receiver};
use crate::spool_support::*;

const LONG: Duration = Duration::from_secs(120);

/// The ids of the records in the NDJSON outbox, which every record reaches at once.
fn outbox_ids(d: &Daemon) -> HashSet<String> {
    d.records()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kill_9_mid_delivery_loses_nothing_and_sends_again_under_the_same_webhook_id() {
    // The second request is held for 30 s (the sink waits 60 s): the daemon is killed while
    // it is in flight.
    let receiver = Receiver::start(Some(SECRET), |_, n| Answer {
        delay: Duration::from_millis(if n == 1 { 30_000 } else { 100 }),
        ..Answer::status(200)
    });
    let config =
        sink(&receiver.url("/hook"), "concurrency = 1").replace("timeout = \"2s\"", "timeout = \"60s\"");
    assert!(config.contains("60s"));
    let mut d = Daemon::new("", &config);
    let names: Vec<String> = (0..8).map(|i| format!("n{i}.wav")).collect();
    for (i, name) in names.iter().enumerate() {
        d.drop_file(name, &tone_wav(310.0 + 13.0 * i as f64, 200));
    }
    d.start();
    receiver.wait_for(LONG, "a second request", |log| log.arrivals.len() >= 2);
    let in_flight = receiver.log.lock().unwrap().arrivals[1].clone();
    d.kill9();

    // The killed process's claims lapse (15 s) and the records go out again.
    d.start();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    d.wait_for(&refs, LONG);
    let ids = outbox_ids(&d);
    assert_eq!(ids.len(), names.len(), "one record per file");
    receiver.wait_for(LONG, "every record accepted", |log| {
        ids.iter().all(|id| log.accepted_counts().contains_key(id))
    });
    // The delivery cut short by the kill is made again after the restart, as itself.
    receiver.wait_for(LONG, "the record in flight at the kill sent again", |log| {
        log.arrivals.iter().filter(|id| **id == in_flight).count() >= 2
    });
    assert_eq!(d.stop(LONG).code(), Some(0));

    let log = receiver.log.lock().unwrap();
    assert!(log.forged.is_empty(), "unverified: {:?}", log.forged);
    let unknown: Vec<&String> = log.arrivals.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(unknown.is_empty(), "ids of no record: {unknown:?}");
}

/// Credentials a sink is configured with, each of which must never be shown.
const TOKEN: &str = "tok-3b7c9f1e2d8a";
const API_KEY: &str = "key-5e8a0c71b9";
const URL_KEY: &str = "qk-9d2f47e1c3";

#[test]
fn credentials_are_in_no_log_line_and_no_deliveries_or_check_output() {
    // The receiver refuses one file's record for good and the first two other requests,
    // quoting the credentials back in its answer as careless receivers do; the rest it accepts.
    let others = std::sync::atomic::AtomicUsize::new(0);
    let receiver = Receiver::start(Some(SECRET), move |request, _| {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or_else(String::new, |(_, v)| v.clone())
        };
        let echo = format!(
            "{{\"error\": \"bad credentials {} {} for {}\"}}",
            header("authorization"),
            header("x-api-key"),
            request.target
        );
        if String::from_utf8_lossy(&request.body).contains(REFUSED) {
            return Answer {
                body: echo,
                ..Answer::status(422)
            };
        }
        match others.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0..=1 => Answer {
                body: echo,
                ..Answer::status(401)
            },
            _ => Answer::status(204),
        }
    });
    let url = format!("{}?key=${{HOOK_KEY}}", receiver.url("/hook"));
    let extra = format!(
        "give_up_after = \"1s\"\n\
         [sinks.crm.headers]\nAuthorization = \"Bearer ${{CRM_TOKEN}}\"\nX-Api-Key = \"{API_KEY}\"\n"
    );
    // The secret is read from the environment too.
    let config = sink(&url, &extra).replacen(SECRET, "${CRM_SECRET}", 1);
    assert!(config.contains("${CRM_SECRET}"));
    let mut d = Daemon::new("", &config)
        .with_env("CRM_SECRET", SECRET)
        .with_env("CRM_TOKEN", TOKEN)
        .with_env("HOOK_KEY", URL_KEY);
    let dead_letters = |d: &Daemon| text(&d.run(&["deliveries", "--dead"], LONG).stdout);
    let mut names = Vec::new();
    for (round, format) in ["human", "json"].into_iter().enumerate() {
        d.start_with(&["-vv", "--log-format", format]);
        for i in 0..4 {
            let name = format!("r{round}-{i}.wav");
            d.drop_file(&name, &tone_wav(500.0 + 17.0 * (round * 4 + i) as f64, 200));
            names.push(name);
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        d.wait_for(&refs, LONG);
        let ids: Vec<String> = d
            .records()
            .iter()
            .filter(|r| r["source"]["file_name"] != REFUSED)
            .map(|r| r["record_id"].as_str().unwrap().to_string())
            .collect();
        receiver.wait_for(LONG, "every other record accepted", |log| {
            let accepted = log.accepted_counts();
            ids.iter().all(|id| accepted.contains_key(id))
        });
        let start = Instant::now();
        while round == 1 && !dead_letters(&d).contains(REFUSED) {
            assert!(start.elapsed() < LONG, "{REFUSED} not dead-lettered");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(d.stop(LONG).code(), Some(0));
    }
    let mut shown = vec![("daemon log".to_string(), d.log())];
    for args in [
        &["deliveries"][..],
        &["deliveries", "--dead"],
        &["deliveries", "--sink", "crm", "--dead"],
        &["check"],
    ] {
        let out = d.run(args, LONG);
        shown.push((
            args.join(" "),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        ));
    }
    let secret_key = SECRET.trim_start_matches("whsec_");
    for (what, text) in &shown {
        for credential in [TOKEN, API_KEY, URL_KEY, secret_key] {
            assert!(!text.contains(credential), "{what} shows {credential}:\n{text}");
        }
    }
    // The refusals were logged and kept, with what the receiver quoted masked.
    let log = &shown[0].1;
    assert!(log.contains("HTTP 422") && log.contains("HTTP 401"), "{log}");
    assert!(log.contains("bad credentials"), "{log}");
    assert!(log.contains(r#""level":"#), "JSON lines too:\n{log}");
    let dead = &shown[2].1;
    assert!(
        dead.contains("HTTP 422") && dead.contains("bad credentials *** ***"),
        "{dead}"
    );
}

/// The file whose record the receiver always refuses.
const REFUSED: &str = "r0-0.wav";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
