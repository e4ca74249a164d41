//! What one run recorded: its inputs (to validate a hit) and its outputs (to
//! replay it). Serialized with postcard behind a magic and a format
//! version, and authenticated by a trailing keyed BLAKE3 MAC (see
//! `auth.rs`): a flipped byte, a truncation or a record written without the
//! store's secret is detected and read as a miss.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::{Keys, MAC_LEN};
use crate::fsutil::Stamp;
use crate::id::ObjectId;

/// Version of the variant record format. An unknown or older version is a
/// miss, never an error.
/// 3: typed observations (metadata, links, listings, pre-write states).
/// 4: the trailing checksum became a keyed MAC.
/// 5: inputs shared by many records (a fork server's import-time inputs)
///    are stored once, as an object the record names ([`SharedPrefix`]).
pub const RECORD_FORMAT_VERSION: u32 = 5;
const MAGIC: &[u8; 8] = b"CASHVAR\0";

/// A path stored as raw bytes, so non-UTF-8 names survive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredPath(pub Vec<u8>);

impl StoredPath {
    pub fn new(path: &Path) -> Self {
        Self(path.as_os_str().as_bytes().to_vec())
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.0))
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// Something the run depended on, with what it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A file that was read: its content hash, and the stat snapshot that
    /// lets a lookup skip re-hashing an untouched file.
    File {
        path: StoredPath,
        hash: ObjectId,
        stamp: Stamp,
    },
    /// A path that was looked for and did not exist (following symlinks:
    /// a dangling symlink is absent too).
    Absent { path: StoredPath },
    /// No directory entry at all at this path, not even a dangling symlink
    /// (what `lstat`, `mkdir` and `O_EXCL` see).
    NoEntry { path: StoredPath },
    /// A directory that was listed: the hash of its sorted entry names.
    Dir { path: StoredPath, hash: ObjectId },
    /// Code: a module (or definition) and its normalized hash, checked by the
    /// caller's [`crate::CodeOracle`].
    Code {
        name: String,
        path: Option<StoredPath>,
        hash: String,
    },
    /// What a `stat`-like call revealed about a path (following symlinks
    /// or not): only the fields that are `Some` were observed and must hold.
    Meta {
        path: StoredPath,
        follow: bool,
        meta: Meta,
    },
    /// What `readlink` (or following a symlink the run wrote through)
    /// revealed: the link's target, or `None` for "exists, not a symlink".
    Link {
        path: StoredPath,
        target: Option<StoredPath>,
    },
    /// Resolving the path failed with this errno (other than "absent"),
    /// e.g. `EACCES` for a directory the user cannot search.
    Fails { path: StoredPath, errno: i32 },
    /// A path the run replaced without looking at it first (`O_TRUNC`):
    /// the result is the same whether it was absent or a regular file with
    /// this permission mode (which a truncating open keeps), so either holds.
    Replaceable { path: StoredPath, mode: u32 },
    /// Part of the invocation's context that is not a file (an environment
    /// variable, the umask): a name and the digest of its value, checked
    /// by the caller's [`crate::CodeOracle::context`].
    Context { name: String, digest: ObjectId },
}

/// The type of a file, as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    pub fn of(file_type: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_dir() {
            FileKind::Dir
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::File
        }
    }
}

/// The observed part of a `stat` result. The kind is always known; the
/// other fields are `Some` only where the run could see them (the rule of
/// which is in `casher-record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits (`0o7777`).
    pub mode: Option<u32>,
    pub size: Option<u64>,
    pub mtime_ns: Option<i64>,
    /// Where the mtime must lie relative to the other mtimes the run saw
    /// (for a path the run itself rewrote: see [`MtimeWindow`]).
    pub mtime_window: Option<MtimeWindow>,
    /// (uid, gid).
    pub owner: Option<(u32, u32)>,
}

/// The mtime of a path the run looked at and then rewrote, kept as its
/// order among the mtimes of the run's other inputs: what `make` compares.
/// (An exact mtime would never hold again: the run's own write, or a hit's
/// restore, gives the path a new one.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtimeWindow {
    /// The newest other mtime not newer than this one.
    pub after: Option<i64>,
    /// It was equal to `after`: it must still be.
    pub equal: bool,
    /// The oldest other mtime newer than this one.
    pub before: Option<i64>,
}

impl MtimeWindow {
    /// The window of `mtime` among `others` (sorted ascending).
    pub fn of(mtime: i64, others: &[i64]) -> Self {
        let split = others.partition_point(|&m| m <= mtime);
        let after = split.checked_sub(1).map(|i| others[i]);
        Self {
            after,
            equal: after == Some(mtime),
            before: others.get(split).copied(),
        }
    }

    pub fn holds(&self, mtime: i64) -> bool {
        if self.equal {
            return Some(mtime) == self.after;
        }
        self.after.is_none_or(|a| a < mtime) && self.before.is_none_or(|b| mtime < b)
    }
}

/// An effect of the run on the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    File {
        path: StoredPath,
        hash: ObjectId,
        size: u64,
        mode: u32,
    },
    Symlink {
        path: StoredPath,
        target: StoredPath,
    },
    Deleted {
        path: StoredPath,
    },
    Dir {
        path: StoredPath,
        mode: u32,
    },
}

impl Output {
    pub fn path(&self) -> &StoredPath {
        match self {
            Output::File { path, .. }
            | Output::Symlink { path, .. }
            | Output::Deleted { path }
            | Output::Dir { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Output bytes: small chunks inline, large ones as objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bytes {
    Inline(Vec<u8>),
    Object { id: ObjectId, size: u64 },
}

/// Chunks of stdout/stderr in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioChunk {
    pub stream: Stream,
    pub bytes: Bytes,
}

/// One recorded run of an invocation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// The invocation key (hex) this variant belongs to.
    pub key: String,
    /// What was run, for humans: an argv or a function's qualified name.
    pub description: String,
    /// When it was recorded (ns since the epoch).
    pub created_ns: u64,
    /// The first inputs are the same in many records (`None`: none are).
    /// Every call a fork server serves starts with the ~2,000 inputs of the
    /// server's import: writing them into each record cost most of a
    /// miss, and reading them most of a hit. They are stored once, as an
    /// object named by its content, and the (authenticated) record names it.
    pub shared: Option<SharedPrefix>,
    /// Every input, the shared ones first. (A record read for maintenance
    /// only, `variants_uncounted`, holds just its own: after the shared.)
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    pub stdio: Vec<StdioChunk>,
    pub exit_code: i32,
    /// The pickled return value of a function: inline when small (a hit
    /// then reads one file), else an object.
    pub value: Option<Bytes>,
    /// The return value's large buffers (pickle protocol 5, out-of-band),
    /// in the pickle's order: each an object, memory-mapped on a hit
    /// instead of copied.
    pub value_buffers: Vec<ValueBuffer>,
}

/// How many of a variant's first inputs are shared with other records,
/// and the object holding them (known once stored; the store sets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPrefix {
    pub len: u32,
    pub object: Option<ObjectId>,
}

/// One out-of-band buffer of a return value, with the object's stat stamp
/// when it was verified: a hit re-hashes it only when the stamp changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueBuffer {
    pub id: ObjectId,
    pub size: u64,
    pub stamp: Stamp,
}

impl Variant {
    /// The inputs shared with other records (see [`Variant::shared`]).
    pub fn shared_inputs(&self) -> &[Input] {
        let len = self.shared.map_or(0, |s| s.len as usize);
        &self.inputs[..len.min(self.inputs.len())]
    }

    /// The inputs this record holds itself.
    pub fn own_inputs(&self) -> &[Input] {
        &self.inputs[self.shared_inputs().len()..]
    }

    /// Keeps the inputs `keep` accepts, the shared ones still first.
    pub fn retain_inputs(&mut self, mut keep: impl FnMut(&Input) -> bool) {
        let mut shared = 0u32;
        let mut i = 0usize;
        let before = self.shared_inputs().len();
        self.inputs.retain(|input| {
            let kept = keep(input);
            if kept && i < before {
                shared += 1;
            }
            i += 1;
            kept
        });
        if let Some(prefix) = &mut self.shared {
            if prefix.len != shared {
                *prefix = SharedPrefix {
                    len: shared,
                    object: None,
                };
            }
        }
    }

    /// Identity of the inputs: two variants with the same inputs describe the
    /// same situation, so the newer replaces the older.
    pub fn inputs_id(&self) -> ObjectId {
        self.inputs_id_from(inputs_identity(self.shared_inputs()))
    }

    /// `inputs_id`, given the identity of the shared inputs (which the
    /// store keeps with them, so that thousands are not hashed per record).
    pub(crate) fn inputs_id_from(&self, shared: ObjectId) -> ObjectId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&shared.0);
        hasher.update(&inputs_identity(self.own_inputs()).0);
        hasher.finalize().into()
    }

    /// Every object this variant references.
    pub fn objects(&self) -> Vec<ObjectId> {
        let mut ids = Vec::new();
        for output in &self.outputs {
            if let Output::File { hash, .. } = output {
                ids.push(*hash);
            }
        }
        for chunk in &self.stdio {
            if let Bytes::Object { id, .. } = chunk.bytes {
                ids.push(id);
            }
        }
        if let Some(Bytes::Object { id, .. }) = &self.value {
            ids.push(*id);
        }
        ids.extend(self.value_buffers.iter().map(|b| b.id));
        ids.extend(self.shared.and_then(|s| s.object));
        ids
    }

    /// The record bytes: magic, version, postcard body, MAC. `shared`:
    /// the object that holds the first inputs (stored by the store), which
    /// the body then leaves out.
    pub(crate) fn encode(&self, keys: &Keys, shared: Option<SharedPrefix>) -> Vec<u8> {
        let shared =
            shared.filter(|s| s.object.is_some() && s.len as usize == self.shared_inputs().len());
        let body = Wire {
            key: &self.key,
            description: &self.description,
            created_ns: self.created_ns,
            shared,
            inputs: if shared.is_some() {
                self.own_inputs()
            } else {
                &self.inputs
            },
            outputs: &self.outputs,
            stdio: &self.stdio,
            exit_code: self.exit_code,
            value: &self.value,
            value_buffers: &self.value_buffers,
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&RECORD_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&postcard::to_stdvec(&body).unwrap_or_default());
        let mac = keys.mac(&out);
        out.extend_from_slice(&mac);
        out
    }

    /// Decodes a record; `Err` says why it is unusable (which is a miss).
    /// Nothing in the body is looked at before the MAC holds. Its shared
    /// inputs, if any, are not in it: the store puts them in front.
    pub(crate) fn decode(bytes: &[u8], keys: &Keys) -> Result<Self, Rejected> {
        if bytes.len() < MAGIC.len() + 4 + MAC_LEN {
            return Err(Rejected::Unreadable("truncated".to_owned()));
        }
        if &bytes[..8] != MAGIC {
            return Err(Rejected::Unreadable("not a casher record".to_owned()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != RECORD_FORMAT_VERSION {
            return Err(Rejected::Unreadable(format!(
                "record format {version}, this casher reads {RECORD_FORMAT_VERSION}"
            )));
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        if !keys.verify(body, mac) {
            return Err(Rejected::Unauthentic);
        }
        postcard::from_bytes(&body[12..])
            .map_err(|e| Rejected::Unreadable(format!("undecodable: {e}")))
    }
}

/// A record's body as written: [`Variant`]'s fields in its order, with
/// only the record's own inputs when the shared ones are in an object.
/// (Decoded as a `Variant`: postcard writes a slice like a `Vec`.)
#[derive(Serialize)]
struct Wire<'a> {
    key: &'a str,
    description: &'a str,
    created_ns: u64,
    shared: Option<SharedPrefix>,
    inputs: &'a [Input],
    outputs: &'a [Output],
    stdio: &'a [StdioChunk],
    exit_code: i32,
    value: &'a Option<Bytes>,
    value_buffers: &'a [ValueBuffer],
}

/// The identity of a list of inputs: each one's encoding, except a
/// file's stamp, which caches its hash and is not part of what it says.
pub(crate) fn inputs_identity(inputs: &[Input]) -> ObjectId {
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    for input in inputs {
        bytes.clear();
        let encoded = match input {
            Input::File { path, hash, .. } => postcard::to_extend(&(0u8, path, hash), bytes),
            other => postcard::to_extend(other, bytes),
        };
        bytes = encoded.unwrap_or_default();
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hasher.finalize().into()
}

/// Why a record is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not a record of this format (old version, truncated, not ours).
    Unreadable(String),
    /// Its MAC does not hold: corrupted, forged, or written with another
    /// store's secret. Counted in the store's `rejected` counter.
    Unauthentic,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Unreadable(reason) => f.write_str(reason),
            Rejected::Unauthentic => f.write_str(
                "does not authenticate (corrupt, forged, or written with another store's secret)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Variant {
        Variant {
            key: "ab".repeat(32),
            description: "echo hi".into(),
            created_ns: 1,
            shared: None,
            inputs: vec![Input::Absent {
                path: StoredPath::new(Path::new("/x")),
            }],
            outputs: vec![],
            stdio: vec![StdioChunk {
                stream: Stream::Stdout,
                bytes: Bytes::Inline(b"hi\n".to_vec()),
            }],
            exit_code: 0,
            value: None,
            value_buffers: Vec::new(),
        }
    }

    #[test]
    fn mtime_windows_keep_the_order() {
        let others = [10, 20, 30];
        let w = MtimeWindow::of(25, &others);
        assert!(w.holds(21) && w.holds(29) && !w.holds(20) && !w.holds(30));
        let eq = MtimeWindow::of(20, &others);
        assert!(eq.holds(20) && !eq.holds(21));
        let newest = MtimeWindow::of(99, &others);
        assert!(newest.holds(31) && newest.holds(1_000) && !newest.holds(30));
        assert!(MtimeWindow::of(5, &[]).holds(0));
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let keys = Keys::from_secret([7; 32]);
        let v = sample();
        let bytes = v.encode(&keys, None);
        assert_eq!(Variant::decode(&bytes, &keys).unwrap(), v);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                Variant::decode(&bad, &keys).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        for len in 0..bytes.len() {
            assert!(Variant::decode(&bytes[..len], &keys).is_err());
        }
    }

    #[test]
    fn a_record_made_without_the_secret_is_unauthentic() {
        let keys = Keys::from_secret([7; 32]);
        let other = Keys::from_secret([8; 32]);
        let mut forged = sample();
        forged.inputs.clear();
        // Made with another key, or with the old unkeyed checksum.
        assert_eq!(
            Variant::decode(&forged.encode(&other, None), &keys),
            Err(Rejected::Unauthentic)
        );
        let mut unkeyed = forged.encode(&other, None);
        let body_len = unkeyed.len() - 32;
        let checksum = *blake3::hash(&unkeyed[..body_len]).as_bytes();
        unkeyed[body_len..].copy_from_slice(&checksum);
        assert_eq!(Variant::decode(&unkeyed, &keys), Err(Rejected::Unauthentic));
    }
}
