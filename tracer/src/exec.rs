//! What the kernel reads on `execve` without an `open` we could see: the
//! script's `#!` interpreter and the ELF program interpreter (`PT_INTERP`,
//! the dynamic loader). Both are inputs of the run.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The interpreter named on a `#!` line, if the file starts with one.
pub fn shebang(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let text = String::from_utf8_lossy(line);
    let interpreter = text.split_whitespace().next()?;
    Some(PathBuf::from(interpreter))
}

/// The `PT_INTERP` path of a 64-bit little-endian ELF file. Reads only the
/// header, the program headers and the interpreter string: compilers are
/// tens of megabytes.
pub fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let phoff = u64_at(&header, 32);
    let phentsize = usize::from(u16_at(&header, 54));
    let phnum = usize::from(u16_at(&header, 56));
    if phentsize < 56 || phnum > 256 {
        return None;
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.read_exact_at(&mut table, phoff).ok()?;
    for ph in table.chunks_exact(phentsize) {
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let offset = u64_at(ph, 8);
            let size = usize::try_from(u64_at(ph, 32)).ok()?.min(4096);
            let mut raw = vec![0u8; size];
            file.read_exact_at(&mut raw, offset).ok()?;
            let raw = raw.split(|&b| b == 0).next()?;
            return Some(PathBuf::from(String::from_utf8_lossy(raw).into_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_binaries_have_a_loader() {
        let sh = Path::new("/bin/sh");
        let loader = elf_interpreter(&std::fs::canonicalize(sh).unwrap()).expect("dynamic /bin/sh");
        assert!(loader.to_string_lossy().contains("ld-linux"), "{loader:?}");
    }

    #[test]
    fn shebang_lines() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/usr/bin/env  python3 -u\nprint(1)\n").unwrap();
        assert_eq!(shebang(&script).unwrap(), Path::new("/usr/bin/env"));
        std::fs::write(&script, "print(1)\n").unwrap();
        assert!(shebang(&script).is_none());
    }
}
