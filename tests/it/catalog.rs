//! The catalog interface on PostgreSQL: every promise SQLite keeps (the same checks, from
//! `mediaspool::catalog::contract`), migrations by daemons starting together, and claims by
//! several daemons at once (each delivery to one of them, a chat's records in order).

use std::collections::HashSet;
use std::sync::Arc;

use mediaspool::catalog::{self, contract, now_ms, Catalog, Commit, JobVerdict, Settlement};
use mediaspool::records::{Event, Record, SourceInfo};

use crate::pg_support::fresh_database;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn postgres_keeps_every_promise_of_a_catalog() {
    runtime().block_on(contract::all(|| async {
        catalog::open(&fresh_database()).await.unwrap()
    }));
}

#[test]
fn daemons_starting_together_migrate_the_schema_once() {
    let url = fresh_database();
    runtime().block_on(async {
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { catalog::open(&url).await.map(|_| ()) })
            })
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
    });
}

#[test]
fn claimers_on_several_connections_get_each_delivery_once_in_chat_order() {
    let url = fresh_database();
    runtime().block_on(async {
        let c = catalog::open(&url).await.unwrap();
        for i in 0..200 {
            let name = format!("r{i:03}");
            let mut r = Record::new(
                Event::Stored,
                &name,
                None,
                SourceInfo {
                    file_name: name.clone(),
                    ..Default::default()
                },
            );
            r.crm.chat_id = Some(format!("chat-{}", i % 7));
            c.commit(&Commit {
                job_id: &name,
                message_key: &name,
                record: &r,
                new_media: None,
                verdict: &JobVerdict::Done,
                sinks: &["s"],
            })
            .await
            .unwrap();
        }
        // Four "daemons", each its own catalog (pool), claiming small batches at once and
        // settling them; the order each chat's records were delivered in is kept.
        let delivered = Arc::new(std::sync::Mutex::new(Vec::<(String, i64)>::new()));
        let mut tasks = Vec::new();
        for d in 0..4 {
            let (url, delivered) = (url.clone(), Arc::clone(&delivered));
            tasks.push(tokio::spawn(async move {
                let c: Arc<dyn Catalog> = catalog::open(&url).await.unwrap();
                let owner = format!("daemon-{d}");
                let mut idle = 0;
                while idle < 20 {
                    let batch = c
                        .claim_deliveries("s", &owner, now_ms(), 5, 30_000)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        idle += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                    idle = 0;
                    {
                        let mut log = delivered.lock().unwrap();
                        for b in &batch {
                            log.push((b.chat_id.clone().unwrap(), b.seq));
                        }
                    }
                    let settled: Vec<Settlement> = batch
                        .iter()
                        .map(|b| Settlement::Delivered { seq: b.seq })
                        .collect();
                    c.settle_deliveries("s", &settled).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let log = delivered.lock().unwrap();
        assert_eq!(log.len(), 200, "every delivery made");
        let seqs: HashSet<i64> = log.iter().map(|(_, s)| *s).collect();
        assert_eq!(seqs.len(), 200, "none twice");
        for chat in 0..7 {
            let order: Vec<i64> = log
                .iter()
                .filter(|(c, _)| *c == format!("chat-{chat}"))
                .map(|(_, s)| *s)
                .collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "chat-{chat} in order");
        }
    });
}

#[test]
fn an_unreachable_server_is_an_error_that_passes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let e = runtime()
        .block_on(catalog::open_within(&url, std::time::Duration::ZERO))
        .err()
        .expect("nothing listens there");
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}
