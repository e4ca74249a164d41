//! Restores leave no partial files behind.
//!
//! - SIGINT/SIGTERM during a restore: a handler only sets a flag; the copy
//!   loop checks it between chunks, the restore removes its temp file and
//!   returns [`crate::StoreError::Interrupted`], and when the last restore
//!   of the process ends the previous handlers come back and the signal is
//!   raised again (so the process dies of it, or Python raises
//!   `KeyboardInterrupt`, exactly as without casher).
//! - SIGKILL cannot be caught: before a temp file is created next to a
//!   restored file, its directory and name are appended to a journal,
//!   `<store>/store-v1/restores/<pid>-<start time>`, removed when the
//!   restore ends. A journal whose process is gone is replayed (its temp
//!   files removed, never through a symlink) by the next restore from that
//!   store and by `casher cache gc`.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use crate::fsutil::TEMP_PREFIX;
use crate::walk::{Dir, Kind};

static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Installed handlers: (active guards, previous SIGINT, previous SIGTERM).
static ACTIVE: Mutex<Option<(usize, Saved)>> = Mutex::new(None);

type Saved = Vec<(libc::c_int, libc::sigaction)>;

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// Whether SIGINT/SIGTERM arrived during a restore.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst) != 0
}

/// Catches SIGINT/SIGTERM while alive (nested guards share one handler).
pub(crate) struct SignalGuard;

impl SignalGuard {
    pub(crate) fn install() -> Self {
        let Ok(mut active) = ACTIVE.lock() else {
            return Self;
        };
        match active.as_mut() {
            Some((count, _)) => *count += 1,
            None => {
                let mut saved = Vec::new();
                for sig in [libc::SIGINT, libc::SIGTERM] {
                    // SAFETY: zeroed sigaction structs are valid; sigaction
                    // only reads/writes the structs we own.
                    unsafe {
                        let mut old: libc::sigaction = std::mem::zeroed();
                        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                            || old.sa_sigaction == libc::SIG_IGN
                        {
                            // An ignored signal stays ignored.
                            continue;
                        }
                        let mut new: libc::sigaction = std::mem::zeroed();
                        new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                        libc::sigemptyset(&mut new.sa_mask);
                        new.sa_flags = libc::SA_RESTART;
                        if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                            saved.push((sig, old));
                        }
                    }
                }
                *active = Some((1, saved));
            }
        }
        Self
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let Ok(mut active) = ACTIVE.lock() else {
            return;
        };
        let last = match active.as_mut() {
            Some((count, _)) => {
                *count -= 1;
                *count == 0
            }
            None => false,
        };
        if !last {
            return;
        }
        if let Some((_, saved)) = active.take() {
            for (sig, old) in &saved {
                // SAFETY: restores the action saved at install time.
                unsafe {
                    libc::sigaction(*sig, old, std::ptr::null_mut());
                }
            }
        }
        let sig = INTERRUPTED.swap(0, Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: re-raises the signal under the restored handler.
            unsafe {
                libc::raise(sig);
            }
        }
    }
}

/// This process's start time (field 22 of `/proc/<pid>/stat`): with the
/// pid, it names a process uniquely.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_owned)
}

/// A restore's list of temp files, removed when it ends cleanly.
pub(crate) struct Journal {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Journal {
    pub(crate) fn new(dir: Option<PathBuf>) -> Option<Self> {
        let dir = dir?;
        let me = std::process::id().to_string();
        let name = format!("{me}-{}", start_time(&me).unwrap_or_default());
        Some(Self {
            path: dir.join(name),
            file: None,
        })
    }

    /// Notes a temp file before it is created.
    pub(crate) fn note(&mut self, dir: &Path, name: &OsStr) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let mut line = dir.as_os_str().as_bytes().to_vec();
        line.push(0);
        line.extend_from_slice(name.as_bytes());
        line.push(0);
        match &mut self.file {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the temp files named by journals of processes that are gone;
/// returns how many files and bytes were removed.
pub(crate) fn clean_dead(dir: &Path) -> (u64, u64) {
    let mut removed = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, started)) = name.split_once('-') else {
            continue;
        };
        if start_time(pid).is_some_and(|now| now == started) {
            continue; // still running
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let mut parts = bytes.split(|b| *b == 0);
        while let (Some(dir), Some(file)) = (parts.next(), parts.next()) {
            let (n, size) = remove_temp(Path::new(OsStr::from_bytes(dir)), OsStr::from_bytes(file));
            removed.0 += n;
            removed.1 += size;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    removed
}

/// Removes one leftover temp file, reached without following symlinks,
/// and only if its name is one of ours.
fn remove_temp(dir: &Path, name: &OsStr) -> (u64, u64) {
    let bytes = name.as_bytes();
    if !bytes.starts_with(TEMP_PREFIX.as_bytes()) || bytes.contains(&b'/') || !dir.is_absolute() {
        return (0, 0);
    }
    let Ok(parent) = Dir::open_absolute(dir) else {
        return (0, 0);
    };
    let size = match parent.kind(name) {
        Ok(Some(Kind::File { size, .. })) => size,
        Ok(Some(Kind::Symlink)) => 0,
        _ => return (0, 0),
    };
    match parent.unlink(name, false) {
        Ok(()) => (1, size),
        Err(_) => (0, 0),
    }
}
