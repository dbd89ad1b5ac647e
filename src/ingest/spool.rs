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
pub const JOB_SEPARATOR: &str = "--";
/// Longest producer name kept whole in `work/` (the job id and separator come on top).
const MAX_WORK_NAME: usize = 200;
/// Per-job scratch directories live here, inside `work/` (same filesystem as the store is not
/// required: outputs are copied into the store).
const SCRATCH: &str = ".jobs";
/// The file in a scratch directory its process keeps locked.
const SCRATCH_OWNER: &str = ".owner";

#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
    pub incoming: PathBuf,
    pub work: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
    /// This process's scratch directory, `work/.jobs/PID-UNIQUE/`.
    scratch: PathBuf,
    /// An exclusive `flock` on `SCRATCH/.owner` while this process lives: how another daemon
    /// on the same spool (in another PID namespace too) tells a live scratch dir from an
    /// abandoned one.
    _scratch_owner: std::sync::Arc<fs::File>,
}

/// A job in `work/`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job_id: String,
    /// The name the producer gave the file.
    pub name: String,
    pub path: PathBuf,
    /// An exclusive `flock` on the file for as long as a job holds it: another daemon sharing
    /// the spool, starting meanwhile, does not resume a job that is running. The kernel drops
    /// it when this process dies, however it dies.
    _owner: Option<std::sync::Arc<fs::File>>,
}

/// Takes an exclusive `flock` without waiting.
fn try_lock(file: &fs::File) -> bool {
    file.try_lock().is_ok()
}

/// Who works on a file in `work/`.
enum Ownership {
    /// This process: the lock, or `None` when the file cannot be opened to hold one (no read
    /// permission, swapped for a link…); the job then fails when it reads the file, and the
    /// file is quarantined with that reason.
    Mine(Option<std::sync::Arc<fs::File>>),
    /// Another live process holds the lock.
    Theirs,
}

/// Takes the exclusive lock on a file in `work/`. Never blocks (a FIFO swapped in opens at
/// once) and never follows a link. Fails only when the file is gone (`NotFound`).
fn own(path: &Path) -> std::io::Result<Ownership> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(e),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot open to lock; taken unlocked");
            return Ok(Ownership::Mine(None));
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Ownership::Mine(Some(std::sync::Arc::new(file)))),
        Err(fs::TryLockError::WouldBlock) => Ok(Ownership::Theirs),
        Err(fs::TryLockError::Error(e)) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot lock; taken unlocked");
            Ok(Ownership::Mine(None))
        }
    }
}

/// Where a finished job's media went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Went {
    Done,
    Failed,
    /// Deleted (refused by policy).
    Removed,
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

/// `NAME.error.json`: the failure as records carry it, and when it happened.
#[derive(Serialize)]
struct ErrorFile<'a> {
    #[serde(flatten)]
    failure: &'a Failure,
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
        let work = root.join("work");
        for dir in ["incoming", "work", "done", "failed"] {
            fs::create_dir_all(root.join(dir))?;
        }
        let scratch = work
            .join(SCRATCH)
            .join(format!("{}-{}", std::process::id(), new_job_id()));
        fs::create_dir_all(&scratch)?;
        let owner = fs::File::create(scratch.join(SCRATCH_OWNER))?;
        if !try_lock(&owner) {
            return Err(std::io::Error::other(
                "cannot lock this process's scratch directory",
            ));
        }
        Ok(Spool {
            root: root.to_path_buf(),
            incoming: root.join("incoming"),
            work,
            done: root.join("done"),
            failed: root.join("failed"),
            scratch,
            _scratch_owner: std::sync::Arc::new(owner),
        })
    }

    /// This process's scratch directories live under this.
    pub fn scratch_root(&self) -> PathBuf {
        self.scratch.clone()
    }

    /// Removes the scratch directories no live process holds (a crash leaves them).
    pub fn clear_abandoned_scratch(&self) {
        let Ok(entries) = fs::read_dir(self.work.join(SCRATCH)) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.path() == self.scratch {
                continue;
            }
            // Taking the owner's lock proves nobody holds it; a directory without one is
            // being set up by a starting process, or left by an older version: left alone.
            let abandoned = fs::File::open(entry.path().join(SCRATCH_OWNER)).is_ok_and(|f| try_lock(&f));
            if abandoned {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
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
            return match move_unique(&from, &self.failed, name) {
                Ok(to) => Ok(Claim::Refused {
                    name: name.to_string(),
                    what,
                    moved_to: to,
                }),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Claim::Gone),
                Err(e) => Err(e),
            };
        }
        let job_id = new_job_id();
        // The job id adds to the name; a name near the filesystem's limit is shortened in work/
        // (the record keeps the full name).
        let path = self.work.join(format!(
            "{job_id}{JOB_SEPARATOR}{}",
            shortened(name, MAX_WORK_NAME)
        ));
        match fs::rename(&from, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        }
        // Another daemon starting this very moment may have resumed it already: then it is its.
        let owner = match own(&path) {
            Ok(Ownership::Mine(owner)) => owner,
            Ok(Ownership::Theirs) => return Ok(Claim::Gone),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        };
        let claimed = Claimed {
            job_id,
            name: name.to_string(),
            path,
            _owner: owner,
        };
        // The media is ours now; a manifest that cannot be moved is looked for again later.
        if let Err(e) = self.take_manifest(&claimed) {
            tracing::warn!(file = name, error = %e, "cannot take the manifest yet");
        }
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

    /// A manifest that came after the job stopped waiting for it leaves with its media, rather
    /// than waiting in `incoming/` to be paired with another file of the same name.
    fn take_late_manifest(&self, job: &Claimed) {
        if let Err(e) = self.take_manifest(job) {
            tracing::warn!(file = %job.name, error = %e, "cannot take a late manifest");
        }
    }

    /// Every job in `work/` no running process holds, oldest first: what a crashed or stopped
    /// daemon left behind. Each comes locked for the caller.
    pub fn in_work(&self) -> std::io::Result<Vec<Claimed>> {
        let mut jobs = Vec::new();
        for entry in fs::read_dir(&self.work)? {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().to_string();
            if file_name.starts_with('.') || file_name.ends_with(MANIFEST_SUFFIX) {
                continue;
            }
            let Some((job_id, name)) = file_name.split_once(JOB_SEPARATOR) else {
                continue;
            };
            match own(&entry.path()) {
                Ok(Ownership::Mine(owner)) => jobs.push(Claimed {
                    job_id: job_id.to_string(),
                    name: name.to_string(),
                    path: entry.path(),
                    _owner: owner,
                }),
                Ok(Ownership::Theirs) => {}
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e, "cannot resume"),
            }
        }
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        Ok(jobs)
    }

    /// Manifests in `work/` whose media is gone: a daemon stopped between moving a finished
    /// job's media and its manifest. Check again a little later before settling them (a live
    /// daemon may be between those two moves this very moment).
    pub fn orphan_manifests(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut orphans = Vec::new();
        for entry in fs::read_dir(&self.work)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || !name.ends_with(MANIFEST_SUFFIX) {
                continue;
            }
            let media = path.with_file_name(&name[..name.len() - MANIFEST_SUFFIX.len()]);
            if media.symlink_metadata().is_err() {
                orphans.push(path);
            }
        }
        Ok(orphans)
    }

    /// Puts an orphan manifest where its job's media went, as the catalog recorded it: beside
    /// the media in `done/` or `failed/`, or deleted with it. Nothing happens if it is no
    /// longer an orphan.
    pub fn settle_orphan_manifest(&self, manifest: &Path, went: Went, keep: bool) -> std::io::Result<()> {
        let Some(file_name) = manifest.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let media_name = &file_name[..file_name.len().saturating_sub(MANIFEST_SUFFIX.len())];
        if manifest.with_file_name(media_name).symlink_metadata().is_ok() {
            return Ok(());
        }
        let name = media_name
            .split_once(JOB_SEPARATOR)
            .map_or(media_name, |(_, n)| n);
        let dir = match went {
            Went::Done if keep => &self.done,
            Went::Failed => &self.failed,
            Went::Done | Went::Removed => return remove_if_there(manifest),
        };
        let media = dir.join(name);
        let beside = media.symlink_metadata().is_ok().then_some(media.as_path());
        move_beside(manifest, beside, dir, name)
    }

    /// Names in `incoming/` that may be media, with their size and modification time.
    pub fn scan_incoming(&self) -> std::io::Result<Vec<(String, u64, std::time::SystemTime)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.incoming)? {
            let entry = entry?;
            let Some(name) = self.utf8_name(&entry.path()) else {
                continue;
            };
            if !is_candidate(&name) {
                continue;
            }
            // By its (possibly new) name: a non-UTF-8 name has just been renamed.
            if let Ok(meta) = self.incoming.join(&name).symlink_metadata() {
                found.push((name, meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The name of a file in `incoming/` as text. A name that is not UTF-8 is renamed to its
    /// lossy form first (records, keys and logs are text), or skipped if that fails. A file
    /// still being written under a temporary name (`.part`, hidden…) is left alone: its
    /// producer is about to rename it.
    fn utf8_name(&self, path: &Path) -> Option<String> {
        let raw = path.file_name()?;
        if let Some(name) = raw.to_str() {
            return Some(name.to_string());
        }
        let lossy = raw.to_string_lossy().to_string();
        if !is_candidate(&lossy) && !lossy.ends_with(MANIFEST_SUFFIX) {
            return None;
        }
        match move_unique(path, &self.incoming, &lossy) {
            Ok(to) => to.file_name().and_then(|n| n.to_str()).map(str::to_string),
            Err(e) => {
                tracing::warn!(file = %lossy, error = %e, "cannot rename a file whose name is not UTF-8");
                None
            }
        }
    }

    /// Success: the input goes to `done/` (or is deleted), with its manifest.
    pub fn release(&self, job: &Claimed, keep: bool) -> std::io::Result<()> {
        self.take_late_manifest(job);
        let manifest = self.manifest_of(job);
        if keep {
            let to = move_unique_if_there(&job.path, &self.done, &job.name)?;
            move_beside(&manifest, to.as_deref(), &self.done, &job.name)?;
        } else {
            remove_if_there(&job.path)?;
            remove_if_there(&manifest)?;
        }
        Ok(())
    }

    /// Failure: the input goes to `failed/` with `NAME.error.json`.
    pub fn quarantine(&self, job: &Claimed, failure: &Failure) -> std::io::Result<()> {
        self.take_late_manifest(job);
        let to = move_unique_if_there(&job.path, &self.failed, &job.name)?;
        if let Some(to) = &to {
            self.write_error(to, failure)?;
        }
        move_beside(&self.manifest_of(job), to.as_deref(), &self.failed, &job.name)
    }

    /// Writes `failed/NAME.error.json` for something already moved to `failed/NAME`.
    pub fn write_error(&self, quarantined: &Path, failure: &Failure) -> std::io::Result<()> {
        let body = ErrorFile {
            failure,
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
        // The manifest first, so the media never reappears without it.
        let manifest = format!("{}{MANIFEST_SUFFIX}", job.name);
        let placed = move_unique_if_there(&self.manifest_of(job), &self.incoming, &manifest)?;
        let name = match placed
            .as_ref()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
        {
            Some(placed) => placed
                .strip_suffix(MANIFEST_SUFFIX)
                .unwrap_or(&job.name)
                .to_string(),
            None => job.name.clone(),
        };
        move_unique_if_there(&job.path, &self.incoming, &name).map(|_| ())
    }

    /// Policy refusal (no consent): the input and its manifest are deleted.
    pub fn remove(&self, job: &Claimed) -> std::io::Result<()> {
        // The manifest first: it is the customer's data, and never stays behind its media.
        remove_if_there(&self.manifest_of(job))?;
        remove_if_there(&job.path)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves `from` to `dir/name`, or `dir/name.2`, `dir/name.3`… if taken, atomically: nothing
/// in done/, failed/ or incoming/ is ever overwritten, even by two moves racing. Returns where
/// it went.
fn move_unique(from: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    for i in 1u32.. {
        let to = if i == 1 {
            dir.join(name)
        } else {
            dir.join(format!("{name}.{i}"))
        };
        match rename_no_replace(from, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// [`move_unique`], or `None` if `from` is already gone.
fn move_unique_if_there(from: &Path, dir: &Path, name: &str) -> std::io::Result<Option<PathBuf>> {
    match move_unique(from, dir, name) {
        Ok(to) => Ok(Some(to)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves a job's manifest next to where its media went (`MEDIA.meta.json`).
fn move_beside(manifest: &Path, media: Option<&Path>, dir: &Path, name: &str) -> std::io::Result<()> {
    let target = match media.and_then(|m| m.file_name()).and_then(|n| n.to_str()) {
        Some(media) => format!("{media}{MANIFEST_SUFFIX}"),
        None => format!("{name}{MANIFEST_SUFFIX}"),
    };
    move_unique_if_there(manifest, dir, &target).map(|_| ())
}

/// `rename` that fails with `AlreadyExists` instead of replacing the target.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated C strings that outlive the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if done == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) {
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        if to.symlink_metadata().is_ok() {
            return Err(std::io::Error::from(ErrorKind::AlreadyExists));
        }
        return fs::rename(from, to);
    }
    Err(e)
}

/// `name` cut to at most `max` bytes at a character boundary, keeping its extension.
fn shortened(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .map_or("", |i| &name[i..])
        .chars()
        .take(16)
        .collect::<String>();
    let mut cut = max.saturating_sub(ext.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &name[..cut])
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
    use crate::failure::ErrorCode;

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
        spool.release(&job, true).unwrap();
        assert!(spool.done.join("a.ogg").exists() && spool.done.join("a.ogg.meta.json").exists());
        assert!(spool.in_work().unwrap().is_empty());
    }

    #[test]
    fn quarantine_writes_the_error_file_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let failure = Failure::new(ErrorCode::DECODE_ERROR, "corrupt at 1.00 s");
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

    #[test]
    fn moves_racing_for_one_name_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let jobs: Vec<Claimed> = (0..16)
            .map(|i| {
                fs::write(spool.incoming.join("same.jpg"), format!("{i}")).unwrap();
                let Claim::Claimed(job) = spool.claim("same.jpg").unwrap() else {
                    panic!()
                };
                job
            })
            .collect();
        std::thread::scope(|scope| {
            for job in &jobs {
                let spool = &spool;
                scope.spawn(move || spool.release(job, true).unwrap());
            }
        });
        let mut kept: Vec<String> = fs::read_dir(&spool.done)
            .unwrap()
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        kept.sort_by_key(|k| k.parse::<u32>().unwrap());
        assert_eq!(
            kept,
            (0..16).map(|i| i.to_string()).collect::<Vec<_>>(),
            "every original kept"
        );
    }

    #[test]
    fn a_job_held_by_a_running_process_is_not_resumed_by_another() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        fs::write(spool.incoming.join("x.wav"), b"x").unwrap();
        let Claim::Claimed(job) = spool.claim("x.wav").unwrap() else {
            panic!()
        };
        assert!(spool.in_work().unwrap().is_empty(), "held by this job");
        drop(job);
        assert_eq!(spool.in_work().unwrap().len(), 1, "free once its holder is gone");
    }

    #[test]
    fn long_names_are_shortened_in_work_but_kept_for_records() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let name = format!("{}.ogg", "é".repeat(120));
        fs::write(spool.incoming.join(&name), b"x").unwrap();
        let Claim::Claimed(job) = spool.claim(&name).unwrap() else {
            panic!()
        };
        assert_eq!(job.name, name);
        assert!(job.path.file_name().unwrap().len() < 255 && job.path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_are_made_readable_unless_still_being_written() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let raw = |name: &[u8]| spool.incoming.join(std::ffi::OsStr::from_bytes(name));
        fs::write(raw(b"voice\xff.ogg"), b"a").unwrap();
        fs::write(raw(b"voice\xff.ogg.meta.json"), b"{}").unwrap();
        fs::write(raw(b"clip\xfe.mp4.part"), b"b").unwrap();
        let found: Vec<String> = spool
            .scan_incoming()
            .unwrap()
            .into_iter()
            .map(|(n, ..)| n)
            .collect();
        assert_eq!(found, ["voice\u{fffd}.ogg"]);
        assert!(spool.incoming.join("voice\u{fffd}.ogg.meta.json").exists());
        assert!(
            raw(b"clip\xfe.mp4.part").exists(),
            "a file being written keeps its name"
        );
    }

    #[test]
    fn only_scratch_directories_no_live_process_holds_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Spool::open(dir.path()).unwrap();
        let other = Spool::open(dir.path()).unwrap();
        let jobs = mine.work.join(SCRATCH);
        let abandoned = jobs.join("1-dead");
        fs::create_dir_all(abandoned.join("job")).unwrap();
        fs::write(abandoned.join(SCRATCH_OWNER), b"").unwrap();
        let starting = jobs.join("2-starting");
        fs::create_dir_all(&starting).unwrap();
        mine.clear_abandoned_scratch();
        assert!(!abandoned.exists(), "nobody holds it");
        assert!(
            other.scratch_root().exists(),
            "held by a live spool, even with the same pid"
        );
        assert!(mine.scratch_root().exists());
        assert!(starting.exists(), "no owner file yet: being set up");
        let other_root = other.scratch_root();
        drop(other);
        mine.clear_abandoned_scratch();
        assert!(!other_root.exists(), "its process let go");
    }

    #[test]
    fn a_manifest_left_behind_in_work_joins_its_media() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        // Done, quarantined, and still working.
        fs::write(spool.done.join("a.ogg"), b"a").unwrap();
        fs::write(spool.work.join("J1--a.ogg.meta.json"), b"{}").unwrap();
        fs::write(spool.failed.join("b.ogg"), b"b").unwrap();
        fs::write(spool.work.join("J2--b.ogg.meta.json"), b"{}").unwrap();
        fs::write(spool.work.join("J3--c.ogg"), b"c").unwrap();
        fs::write(spool.work.join("J3--c.ogg.meta.json"), b"{}").unwrap();
        let mut orphans = spool.orphan_manifests().unwrap();
        orphans.sort();
        assert_eq!(
            orphans,
            [
                spool.work.join("J1--a.ogg.meta.json"),
                spool.work.join("J2--b.ogg.meta.json")
            ]
        );
        spool
            .settle_orphan_manifest(&orphans[0], Went::Done, true)
            .unwrap();
        spool
            .settle_orphan_manifest(&orphans[1], Went::Failed, true)
            .unwrap();
        assert!(spool.done.join("a.ogg.meta.json").exists());
        assert!(spool.failed.join("b.ogg.meta.json").exists());
        // Still working: not an orphan, left alone whatever is asked.
        let working = spool.work.join("J3--c.ogg.meta.json");
        spool
            .settle_orphan_manifest(&working, Went::Removed, true)
            .unwrap();
        assert!(working.exists());
        assert!(spool.orphan_manifests().unwrap().is_empty());
        // Refused by policy, or originals not kept: the manifest goes as its media went.
        for (job, went, keep) in [("J4", Went::Removed, true), ("J5", Went::Done, false)] {
            let orphan = spool.work.join(format!("{job}--d.ogg.meta.json"));
            fs::write(&orphan, b"{}").unwrap();
            spool.settle_orphan_manifest(&orphan, went, keep).unwrap();
            assert!(!orphan.exists());
        }
        assert!(!spool.done.join("d.ogg.meta.json").exists());
    }

    #[test]
    fn links_fifos_and_directories_are_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", spool.incoming.join("link.mp3")).unwrap();
        fs::create_dir(spool.incoming.join("dir.mp3")).unwrap();
        let fifo = spool.incoming.join("fifo.mp3");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
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
