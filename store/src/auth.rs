//! The store's secret and the record MAC: the one place that decides which
//! records are trusted.
//!
//! Each cache directory holds a 32-byte random secret in `secret.key`
//! (mode 0600, owned by the user, created atomically: written to a private
//! temp file and hard-linked into place, so two processes creating a store
//! at once agree on one secret and nobody ever reads a half-written one).
//!
//! Keys derived from it (BLAKE3 `derive_key`, so each use has its own key):
//! - the record MAC key: every record ends with
//!   `BLAKE3-keyed(mac_key, magic || version || body)`; a record that does
//!   not authenticate is ignored (a miss) and counted. Since a record names
//!   every object it uses by content hash, and every object read is checked
//!   against that hash, authenticating the record authenticates everything a
//!   hit restores, prints or returns.
//! - the raw secret itself is handed to callers ([`crate::Store::secret`])
//!   to salt values that must not be recoverable from key names (selected
//!   environment variables): `blake3::keyed_hash(secret, value)`. The MAC
//!   key is derived, so that salt can never double as a record MAC.
//!
//! The format is documented in `docs/store-format.md`.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// File name of the secret inside the cache directory.
pub(crate) const SECRET_FILE: &str = "secret.key";
/// Context string of the record MAC key (BLAKE3 `derive_key`).
const MAC_CONTEXT: &str = "casher 2026-11 record MAC v1";
/// Length of a record MAC.
pub(crate) const MAC_LEN: usize = 32;

/// A store's secret and the keys derived from it.
#[derive(Clone)]
pub(crate) struct Keys {
    secret: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub(crate) fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            secret,
            mac: blake3::derive_key(MAC_CONTEXT, &secret),
        }
    }

    /// Loads the secret of the store in `cache_dir`, creating it if absent.
    pub(crate) fn load_or_create(cache_dir: &Path) -> Result<Self> {
        let path = cache_dir.join(SECRET_FILE);
        match read_secret(&path) {
            Ok(secret) => return Ok(Self::from_secret(secret)),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(err) => return Err(err),
        }
        create_secret(cache_dir, &path)?;
        read_secret(&path).map(Self::from_secret)
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The MAC of a record's authenticated bytes.
    pub(crate) fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        *blake3::keyed_hash(&self.mac, bytes).as_bytes()
    }

    /// Whether `tag` is the MAC of `bytes` (constant-time comparison).
    pub(crate) fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; MAC_LEN]>::try_from(tag) else {
            return false;
        };
        blake3::keyed_hash(&self.mac, bytes) == blake3::Hash::from_bytes(tag)
    }
}

fn insecure(path: &Path, reason: String) -> StoreError {
    StoreError::Insecure {
        path: path.to_path_buf(),
        reason,
        fix: format!(
            "remove it (`rm {}`): a new secret is made, and existing entries become misses",
            path.display()
        ),
    }
}

/// Reads the secret, refusing one that others could have read or written.
fn read_secret(path: &Path) -> Result<[u8; 32]> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    let meta = file.metadata().map_err(|e| StoreError::io(path, e))?;
    if !meta.is_file() {
        return Err(insecure(path, "is not a regular file".to_owned()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(insecure(
            path,
            format!("is owned by uid {}, not by you (uid {me})", meta.uid()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(insecure(
            path,
            format!(
                "is readable or writable by others (mode {:04o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    let mut secret = [0u8; 32];
    let mut extra = [0u8; 1];
    file.read_exact(&mut secret)
        .map_err(|e| StoreError::io(path, e))?;
    if file.read(&mut extra).map_err(|e| StoreError::io(path, e))? != 0 {
        return Err(insecure(path, "is not a 32-byte secret".to_owned()));
    }
    Ok(secret)
}

/// Writes a fresh secret to a private temp file and links it into place;
/// if another process got there first, its secret wins (ours is dropped).
fn create_secret(cache_dir: &Path, path: &Path) -> Result<()> {
    let mut secret = [0u8; 32];
    fill_random(&mut secret).map_err(|e| StoreError::io(path, e))?;
    let tmp: PathBuf = crate::fsutil::temp_path(cache_dir);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| StoreError::io(path, e))
}

fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += usize::try_from(n).unwrap_or(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_is_private_stable_and_refused_when_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let b = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.secret(), b.secret());
        assert_ne!(a.secret(), &[0u8; 32]);
        let path = dir.path().join(SECRET_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keys::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("readable or writable by others"), "{err}");
    }

    #[test]
    fn mac_depends_on_key_and_bytes() {
        let a = Keys::from_secret([1; 32]);
        let b = Keys::from_secret([2; 32]);
        let tag = a.mac(b"record");
        assert!(a.verify(b"record", &tag));
        assert!(!a.verify(b"recorc", &tag));
        assert!(!b.verify(b"record", &tag));
        assert!(!a.verify(b"record", &tag[..31]));
        // The MAC key is not the raw secret (the secret salts env values).
        assert_ne!(tag, *blake3::keyed_hash(&[1; 32], b"record").as_bytes());
    }

    #[test]
    fn concurrent_creators_agree_on_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secrets: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| *Keys::load_or_create(dir.path()).unwrap().secret()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }
}
