//! Delivery to HTTP sinks against a real receiver on 127.0.0.1: records committed to a real
//! SQLite catalog, delivered by the sinks' own tasks, checked at the receiver (signatures,
//! timestamps, order per chat, exactly one acceptance per webhook-id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mediaspool::catalog::{Catalog, Commit, JobVerdict};
use mediaspool::config::Config;
use mediaspool::delivery::{Routes, Sinks, Wakeup};
use mediaspool::records::{Event, Record, SourceInfo};
use tokio::sync::watch;

use crate::receiver::{Answer, Receiver};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A catalog, an outbox file and sinks from `sinks_toml`, delivering on their own runtime.
struct Bench {
    dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    routes: Routes,
    wakeup: Arc<Wakeup>,
    runtime: tokio::runtime::Runtime,
    stop: Option<watch::Sender<bool>>,
    tasks: Option<tokio::task::JoinSet<()>>,
    committed: usize,
}

impl Bench {
    fn new(sinks_toml: &str) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[records]\noutbox = \"{}/records.ndjson\"\n{sinks_toml}",
            dir.path().display()
        );
        let config = Config::from_sources(&toml, "test", Vec::new()).unwrap();
        config
            .validate(&mediaspool::profile::ProfileSet::built_in())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let catalog = runtime.block_on(mediaspool::catalog::open(&url)).unwrap();
        let sinks = Sinks::from_config(&config).unwrap();
        let wakeup = Arc::new(Wakeup::default());
        let (stop, stop_rx) = watch::channel(false);
        let tasks = runtime.block_on(async { sinks.spawn(&catalog, &wakeup, stop_rx) });
        Bench {
            routes: Routes::from_config(&config),
            dir,
            catalog,
            wakeup,
            runtime,
            stop: Some(stop),
            tasks: Some(tasks),
            committed: 0,
        }
    }

    /// Commits a stored record of `chat`, returning its id.
    fn commit(&mut self, chat: Option<&str>) -> String {
        self.committed += 1;
        let name = format!("note{:04}.ogg", self.committed);
        let mut r = Record::new(
            Event::Stored,
            &name,
            None,
            SourceInfo {
                file_name: name.clone(),
                ..Default::default()
            },
        );
        r.crm.chat_id = chat.map(str::to_string);
        r.crm.customer_id = Some("c-1".into());
        let commit = Commit {
            job_id: &name,
            message_key: &name,
            record: &r,
            new_media: None,
            verdict: &JobVerdict::Done,
            sinks: &self.routes.for_record(&r),
        };
        self.runtime.block_on(self.catalog.commit(&commit)).unwrap();
        self.wakeup.ring();
        r.record_id
    }

    fn ndjson_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("records.ndjson"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(true).unwrap();
            let mut tasks = self.tasks.take().unwrap();
            self.runtime
                .block_on(async { while tasks.join_next().await.is_some() {} });
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sink(url: &str, extra: &str) -> String {
    format!(
        "[sinks.crm]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout = \"2s\"\nretry_min = \"20ms\"\nretry_max = \"200ms\"\n{extra}\n"
    )
}

#[test]
fn every_record_is_accepted_once_through_500s_a_10_s_outage_and_429_with_retry_after() {
    let mut receiver = Receiver::start(Some(SECRET), |_, n| match n {
        0..=9 => Answer::status(500),
        10..=12 => Answer {
            headers: vec![("Retry-After".into(), "1".into())],
            ..Answer::status(429)
        },
        _ => Answer::status(204),
    });
    // One request at a time, so the pause after a 429 shows in the arrival times.
    let mut bench = Bench::new(&sink(&receiver.url("/hook"), "concurrency = 1"));
    let ids: Vec<String> = (0..30)
        .map(|i| bench.commit(Some(&format!("chat-{}", i % 5))))
        .collect();
    receiver.wait_for(Duration::from_secs(60), "10 accepted", |log| {
        log.accepted().len() >= 10
    });
    receiver.down();
    for _ in 0..10 {
        bench.commit(None);
    }
    std::thread::sleep(Duration::from_secs(10));
    receiver.up();
    receiver.wait_for(Duration::from_secs(60), "all 40 accepted", |log| {
        log.accepted_counts().len() == 40
    });
    bench.stop();
    let log = receiver.log.lock().unwrap();
    assert!(log.forged.is_empty(), "unverified deliveries: {:?}", log.forged);
    let counts = log.accepted_counts();
    for id in &ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "{id} accepted {:?} times",
            counts.get(id)
        );
    }
    assert!(counts.values().all(|n| *n == 1), "a record accepted twice");
    // Retry-After: 1 — nothing is sent for a second after each 429.
    let statuses: Vec<u16> = log.requests.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..13], &[[500; 10].as_slice(), &[429; 3]].concat()[..]);
    for i in 10..13 {
        let gap = log.requests[i + 1].at - log.requests[i].at;
        assert!(
            gap >= Duration::from_millis(950),
            "{gap:?} after a 429 with Retry-After: 1"
        );
    }
}

#[test]
fn records_of_a_chat_arrive_in_order_over_200_records_in_20_chats_with_random_failures() {
    let seed = std::sync::atomic::AtomicU64::new(0x2545f4914f6cdd1d);
    let receiver = Receiver::start(Some(SECRET), move |_, _| {
        let mut x = seed.load(std::sync::atomic::Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seed.store(x, std::sync::atomic::Ordering::Relaxed);
        match x % 10 {
            0 | 1 => Answer::status(500),
            2 => Answer::status(503),
            _ => Answer::status(200),
        }
    });
    let mut bench = Bench::new(&sink(&receiver.url("/hook"), "concurrency = 8"));
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..200 {
        let chat = format!("chat-{:02}", (i * 7) % 20);
        let id = bench.commit(Some(&chat));
        sent.entry(chat).or_default().push(id);
    }
    receiver.wait_for(Duration::from_secs(120), "200 accepted", |log| {
        log.accepted_counts().len() == 200
    });
    bench.stop();
    let log = receiver.log.lock().unwrap();
    assert!(log.forged.is_empty());
    let chat_of: HashMap<&str, &str> = sent
        .iter()
        .flat_map(|(chat, ids)| ids.iter().map(move |id| (id.as_str(), chat.as_str())))
        .collect();
    let mut arrived: HashMap<&str, Vec<String>> = HashMap::new();
    for r in log.accepted() {
        arrived
            .entry(chat_of[r.id.as_str()])
            .or_default()
            .push(r.id.clone());
    }
    for (chat, ids) in &sent {
        assert_eq!(&arrived[chat.as_str()], ids, "{chat} out of order");
    }
    assert!(log.requests.iter().any(|r| r.status == 500), "failures happened");
}

#[test]
fn a_refused_record_is_dead_lettered_then_redriven_and_410_disables_the_sink() {
    let refuse = Arc::new(std::sync::atomic::AtomicU16::new(422));
    let answer = Arc::clone(&refuse);
    let receiver = Receiver::start(Some(SECRET), move |_, _| {
        Answer::status(answer.load(std::sync::atomic::Ordering::SeqCst))
    });
    let mut bench = Bench::new(&sink(&receiver.url("/hook"), "give_up_after = \"300ms\""));
    let id = bench.commit(Some("a"));
    let catalog = Arc::clone(&bench.catalog);
    let dead = wait(Duration::from_secs(20), || {
        let rows = bench
            .runtime
            .block_on(catalog.list_deliveries(Some("crm"), true, 10))
            .unwrap();
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(dead[0].record_id, id);
    assert!(
        dead[0].last_error.as_deref().unwrap().starts_with("HTTP 422"),
        "{:?}",
        dead[0].last_error
    );
    // The next record of the chat is not held up by a dead letter.
    refuse.store(410, std::sync::atomic::Ordering::SeqCst);
    bench.commit(Some("a"));
    wait(Duration::from_secs(20), || {
        bench
            .runtime
            .block_on(catalog.sink_backlog("crm"))
            .unwrap()
            .disabled
    });
    let requests = receiver.log.lock().unwrap().requests.len();
    bench.commit(Some("b"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.log.lock().unwrap().requests.len(),
        requests,
        "nothing is sent to a disabled sink"
    );
    refuse.store(200, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        bench
            .runtime
            .block_on(catalog.redrive(Some("crm"), None))
            .unwrap(),
        1
    );
    receiver.wait_for(Duration::from_secs(20), "all three accepted", |log| {
        log.accepted_counts().len() == 3
    });
    assert_eq!(receiver.log.lock().unwrap().accepted_counts()[&id], 1);
}

#[test]
fn a_slow_sink_does_not_slow_the_ndjson_sink() {
    let receiver = Receiver::start(Some(SECRET), |_, _| Answer {
        delay: Duration::from_millis(500),
        ..Answer::status(200)
    });
    let mut bench = Bench::new(&sink(&receiver.url("/hook"), "concurrency = 1"));
    for _ in 0..20 {
        bench.commit(Some("one-chat"));
    }
    wait(Duration::from_secs(10), || {
        (bench.ndjson_lines() == 20).then_some(())
    });
    let accepted = receiver.log.lock().unwrap().accepted().len();
    assert!(
        accepted < 20,
        "the NDJSON file had all 20 while the slow sink had {accepted}"
    );
}

fn wait<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
