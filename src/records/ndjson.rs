//! The NDJSON file sink: one record per line, appended and flushed to disk.
//!
//! Each record is written with a single `write` of the whole line on a file opened for append,
//! so concurrent writers never interleave within a line, and synced before `append` returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct NdjsonSink {
    path: PathBuf,
    file: Mutex<File>,
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
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one JSON line (given without its newline) and syncs it to disk.
    pub fn append_line(&self, json: &str) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        file.sync_data()
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
        sink.append_line("{\"c\":3}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
        std::fs::write(&path, "{\"x\":").unwrap();
        NdjsonSink::open(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
