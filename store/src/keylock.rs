//! One computation per key at a time across processes: several processes
//! that miss the same key at once take this lock; one computes, the others
//! wait and then find its result. An advisory `flock` on a file per key:
//! the kernel releases it when the holder ends, however it ends (a killed
//! holder never blocks anyone).

use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, StoreError};

/// A held key lock; released on drop.
pub struct KeyLock {
    file: std::fs::File,
    /// Whether another process held it when we asked (its result may be
    /// in the store now: look again before computing).
    pub waited: bool,
}

fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        _ => Err(e),
    }
}

fn lock_path(cache_dir: &Path, key: &str) -> Result<PathBuf> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StoreError::KeyPrefix {
            message: format!("not a key: {key:?}"),
        });
    }
    Ok(cache_dir.join("locks").join(format!("{key}.lock")))
}

impl KeyLock {
    /// Takes the lock of `key` in the store at `cache_dir`, waiting at most
    /// `timeout` for another process that holds it.
    pub fn acquire(cache_dir: &Path, key: &str, timeout: Duration) -> Result<KeyLock> {
        let path = lock_path(cache_dir, key)?;
        let dir = cache_dir.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let started = Instant::now();
        let mut waited = false;
        let mut pause = Duration::from_millis(1);
        while !try_lock(&file).map_err(|e| StoreError::io(&path, e))? {
            waited = true;
            if started.elapsed() >= timeout {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(StoreError::Busy {
                    key: key.to_owned(),
                    holder: if holder.trim().is_empty() {
                        "(unknown)".to_owned()
                    } else {
                        holder.trim().to_owned()
                    },
                    waited_s: timeout.as_secs(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        // Who holds it, for the message of a process that waits too long.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(KeyLock { file, waited })
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // SAFETY: unlocks a descriptor we own (closing would too).
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyLock::acquire(dir.path(), "abc123", Duration::from_secs(1)).unwrap();
        assert!(!first.waited);
        let busy = KeyLock::acquire(dir.path(), "abc123", Duration::from_millis(50));
        match busy {
            Err(StoreError::Busy { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            _ => panic!("expected Busy"),
        }
        drop(first);
        let second = KeyLock::acquire(dir.path(), "abc123", Duration::from_secs(1)).unwrap();
        assert!(!second.waited);
        assert!(KeyLock::acquire(dir.path(), "../x", Duration::from_secs(1)).is_err());
    }
}
