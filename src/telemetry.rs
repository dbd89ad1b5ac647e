//! What the daemon tells a person at the default log level (info for mediaspool's own
//! targets): one start line (what it runs with), one line per finished job, one stop line
//! with the counts of the run. In: the configuration, records as jobs finish. Out: `tracing`
//! events, nothing else. Lines never carry secrets or the people behind a message: a catalog
//! URL's password is hidden, sinks are named but not addressed, and no record's `crm` fields
//! (customer and chat ids, phone numbers) are read. File names are shown. Never blocks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytesize::ByteSize;

use crate::config::Config;
use crate::profile::ProfileSet;
use crate::records::{Event, Record, Tally};

/// The start line: version, spool, store, catalog, sinks, job slots, and every profile with
/// its id (outputs are keyed by it).
pub fn started(config: &Config, profiles: &ProfileSet, store: &str, sinks: &[&str]) {
    let profiles: Vec<String> = profiles.iter().map(|p| format!("{} {}", p.name, p.id)).collect();
    tracing::info!(
        "mediaspool {} watching {}: store {store}, catalog {}, sinks {}, {} jobs at a time, profiles {}",
        env!("CARGO_PKG_VERSION"),
        config.spool.dir.join("incoming").display(),
        without_password(&config.catalog.url),
        sinks.join(", "),
        config.spool.effective_jobs(),
        profiles.join(", "),
    );
}

/// The counts of a daemon's run, for its stop line, and the per-job line as each job ends.
pub struct RunLog {
    started: Instant,
    tally: Mutex<Tally>,
}

impl Default for RunLog {
    fn default() -> RunLog {
        RunLog {
            started: Instant::now(),
            tally: Mutex::default(),
        }
    }
}

impl RunLog {
    /// A job ended with `record` after `took`: counted, and one line (a warning when the file
    /// was rejected: it is in `failed/` or was refused, for an operator to look at).
    pub fn finished(&self, record: &Record, took: Duration) {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).add(record);
        let (file, ms) = (&record.source.file_name, took.as_millis());
        match (&record.error, &record.media) {
            (Some(error), _) => tracing::warn!(
                "{file}: {} {} ({}) in {ms} ms",
                record.event.as_str(),
                error.code,
                error.message
            ),
            (None, Some(media)) => {
                let duration = media
                    .duration_ms
                    .map(|d| format!(" {:.1} s,", d as f64 / 1000.0))
                    .unwrap_or_default();
                let out = match record.event {
                    // Nothing new was written: the existing rendition's size.
                    Event::Duplicate => format!("{} already stored", ByteSize(media.bytes)),
                    _ => ByteSize(media.bytes).to_string(),
                };
                tracing::info!(
                    "{file}: {} {} {}{duration} {} → {out} in {ms} ms",
                    record.event.as_str(),
                    media.kind,
                    media.profile.as_deref().unwrap_or("as is"),
                    ByteSize(record.source.bytes),
                )
            }
            (None, None) => tracing::info!("{file}: {} in {ms} ms", record.event.as_str()),
        }
    }

    /// A job ended without a record (the catalog could not take one); its own error line says
    /// why.
    pub fn unrecorded(&self) {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).unrecorded += 1;
    }

    /// The stop line.
    pub fn stopped(&self) {
        let tally = self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let up = Duration::from_secs(self.started.elapsed().as_secs());
        tracing::info!(
            "stopped after {}: {} jobs, {tally}",
            humantime::format_duration(up),
            tally.jobs()
        );
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***`;
/// a URL without a password as it is.
pub fn without_password(url: &str) -> String {
    let mut shown = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            if let Some((user, _)) = authority[..at].split_once(':') {
                shown = format!("{scheme}://{user}:***{}", &rest[at..]);
            }
        }
    }
    let mut from = 0;
    while let Some(found) = shown[from..].find("password=") {
        let start = from + found + "password=".len();
        let end = shown[start..].find(['&', ' ']).map_or(shown.len(), |e| start + e);
        shown.replace_range(start..end, "***");
        from = start + 3;
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_url_keeps_everything_but_its_password() {
        assert_eq!(
            without_password("postgres://crm:s3cret@db.internal:5432/media?sslmode=require"),
            "postgres://crm:***@db.internal:5432/media?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://crm@db/media"),
            "postgres://crm@db/media"
        );
        assert_eq!(
            without_password("postgres://db/media?user=crm&password=s3cret&sslmode=require"),
            "postgres://db/media?user=crm&password=***&sslmode=require"
        );
        assert_eq!(
            without_password("host=db password=s3cret user=crm"),
            "host=db password=*** user=crm"
        );
        assert_eq!(
            without_password("sqlite://mediaspool.db"),
            "sqlite://mediaspool.db"
        );
        assert_eq!(
            without_password("sqlite:///var/lib/a@b.db"),
            "sqlite:///var/lib/a@b.db"
        );
        assert_eq!(without_password("mediaspool.db"), "mediaspool.db");
    }
}
