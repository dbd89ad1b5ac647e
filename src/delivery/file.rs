//! The file sinks: the NDJSON outbox file (`records.outbox`) and stdout (`records.stdout`).
//!
//! In: a batch of records in outbox order. Out: one JSON line per record. The NDJSON file gets
//! the whole batch in a single `write` on a file opened for append (concurrent writers never
//! interleave within a line), synced to disk before the batch counts as delivered. Writing
//! blocks, on a blocking thread. A write that fails (a full disk, a closed stdout) pauses the
//! sink, which tries again later.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::sink::{Delivering, Outcome, Outgoing, Scope, Sink};

pub struct NdjsonSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl NdjsonSink {
    pub fn open(path: &Path) -> std::io::Result<NdjsonSink> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        drop_partial_last_line(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(NdjsonSink {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends JSON lines (given without their newlines) and syncs them to disk.
    pub fn append_lines<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> std::io::Result<()> {
        append(&self.file, &joined(lines))
    }
}

fn joined<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn append(file: &Mutex<File>, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
    file.write_all(bytes)?;
    file.sync_data()
}

/// All delivered, or the first failed (and the rest untried): a batch is written whole or not.
fn batch_outcome(count: usize, written: std::io::Result<()>, what: &str) -> Vec<Outcome> {
    match written {
        Ok(()) => vec![Outcome::Delivered; count],
        Err(e) => vec![Outcome::Failed {
            error: format!("cannot write {what}: {e}"),
            scope: Scope::Sink,
            retry_after: None,
        }],
    }
}

impl Sink for NdjsonSink {
    fn name(&self) -> &str {
        "ndjson"
    }

    fn deliver<'a>(&'a self, records: &'a [Outgoing]) -> Delivering<'a> {
        let bytes = joined(records.iter().map(|r| r.body.as_str()));
        let file = Arc::clone(&self.file);
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || append(&file, &bytes))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            batch_outcome(records.len(), written, &self.path.display().to_string())
        })
    }
}

/// Records on standard output, one JSON line each (`records.stdout = true`).
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn deliver<'a>(&'a self, records: &'a [Outgoing]) -> Delivering<'a> {
        let bytes = joined(records.iter().map(|r| r.body.as_str()));
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes).and_then(|()| out.flush())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            batch_outcome(records.len(), written, "stdout")
        })
    }
}

/// A process killed mid-write leaves a line without its newline. That record was not marked
/// delivered, so it will be written again whole: cut the fragment so the file stays valid NDJSON.
fn drop_partial_last_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut keep = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = keep.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(keep - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if keep == len && chunk.last() == Some(&b'\n') {
            return Ok(());
        }
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        keep = start;
        if start == 0 {
            break;
        }
    }
    tracing::warn!(path = %path.display(), bytes = len - keep, "removing an incomplete last record line");
    file.set_len(keep)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_last_line_is_cut_and_whole_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ndjson");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let sink = NdjsonSink::open(&path).unwrap();
        sink.append_lines(["{\"c\":3}"]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
        std::fs::write(&path, "{\"x\":").unwrap();
        NdjsonSink::open(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
