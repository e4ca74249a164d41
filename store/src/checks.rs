//! Checking one recorded input against the filesystem now: exactly what the
//! run observed, nothing more. Every check about a path starts from one
//! `stat` (or `lstat`) shared through [`StatMemo`], so metadata checks cost
//! no syscall beyond the one the content fast path needs anyway.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::fsutil::{hash_file, Stamp};
use crate::id::ObjectId;
use crate::lookup::{dir_listing_hash, stamp_trusted, Change, ChangeKind, CodeOracle};
use crate::record::{FileKind, Input, Meta, StoredPath};

pub(crate) enum InputCheck {
    Same,
    SameContentNewStamp(Stamp),
    Changed(Change),
}

/// The result of a `stat` (following links) or `lstat`: the metadata, or
/// the errno it failed with.
type StatResult = Result<std::fs::Metadata, i32>;

/// Memoized `stat`/`lstat` results of one variant check. One `lstat`
/// answers both questions unless the path is a symlink (then a `stat`
/// follows it): most paths cost one syscall whatever is checked about them.
#[derive(Default)]
pub(crate) struct StatMemo<'a> {
    results: HashMap<(&'a [u8], bool), StatResult>,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl<'a> StatMemo<'a> {
    fn get(&mut self, path: &'a StoredPath, follow: bool) -> &StatResult {
        let key = (path.0.as_slice(), follow);
        if !self.results.contains_key(&key) {
            let p = path.path();
            let lstat = match self.results.get(&(path.0.as_slice(), false)) {
                Some(known) => known.clone(),
                None => std::fs::symlink_metadata(&p).map_err(|e| errno_of(&e)),
            };
            let is_link = matches!(&lstat, Ok(m) if m.file_type().is_symlink());
            if !is_link {
                self.results
                    .insert((path.0.as_slice(), true), lstat.clone());
            } else if follow {
                let stat = std::fs::metadata(&p).map_err(|e| errno_of(&e));
                self.results.insert((path.0.as_slice(), true), stat);
            }
            self.results.insert((path.0.as_slice(), false), lstat);
        }
        &self.results[&key]
    }
}

fn changed(path: &StoredPath, kind: ChangeKind) -> InputCheck {
    InputCheck::Changed(Change {
        subject: path.display(),
        kind,
    })
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn is_absent(errno: i32) -> bool {
    errno == libc::ENOENT || errno == libc::ENOTDIR
}

fn errno_text(errno: i32) -> String {
    if is_absent(errno) {
        return "absent".to_owned();
    }
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// `Same` when `now` shows what `meta` recorded; else what differs.
fn compare_meta(recorded: &Meta, now: &std::fs::Metadata) -> Option<String> {
    let kind = FileKind::of(now.file_type());
    if kind != recorded.kind {
        return Some(format!("was a {:?}, now a {kind:?}", recorded.kind).to_lowercase());
    }
    if let Some(mode) = recorded.mode {
        let m = now.mode() & 0o7777;
        if m != mode {
            return Some(format!("mode {mode:o} -> {m:o}"));
        }
    }
    if let Some(size) = recorded.size {
        if now.size() != size {
            return Some(format!("size {size} -> {}", now.size()));
        }
    }
    if let Some(mtime) = recorded.mtime_ns {
        let m = now.mtime().saturating_mul(1_000_000_000) + now.mtime_nsec();
        if m != mtime {
            return Some("modification time".to_owned());
        }
    }
    if let Some(window) = recorded.mtime_window {
        let m = now.mtime().saturating_mul(1_000_000_000) + now.mtime_nsec();
        if !window.holds(m) {
            return Some("modification time relative to the other inputs".to_owned());
        }
    }
    if let Some((uid, gid)) = recorded.owner {
        if (now.uid(), now.gid()) != (uid, gid) {
            return Some(format!("owner {uid}:{gid} -> {}:{}", now.uid(), now.gid()));
        }
    }
    None
}

fn check_content<'a>(
    path: &'a StoredPath,
    hash: &ObjectId,
    stamp: &Stamp,
    memo: &mut StatMemo<'a>,
) -> InputCheck {
    let meta = match memo.get(path, true) {
        Ok(meta) => meta.clone(),
        Err(errno) if is_absent(*errno) => return changed(path, ChangeKind::Deleted),
        Err(errno) => return changed(path, ChangeKind::Unreadable(errno_text(*errno))),
    };
    let now = Stamp::of(&meta);
    if now == *stamp {
        return InputCheck::Same;
    }
    if meta.is_dir() {
        return changed(
            path,
            ChangeKind::Unreadable("is now a directory".to_owned()),
        );
    }
    let hashed_at = now_ns();
    match hash_file(&path.path()) {
        Ok((h, _)) if ObjectId::from(h) == *hash => {
            if stamp_trusted(&now, hashed_at) {
                InputCheck::SameContentNewStamp(now)
            } else {
                InputCheck::Same
            }
        }
        Ok((h, _)) => changed(
            path,
            ChangeKind::Modified {
                before: hash.hex(),
                now: ObjectId::from(h).hex(),
            },
        ),
        Err(e) => changed(path, ChangeKind::Unreadable(e.to_string())),
    }
}

pub(crate) fn check_input<'a>(
    input: &'a Input,
    oracle: &dyn CodeOracle,
    own: &HashMap<PathBuf, HashSet<Vec<u8>>>,
    memo: &mut StatMemo<'a>,
) -> InputCheck {
    match input {
        Input::File { path, hash, stamp } => check_content(path, hash, stamp, memo),
        // "Absent" means resolving the path finds nothing (a dangling
        // symlink included), as the run's stat/open saw it.
        // "No entry": not even a dangling link (an `lstat` that does not
        // follow the final component), so the same check without following.
        Input::Absent { path } | Input::NoEntry { path } => {
            match memo.get(path, matches!(input, Input::Absent { .. })) {
                Err(errno) if *errno == libc::ENOENT => InputCheck::Same,
                Err(errno) => changed(
                    path,
                    ChangeKind::Resolution {
                        before: "absent".to_owned(),
                        now: errno_text(*errno),
                    },
                ),
                Ok(_) => changed(path, ChangeKind::Appeared),
            }
        }
        Input::Fails { path, errno } => match memo.get(path, true) {
            Err(now) if now == errno => InputCheck::Same,
            Err(now) => changed(
                path,
                ChangeKind::Resolution {
                    before: errno_text(*errno),
                    now: errno_text(*now),
                },
            ),
            Ok(_) => changed(
                path,
                ChangeKind::Resolution {
                    before: errno_text(*errno),
                    now: "found".to_owned(),
                },
            ),
        },
        Input::Meta { path, follow, meta } => match memo.get(path, *follow) {
            Ok(now) => match compare_meta(meta, now) {
                None => InputCheck::Same,
                Some(what) => changed(path, ChangeKind::Metadata(what)),
            },
            Err(errno) if is_absent(*errno) => changed(path, ChangeKind::Deleted),
            Err(errno) => changed(path, ChangeKind::Unreadable(errno_text(*errno))),
        },
        Input::Replaceable { path, mode } => match memo.get(path, false) {
            Err(errno) if *errno == libc::ENOENT => InputCheck::Same,
            Ok(now) if now.is_file() && now.mode() & 0o7777 == *mode => InputCheck::Same,
            Ok(now) => changed(
                path,
                ChangeKind::Metadata(format!(
                    "it is now a {:?} with mode {:o}, which the command would keep",
                    FileKind::of(now.file_type()),
                    now.mode() & 0o7777
                )),
            ),
            Err(errno) => changed(path, ChangeKind::Unreadable(errno_text(*errno))),
        },
        Input::Link { path, target } => {
            let now = match memo.get(path, false) {
                Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(path.path())
                    .ok()
                    .map(|t| StoredPath::new(&t)),
                Ok(_) => None,
                Err(errno) if is_absent(*errno) => return changed(path, ChangeKind::Deleted),
                Err(errno) => return changed(path, ChangeKind::Unreadable(errno_text(*errno))),
            };
            if now == *target {
                InputCheck::Same
            } else {
                let show = |t: &Option<StoredPath>| {
                    t.as_ref()
                        .map_or("(not a symlink)".to_owned(), StoredPath::display)
                };
                changed(
                    path,
                    ChangeKind::LinkTarget {
                        before: show(target),
                        now: show(&now),
                    },
                )
            }
        }
        Input::Dir { path, hash } => match dir_listing_hash(
            &path.path(),
            own.get(&path.path()).unwrap_or(&HashSet::new()),
        ) {
            Ok(now) if now == *hash => InputCheck::Same,
            Ok(_) => changed(path, ChangeKind::Listing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                changed(path, ChangeKind::Deleted)
            }
            Err(e) => changed(path, ChangeKind::Unreadable(e.to_string())),
        },
        Input::Context { name, digest } => {
            if oracle.context(name) == Some(*digest) {
                InputCheck::Same
            } else {
                InputCheck::Changed(Change {
                    subject: name.clone(),
                    kind: ChangeKind::Context,
                })
            }
        }
        Input::Code { name, path, hash } => {
            let p = path.as_ref().map(StoredPath::path);
            let now = oracle.code_hash(name, p.as_deref());
            if now.as_deref() == Some(hash.as_str()) {
                InputCheck::Same
            } else {
                InputCheck::Changed(Change {
                    subject: name.clone(),
                    kind: ChangeKind::Code {
                        before: hash.clone(),
                        now,
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn check(input: &Input) -> bool {
        let own = HashMap::new();
        matches!(
            check_input(
                input,
                &crate::lookup::NoCode,
                &own,
                &mut StatMemo::default()
            ),
            InputCheck::Same
        )
    }

    #[test]
    fn metadata_holds_only_while_observed_fields_hold() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        let observed = Input::Meta {
            path: StoredPath::new(&f),
            follow: true,
            meta: Meta {
                kind: FileKind::File,
                mode: Some(meta.mode() & 0o7777),
                size: None,
                mtime_ns: None,
                mtime_window: None,
                owner: None,
            },
        };
        assert!(check(&observed));
        std::fs::write(&f, "longer").unwrap();
        assert!(check(&observed), "size was not observed");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!check(&observed));
        std::fs::remove_file(&f).unwrap();
        std::fs::create_dir(&f).unwrap();
        assert!(!check(&observed));
    }

    #[test]
    fn replaceable_holds_for_absent_or_same_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let input = Input::Replaceable {
            path: StoredPath::new(&f),
            mode: 0o644,
        };
        assert!(check(&input));
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check(&input));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!check(&input));
    }

    #[test]
    fn link_targets_and_racy_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink("a", &l).unwrap();
        let input = |t: Option<&str>| Input::Link {
            path: StoredPath::new(&l),
            target: t.map(|t| StoredPath::new(std::path::Path::new(t))),
        };
        assert!(check(&input(Some("a"))));
        assert!(!check(&input(Some("b"))));
        assert!(!check(&input(None)));
        let fresh = Stamp {
            size: 1,
            mtime_ns: 10,
            ctime_ns: 10,
            ino: 1,
        };
        assert!(!stamp_trusted(&fresh, 10 + RACY_NS_FOR_TEST));
        assert!(stamp_trusted(&fresh, 11 + RACY_NS_FOR_TEST));
    }

    const RACY_NS_FOR_TEST: i128 = crate::lookup::RACY_NS;
}
