//! Noticing complete files in `incoming/`.
//!
//! In: the spool's `incoming/` directory and the watch mode. Out: names of files that are
//! complete, sent on a channel (a name may be sent more than once; claiming is what counts).
//! - `events` (inotify through notify): a file is complete when it is closed after writing or
//!   renamed into `incoming/`. A file that appears without either (a hard link made into
//!   `incoming/`) is taken once it has been untouched for `quiet_period` and no process holds it
//!   open for writing, looked at when it appears and again a quiet period later. A scan at start
//!   and every `rescan_interval` (and at once when the
//!   kernel's event queue overflowed) takes files that events missed: left untouched for
//!   `quiet_period` and held open for writing by no process on this host (a writer pausing
//!   mid-file is not cut short).
//! - `poll` (network filesystems without events): a scan every half quiet period; a file is
//!   complete when its size and modification time are unchanged across two looks at least
//!   `quiet_period` apart.
//!
//! Runs as async tasks (plus notify's own thread); stops when the receiver is dropped or the
//! shutdown token fires.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::spool::{is_candidate, Spool};
use crate::config::WatchMode;

pub struct WatchSettings {
    pub mode: WatchMode,
    pub quiet_period: Duration,
    pub rescan_interval: Duration,
}

/// Starts watching; complete names arrive on the returned channel until `stop` turns true.
pub fn start(
    spool: &Spool,
    settings: WatchSettings,
    stop: watch::Receiver<bool>,
) -> notify::Result<mpsc::UnboundedReceiver<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let incoming = spool.incoming.clone();
    match settings.mode {
        WatchMode::Events => {
            let (rescan_tx, rescan_rx) = mpsc::unbounded_channel();
            let (created_tx, created_rx) = mpsc::unbounded_channel();
            let watcher = start_events(&incoming, tx.clone(), rescan_tx, created_tx)?;
            tokio::spawn(settle_created(
                incoming.clone(),
                settings.quiet_period,
                created_rx,
                tx.clone(),
                stop.clone(),
            ));
            tokio::spawn(scan_loop(
                spool.clone(),
                settings,
                tx,
                rescan_rx,
                stop,
                Some(watcher),
            ));
        }
        WatchMode::Poll => {
            let (_never, rescan_rx) = mpsc::unbounded_channel();
            tokio::spawn(scan_loop(spool.clone(), settings, tx, rescan_rx, stop, None));
        }
    }
    Ok(rx)
}

/// inotify: close-after-write and rename-in mean complete; a regular file created goes to
/// `created` (it may be a hard link, which no close will announce); an overflow asks for a
/// rescan.
fn start_events(
    incoming: &Path,
    names: mpsc::UnboundedSender<String>,
    rescan: mpsc::UnboundedSender<()>,
    created: mpsc::UnboundedSender<PathBuf>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "watch error; rescanning");
                let _ = rescan.send(());
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!("file events were lost (queue overflow); rescanning");
            let _ = rescan.send(());
            return;
        }
        if let (EventKind::Create(_), Some(p)) = (event.kind, event.paths.first()) {
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                let _ = created.send(p.clone());
            }
        }
        let path: Option<&PathBuf> = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.first(),
            // Links, directories and FIFOs are never "closed after writing": take them (to be
            // refused) as soon as they appear. Regular files wait for their close.
            EventKind::Create(_) => event
                .paths
                .first()
                .filter(|p| p.symlink_metadata().is_ok_and(|m| !m.is_file())),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.first(),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1),
            _ => None,
        };
        match path.and_then(|p| p.file_name()).map(|n| n.to_str()) {
            Some(Some(name)) if is_candidate(name) => {
                let _ = names.send(name.to_string());
            }
            // Not UTF-8: the scan renames it to text first.
            Some(None) => {
                let _ = rescan.send(());
            }
            _ => {}
        }
    })?;
    watcher.watch(incoming, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Regular files that appeared in `incoming/`: each is taken once it has been untouched for
/// `quiet` and no process holds it open for writing, looked at when it appears and again once
/// it would be quiet. A file still written to by then is left to its close event (or the
/// periodic scan), so each appearance costs at most two looks.
async fn settle_created(
    incoming: PathBuf,
    quiet: Duration,
    mut created: mpsc::UnboundedReceiver<PathBuf>,
    names: mpsc::UnboundedSender<String>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let path = tokio::select! {
            Some(path) = created.recv() => path,
            _ = stop.changed() => return,
            else => return,
        };
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_candidate(n))
        else {
            continue;
        };
        let (name, names) = (name.to_string(), names.clone());
        let path = incoming.join(&name);
        tokio::spawn(async move {
            for look in 0..2 {
                let Ok(mtime) = std::fs::symlink_metadata(&path).and_then(|m| m.modified()) else {
                    return; // claimed, or gone
                };
                let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
                if age >= quiet {
                    let check = path.clone();
                    if tokio::task::spawn_blocking(move || settled(&check, mtime, quiet))
                        .await
                        .unwrap_or(false)
                    {
                        let _ = names.send(name);
                    }
                    return;
                }
                if look == 0 {
                    tokio::time::sleep(quiet - age).await;
                }
            }
        });
    }
}

/// Periodic scans: the safety net in events mode, the only source in poll mode.
async fn scan_loop(
    spool: Spool,
    settings: WatchSettings,
    names: mpsc::UnboundedSender<String>,
    mut rescan: mpsc::UnboundedReceiver<()>,
    mut stop: watch::Receiver<bool>,
    // Held so inotify keeps watching for as long as this loop runs.
    _watcher: Option<notify::RecommendedWatcher>,
) {
    let every = match settings.mode {
        WatchMode::Events => settings.rescan_interval,
        WatchMode::Poll => {
            (settings.quiet_period / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
        }
    };
    // Poll mode: signature (size, mtime) of each name and when it was first seen so.
    let mut seen: HashMap<String, (u64, SystemTime, Instant)> = HashMap::new();
    loop {
        // Events mode: a file not ready yet is looked at again after the quiet period.
        let mut waiting = false;
        let found = match spool.scan_incoming() {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan incoming/");
                Vec::new()
            }
        };
        let now = Instant::now();
        let mut still_there = HashMap::with_capacity(found.len());
        for (name, size, mtime) in found {
            let ready = match settings.mode {
                // Events announce complete files; a scan only catches what they missed: a file
                // left alone for the quiet period that no process here holds open for writing.
                WatchMode::Events => {
                    let ready = settled(&spool.incoming.join(&name), mtime, settings.quiet_period);
                    waiting |= !ready;
                    ready
                }
                WatchMode::Poll => match seen.get(&name) {
                    Some((s, m, since)) if *s == size && *m == mtime => {
                        now.duration_since(*since) >= settings.quiet_period
                    }
                    _ => false,
                },
            };
            let since = match seen.get(&name) {
                Some((s, m, since)) if *s == size && *m == mtime => *since,
                _ => now,
            };
            still_there.insert(name.clone(), (size, mtime, since));
            if ready && names.send(name).is_err() {
                return;
            }
        }
        seen = still_there;
        let pause = if waiting {
            every.min(settings.quiet_period)
        } else {
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            Some(()) = rescan.recv() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Whether a file whose contents last changed at `mtime` is complete without an event saying
/// so: left untouched for `quiet` and held open for writing by no process on this host (a
/// writer pausing mid-file is not cut short).
fn settled(path: &Path, mtime: SystemTime, quiet: Duration) -> bool {
    SystemTime::now()
        .duration_since(mtime)
        .is_ok_and(|age| age >= quiet)
        && !open_for_writing(path)
}

/// Whether any process on this host has `path` open for writing (`/proc/*/fd` and `fdinfo`
/// flags). Processes this user may not inspect are not seen; the quiet period covers those.
fn open_for_writing(path: &Path) -> bool {
    let Ok(target) = path.canonicalize() else {
        return false;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|link| link == target) {
                let info = proc_entry.path().join("fdinfo").join(fd.file_name());
                let flags = std::fs::read_to_string(info).ok().and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                });
                // O_WRONLY = 1, O_RDWR = 2.
                if flags.is_none_or(|f| f & 3 != 0) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_held_open_for_writing_is_seen_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let writer = std::fs::File::create(&path).unwrap();
        assert!(open_for_writing(&path));
        let reader = std::fs::File::open(&path).unwrap();
        drop(writer);
        assert!(!open_for_writing(&path), "a reader alone does not count");
        drop(reader);
        assert!(!open_for_writing(&path));
    }
}
