//! Reading the tracee's memory (path strings and small structs), and
//! writing a system call's result into it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const PAGE: usize = 4096;
const PATH_MAX: usize = 4096;

/// Reads up to `buf.len()` bytes at `addr` in process `pid`.
fn read_at(pid: i32, addr: u64, buf: &mut [u8]) -> usize {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` points into `buf`, valid for `buf.len()` bytes; the
    // kernel checks the remote range and fails instead of faulting.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).unwrap_or(0)
}

/// A NUL-terminated string at `addr` (a path argument), read page by page so
/// an unmapped page after the string is never touched.
pub fn read_cstring(pid: i32, addr: u64) -> Option<OsString> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    // Most paths are short: read small pieces (never past a page end, where
    // the next page may be unmapped) instead of zeroing a page per call.
    let mut chunk = [0u8; 256];
    while out.len() < PATH_MAX {
        let until_page_end = PAGE - (at as usize % PAGE);
        let len = until_page_end.min(chunk.len());
        let n = read_at(pid, at, &mut chunk[..len]);
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(OsString::from_vec(out));
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

/// The first 8 bytes at `addr` as a little-endian u64 (e.g. `open_how.flags`).
pub fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    let mut buf = [0u8; 8];
    (read_at(pid, addr, &mut buf) == 8).then(|| u64::from_le_bytes(buf))
}

/// `len` bytes at `addr` (a small struct such as a `sockaddr`); `None`
/// when fewer could be read.
pub fn read_bytes(pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    (read_at(pid, addr, &mut buf) == len).then_some(buf)
}

/// Writes `data` at `addr` in process `pid`; whether all of it was written.
pub fn write_bytes(pid: i32, addr: u64, data: &[u8]) -> bool {
    let local = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` points into `data`, valid for `data.len()` bytes (the
    // kernel only reads it); the kernel checks the remote range.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).is_ok_and(|n| n == data.len())
}
