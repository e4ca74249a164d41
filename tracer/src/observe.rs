//! The raw facts the tracer reports about a path: what a `stat` returned,
//! and content hashes taken with plain `read`s (never a memory map: a file
//! truncated underneath a map kills the reader with SIGBUS).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Files modified this recently (before the moment they are read) are
/// hashed as the command opens them, so a write within the same timestamp
/// tick cannot go unseen. Must be at least the store's racy window
/// (`casher_store::RACY_NS`; a test in `casher-record` checks it).
pub const RECENT_NS: i128 = 2_000_000_000;

/// The type of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// What a `stat` call returned, as far as a program can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFacts {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub uid: u32,
    pub gid: u32,
}

/// How much of a [`StatFacts`] the observing call revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reveals {
    /// Only that the path exists, and its type (`unlink` succeeded, ...).
    Kind,
    /// Type and permissions (`access`, `chdir`).
    KindMode,
    /// Everything `stat` returns.
    All,
}

impl StatFacts {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let t = meta.file_type();
        let kind = if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() {
            Kind::CharDevice
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else {
            Kind::File
        };
        Self {
            kind,
            mode: meta.mode() & 0o7777,
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

/// (size, mtime, ctime, inode): what changes when content may have changed.
pub type ContentStamp = (u64, i128, i128, u64);

pub fn content_stamp(meta: &std::fs::Metadata) -> ContentStamp {
    (
        meta.size(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        meta.ino(),
    )
}

pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Was this file modified within [`RECENT_NS`] of `at_ns`?
pub fn recent(stamp: &ContentStamp, at_ns: i128) -> bool {
    stamp.1.max(stamp.2) + RECENT_NS >= at_ns
}

/// BLAKE3 of a regular file's content, read with `read`. `None` when it
/// cannot be read, or when its size changed while it was read (another
/// process is writing it: such a run is not cacheable anyway).
pub fn hash_file(path: &Path) -> Option<[u8; 32]> {
    let mut file = std::fs::File::open(path).ok()?;
    let expected = file.metadata().ok()?.len();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    (total == expected).then(|| *hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_read_and_matches_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(hash_file(&f), Some(*blake3::hash(b"hello").as_bytes()));
        assert_eq!(hash_file(&dir.path().join("missing")), None);
    }

    #[test]
    fn facts_of_a_directory_and_recent_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(StatFacts::of(&meta).kind, Kind::Dir);
        let stamp = content_stamp(&meta);
        assert!(recent(&stamp, now_ns()));
        assert!(!recent(&stamp, now_ns() + RECENT_NS + 1_000_000_000));
    }
}
