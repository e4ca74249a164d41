//! Process-wide native state that a forked process must not inherit.
//!
//! casher's native code runs in processes that Python forks from a caller
//! that already used it (`os.fork`, multiprocessing's fork start method,
//! the fork server's children). After `fork` only the forking thread
//! exists: a thread pool built in the parent has no workers in the child,
//! so work handed to it waits forever, and a lock that another thread held
//! at the fork stays held. Such state is therefore made once per process:
//! a value made in another process is never touched again (nor dropped,
//! which could wait on threads that do not exist), a fresh one is made.
//!
//! A crate of its own so that `analyzer` and `store`, which do not depend on
//! each other, share one implementation.

use std::sync::atomic::{AtomicPtr, Ordering};

/// A value made at most once per process, without a lock (a lock held by
/// another thread at a fork would stay held in the child).
pub struct PerProcess<T: 'static> {
    current: AtomicPtr<(u32, T)>,
}

impl<T: 'static> PerProcess<T> {
    pub const fn new() -> Self {
        Self {
            current: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl<T: 'static> Default for PerProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + Sync + 'static> PerProcess<T> {
    /// This process's value, made with `init` the first time this process
    /// asks (also when an ancestor it was forked from had made one).
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        let pid = std::process::id();
        let seen = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from `Box::into_raw` below
        // and is never freed, in this process or in any forked from it.
        if let Some((owner, value)) = unsafe { seen.as_ref() } {
            if *owner == pid {
                return value;
            }
        }
        let fresh = Box::into_raw(Box::new((pid, init())));
        match self
            .current
            .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: just leaked, never freed (see above).
            Ok(_) => unsafe { &(*fresh).1 },
            Err(winner) => {
                // Another thread of this process stored its value first
                // (memory is not shared with other processes, so `winner`
                // is this process's): ours was never shared, drop it.
                // SAFETY: `fresh` came from `Box::into_raw` and was not
                // published; `winner` is never freed (see above).
                unsafe {
                    drop(Box::from_raw(fresh));
                    &(*winner).1
                }
            }
        }
    }
}

/// Runs `op` on this process's thread pool, so that the rayon work inside
/// it (`par_iter`, BLAKE3's `update_rayon`) never goes to rayon's global
/// pool: that one cannot be rebuilt, and in a process forked after it
/// started it has no threads. Where a pool cannot be started (threads
/// refused), `op` runs on the caller's thread as it would without casher's
/// pool.
pub fn in_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    static POOL: PerProcess<Option<rayon::ThreadPool>> = PerProcess::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("casher-pool-{i}"))
            .build()
            .inspect_err(|e| {
                tracing::warn!("cannot start a thread pool, working on one thread: {e}")
            })
            .ok()
    });
    match pool {
        Some(pool) => pool.install(op),
        None => op(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_process() {
        static VALUE: PerProcess<u64> = PerProcess::new();
        let first: *const u64 = VALUE.get_or_init(|| 1);
        assert_eq!(*VALUE.get_or_init(|| 2), 1);
        assert!(std::ptr::eq(first, VALUE.get_or_init(|| 3)));
    }

    #[test]
    fn parallel_work_runs_on_the_pool() {
        use rayon::prelude::*;
        let sum: u64 = in_pool(|| (0..1000u64).into_par_iter().sum());
        assert_eq!(sum, 499_500);
        assert!(in_pool(|| rayon::current_thread_index().is_some()));
    }

    #[test]
    fn a_forked_process_gets_its_own_pool() {
        use rayon::prelude::*;
        let work = || in_pool(|| (0..1000u64).into_par_iter().map(|i| i * 2).sum::<u64>());
        assert_eq!(work(), 999_000, "the parent's pool is running");
        // SAFETY: the child only runs `work` and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // Without a pool of its own, the child would wait forever on
            // the parent's workers, which fork did not copy.
            let code = if work() == 999_000 { 0 } else { 1 };
            // SAFETY: ends the forked child without running the parent's
            // exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
    }
}
