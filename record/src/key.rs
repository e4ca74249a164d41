//! Invocation keys: BLAKE3 over tagged, length-prefixed fields, starting
//! with a domain and `KEY_FORMAT_VERSION`. Every field is listed in
//! `docs/cache-key.md`; changing one bumps the version.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bumped whenever what goes into a key, or how, changes.
pub const KEY_FORMAT_VERSION: u32 = 3;

/// Accumulates named fields; the order of calls is part of the key.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
}

impl KeyBuilder {
    pub fn new(domain: &str) -> Self {
        let mut builder = Self {
            hasher: blake3::Hasher::new(),
        };
        builder.field("domain", domain.as_bytes());
        builder.field("version", &KEY_FORMAT_VERSION.to_le_bytes());
        builder
    }

    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// A selected environment variable's name. Its value is never part of
    /// a key: it is an input of each variant, hashed with the store's secret.
    pub fn env_name(&mut self, name: &str) -> &mut Self {
        self.field("env.name", name.as_bytes())
    }

    pub fn finish(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// What the command's stdin was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinIdentity {
    /// A terminal: reading it makes the run uncacheable.
    Tty,
    /// A file or pipe: the hash of its whole content.
    Content([u8; 32]),
    /// Nothing to read (closed, /dev/null).
    Empty,
}

impl StdinIdentity {
    pub fn content(data: &[u8]) -> Self {
        StdinIdentity::Content(*blake3::hash(data).as_bytes())
    }
}

/// The key of `casher run`: argv, working directory, the names of the
/// `--env` variables, whether stdout/stderr are terminals, and stdin. The
/// *values* of the environment (the default set and `--env`) and the umask
/// are checked per variant (`RunContext`), so a changed `PATH` is a miss
/// that says so, and switching back and forth keeps both results.
pub fn run_key(
    argv: &[impl AsRef<OsStr>],
    cwd: &Path,
    env_names: &[String],
    tty: (bool, bool),
    stdin: &StdinIdentity,
) -> String {
    let mut key = KeyBuilder::new("casher.run");
    key.field("argc", &(argv.len() as u64).to_le_bytes());
    for arg in argv {
        key.field("arg", arg.as_ref().as_bytes());
    }
    key.field("cwd", cwd.as_os_str().as_bytes());
    let mut names: Vec<&String> = env_names.iter().collect();
    names.sort();
    names.dedup();
    for name in names {
        key.field("env.selected", name.as_bytes());
    }
    key.field("tty.stdout", &[u8::from(tty.0)]);
    key.field("tty.stderr", &[u8::from(tty.1)]);
    match stdin {
        StdinIdentity::Tty => key.field("stdin", b"tty"),
        StdinIdentity::Empty => key.field("stdin", b"empty"),
        StdinIdentity::Content(hash) => key.field("stdin.content", hash),
    };
    key.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_key() {
        let base = || {
            run_key(
                &["make", "all"],
                Path::new("/p"),
                &[],
                (false, false),
                &StdinIdentity::Empty,
            )
        };
        let k = base();
        assert_eq!(k, base());
        assert_ne!(
            k,
            run_key(
                &["make", "al", "l"],
                Path::new("/p"),
                &[],
                (false, false),
                &StdinIdentity::Empty
            )
        );
        assert_ne!(
            k,
            run_key(
                &["make", "all"],
                Path::new("/q"),
                &[],
                (false, false),
                &StdinIdentity::Empty
            )
        );
        assert_ne!(
            k,
            run_key(
                &["make", "all"],
                Path::new("/p"),
                &[],
                (true, false),
                &StdinIdentity::Empty
            )
        );
        assert_ne!(
            k,
            run_key(
                &["make", "all"],
                Path::new("/p"),
                &[],
                (false, false),
                &StdinIdentity::Tty
            )
        );
        let with_env = |names: &[&str]| {
            run_key(
                &["make", "all"],
                Path::new("/p"),
                &names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                (false, false),
                &StdinIdentity::Empty,
            )
        };
        assert_ne!(k, with_env(&["MODE"]));
        assert_eq!(with_env(&["A", "B"]), with_env(&["B", "A", "A"]));
    }
}
