//! The NDJSON file sink: one record per line, appended and flushed to disk.
//!
//! Each record is written with a single `write` of the whole line on a file opened for append,
//! so concurrent writers never interleave within a line, and synced before `append` returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Record;

pub struct NdjsonSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl NdjsonSink {
    pub fn open(path: &Path) -> std::io::Result<NdjsonSink> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(NdjsonSink {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        file.sync_data()
    }
}
