//! Invocation keys: BLAKE3 over tagged, length-prefixed fields, starting
//! with a domain and `KEY_FORMAT_VERSION`. Every field is listed in
//! `docs/cache-key.md`; changing one bumps the version.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bumped whenever what goes into a key, or how, changes.
pub const KEY_FORMAT_VERSION: u32 = 1;

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

    /// An environment variable: its name and the hash of its value (values
    /// are never stored in clear), or "unset".
    pub fn env(&mut self, name: &str, value: Option<&OsStr>) -> &mut Self {
        let digest = match value {
            Some(v) => blake3::hash(v.as_bytes()).as_bytes().to_vec(),
            None => b"unset".to_vec(),
        };
        self.field("env.name", name.as_bytes())
            .field("env.value", &digest)
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

/// The key of `casher run`: argv, working directory, selected environment
/// variables, whether stdout/stderr are terminals, and stdin.
pub fn run_key(
    argv: &[impl AsRef<OsStr>],
    cwd: &Path,
    env: &[(String, Option<std::ffi::OsString>)],
    tty: (bool, bool),
    stdin: &StdinIdentity,
) -> String {
    let mut key = KeyBuilder::new("casher.run");
    key.field("argc", &(argv.len() as u64).to_le_bytes());
    for arg in argv {
        key.field("arg", arg.as_ref().as_bytes());
    }
    key.field("cwd", cwd.as_os_str().as_bytes());
    let mut env: Vec<_> = env.iter().collect();
    env.sort_by(|a, b| a.0.cmp(&b.0));
    env.dedup_by(|a, b| a.0 == b.0);
    for (name, value) in env {
        key.env(name, value.as_deref());
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
        let with_env = |v: Option<&str>| {
            run_key(
                &["make", "all"],
                Path::new("/p"),
                &[("MODE".to_owned(), v.map(Into::into))],
                (false, false),
                &StdinIdentity::Empty,
            )
        };
        assert_ne!(k, with_env(None));
        assert_ne!(with_env(Some("a")), with_env(Some("b")));
        assert_ne!(with_env(None), with_env(Some("")));
    }
}
