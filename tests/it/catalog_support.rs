//! The catalog a test daemon keeps: the SQLite file in its directory (the default), or, with
//! `MEDIASPOOL_TEST_CATALOG=postgres`, a fresh database of its own on the test PostgreSQL
//! server (`scripts/test.sh` runs the daemon tests a second time so). Tests reach into it
//! through [`TestCatalog`] alone, so that they read the same on both backends.

use std::path::{Path, PathBuf};

use crate::pg_support::{fresh_database, run_sql, with_database};

/// The variable that picks the catalog of the daemons the tests start.
pub const CATALOG_VAR: &str = "MEDIASPOOL_TEST_CATALOG";

#[derive(Debug, Clone)]
pub enum TestCatalog {
    Sqlite(PathBuf),
    /// A database's URL.
    Postgres(String),
}

impl TestCatalog {
    /// The catalog of a daemon in `dir` with configuration `config`: the one `catalog.url` names
    /// if the test set it, else the one [`CATALOG_VAR`] asks for. (A configuration that is not
    /// TOML, left for the daemon to refuse, names none.)
    pub fn for_daemon(dir: &Path, config: &str) -> TestCatalog {
        let table: Option<toml::Table> = toml::from_str(config).ok();
        let named = table
            .as_ref()
            .and_then(|t| t.get("catalog"))
            .and_then(|c| c.get("url"))
            .and_then(|u| u.as_str());
        match named {
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => TestCatalog::Sqlite(dir.join(path)),
                None => TestCatalog::Postgres(url.to_string()),
            },
            None => match std::env::var(CATALOG_VAR).as_deref() {
                Ok("postgres") => TestCatalog::Postgres(fresh_database()),
                Ok("sqlite") | Ok("") | Err(_) => TestCatalog::Sqlite(dir.join("mediaspool.db")),
                Ok(other) => panic!("{CATALOG_VAR}={other:?}: use sqlite or postgres"),
            },
        }
    }

    /// `catalog.url` for the daemon, when it is not the configuration's default.
    pub fn url(&self) -> Option<String> {
        match self {
            TestCatalog::Sqlite(_) => None,
            TestCatalog::Postgres(url) => Some(url.clone()),
        }
    }

    /// The catalog as the daemon's log and `check` name it.
    pub fn shown(&self) -> String {
        match self {
            TestCatalog::Sqlite(path) => {
                format!("sqlite://{}", path.file_name().unwrap().to_string_lossy())
            }
            TestCatalog::Postgres(url) => url.split('?').next().unwrap().to_string(),
        }
    }

    /// Runs `sql` (statements separated by `;`, SQL both backends read) on the catalog.
    pub fn execute(&self, sql: &str) {
        match self {
            TestCatalog::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).unwrap();
                db.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            TestCatalog::Postgres(url) => run_sql(url, sql),
        }
    }

    /// Makes the catalog unreachable: the SQLite file moved away, or the database closed to
    /// connections and its open ones cut.
    pub fn cut_off(&self) {
        match self {
            TestCatalog::Sqlite(path) => std::fs::rename(path, away(path)).unwrap(),
            TestCatalog::Postgres(url) => {
                let db = database_of(url);
                run_sql(
                    &with_database(url, "postgres"),
                    &format!(
                        "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
                         SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
                         WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                    ),
                );
            }
        }
    }

    /// Undoes [`TestCatalog::cut_off`].
    pub fn restore(&self) {
        match self {
            TestCatalog::Sqlite(path) => std::fs::rename(away(path), path).unwrap(),
            TestCatalog::Postgres(url) => {
                run_sql(
                    &with_database(url, "postgres"),
                    &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", database_of(url)),
                );
            }
        }
    }
}

fn away(path: &Path) -> PathBuf {
    path.with_extension("db.away")
}

fn database_of(url: &str) -> &str {
    let base = url.split('?').next().unwrap();
    &base[base.rfind('/').unwrap() + 1..]
}

/// `text` as an SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
