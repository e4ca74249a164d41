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

use std::collections::{HashMap, HashSet};
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
    /// Which events of each watch count: every one on the watched object
    /// itself; on a directory, those that name an entry leading to an
    /// input, and when the directory is an input itself (listed, stat'ed),
    /// those that add or remove entries too. Not the writes to its other
    /// entries: `/tmp` sees other programs' files come and go all the time,
    /// and a project directory on `sys.path` sees the program's own output
    /// files written on every call.
    relevant: HashMap<i32, Relevant>,
    /// An event arrived since the watch began (for good).
    dirty: AtomicBool,
    /// An event arrived since the last `changed`.
    unchecked: AtomicBool,
}

#[derive(Default)]
struct Relevant {
    /// The watched path is an input itself.
    input: bool,
    /// Entries on the way to inputs.
    names: HashSet<Vec<u8>>,
}

/// Events that change a directory's listing (and its stat stamp).
const LISTING: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

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
        let mut watch = Watch {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            relevant: HashMap::new(),
            dirty: AtomicBool::new(false),
            unchecked: AtomicBool::new(false),
        };
        let mut seen: HashSet<&Path> = HashSet::new();
        for path in paths {
            // The path itself (every event), then every directory above it
            // (events naming the entry on the way).
            if let Some(wd) = watch.add(path)? {
                watch.relevant.entry(wd).or_default().input = true;
            }
            let mut child = path;
            while let (Some(parent), Some(name)) = (child.parent(), child.file_name()) {
                if parent.as_os_str().is_empty() {
                    break;
                }
                let fresh = seen.insert(parent);
                // Absent (None): what would create it is watched above.
                if let Some(wd) = watch.add(parent)? {
                    let relevant = watch.relevant.entry(wd).or_default();
                    relevant.names.insert(name.as_bytes().to_vec());
                }
                if !fresh {
                    break; // its ancestors are watched already
                }
                child = parent;
            }
        }
        Some(watch)
    }

    /// Some(Some(wd)): watched; Some(None): absent; None: cannot be watched.
    fn add(&self, path: &Path) -> Option<Option<i32>> {
        let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid NUL-terminated path and a zeroed out-parameter.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::statfs(c_path.as_ptr(), &mut fs) } != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            return matches!(errno, Some(libc::ENOENT) | Some(libc::ENOTDIR)).then_some(None);
        }
        if !LOCAL.contains(&(fs.f_type as i64)) {
            return None;
        }
        // Following a symlink: its target's inode (the link itself is an
        // entry of its directory, watched too).
        // SAFETY: our inotify descriptor and a valid path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), EVENTS) };
        if wd >= 0 {
            return Some(Some(wd));
        }
        let errno = std::io::Error::last_os_error().raw_os_error();
        // Gone between the two calls: absent (its directory is watched).
        matches!(errno, Some(libc::ENOENT) | Some(libc::ENOTDIR)).then_some(None)
    }

    /// Whether an event counts (see [`Watch::relevant`]).
    fn counts(&self, wd: i32, mask: u32, name: &[u8]) -> bool {
        match self.relevant.get(&wd) {
            Some(r) => {
                name.is_empty() || r.names.contains(name) || (r.input && mask & LISTING != 0)
            }
            // An overflow (wd -1) or a watch we do not know.
            None => true,
        }
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
        // Aligned for the event headers.
        let mut buf = vec![0u64; 512];
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut any = false;
        loop {
            // SAFETY: reads into our own buffer from our own descriptor.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len() * 8,
                )
            };
            if n > 0 {
                // SAFETY: the kernel wrote `n` bytes of whole events there.
                let bytes =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
                let mut at = 0;
                while at + header <= bytes.len() {
                    // SAFETY: a whole event header starts at `at` (unaligned read).
                    let event: libc::inotify_event =
                        unsafe { std::ptr::read_unaligned(bytes[at..].as_ptr().cast()) };
                    let end = (at + header + event.len as usize).min(bytes.len());
                    let name = &bytes[at + header..end];
                    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                    any |= event.mask & libc::IN_Q_OVERFLOW != 0
                        || self.counts(event.wd, event.mask, name);
                    at = end;
                }
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
        // Other entries coming and going above (another program's files in
        // `/tmp`) are no change to the inputs.
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        std::fs::remove_file(dir.path().join("unrelated.txt")).unwrap();
        std::fs::write(sub.join("sibling.txt"), "x").unwrap();
        assert!(
            !watch.changed() && !watch.ever_changed(),
            "unrelated entries"
        );
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

    #[test]
    fn a_listed_directory_changes_when_its_entries_come_and_go_not_when_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        std::fs::write(&out, "1").unwrap();
        let Some(watch) = Watch::new([dir.path()]) else {
            return; // a file system inotify cannot vouch for: nothing to test
        };
        // The program writing its output file again: the listing and the
        // directory's stamp are the same.
        std::fs::write(&out, "2").unwrap();
        assert!(
            !watch.changed() && !watch.ever_changed(),
            "an entry rewritten"
        );
        std::fs::write(dir.path().join("new.csv"), "x").unwrap();
        assert!(watch.changed(), "an entry added");
        std::fs::rename(dir.path().join("new.csv"), dir.path().join("moved.csv")).unwrap();
        assert!(watch.changed(), "an entry renamed");
        std::fs::remove_file(&out).unwrap();
        assert!(watch.changed(), "an entry removed");
    }
}
