//! How the cores are shared among the jobs running at once.
//!
//! In: the machine's cores and how many jobs run when one starts. Out: the threads that job's
//! decoders, filters and x264 use for its whole life (libav fixes a codec's threads when it
//! opens it). A job gets its share of the cores at its start, and never fewer than two threads:
//! a job running alone uses the whole machine; when others start beside it, the OS shares the
//! cores among all their threads; and a job that started in a busy moment can still spread
//! onto a core the others leave idle when they finish first (the tail of a batch). So the
//! cores are oversubscribed at most about twice, which costs a few percent of CPU time, and
//! memory per job stays bounded (see `media::threads` for large pictures). Nothing blocks.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Fewest threads a job gets, however busy the machine when it starts.
const MIN_THREADS: usize = 2;

/// Threads for a job starting while `running` jobs (itself included) run on `cores` cores.
pub fn threads_for(cores: usize, running: usize) -> usize {
    (cores / running.max(1)).max(MIN_THREADS).min(cores).max(1)
}

/// The jobs running now, on a machine of `cores` cores.
#[derive(Debug)]
pub struct Share {
    cores: usize,
    running: AtomicUsize,
}

impl Share {
    pub fn new(cores: usize) -> Share {
        Share {
            cores,
            running: AtomicUsize::new(0),
        }
    }

    /// Counts a job as running until the returned guard is dropped.
    pub fn start(&self) -> Running<'_> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        Running {
            share: self,
            threads: threads_for(self.cores, running),
        }
    }
}

/// A running job's place in the [`Share`].
#[derive(Debug)]
pub struct Running<'a> {
    share: &'a Share,
    pub threads: usize,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.share.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_job_uses_every_core() {
        assert_eq!(threads_for(2, 1), 2);
        assert_eq!(threads_for(32, 1), 32);
        assert_eq!(threads_for(1, 1), 1);
    }

    #[test]
    fn jobs_side_by_side_share_the_cores_with_two_threads_at_least() {
        assert_eq!(threads_for(2, 2), 2);
        assert_eq!(threads_for(8, 2), 4);
        assert_eq!(threads_for(8, 8), 2);
        assert_eq!(threads_for(32, 5), 6);
        assert_eq!(threads_for(32, 32), 2);
        assert_eq!(threads_for(1, 4), 1);
    }

    #[test]
    fn a_job_leaves_the_count_when_it_ends() {
        let share = Share::new(8);
        let first = share.start();
        assert_eq!(first.threads, 8);
        let second = share.start();
        assert_eq!(second.threads, 4);
        drop(first);
        drop(second);
        assert_eq!(share.start().threads, 8);
    }
}
