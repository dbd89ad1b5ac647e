//! The PostgreSQL catalog (`postgres://…`): one database shared by daemons on many machines.
//!
//! Connection settings come from the URL, and what it leaves out from the standard libpq
//! environment: `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`. TLS (`sslmode=prefer`, the default, or
//! `require`) goes through rustls, verified against the platform's roots or `PGSSLROOTCERT`.
//! Connections are pooled (deadpool); statements are prepared once per connection. The schema
//! is migrated at open inside one transaction holding an advisory lock, so daemons starting
//! together take turns. Every call is one transaction or one statement; a connection that
//! fails (the server restarting, unreachable) is an [`CatalogError::Unavailable`] error, which
//! passes: the job waits and is tried again.

mod deliveries;
mod erasure;
mod schema;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{
    Catalog, CatalogError, ClaimedDelivery, Commit, DeliveryRow, Erased, Erasure, Found, JobVerdict,
    MessageRow, QueryFilter, Rendition, Settlement, SinkBacklog, Subject, UnneededMedia,
};
use crate::records::{Record, MAX_RECORD_BYTES};

/// Connections per daemon: one per job slot and sink task is plenty; several daemons share the
/// server's `max_connections` (100 by default).
const POOL_SIZE: usize = 10;
/// How long a call waits for a connection (from the pool, or a new one) before it fails as
/// unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

pub struct PgCatalog {
    pool: Pool,
    /// The URL without its password, for logs.
    shown: String,
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl PgCatalog {
    /// Connects and migrates, waiting up to `patience` for a server that cannot be reached yet
    /// (it is starting, or restarting).
    pub async fn open(url: &str, patience: Duration) -> Result<PgCatalog, CatalogError> {
        let config = connection_config(url)?;
        let tls = tls_connector()?;
        let manager = Manager::from_config(
            config.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| CatalogError::Postgres(format!("connection pool: {e}")))?;
        let catalog = PgCatalog {
            pool,
            shown: shown_url(&config),
        };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match schema::migrate(&catalog).await {
                Ok(()) => return Ok(catalog),
                Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(catalog = %catalog.shown, error = %e, "catalog not reachable yet; waiting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(with_place(e, &catalog.shown)),
            }
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, CatalogError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, CatalogError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(classify)?;
        client.query(&statement, params).await.map_err(classify)
    }

    async fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, CatalogError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(classify)?;
        client.query_opt(&statement, params).await.map_err(classify)
    }

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, CatalogError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(classify)?;
        client.execute(&statement, params).await.map_err(classify)
    }

    async fn record_where(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Record>, CatalogError> {
        let row = self.query_opt(sql, params).await?;
        Ok(row
            .map(|r| serde_json::from_str(&r.get::<_, String>(0)))
            .transpose()?)
    }
}

/// The URL's settings, completed from the `PG*` environment as libpq would.
fn connection_config(url: &str) -> Result<tokio_postgres::Config, CatalogError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| CatalogError::Postgres(format!("catalog.url is not a PostgreSQL URL: {e}")))?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        for host in env("PGHOST").as_deref().unwrap_or("localhost").split(',') {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            let port = port
                .parse()
                .map_err(|_| CatalogError::Postgres(format!("PGPORT={port:?} is not a port")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER").or_else(|| env("USER")) {
            config.user(user);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(db);
        }
    }
    if !url.contains("sslmode=") {
        match env("PGSSLMODE").as_deref() {
            None | Some("prefer") | Some("allow") => {}
            Some("disable") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            Some("require") | Some("verify-ca") | Some("verify-full") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
            Some(other) => {
                return Err(CatalogError::Postgres(format!(
                    "PGSSLMODE={other:?} is not an sslmode"
                )))
            }
        }
    }
    if config.get_application_name().is_none() {
        config.application_name(env("PGAPPNAME").as_deref().unwrap_or("mediaspool"));
    }
    if config.get_connect_timeout().is_none() {
        let seconds = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        config.connect_timeout(Duration::from_secs(seconds));
    }
    Ok(config)
}

/// rustls with the platform's roots, or the roots in `PGSSLROOTCERT` when set.
fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, CatalogError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let tls_error = |e: String| CatalogError::Postgres(format!("TLS: {e}"));
    let config = match std::env::var("PGSSLROOTCERT").ok().filter(|p| !p.is_empty()) {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&path)
                .map_err(|e| tls_error(format!("PGSSLROOTCERT {path}: {e}")))?
            {
                let cert = cert.map_err(|e| tls_error(format!("PGSSLROOTCERT {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("PGSSLROOTCERT {path}: {e}")))?;
            }
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            rustls::ClientConfig::with_platform_verifier().map_err(|e| tls_error(e.to_string()))?
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The password `url` carries (in its user part or as `?password=`), as written and as the
/// server gets it (percent-decoded), so that no log line shows it; none for a URL without one
/// or one that is not `postgres://`.
pub fn url_passwords(url: &str) -> Vec<String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Vec::new();
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or_default();
    let in_user_part = authority
        .rsplit_once('@')
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password);
    let in_query = query.split('&').find_map(|pair| pair.strip_prefix("password="));
    let decoded = url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| c.get_password().map(|p| String::from_utf8_lossy(p).into_owned()));
    let mut passwords: Vec<String> = in_user_part
        .into_iter()
        .chain(in_query)
        .map(str::to_string)
        .collect();
    passwords.extend(decoded);
    passwords.retain(|p| !p.is_empty());
    passwords.dedup();
    passwords
}

/// `postgres://user@host:port/db`, never the password.
fn shown_url(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

fn with_place(e: CatalogError, shown: &str) -> CatalogError {
    match e {
        CatalogError::Unavailable(m) => CatalogError::Unavailable(format!("{shown}: {m}")),
        CatalogError::Postgres(m) => CatalogError::Postgres(format!("{shown}: {m}")),
        other => other,
    }
}

/// SQLSTATE classes and codes that pass: connection exceptions (08), the server shutting down
/// or starting (57P01–57P03), too many connections (53300), serialization failures and
/// deadlocks (40001, 40P01).
fn transient_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
}

/// A driver error as a catalog error: the connection failing or the server going away is
/// [`CatalogError::Unavailable`]; anything else is a statement the database refused.
fn classify(e: tokio_postgres::Error) -> CatalogError {
    if let Some(db) = e.as_db_error() {
        let message = format!("{} ({})", db.message(), db.code().code());
        return match transient_state(db.code().code()) {
            true => CatalogError::Unavailable(message),
            false => CatalogError::Postgres(message),
        };
    }
    let mut source = std::error::Error::source(&e);
    let mut io = false;
    while let Some(s) = source {
        io |= s.is::<std::io::Error>();
        source = s.source();
    }
    if e.is_closed() || io || e.to_string().contains("connect") {
        CatalogError::Unavailable(e.to_string())
    } else {
        CatalogError::Postgres(e.to_string())
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> CatalogError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => classify(e),
        PoolError::Timeout(_) => CatalogError::Unavailable("no connection within 10 s".into()),
        other => CatalogError::Unavailable(other.to_string()),
    }
}

/// A record in the outbox, waiting for each of `sinks` (nothing when there are none): the
/// outbox row and one delivery per sink, in one statement.
async fn enqueue(
    tx: &deadpool_postgres::Transaction<'_>,
    record: &Record,
    body: &str,
    sinks: &[&str],
) -> Result<(), CatalogError> {
    if sinks.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "WITH o AS (INSERT INTO outbox (record_id, body, created_at, chat_id)
                        VALUES ($1, $2, $3, $4) RETURNING seq)
             INSERT INTO deliveries (seq, sink, queued_ms)
             SELECT o.seq, s.sink, $6 FROM o, unnest($5::text[]) AS s (sink)",
        )
        .await
        .map_err(classify)?;
    tx.execute(
        &statement,
        &[
            &record.record_id,
            &body,
            &record.processed_at,
            &record.crm.chat_id,
            &sinks,
            &super::now_ms(),
        ],
    )
    .await
    .map_err(classify)?;
    Ok(())
}

#[async_trait::async_trait]
impl Catalog for PgCatalog {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    /// A statement on the server over a pooled connection: the server is up and the schema is
    /// there.
    async fn ping(&self) -> Result<(), CatalogError> {
        self.query("SELECT version FROM mediaspool_schema", &[]).await?;
        Ok(())
    }

    async fn finished_job(&self, job_id: &str) -> Result<Option<JobVerdict>, CatalogError> {
        let row = self
            .query_opt(
                "SELECT verdict FROM jobs WHERE job_id = $1 AND verdict IS NOT NULL",
                &[&job_id],
            )
            .await?;
        Ok(row
            .map(|r| serde_json::from_str(&r.get::<_, String>(0)))
            .transpose()?)
    }

    async fn count_attempt(&self, job_id: &str, file_name: &str) -> Result<u32, CatalogError> {
        let row = self
            .query(
                "INSERT INTO jobs (job_id, file_name, attempts) VALUES ($1, $2, 1)
                 ON CONFLICT (job_id) DO UPDATE SET attempts = jobs.attempts + 1
                 RETURNING attempts",
                &[&job_id, &file_name],
            )
            .await?;
        Ok(row.first().map_or(0, |r| r.get::<_, i32>(0)) as u32)
    }

    async fn media_for(&self, content_hash: &str) -> Result<Vec<Rendition>, CatalogError> {
        let rows = self
            .query(
                "SELECT profile_id, kind, info FROM media WHERE content_hash = $1",
                &[&content_hash],
            )
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.get(0), r.get(1), serde_json::from_str(r.get(2))?)))
            .collect()
    }

    async fn record_of_message(
        &self,
        message_key: &str,
        content_hash: &str,
    ) -> Result<Option<Record>, CatalogError> {
        self.record_where(
            &format!(
                "SELECT record FROM messages WHERE message_key = $1 AND content_hash = $2
                 AND event != 'media.rejected' AND octet_length(record) <= {MAX_RECORD_BYTES}
                 ORDER BY processed_at LIMIT 1"
            ),
            &[&message_key, &content_hash],
        )
        .await
    }

    async fn record(&self, record_id: &str) -> Result<Option<Record>, CatalogError> {
        self.record_where(
            &format!("SELECT record FROM messages WHERE record_id = $1 AND octet_length(record) <= {MAX_RECORD_BYTES}"),
            &[&record_id],
        )
        .await
    }

    async fn recent(&self, limit: usize, rejected: bool) -> Result<Vec<Record>, CatalogError> {
        let only = if rejected {
            "AND event = 'media.rejected'"
        } else {
            ""
        };
        let rows = self
            .query(
                &format!(
                    "SELECT record FROM messages WHERE octet_length(record) <= {MAX_RECORD_BYTES} {only}
                     ORDER BY processed_at DESC, record_id DESC LIMIT $1"
                ),
                &[&(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.get::<_, &str>(0))?))
            .collect()
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<(), CatalogError> {
        let record = commit.record;
        let body = record.to_json()?;
        let tags = serde_json::to_string(&record.crm.tags)?;
        let verdict = serde_json::to_string(commit.verdict)?;
        let kind = record.media.as_ref().map(|m| m.kind.as_str());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        if let Some((profile_id, media_kind, media)) = commit.new_media {
            let info = serde_json::to_string(media)?;
            let statement = tx
                .prepare_cached(
                    "INSERT INTO media (content_hash, profile_id, kind, info, first_record_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(classify)?;
            tx.execute(
                &statement,
                &[
                    &record.content_hash,
                    &profile_id,
                    &media_kind,
                    &info,
                    &media.first_record_id,
                    &record.processed_at,
                ],
            )
            .await
            .map_err(classify)?;
        }
        let statement = tx
            .prepare_cached(
                "INSERT INTO messages (record_id, message_key, content_hash, event, kind, customer_id, chat_id,
                     tags, received_at, processed_at, retention_until, record)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, CAST($8::text AS jsonb), $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(classify)?;
        tx.execute(
            &statement,
            &[
                &record.record_id,
                &commit.message_key,
                &record.content_hash,
                &record.event.as_str(),
                &kind,
                &record.crm.customer_id,
                &record.crm.chat_id,
                &tags,
                &record.received_at,
                &record.processed_at,
                &record.retention_until,
                &body,
            ],
        )
        .await
        .map_err(classify)?;
        enqueue(&tx, record, &body, commit.sinks).await?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO jobs (job_id, file_name, attempts, verdict, record_id) VALUES ($1, $2, 0, $3, $4)
                 ON CONFLICT (job_id) DO UPDATE SET verdict = EXCLUDED.verdict, record_id = EXCLUDED.record_id",
            )
            .await
            .map_err(classify)?;
        tx.execute(
            &statement,
            &[
                &commit.job_id,
                &record.source.file_name,
                &verdict,
                &record.record_id,
            ],
        )
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn query(&self, filter: &QueryFilter) -> Result<Found, CatalogError> {
        let mut sql = format!(
            "SELECT record_id, CASE WHEN octet_length(record) <= {MAX_RECORD_BYTES} THEN record END
             FROM messages WHERE true"
        );
        let mut args: Vec<String> = Vec::new();
        let mut add = |clause: &str, value: &Option<String>| {
            if let Some(v) = value {
                args.push(v.clone());
                sql.push_str(&clause.replace("{}", &format!("${}", args.len())));
            }
        };
        add(" AND customer_id = {}", &filter.customer);
        add(" AND chat_id = {}", &filter.chat);
        add(" AND kind = {}", &filter.kind);
        add(" AND tags ? {}", &filter.tag);
        add(" AND COALESCE(received_at, processed_at) >= {}", &filter.since);
        add(" AND COALESCE(received_at, processed_at) <= {}", &filter.until);
        sql.push_str(" ORDER BY COALESCE(received_at, processed_at), record_id");
        let params: Vec<Param<'_>> = args.iter().map(|a| a as Param<'_>).collect();
        let rows = self.query(&sql, &params).await?;
        let mut found = Found::default();
        for row in &rows {
            match row.get::<_, Option<&str>>(1) {
                Some(body) => found.records.push(serde_json::from_str(body)?),
                None => found.withheld.push(row.get(0)),
            }
        }
        Ok(found)
    }

    async fn prune_delivered(&self, before: &str) -> Result<usize, CatalogError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        tx.execute(
            "DELETE FROM deliveries WHERE seq IN (SELECT o.seq FROM outbox o WHERE o.created_at < $1
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = o.seq AND d.delivered_at IS NULL))",
            &[&before],
        )
        .await
        .map_err(classify)?;
        let pruned = tx
            .execute(
                "DELETE FROM outbox WHERE created_at < $1 AND NOT EXISTS
                 (SELECT 1 FROM deliveries d WHERE d.seq = outbox.seq)",
                &[&before],
            )
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(pruned as usize)
    }

    async fn take_lease(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, CatalogError> {
        let row = self
            .query_opt(
                "INSERT INTO leases (key, owner, until_ms) VALUES ($1, $2, $4)
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until_ms = EXCLUDED.until_ms
                 WHERE leases.until_ms <= $3 OR leases.owner = EXCLUDED.owner
                 RETURNING owner",
                &[&key, &owner, &now_ms, &until_ms],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), CatalogError> {
        self.execute(
            "DELETE FROM leases WHERE key = $1 AND owner = $2",
            &[&key, &owner],
        )
        .await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, CatalogError> {
        self.claim(sink, owner, now, limit, lease_ms).await
    }

    async fn renew_claims(&self, sink: &str, owner: &str, until_ms: i64) -> Result<(), CatalogError> {
        self.execute(
            "UPDATE deliveries SET claimed_until_ms = $3
             WHERE sink = $1 AND claimed_by = $2 AND delivered_at IS NULL AND dead_ms IS NULL",
            &[&sink, &owner, &until_ms],
        )
        .await?;
        Ok(())
    }

    async fn settle_deliveries(&self, sink: &str, settled: &[Settlement]) -> Result<(), CatalogError> {
        self.settle(sink, settled).await
    }

    async fn dead_letter_expired(
        &self,
        sink: &str,
        queued_before_ms: i64,
        error: &str,
    ) -> Result<usize, CatalogError> {
        let n = self
            .execute(
                "UPDATE deliveries AS d SET dead_ms = $1, last_error = COALESCE(last_error, $2)
                 WHERE d.sink = $3 AND d.delivered_at IS NULL AND d.dead_ms IS NULL
                   AND d.queued_ms < $4 AND d.claimed_until_ms <= $1",
                &[&super::now_ms(), &error, &sink, &queued_before_ms],
            )
            .await?;
        Ok(n as usize)
    }

    async fn dead_letter_oversized(&self, sink: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        self.dead_letter_too_large(sink).await
    }

    async fn next_delivery_due(&self, sink: &str) -> Result<Option<i64>, CatalogError> {
        self.next_due(sink).await
    }

    async fn list_deliveries(
        &self,
        sink: Option<&str>,
        dead: bool,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, CatalogError> {
        self.list(sink, dead, limit).await
    }

    async fn sink_backlog(&self, sink: &str) -> Result<SinkBacklog, CatalogError> {
        self.backlog(sink).await
    }

    async fn disable_sink(&self, sink: &str, reason: &str) -> Result<(), CatalogError> {
        self.execute(
            "INSERT INTO sinks (name, disabled_ms, disabled_reason) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET disabled_ms = EXCLUDED.disabled_ms,
                 disabled_reason = EXCLUDED.disabled_reason",
            &[&sink, &super::now_ms(), &reason],
        )
        .await?;
        Ok(())
    }

    async fn sink_disabled(&self, sink: &str) -> Result<bool, CatalogError> {
        Ok(self
            .query_opt(
                "SELECT 1 FROM sinks WHERE name = $1 AND disabled_ms IS NOT NULL",
                &[&sink],
            )
            .await?
            .is_some())
    }

    async fn redrive(&self, sink: Option<&str>, record_id: Option<&str>) -> Result<usize, CatalogError> {
        self.redrive_dead(sink, record_id).await
    }

    async fn expired(&self, now: &str, after: &str, limit: usize) -> Result<Vec<MessageRow>, CatalogError> {
        erasure::expired(self, now, after, limit).await
    }

    async fn messages_of(&self, subject: &Subject) -> Result<Vec<MessageRow>, CatalogError> {
        erasure::messages_of(self, subject).await
    }

    async fn unneeded_media(&self, record_ids: &[String]) -> Result<Vec<UnneededMedia>, CatalogError> {
        erasure::unneeded_media(self, record_ids).await
    }

    async fn erase(&self, erasure: &Erasure) -> Result<Erased, CatalogError> {
        erasure::erase(self, erasure).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_found_as_written_and_decoded() {
        assert_eq!(
            url_passwords("postgres://media:s3cret%40pw@db.example:5432/media"),
            ["s3cret%40pw", "s3cret@pw"]
        );
        assert_eq!(
            url_passwords("postgresql://media@db.example/media?password=plain-secret&sslmode=require"),
            ["plain-secret"]
        );
        assert!(url_passwords("postgres://media@db.example/media").is_empty());
        assert!(url_passwords("sqlite://mediaspool.db").is_empty());
    }

    #[test]
    fn a_shown_url_has_no_password() {
        let config = connection_config("postgres://media:s3cret-pw@db.example:5433/media").unwrap();
        assert_eq!(shown_url(&config), "postgres://media@db.example:5433/media");
    }
}
