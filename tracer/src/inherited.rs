//! What the command inherits from casher's own caller that casher cannot
//! record: open descriptors beyond stdin/stdout/stderr (`cmd 3<file`, a
//! jobserver pipe), and a terminal on stdin. And whether casher itself is
//! being traced (then it must not trace: a process has one tracer).

use std::os::unix::fs::MetadataExt;

pub struct Inherited {
    /// Descriptor numbers above 2 the command inherits.
    pub fds: Vec<i32>,
    /// (device, inode) of each, and of a terminal stdin.
    pub identities: Vec<(u64, u64)>,
    /// More than the filter can watch.
    pub too_many: bool,
}

fn cloexec(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags < 0 || flags & libc::FD_CLOEXEC != 0
}

/// `/dev/null`: nothing comes out of it, nothing written to it matters.
fn is_null(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
}

/// Our descriptors that a child started now would inherit.
pub fn descriptors(tty_stdin: bool) -> Inherited {
    let mut fds = Vec::new();
    let mut identities = Vec::new();
    if tty_stdin {
        if let Ok(meta) = std::fs::metadata("/proc/self/fd/0") {
            identities.push((meta.dev(), meta.ino()));
        }
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Inherited {
            fds,
            identities,
            too_many: false,
        };
    };
    let mut numbers: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    numbers.sort_unstable();
    for fd in numbers {
        if cloexec(fd) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        if is_null(&meta) {
            continue;
        }
        fds.push(fd);
        identities.push((meta.dev(), meta.ino()));
    }
    let too_many = fds.len() > crate::filter::MAX_WATCHED_FDS;
    Inherited {
        fds,
        identities,
        too_many,
    }
}

/// Is this process traced (by a debugger, strace, or an outer `casher
/// run`)? Read from `TracerPid` in `/proc/self/status`.
pub fn traced_by_another_process() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .map(|v| v.trim() != "0")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_traced_and_sees_an_inherited_descriptor() {
        assert!(!traced_by_another_process());
        let file = tempfile::tempfile().unwrap();
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        assert!(
            !descriptors(false).fds.contains(&fd),
            "std opens with O_CLOEXEC"
        );
        // SAFETY: clears FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        assert!(descriptors(false).fds.contains(&fd));
    }
}
