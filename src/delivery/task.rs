//! One task per sink: it drains that sink's line of the outbox at the sink's own pace.
//!
//! In: the catalog (claims, settlements), a wake-up after each commit, and a stop signal. Out:
//! records delivered in order per chat, failures retried with backoff, dead letters after
//! `give_up_after`, the sink paused while its receiver cannot take anything and disabled when
//! it answers 410 Gone. Nothing here waits on another sink or on the pipeline: a slow or dead
//! sink only grows its own backlog.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::sink::{Outcome, Outgoing, Scope, Sink};
use crate::catalog::{now_ms, Catalog, ClaimedDelivery, Settlement};

/// Records claimed at a time.
const BATCH: usize = 256;
/// A claim lasts this long unless renewed; a process killed mid-delivery leaves claims that
/// lapse after it, and the records go out again (same record id).
const LEASE: Duration = Duration::from_secs(15);
/// Claims are renewed this often while a batch is out.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// An idle task looks again this often even without a commit (another process's commits,
/// lapsed claims, a redrive).
const IDLE_LOOK: Duration = Duration::from_secs(2);

pub struct SinkTask {
    sink: Arc<dyn Sink>,
    catalog: Arc<dyn Catalog>,
    /// Names this process's claims, so a renewal touches only its own.
    owner: String,
    /// Changes after each commit, so new records go out at once.
    wakeup: watch::Receiver<()>,
    /// Sink-wide failures in a row: the pause grows with them.
    failures: u32,
    /// While set, the receiver could take nothing: one record at a time is tried, not before
    /// this instant.
    paused_until: Option<Instant>,
    /// The receiver answered 410 Gone: nothing is sent until a redrive re-enables the sink.
    disabled: bool,
}

/// What one step of the task came to.
enum Step {
    /// Something was claimed and settled; `clean` if nothing failed.
    Worked { clean: bool },
    /// Nothing to do before this instant (or a wake-up).
    Idle(Instant),
}

impl SinkTask {
    pub fn new(
        sink: Arc<dyn Sink>,
        catalog: Arc<dyn Catalog>,
        owner: String,
        wakeup: watch::Receiver<()>,
    ) -> SinkTask {
        SinkTask {
            sink,
            catalog,
            owner,
            wakeup,
            failures: 0,
            paused_until: None,
            disabled: false,
        }
    }

    /// Delivers until `stop` turns true, then makes one last pass over what is due (within
    /// the sink's timeout, and only while nothing fails).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        self.set_aside_oversized().await;
        loop {
            if *stop.borrow() {
                break;
            }
            let until = match self.step().await {
                Step::Worked { .. } => continue,
                Step::Idle(until) => until,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                changed = self.wakeup.changed() => if changed.is_err() { tokio::time::sleep_until(until).await },
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        self.last_pass(self.sink.timeout()).await;
    }

    /// Dead-letters records over the size limit (only an earlier version could commit one),
    /// naming each, so none can wedge the sink.
    pub async fn set_aside_oversized(&self) {
        match self.catalog.dead_letter_oversized(self.sink.name()).await {
            Ok(oversized) => {
                for (record_id, bytes) in oversized {
                    tracing::warn!(
                        sink = self.sink.name(),
                        record = %record_id,
                        bytes,
                        limit = crate::records::MAX_RECORD_BYTES,
                        "record over the size limit, written by an earlier version: dead-lettered, never sent"
                    );
                }
            }
            Err(e) => tracing::warn!(sink = self.sink.name(), "cannot look for oversized records: {e}"),
        }
    }

    /// Delivers what is due until nothing is, something fails, or `within` has passed.
    pub async fn last_pass(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.step()).await {
                Ok(Step::Worked { clean: true }) => {}
                _ => break,
            }
        }
    }

    async fn step(&mut self) -> Step {
        let now = Instant::now();
        if self.disabled {
            match self.catalog.sink_disabled(self.sink.name()).await {
                Ok(false) => {
                    tracing::info!(
                        sink = self.sink.name(),
                        "deliveries to {} enabled again",
                        self.sink.name()
                    );
                    self.disabled = false;
                }
                _ => return Step::Idle(now + IDLE_LOOK),
            }
        }
        if let Some(until) = self.paused_until.filter(|u| *u > now) {
            return Step::Idle(until);
        }
        let limit = if self.paused_until.is_some() { 1 } else { BATCH };
        let lease = LEASE.as_millis() as i64;
        let claimed = self
            .catalog
            .claim_deliveries(self.sink.name(), &self.owner, now_ms(), limit, lease)
            .await;
        let batch = match claimed {
            Ok(batch) if !batch.is_empty() => batch,
            Ok(_) => return Step::Idle(self.next_look().await),
            Err(e) => {
                tracing::error!(sink = self.sink.name(), error = %e, "cannot claim deliveries; will retry");
                return Step::Idle(now + IDLE_LOOK);
            }
        };
        let started = Instant::now();
        let settlements = self.deliver(batch).await;
        let delivered = settlements
            .iter()
            .filter(|s| matches!(s, Settlement::Delivered { .. }))
            .count() as u64;
        let failed = settlements
            .iter()
            .filter(|s| matches!(s, Settlement::Failed { .. }))
            .count() as u64;
        crate::metrics::delivered(self.sink.name(), delivered, failed, started.elapsed());
        let clean = delivered == settlements.len() as u64;
        if let Err(e) = self
            .catalog
            .settle_deliveries(self.sink.name(), &settlements)
            .await
        {
            // The claims lapse and the records go out again: at least once.
            tracing::error!(sink = self.sink.name(), error = %e, "cannot record deliveries; they will be sent again");
            return Step::Idle(now + IDLE_LOOK);
        }
        Step::Worked { clean }
    }

    /// When to look again with nothing claimable: the next record's due time, soon anyway.
    async fn next_look(&self) -> Instant {
        let now = Instant::now();
        match self.catalog.next_delivery_due(self.sink.name()).await {
            Ok(Some(due)) => {
                let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
                now + wait.min(IDLE_LOOK)
            }
            _ => now + IDLE_LOOK,
        }
    }

    /// Sends a claimed batch: one chat after another within a chat, chats side by side up to
    /// the sink's concurrency. Returns a settlement for every claimed record.
    async fn deliver(&mut self, batch: Vec<ClaimedDelivery>) -> Vec<Settlement> {
        let claims: HashMap<i64, ClaimedDelivery> = batch.iter().map(|c| (c.seq, c.clone())).collect();
        let groups = chat_groups(&batch, self.sink.concurrency() > 1);
        let slots = Arc::new(Semaphore::new(self.sink.concurrency().max(1)));
        // Set at the first sink-wide failure: chats not yet started are left in line.
        let halted = Arc::new(AtomicBool::new(false));
        let mut running = JoinSet::new();
        for group in groups {
            let (sink, slots, halted) = (Arc::clone(&self.sink), Arc::clone(&slots), Arc::clone(&halted));
            running.spawn(async move {
                let _slot = slots.acquire_owned().await.expect("never closed");
                if halted.load(Ordering::Relaxed) {
                    return (group, Vec::new());
                }
                let outcomes = sink.deliver(&group).await;
                if outcomes.iter().any(|o| {
                    matches!(
                        o,
                        Outcome::Failed {
                            scope: Scope::Sink,
                            ..
                        } | Outcome::Gone { .. }
                    )
                }) {
                    halted.store(true, Ordering::Relaxed);
                }
                (group, outcomes)
            });
        }
        let mut results = Vec::new();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                next = running.join_next() => match next {
                    Some(Ok(result)) => results.push(result),
                    Some(Err(e)) => tracing::error!(sink = self.sink.name(), error = %e, "a delivery panicked; its records go out again"),
                    None => break,
                },
                _ = heartbeat.tick() => {
                    let until = now_ms() + LEASE.as_millis() as i64;
                    if let Err(e) = self.catalog.renew_claims(self.sink.name(), &self.owner, until).await {
                        tracing::warn!(sink = self.sink.name(), error = %e, "cannot renew delivery claims");
                    }
                }
            }
        }
        self.settle(&claims, results).await
    }

    /// Turns outcomes into settlements, and the sink's state (paused, resumed, disabled).
    async fn settle(
        &mut self,
        claims: &HashMap<i64, ClaimedDelivery>,
        results: Vec<(Vec<Outgoing>, Vec<Outcome>)>,
    ) -> Vec<Settlement> {
        let now = now_ms();
        let name = self.sink.name().to_string();
        let give_up = self.sink.give_up_after();
        let expired =
            |c: &ClaimedDelivery| give_up.is_some_and(|g| now >= c.queued_ms + g.as_millis() as i64);
        // A sink-wide failure pauses everything for one delay, the receiver's if it named one.
        let sink_failure = results
            .iter()
            .flat_map(|(_, outcomes)| outcomes)
            .filter_map(|o| match o {
                Outcome::Failed {
                    error,
                    scope: Scope::Sink,
                    retry_after,
                } => Some((error.clone(), *retry_after)),
                _ => None,
            })
            .max_by_key(|(_, after)| *after);
        let pause = sink_failure
            .as_ref()
            .map(|(_, after)| after.unwrap_or_else(|| self.sink.backoff(self.failures + 1)));
        let mut settlements = Vec::new();
        let mut delivered = 0usize;
        let mut gone = None;
        for (group, outcomes) in results {
            for (i, record) in group.iter().enumerate() {
                let claim = &claims[&record.seq];
                let attempt = claim.attempts + 1;
                let failed = |error: &str, delay: Duration, dead: bool| Settlement::Failed {
                    seq: record.seq,
                    error: error.to_string(),
                    next_attempt_ms: now + delay.as_millis() as i64,
                    dead,
                };
                let settlement = match outcomes.get(i) {
                    None => Settlement::Released { seq: record.seq },
                    Some(Outcome::Delivered) => {
                        delivered += 1;
                        Settlement::Delivered { seq: record.seq }
                    }
                    Some(Outcome::Failed {
                        error,
                        scope,
                        retry_after,
                    }) => {
                        let delay = match scope {
                            Scope::Sink => pause.unwrap_or_default(),
                            Scope::Record => retry_after.unwrap_or_else(|| self.sink.backoff(attempt)),
                        };
                        let dead = expired(claim);
                        if dead {
                            tracing::warn!(sink = %name, record_id = %record.record_id, attempts = attempt, error = %error, "delivery given up (dead letter)");
                        } else if *scope == Scope::Record {
                            tracing::warn!(sink = %name, record_id = %record.record_id, attempt, retry_in = ?delay, error = %error, "delivery failed; will retry");
                        }
                        failed(error, delay, dead)
                    }
                    Some(Outcome::Undeliverable { error }) => {
                        tracing::warn!(sink = %name, record_id = %record.record_id, error = %error, "record cannot be delivered (dead letter)");
                        failed(error, Duration::ZERO, true)
                    }
                    Some(Outcome::Gone { error }) => {
                        gone = Some(error.clone());
                        failed(error, Duration::ZERO, false)
                    }
                };
                settlements.push(settlement);
            }
        }
        if let Some(error) = gone {
            tracing::error!(sink = %name, error = %error, "deliveries to {name} disabled: the receiver answered 410 Gone; `mediaspool redrive --sink {name}` enables them again");
            if let Err(e) = self.catalog.disable_sink(&name, &error).await {
                tracing::error!(sink = %name, error = %e, "cannot record that the sink is disabled");
            }
            self.disabled = true;
        }
        match (sink_failure, pause) {
            (Some((error, _)), Some(pause)) => {
                self.failures += 1;
                if self.paused_until.is_none() {
                    tracing::info!(sink = %name, error = %error, retry_in = ?pause, "deliveries to {name} paused");
                }
                self.paused_until = Some(Instant::now() + pause);
                if let Some(give_up) = give_up {
                    let cutoff = now - give_up.as_millis() as i64;
                    let reason = format!("not delivered within give_up_after: {error}");
                    match self.catalog.dead_letter_expired(&name, cutoff, &reason).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::warn!(sink = %name, records = n, "deliveries given up (dead letters)")
                        }
                        Err(e) => {
                            tracing::error!(sink = %name, error = %e, "cannot dead-letter expired deliveries")
                        }
                    }
                }
            }
            _ if delivered > 0 && self.paused_until.is_some() => {
                tracing::info!(sink = %name, "deliveries to {name} resumed");
                self.paused_until = None;
                self.failures = 0;
            }
            _ => {}
        }
        settlements
    }
}

/// The batch cut into chats, each in outbox order; records without a chat stand alone. With
/// `by_chat` false, the whole batch is one group (sinks that write in outbox order anyway).
fn chat_groups(batch: &[ClaimedDelivery], by_chat: bool) -> Vec<Vec<Outgoing>> {
    let outgoing = |c: &ClaimedDelivery| Outgoing {
        seq: c.seq,
        record_id: c.record_id.clone(),
        body: c.body.clone(),
        chat_id: c.chat_id.clone(),
    };
    if !by_chat {
        return vec![batch.iter().map(outgoing).collect()];
    }
    let mut groups: Vec<Vec<Outgoing>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for c in batch {
        match c.chat_id.as_deref() {
            Some(chat) => match index.get(chat) {
                Some(&i) => groups[i].push(outgoing(c)),
                None => {
                    index.insert(chat, groups.len());
                    groups.push(vec![outgoing(c)]);
                }
            },
            None => groups.push(vec![outgoing(c)]),
        }
    }
    groups
}
