//! What one run recorded: its inputs (to validate a hit) and its outputs (to
//! replay it). Serialized with postcard behind a magic, a format version and
//! a trailing BLAKE3 checksum, so a flipped byte or a truncation is detected
//! and read as a miss.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::Stamp;
use crate::id::ObjectId;

/// Version of the variant record format. An unknown or older version is a
/// miss, never an error.
pub const RECORD_FORMAT_VERSION: u32 = 2;
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
    /// A path that was looked for and did not exist.
    Absent { path: StoredPath },
    /// A directory that was listed: the hash of its sorted entry names.
    Dir { path: StoredPath, hash: ObjectId },
    /// Code: a module (or definition) and its normalized hash, checked by the
    /// caller's [`crate::CodeOracle`].
    Code {
        name: String,
        path: Option<StoredPath>,
        hash: String,
    },
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

/// One out-of-band buffer of a return value, with the object's stat stamp
/// when it was verified: a hit re-hashes it only when the stamp changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueBuffer {
    pub id: ObjectId,
    pub size: u64,
    pub stamp: Stamp,
}

impl Variant {
    /// Identity of the inputs: two variants with the same inputs describe the
    /// same situation, so the newer replaces the older.
    pub fn inputs_id(&self) -> ObjectId {
        let mut hasher = blake3::Hasher::new();
        for input in &self.inputs {
            let bytes = postcard::to_stdvec(&match input {
                // The stamp is a cache of the hash, not part of the identity.
                Input::File { path, hash, .. } => Input::File {
                    path: path.clone(),
                    hash: *hash,
                    stamp: Stamp {
                        size: 0,
                        mtime_ns: 0,
                        ctime_ns: 0,
                        ino: 0,
                    },
                },
                other => other.clone(),
            })
            .unwrap_or_default();
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
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
        ids
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&RECORD_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&postcard::to_stdvec(self).unwrap_or_default());
        let checksum = blake3::hash(&out);
        out.extend_from_slice(checksum.as_bytes());
        out
    }

    /// Decodes a record; `Err` says why it is unusable (which is a miss).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MAGIC.len() + 4 + 32 {
            return Err("truncated".to_owned());
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != checksum {
            return Err("checksum mismatch (corrupt or truncated)".to_owned());
        }
        if &body[..8] != MAGIC {
            return Err("not a casher record".to_owned());
        }
        let version = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
        if version != RECORD_FORMAT_VERSION {
            return Err(format!(
                "record format {version}, this casher reads {RECORD_FORMAT_VERSION}"
            ));
        }
        postcard::from_bytes(&body[12..]).map_err(|e| format!("undecodable: {e}"))
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
    fn round_trip_and_every_flipped_byte_is_detected() {
        let v = sample();
        let bytes = v.encode();
        assert_eq!(Variant::decode(&bytes).unwrap(), v);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(Variant::decode(&bad).is_err(), "flip at {i} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(Variant::decode(&bytes[..len]).is_err());
        }
    }
}
