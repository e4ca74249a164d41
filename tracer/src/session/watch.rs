//! A cheap "nothing changed" for the server's inputs: inotify watches on
//! every input path that exists and on every directory on the way to each
//! (so a file created where one was found absent, a symlink retargeted, a
//! directory renamed, all show). While no event arrived since the last
//! check, nothing the stamps cover can have changed, and the stat pass over
//! thousands of stamps (milliseconds on every miss) is skipped. Any event,
//! a lost event (queue overflow), a watch that could not be added, or a
//! file system where inotify does not see every change (network and FUSE
//! file systems: changes made elsewhere raise no event) means: stat them
//! all, as without the watch.
//!
//! Watches are on inodes, so a change through another hard link or mount
//! is seen too. Not seen: writes through a shared memory mapping (no
//! event), which the stamps would only see through the mtime as well.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What changes a path's stamp, its existence or what it resolves to.
const EVENTS: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO;

/// File systems whose every change the local kernel sees (so raises an
/// event for): ext2/3/4, xfs, btrfs, tmpfs, overlayfs, zfs, f2fs.
const LOCAL: &[i64] = &[
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0x794C_7630,
    0x2FC1_2FC1,
    0xF2F5_2010,
];

pub(crate) struct Watch {
    fd: OwnedFd,
    /// An event arrived since the watch began (for good).
    dirty: AtomicBool,
    /// An event arrived since the last `changed`.
    unchecked: AtomicBool,
}

impl Watch {
    /// Watches `paths` (and the directories leading to them); `None` when
    /// one of them cannot be watched reliably.
    pub(crate) fn new<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Option<Watch> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `inotify_init1` just returned this fresh descriptor.
        let watch = Watch {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            dirty: AtomicBool::new(false),
            unchecked: AtomicBool::new(false),
        };
        let mut seen: HashSet<&Path> = HashSet::new();
        for path in paths {
            // The path itself, then every directory above it.
            let mut at = Some(path);
            while let Some(p) = at {
                if !seen.insert(p) {
                    break; // its ancestors are watched already
                }
                if !p.as_os_str().is_empty() {
                    // Absent (false): what would create it is watched above.
                    watch.add(p)?;
                }
                at = p.parent();
            }
        }
        Some(watch)
    }

    /// Ok(true): watched; Ok(false): absent; None: cannot be watched.
    fn add(&self, path: &Path) -> Option<bool> {
        let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid NUL-terminated path and a zeroed out-parameter.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::statfs(c_path.as_ptr(), &mut fs) } != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            return matches!(errno, Some(libc::ENOENT) | Some(libc::ENOTDIR)).then_some(false);
        }
        if !LOCAL.contains(&(fs.f_type as i64)) {
            return None;
        }
        // Following a symlink: its target's inode (the link itself is an
        // entry of its directory, watched too).
        // SAFETY: our inotify descriptor and a valid path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), EVENTS) };
        if wd >= 0 {
            return Some(true);
        }
        let errno = std::io::Error::last_os_error().raw_os_error();
        // Gone between the two calls: absent (its directory is watched).
        matches!(errno, Some(libc::ENOENT) | Some(libc::ENOTDIR)).then_some(false)
    }

    /// Whether anything happened since the last call.
    pub(crate) fn changed(&self) -> bool {
        self.drain();
        self.unchecked.swap(false, Ordering::SeqCst)
    }

    /// Whether anything happened since the watch began.
    pub(crate) fn ever_changed(&self) -> bool {
        self.drain();
        self.dirty.load(Ordering::SeqCst)
    }

    fn drain(&self) {
        if self.read_events() {
            self.dirty.store(true, Ordering::SeqCst);
            self.unchecked.store(true, Ordering::SeqCst);
        }
    }

    fn read_events(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: reads into our own buffer from our own descriptor.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
                return any;
            }
            return true; // an error: assume a change
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_on_the_way_to_a_path_is_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join("f.txt");
        std::fs::write(&file, "1").unwrap();
        let absent = sub.join("missing/deeper.txt");
        let paths = [file.clone(), absent.clone()];
        let watch = Watch::new(paths.iter().map(|p| p.as_path()));
        let Some(watch) = watch else {
            return; // a file system inotify cannot vouch for: nothing to test
        };
        assert!(!watch.changed() && !watch.ever_changed());
        std::fs::write(&file, "2").unwrap();
        assert!(watch.ever_changed());
        assert!(watch.changed(), "seen by both");
        assert!(!watch.changed(), "once");
        assert!(watch.ever_changed(), "for good");
        std::fs::create_dir(sub.join("missing")).unwrap();
        assert!(watch.changed(), "a directory on the way to an absent path");
        std::fs::rename(&sub, dir.path().join("moved")).unwrap();
        assert!(watch.changed(), "an ancestor renamed");
    }
}
