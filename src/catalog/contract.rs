//! What every [`Catalog`] implementation must do, as checks run against a fresh, empty catalog:
//! the unit tests run them on SQLite, the integration tests on PostgreSQL. Each panics on the
//! first broken promise.

use super::{
    now_ms, Catalog, ClaimedDelivery, Commit, Erased, Erasure, JobVerdict, QueryFilter, Settlement,
    SinkBacklog, StoredMedia, Subject,
};
use crate::failure::{ErrorCode, Failure};
use crate::hash::ContentHash;
use crate::records::{Event, MediaInfo, Record, SourceInfo};

/// Every check, in turn, each on a catalog `fresh` makes.
pub async fn all<C, F>(fresh: impl Fn() -> F)
where
    F: std::future::Future<Output = C>,
    C: std::ops::Deref<Target = dyn Catalog>,
{
    a_commit_is_the_record_the_verdict_and_one_delivery_per_sink(&*fresh().await).await;
    only_a_message_that_was_not_rejected_counts_as_a_repeat(&*fresh().await).await;
    the_first_rendition_of_some_bytes_stays(&*fresh().await).await;
    query_filters_combine(&*fresh().await).await;
    a_lease_has_one_holder_until_it_lapses(&*fresh().await).await;
    a_later_record_of_a_chat_waits_for_the_earlier_one_and_other_chats_go_on(&*fresh().await).await;
    a_lapsed_claim_is_taken_again(&*fresh().await).await;
    dead_letters_are_listed_and_redriven(&*fresh().await).await;
    the_last_records_come_newest_first(&*fresh().await).await;
    expired_and_forgotten_messages_go_with_their_rows_and_bytes_stay_while_shared(&*fresh().await).await;
}

fn record(event: Event, name: &str, at: &str) -> Record {
    let hash = ContentHash::parse(&"ab".repeat(32)).unwrap();
    let mut r = Record::new(
        event,
        name,
        Some(&hash),
        SourceInfo {
            file_name: name.into(),
            ..Default::default()
        },
    );
    r.processed_at = at.to_string();
    if event == Event::Rejected {
        r.error = Some(Failure::new(ErrorCode::TIMEOUT, "slow"));
    }
    r
}

fn audio(bytes: u64) -> MediaInfo {
    MediaInfo {
        kind: "audio".into(),
        profile: Some("voice".into()),
        profile_id: Some("voice-v1".into()),
        mime: "audio/mpeg".into(),
        bytes,
        duration_ms: Some(1000),
        width: None,
        height: None,
        url: "file:///media/x.mp3".into(),
        key: "x.mp3".into(),
    }
}

async fn commit(c: &dyn Catalog, job_id: &str, key: &str, r: &Record, verdict: &JobVerdict, sinks: &[&str]) {
    c.commit(&Commit {
        job_id,
        message_key: key,
        record: r,
        new_media: None,
        verdict,
        sinks,
    })
    .await
    .unwrap();
}

pub async fn a_commit_is_the_record_the_verdict_and_one_delivery_per_sink(c: &dyn Catalog) {
    let r = record(Event::Stored, "a.ogg", "2026-11-01T00:00:00Z");
    commit(c, "job-1", "a.ogg", &r, &JobVerdict::Done, &["ndjson", "stdout"]).await;
    assert_eq!(c.finished_job("job-1").await.unwrap(), Some(JobVerdict::Done));
    assert_eq!(c.finished_job("job-2").await.unwrap(), None);
    assert_eq!(
        c.record(&r.record_id).await.unwrap().unwrap().record_id,
        r.record_id
    );
    let now = now_ms();
    let pending = c.claim_deliveries("ndjson", "me", now, 10, 1000).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        c.claim_deliveries("stdout", "me", now, 10, 1000)
            .await
            .unwrap()
            .len(),
        1
    );
    let delivered = [Settlement::Delivered { seq: pending[0].seq }];
    c.settle_deliveries("ndjson", &delivered).await.unwrap();
    assert!(c
        .claim_deliveries("ndjson", "me", now, 10, 1000)
        .await
        .unwrap()
        .is_empty());
    // Not delivered to stdout yet: nothing is pruned.
    assert_eq!(c.prune_delivered("2030-01-01T00:00:00Z").await.unwrap(), 0);
    c.settle_deliveries("stdout", &delivered).await.unwrap();
    assert_eq!(
        c.prune_delivered("2026-10-01T00:00:00Z").await.unwrap(),
        0,
        "too recent"
    );
    assert_eq!(c.prune_delivered("2030-01-01T00:00:00Z").await.unwrap(), 1);
    assert_eq!(
        c.query(&QueryFilter::default()).await.unwrap().records.len(),
        1,
        "the record itself stays"
    );
    // A worker's deaths are counted per job.
    assert_eq!(c.count_attempt("job-3", "b.ogg").await.unwrap(), 1);
    assert_eq!(c.count_attempt("job-3", "b.ogg").await.unwrap(), 2);
}

pub async fn only_a_message_that_was_not_rejected_counts_as_a_repeat(c: &dyn Catalog) {
    let hash = format!("blake3:{}", "ab".repeat(32));
    let failed = record(Event::Rejected, "m1", "2026-11-01T00:00:00Z");
    let verdict = JobVerdict::Failed(Failure::new(ErrorCode::TIMEOUT, "slow"));
    commit(c, "job-1", "m1", &failed, &verdict, &["ndjson"]).await;
    assert_eq!(c.finished_job("job-1").await.unwrap(), Some(verdict));
    assert!(
        c.record_of_message("m1", &hash).await.unwrap().is_none(),
        "a rejection is tried again"
    );
    let stored = record(Event::Stored, "m1", "2026-11-02T00:00:00Z");
    commit(c, "job-2", "m1", &stored, &JobVerdict::Done, &["ndjson"]).await;
    assert_eq!(
        c.record_of_message("m1", &hash).await.unwrap().unwrap().record_id,
        stored.record_id
    );
    assert!(c.record_of_message("m1", "blake3:other").await.unwrap().is_none());
}

pub async fn the_first_rendition_of_some_bytes_stays(c: &dyn Catalog) {
    for (job, bytes) in [("job-1", 100), ("job-2", 200)] {
        let mut r = record(Event::Stored, job, "2026-11-01T00:00:00Z");
        r.media = Some(audio(bytes));
        let stored = StoredMedia::from_record(&r).unwrap();
        c.commit(&Commit {
            job_id: job,
            message_key: job,
            record: &r,
            new_media: Some(("voice-v1", "audio", &stored)),
            verdict: &JobVerdict::Done,
            sinks: &[],
        })
        .await
        .unwrap();
    }
    let known = c.media_for(&format!("blake3:{}", "ab".repeat(32))).await.unwrap();
    assert_eq!(known.len(), 1);
    let (profile, kind, stored) = &known[0];
    assert_eq!((profile.as_str(), kind.as_str()), ("voice-v1", "audio"));
    assert_eq!(stored.media.bytes, 100, "the first commit's rendition");
    assert!(c.media_for("blake3:none").await.unwrap().is_empty());
}

pub async fn query_filters_combine(c: &dyn Catalog) {
    let mut a = record(Event::Stored, "a", "2026-11-02T00:00:00Z");
    a.crm.customer_id = Some("c1".into());
    a.crm.chat_id = Some("chat-1".into());
    a.crm.tags = vec!["vip".into(), "sales".into()];
    a.media = Some(audio(1));
    let mut b = record(Event::Stored, "b", "2026-11-03T00:00:00Z");
    b.crm.customer_id = Some("c1".into());
    b.received_at = Some("2026-11-01T00:00:00Z".into());
    let mut other = record(Event::Stored, "x", "2026-11-01T00:00:00Z");
    other.crm.customer_id = Some("c2".into());
    for (i, r) in [&a, &b, &other].into_iter().enumerate() {
        commit(
            c,
            &format!("job-{i}"),
            &r.source.file_name,
            r,
            &JobVerdict::Done,
            &[],
        )
        .await;
    }
    let ids = |records: Vec<Record>| {
        records
            .into_iter()
            .map(|r| r.source.file_name)
            .collect::<Vec<_>>()
    };
    let by = |f: QueryFilter| async move { ids(c.query(&f).await.unwrap().records) };
    let customer = |id: &str| QueryFilter {
        customer: Some(id.into()),
        ..Default::default()
    };
    assert_eq!(
        by(customer("c1")).await,
        ["b", "a"],
        "oldest first, received before processed"
    );
    assert_eq!(
        by(QueryFilter {
            tag: Some("vip".into()),
            ..customer("c1")
        })
        .await,
        ["a"]
    );
    assert_eq!(
        by(QueryFilter {
            kind: Some("audio".into()),
            chat: Some("chat-1".into()),
            ..Default::default()
        })
        .await,
        ["a"]
    );
    assert_eq!(
        by(QueryFilter {
            since: Some("2026-11-01T12:00:00Z".into()),
            until: Some("2026-11-02T12:00:00Z".into()),
            ..Default::default()
        })
        .await,
        ["a"]
    );
    assert!(by(customer("nobody")).await.is_empty());
}

pub async fn a_lease_has_one_holder_until_it_lapses(c: &dyn Catalog) {
    let now = now_ms();
    assert!(c.take_lease("h1", "a", now, now + 1000).await.unwrap());
    assert!(
        !c.take_lease("h1", "b", now, now + 1000).await.unwrap(),
        "held by a"
    );
    assert!(
        c.take_lease("h2", "b", now, now + 1000).await.unwrap(),
        "other bytes"
    );
    assert!(c.take_lease("h1", "a", now, now + 1000).await.unwrap(), "a's own");
    // a's heartbeat keeps it past its first expiry.
    assert!(c.take_lease("h1", "a", now + 500, now + 5000).await.unwrap());
    assert!(!c.take_lease("h1", "b", now + 2000, now + 3000).await.unwrap());
    // a died: once the lease lapses, b takes it.
    assert!(c.take_lease("h1", "b", now + 5000, now + 6000).await.unwrap());
    // a's late release does not free b's lease.
    c.release_lease("h1", "a").await.unwrap();
    assert!(!c.take_lease("h1", "a", now + 5000, now + 6000).await.unwrap());
    c.release_lease("h1", "b").await.unwrap();
    assert!(c.take_lease("h1", "a", now + 5000, now + 6000).await.unwrap());
}

fn seqs(claimed: &[ClaimedDelivery]) -> Vec<i64> {
    claimed.iter().map(|c| c.seq).collect()
}

/// Commits a stored record of `name` in `chat` for sink "s"; its record id.
async fn commit_in_chat(c: &dyn Catalog, name: &str, chat: Option<&str>) -> String {
    let mut r = Record::new(
        Event::Stored,
        name,
        None,
        SourceInfo {
            file_name: name.into(),
            ..Default::default()
        },
    );
    r.crm.chat_id = chat.map(str::to_string);
    commit(c, name, name, &r, &JobVerdict::Done, &["s"]).await;
    r.record_id
}

pub async fn a_later_record_of_a_chat_waits_for_the_earlier_one_and_other_chats_go_on(c: &dyn Catalog) {
    commit_in_chat(c, "a1", Some("a")).await;
    commit_in_chat(c, "b1", Some("b")).await;
    commit_in_chat(c, "a2", Some("a")).await;
    commit_in_chat(c, "x", None).await;
    let now = now_ms();
    let batch = c.claim_deliveries("s", "me", now, 10, 1000).await.unwrap();
    assert_eq!(seqs(&batch), [1, 2, 3, 4], "all due, in order");
    assert!(
        c.claim_deliveries("s", "other", now, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "claimed"
    );
    // a1 fails: a2 is released untried and must wait; b1 and x are delivered.
    c.settle_deliveries(
        "s",
        &[
            Settlement::Failed {
                seq: 1,
                error: "HTTP 500".into(),
                next_attempt_ms: now + 60_000,
                dead: false,
            },
            Settlement::Delivered { seq: 2 },
            Settlement::Released { seq: 3 },
            Settlement::Delivered { seq: 4 },
        ],
    )
    .await
    .unwrap();
    commit_in_chat(c, "b2", Some("b")).await;
    assert_eq!(
        seqs(&c.claim_deliveries("s", "me", now, 10, 1000).await.unwrap()),
        [5],
        "a2 waits for a1"
    );
    c.settle_deliveries("s", &[Settlement::Delivered { seq: 5 }])
        .await
        .unwrap();
    assert_eq!(
        c.next_delivery_due("s").await.unwrap(),
        Some(now + 60_000),
        "a2 is behind a1"
    );
    // Once a1 is due, a1 and a2 come in order.
    let later = c
        .claim_deliveries("s", "me", now + 60_000, 10, 1000)
        .await
        .unwrap();
    assert_eq!(seqs(&later), [1, 3]);
    assert_eq!(later[0].attempts, 1);
}

pub async fn a_lapsed_claim_is_taken_again(c: &dyn Catalog) {
    commit_in_chat(c, "a1", Some("a")).await;
    commit_in_chat(c, "a2", Some("a")).await;
    let now = now_ms();
    assert_eq!(
        c.claim_deliveries("s", "dead", now, 1, 5000).await.unwrap().len(),
        1
    );
    assert!(
        c.claim_deliveries("s", "me", now + 1000, 10, 5000)
            .await
            .unwrap()
            .is_empty(),
        "a2 waits behind the claim on a1"
    );
    c.renew_claims("s", "dead", now + 10_000).await.unwrap();
    assert!(
        c.claim_deliveries("s", "me", now + 6000, 10, 5000)
            .await
            .unwrap()
            .is_empty(),
        "renewed"
    );
    assert_eq!(
        seqs(
            &c.claim_deliveries("s", "me", now + 10_000, 10, 5000)
                .await
                .unwrap()
        ),
        [1, 2]
    );
}

pub async fn dead_letters_are_listed_and_redriven(c: &dyn Catalog) {
    let id = commit_in_chat(c, "a1", Some("a")).await;
    commit_in_chat(c, "b1", Some("b")).await;
    let now = now_ms();
    c.claim_deliveries("s", "me", now, 1, 1000).await.unwrap();
    c.settle_deliveries(
        "s",
        &[Settlement::Failed {
            seq: 1,
            error: "HTTP 422: no such contact".into(),
            next_attempt_ms: now,
            dead: true,
        }],
    )
    .await
    .unwrap();
    let dead = c.list_deliveries(Some("s"), true, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record_id, id);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 422: no such contact"));
    assert_eq!(
        c.list_deliveries(None, false, 10).await.unwrap().len(),
        1,
        "b1 waits"
    );
    assert_eq!(
        c.sink_backlog("s").await.unwrap(),
        SinkBacklog {
            waiting: 1,
            dead: 1,
            disabled: None
        }
    );
    // b1 expires unclaimed.
    assert_eq!(
        c.dead_letter_expired("s", now_ms() + 1, "receiver down")
            .await
            .unwrap(),
        1
    );
    c.disable_sink("s", "410 Gone").await.unwrap();
    assert!(c.sink_disabled("s").await.unwrap());
    assert_eq!(c.sink_backlog("s").await.unwrap().disabled.unwrap().1, "410 Gone");
    assert_eq!(c.redrive(Some("s"), Some(&id)).await.unwrap(), 1);
    assert!(!c.sink_disabled("s").await.unwrap());
    let back = c.claim_deliveries("s", "me", now_ms(), 10, 1000).await.unwrap();
    assert_eq!(seqs(&back), [1]);
    assert_eq!(back[0].attempts, 0);
    assert_eq!(c.redrive(None, None).await.unwrap(), 1);
}

pub async fn the_last_records_come_newest_first(c: &dyn Catalog) {
    c.ping().await.unwrap();
    assert!(c.recent(10, false).await.unwrap().is_empty());
    let stored = record(Event::Stored, "a.ogg", "2026-11-01T00:00:00Z");
    let rejected = record(Event::Rejected, "b.ogg", "2026-11-02T00:00:00Z");
    let failed = JobVerdict::Failed(Failure::new(ErrorCode::TIMEOUT, "slow"));
    commit(c, "j1", "a.ogg", &stored, &JobVerdict::Done, &["ndjson"]).await;
    commit(c, "j2", "b.ogg", &rejected, &failed, &["ndjson", "stdout"]).await;
    let ids = |rs: Vec<Record>| rs.into_iter().map(|r| r.record_id).collect::<Vec<_>>();
    let (r, s) = (rejected.record_id.clone(), stored.record_id.clone());
    assert_eq!(ids(c.recent(10, false).await.unwrap()), [r.clone(), s]);
    assert_eq!(ids(c.recent(10, true).await.unwrap()), std::slice::from_ref(&r));
    assert_eq!(ids(c.recent(1, false).await.unwrap()), [r]);
    assert!(c.record("nope").await.unwrap().is_none());
    let backlog = |waiting, dead| SinkBacklog {
        waiting,
        dead,
        disabled: None,
    };
    assert_eq!(c.sink_backlog("ndjson").await.unwrap(), backlog(2, 0));
    assert_eq!(c.sink_backlog("stdout").await.unwrap(), backlog(1, 0));
    assert_eq!(c.sink_backlog("crm").await.unwrap(), backlog(0, 0));
    c.ping().await.unwrap();
}

/// What retention and erasure rely on: expired messages listed in pages, a customer's or a
/// chat's messages, renditions no other message needs (a rejected one does not count), and an
/// erasure that removes the rows and queues its notices once.
pub async fn expired_and_forgotten_messages_go_with_their_rows_and_bytes_stay_while_shared(c: &dyn Catalog) {
    let shared = format!("blake3:{}", "ab".repeat(32));
    let mut committed = Vec::new();
    // (name, customer, chat, event, retention_until): a and b share bytes; r was rejected.
    for (name, customer, until) in [
        ("a", "c1", Some("2026-01-01T00:00:00Z")),
        ("b", "c2", Some("2027-01-01T00:00:00Z")),
        ("k", "c2", None),
    ] {
        let mut r = record(Event::Stored, name, "2025-12-01T00:00:00Z");
        r.media = Some(audio(100));
        r.crm.customer_id = Some(customer.into());
        r.crm.chat_id = Some(format!("chat-{customer}"));
        r.crm.message_id = Some(format!("m-{name}"));
        r.retention_until = until.map(str::to_string);
        if name == "k" {
            r.content_hash = Some(format!("blake3:{}", "cd".repeat(32)));
        }
        let stored = StoredMedia::from_record(&r).unwrap();
        c.commit(&Commit {
            job_id: name,
            message_key: name,
            record: &r,
            new_media: Some(("voice-v1", "audio", &stored)),
            verdict: &JobVerdict::Done,
            sinks: &["ndjson"],
        })
        .await
        .unwrap();
        committed.push(r);
    }
    let mut rejected = record(Event::Rejected, "r", "2025-12-01T00:00:00Z");
    rejected.crm.customer_id = Some("c1".into());
    rejected.retention_until = Some("2026-01-01T00:00:00Z".into());
    let verdict = JobVerdict::Failed(Failure::new(ErrorCode::TIMEOUT, "slow"));
    commit(c, "r", "r", &rejected, &verdict, &["ndjson"]).await;
    let [a, b, _k] = &committed[..] else {
        unreachable!()
    };
    let ids = |rows: &[super::MessageRow]| rows.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>();
    let mut due = vec![a.record_id.clone(), rejected.record_id.clone()];
    due.sort();

    // Expired at a time, in pages by record id.
    let expired = c.expired("2026-06-01T00:00:00Z", "", 10).await.unwrap();
    assert_eq!(ids(&expired), due);
    let first = c.expired("2026-06-01T00:00:00Z", "", 1).await.unwrap();
    let rest = c
        .expired("2026-06-01T00:00:00Z", &first[0].record_id, 10)
        .await
        .unwrap();
    assert_eq!([ids(&first), ids(&rest)].concat(), due, "pages");
    assert!(c
        .expired("2025-12-31T23:59:59Z", "", 10)
        .await
        .unwrap()
        .is_empty());
    let row_a = expired.iter().find(|r| r.record_id == a.record_id).unwrap();
    assert_eq!(row_a.crm.message_id.as_deref(), Some("m-a"), "the record's crm");
    assert_eq!(row_a.crm.customer_id.as_deref(), Some("c1"));
    assert_eq!(row_a.retention_until.as_deref(), Some("2026-01-01T00:00:00Z"));

    // A customer's and a chat's messages.
    assert_eq!(
        ids(&c.messages_of(&Subject::Customer("c1".into())).await.unwrap()),
        due
    );
    let chat = c.messages_of(&Subject::Chat("chat-c2".into())).await.unwrap();
    assert_eq!(chat.len(), 2);
    assert!(c
        .messages_of(&Subject::Customer("nobody".into()))
        .await
        .unwrap()
        .is_empty());

    // Bytes b still needs stay; once b goes too, its rendition is unneeded. The rejected
    // message's bytes were never stored.
    let a_and_r = vec![a.record_id.clone(), rejected.record_id.clone()];
    assert!(c.unneeded_media(&a_and_r).await.unwrap().is_empty());
    let both = vec![a.record_id.clone(), b.record_id.clone()];
    let unneeded = c.unneeded_media(&both).await.unwrap();
    assert_eq!(unneeded.len(), 1);
    assert_eq!(unneeded[0].content_hash, shared);
    assert_eq!(unneeded[0].keys(), vec!["x.mp3".to_string()]);

    // Erasing a (and the rejection): its rows go, the shared rendition stays, one notice each.
    let notice = |of: &Record| {
        let mut n = record(
            Event::Deleted,
            &format!("deleted-{}", of.record_id),
            "2026-06-01T00:00:00Z",
        );
        n.deleted = Some(crate::records::Deletion {
            record_id: of.record_id.clone(),
            reason: crate::records::DeletionReason::Retention,
            keys: Vec::new(),
        });
        (n, vec!["ndjson".to_string()])
    };
    let erasure = Erasure {
        record_ids: a_and_r.clone(),
        media: vec![(shared.clone(), "voice-v1".into())],
        notices: vec![notice(a), notice(&rejected)],
    };
    let erased = c.erase(&erasure).await.unwrap();
    assert_eq!(
        erased,
        Erased {
            messages: 2,
            outbox_rows: 2,
            media_rows: 0
        }
    );
    assert!(c.record(&a.record_id).await.unwrap().is_none());
    assert_eq!(c.finished_job("a").await.unwrap(), None, "its job row went");
    assert_eq!(
        c.media_for(&shared).await.unwrap().len(),
        1,
        "b still refers to the bytes"
    );
    let waiting = c.list_deliveries(Some("ndjson"), false, 10).await.unwrap();
    let waiting: Vec<&str> = waiting.iter().map(|d| d.record_id.as_str()).collect();
    assert_eq!(waiting.len(), 4, "b, k and the two notices: {waiting:?}");
    assert!(!waiting.contains(&a.record_id.as_str()));
    // Again: nothing left to remove, nothing announced twice.
    assert_eq!(c.erase(&erasure).await.unwrap(), Erased::default());
    assert_eq!(c.sink_backlog("ndjson").await.unwrap().waiting, 4);

    // b goes with its rendition.
    let erased = c
        .erase(&Erasure {
            record_ids: vec![b.record_id.clone()],
            media: vec![(shared.clone(), "voice-v1".into())],
            notices: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!((erased.messages, erased.media_rows), (1, 1));
    assert!(c.media_for(&shared).await.unwrap().is_empty());
}
