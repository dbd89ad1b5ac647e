//! The spool directory: `incoming/ work/ done/ failed/` and the moves between them.
//!
//! In: names of complete files in `incoming/`. Out: [`Claimed`] jobs in `work/` (claimed by an
//! atomic rename, so a second daemon or a crash never doubles or loses one), and the final move
//! of each job to `done/` (or deletion), `failed/` (with `NAME.error.json`), or back to
//! `incoming/`. A manifest `NAME.meta.json` travels with its media. Symlinks, FIFOs, devices and
//! directories are never followed or opened: they are moved to `failed/` as they are. Blocking
//! file-system calls, all cheap (renames and small writes).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use crate::failure::Failure;

pub const MANIFEST_SUFFIX: &str = ".meta.json";
pub const ERROR_SUFFIX: &str = ".error.json";
/// Separates the job id from the original name in `work/`.
const JOB_SEPARATOR: &str = "--";
/// Per-job scratch directories live here, inside `work/` (same filesystem as the store is not
/// required: outputs are copied into the store).
const SCRATCH: &str = ".jobs";

#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
    pub incoming: PathBuf,
    pub work: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
}

/// A job in `work/`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job_id: String,
    /// The name the producer gave the file.
    pub name: String,
    pub path: PathBuf,
}

/// What claiming a name found.
#[derive(Debug)]
pub enum Claim {
    Claimed(Claimed),
    /// Gone already (another daemon took it, or the producer moved it away).
    Gone,
    /// Not a regular file: moved to `failed/` untouched.
    Refused {
        name: String,
        what: &'static str,
        moved_to: PathBuf,
    },
}

#[derive(Serialize)]
struct ErrorFile<'a> {
    code: &'a str,
    message: &'a str,
    stage: &'a str,
    at: String,
}

/// Whether a name in `incoming/` is a media file to take (not hidden, not partial, not a
/// manifest or error file).
pub fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with(".crdownload")
        || name.ends_with(MANIFEST_SUFFIX)
        || name.ends_with(ERROR_SUFFIX))
}

/// A new job id: sortable by time, unique across processes.
pub fn new_job_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}{:05x}{:04x}",
        nanos,
        std::process::id() & 0xfffff,
        n & 0xffff
    )
}

impl Spool {
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        let spool = Spool {
            root: root.to_path_buf(),
            incoming: root.join("incoming"),
            work: root.join("work"),
            done: root.join("done"),
            failed: root.join("failed"),
        };
        for dir in [&spool.incoming, &spool.work, &spool.done, &spool.failed] {
            fs::create_dir_all(dir)?;
        }
        fs::create_dir_all(spool.scratch_root())?;
        Ok(spool)
    }

    pub fn scratch_root(&self) -> PathBuf {
        self.work.join(SCRATCH)
    }

    /// Moves `incoming/NAME` (and its manifest, if there) into `work/`.
    pub fn claim(&self, name: &str) -> std::io::Result<Claim> {
        let from = self.incoming.join(name);
        let meta = match fs::symlink_metadata(&from) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else if kind.is_dir() {
                "a directory"
            } else {
                "a FIFO, socket or device"
            };
            let to = unique_in(&self.failed, name);
            return match fs::rename(&from, &to) {
                Ok(()) => Ok(Claim::Refused {
                    name: name.to_string(),
                    what,
                    moved_to: to,
                }),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Claim::Gone),
                Err(e) => Err(e),
            };
        }
        let job_id = new_job_id();
        let path = self.work.join(format!("{job_id}{JOB_SEPARATOR}{name}"));
        match fs::rename(&from, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        }
        let claimed = Claimed {
            job_id,
            name: name.to_string(),
            path,
        };
        self.take_manifest(&claimed)?;
        Ok(Claim::Claimed(claimed))
    }

    /// The manifest of a claimed job, if it has one in `work/`.
    pub fn manifest_of(&self, job: &Claimed) -> PathBuf {
        with_suffix(&job.path, MANIFEST_SUFFIX)
    }

    /// Moves a manifest that arrived in `incoming/` after its media into `work/`; true if the
    /// job has a manifest now.
    pub fn take_manifest(&self, job: &Claimed) -> std::io::Result<bool> {
        let target = self.manifest_of(job);
        if target.exists() {
            return Ok(true);
        }
        match fs::rename(
            self.incoming.join(format!("{}{MANIFEST_SUFFIX}", job.name)),
            &target,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every job in `work/`, oldest first: what a crashed or stopped daemon left behind.
    pub fn in_work(&self) -> std::io::Result<Vec<Claimed>> {
        let mut jobs = Vec::new();
        for entry in fs::read_dir(&self.work)? {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().to_string();
            if file_name.starts_with('.') || file_name.ends_with(MANIFEST_SUFFIX) {
                continue;
            }
            if let Some((job_id, name)) = file_name.split_once(JOB_SEPARATOR) {
                jobs.push(Claimed {
                    job_id: job_id.to_string(),
                    name: name.to_string(),
                    path: entry.path(),
                });
            }
        }
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        Ok(jobs)
    }

    /// Names in `incoming/` that may be media, with their size and modification time.
    pub fn scan_incoming(&self) -> std::io::Result<Vec<(String, u64, std::time::SystemTime)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.incoming)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !is_candidate(&name) {
                continue;
            }
            if let Ok(meta) = entry.path().symlink_metadata() {
                found.push((name, meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Success: the input goes to `done/` (or is deleted), with its manifest.
    pub fn release(&self, job: &Claimed, keep: bool) -> std::io::Result<()> {
        let manifest = self.manifest_of(job);
        if keep {
            let to = unique_in(&self.done, &job.name);
            move_if_there(&job.path, &to)?;
            move_if_there(&manifest, &with_suffix(&to, MANIFEST_SUFFIX))?;
        } else {
            remove_if_there(&job.path)?;
            remove_if_there(&manifest)?;
        }
        Ok(())
    }

    /// Failure: the input goes to `failed/` with `NAME.error.json`.
    pub fn quarantine(&self, job: &Claimed, failure: &Failure) -> std::io::Result<PathBuf> {
        let to = unique_in(&self.failed, &job.name);
        self.write_error(&to, failure)?;
        move_if_there(&job.path, &to)?;
        move_if_there(&self.manifest_of(job), &with_suffix(&to, MANIFEST_SUFFIX))?;
        Ok(to)
    }

    /// Writes `failed/NAME.error.json` for something already moved to `failed/NAME`.
    pub fn write_error(&self, quarantined: &Path, failure: &Failure) -> std::io::Result<()> {
        let body = ErrorFile {
            code: &failure.code,
            message: &failure.message,
            stage: failure.stage.as_str(),
            at: crate::records::now_rfc3339(),
        };
        let path = with_suffix(quarantined, ERROR_SUFFIX);
        let tmp = with_suffix(quarantined, ".error.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?,
        )?;
        fs::rename(tmp, path)
    }

    /// Unfinished at shutdown: back to `incoming/`, to be taken again (by any daemon).
    pub fn put_back(&self, job: &Claimed) -> std::io::Result<()> {
        let to = unique_in(&self.incoming, &job.name);
        move_if_there(&self.manifest_of(job), &with_suffix(&to, MANIFEST_SUFFIX))?;
        move_if_there(&job.path, &to)
    }

    /// Policy refusal (no consent): the input and its manifest are deleted.
    pub fn remove(&self, job: &Claimed) -> std::io::Result<()> {
        remove_if_there(&job.path)?;
        remove_if_there(&self.manifest_of(job))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `dir/name`, or `dir/name.2`, `dir/name.3`… if taken: nothing in done/ or failed/ is
/// ever overwritten.
fn unique_in(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if first.symlink_metadata().is_err() {
        return first;
    }
    (2..)
        .map(|i| dir.join(format!("{name}.{i}")))
        .find(|p| p.symlink_metadata().is_err())
        .expect("some suffix is free")
}

fn move_if_there(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Stage;

    #[test]
    fn names_that_are_not_taken() {
        for name in [
            ".hidden",
            "a.part",
            "a.tmp",
            "a.crdownload",
            "a.ogg.meta.json",
            "a.ogg.error.json",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
        assert!(is_candidate("voice.ogg"));
        assert!(is_candidate("wamid.HBg.ogg"));
    }

    #[test]
    fn claim_moves_media_and_manifest_and_release_keeps_both() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        fs::write(spool.incoming.join("a.ogg"), b"x").unwrap();
        fs::write(spool.incoming.join("a.ogg.meta.json"), b"{}").unwrap();
        let Claim::Claimed(job) = spool.claim("a.ogg").unwrap() else {
            panic!()
        };
        assert!(job.path.starts_with(&spool.work) && job.path.exists());
        assert!(spool.manifest_of(&job).exists());
        assert!(matches!(spool.claim("a.ogg").unwrap(), Claim::Gone));
        assert_eq!(spool.in_work().unwrap()[0].name, "a.ogg");
        spool.release(&job, true).unwrap();
        assert!(spool.done.join("a.ogg").exists() && spool.done.join("a.ogg.meta.json").exists());
        assert!(spool.in_work().unwrap().is_empty());
    }

    #[test]
    fn quarantine_writes_the_error_file_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let failure = Failure::new("decode-error", Stage::Transcode, "corrupt at 1.00 s");
        for _ in 0..2 {
            fs::write(spool.incoming.join("b.mp4"), b"y").unwrap();
            let Claim::Claimed(job) = spool.claim("b.mp4").unwrap() else {
                panic!()
            };
            spool.quarantine(&job, &failure).unwrap();
        }
        assert!(spool.failed.join("b.mp4").exists() && spool.failed.join("b.mp4.2").exists());
        let e: serde_json::Value =
            serde_json::from_slice(&fs::read(spool.failed.join("b.mp4.error.json")).unwrap()).unwrap();
        assert_eq!(e["code"], "decode-error");
        assert_eq!(e["stage"], "transcode");
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }

    #[cfg(unix)]
    #[test]
    fn links_fifos_and_directories_are_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", spool.incoming.join("link.mp3")).unwrap();
        fs::create_dir(spool.incoming.join("dir.mp3")).unwrap();
        let fifo = spool.incoming.join("fifo.mp3");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (name, what) in [
            ("link.mp3", "a symbolic link"),
            ("dir.mp3", "a directory"),
            ("fifo.mp3", "a FIFO, socket or device"),
        ] {
            match spool.claim(name).unwrap() {
                Claim::Refused { what: w, .. } => assert_eq!(w, what),
                other => panic!("{name}: {other:?}"),
            }
            assert!(spool.failed.join(name).symlink_metadata().is_ok());
        }
        assert!(fs::symlink_metadata(spool.failed.join("link.mp3"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
