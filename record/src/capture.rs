//! A traced run becomes a stored variant: inputs hashed with their stat
//! snapshot, outputs stored as objects, output chunks kept in order.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use casher_store::{
    dir_listing_hash, output_names, Bytes, HashCache, Input, ObjectId, Output, Stamp, StdioChunk,
    Store, StoredPath, Stream, Variant,
};
use casher_tracer::{ObservedInput, ObservedOutput, TraceReport};
use rayon::prelude::*;

use crate::error::{RecordError, Result};

/// Output chunks up to this size stay inside the record; larger ones become
/// objects.
pub const INLINE_LIMIT: usize = 64 * 1024;

fn unreadable(path: &Path, reason: impl ToString) -> RecordError {
    RecordError::Unreadable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Hashes every input and stores every output of `report` as a variant of
/// `key`. Inputs are read once here; files the run changed after reading
/// carry the content hash from before the change and a blank stamp, so a
/// lookup always re-hashes them.
pub fn to_variant(
    store: &Store,
    key: &str,
    description: &str,
    report: &TraceReport,
    created_ns: u64,
) -> Result<Variant> {
    let outputs = outputs(store, report)?;
    let own = output_names(&outputs);
    // Hashing inputs is most of the cost of recording: skip files already
    // hashed with the same stat stamp, and use every core for the rest.
    let hashes = store.hash_cache();
    let inputs = report
        .inputs
        .par_iter()
        .map(|input| to_input(input, &own, &hashes))
        .collect::<Result<Vec<Input>>>()?;
    hashes.save();
    let stdio = stdio(store, report)?;
    Ok(Variant {
        key: key.to_owned(),
        description: description.to_owned(),
        created_ns,
        inputs,
        outputs,
        stdio,
        exit_code: report.exit.shell_code(),
        value: None,
    })
}

fn to_input(
    input: &ObservedInput,
    own: &HashMap<PathBuf, HashSet<Vec<u8>>>,
    hashes: &HashCache,
) -> Result<Input> {
    Ok(match input {
        ObservedInput::File {
            path,
            before: Some(hash),
        } => Input::File {
            path: StoredPath::new(path),
            hash: ObjectId(*hash),
            stamp: Stamp {
                size: u64::MAX,
                mtime_ns: 0,
                ctime_ns: 0,
                ino: 0,
            },
        },
        ObservedInput::File { path, before: None } => {
            let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
            let hash = hashes.hash(path, &meta).map_err(|e| unreadable(path, e))?;
            Input::File {
                path: StoredPath::new(path),
                hash,
                stamp: Stamp::of(&meta),
            }
        }
        ObservedInput::Absent { path } => Input::Absent {
            path: StoredPath::new(path),
        },
        ObservedInput::Dir { path } => Input::Dir {
            path: StoredPath::new(path),
            hash: dir_listing_hash(path, own.get(path).unwrap_or(&HashSet::new()))
                .map_err(|e| unreadable(path, e))?,
        },
    })
}

fn outputs(store: &Store, report: &TraceReport) -> Result<Vec<Output>> {
    let mut outputs = Vec::with_capacity(report.outputs.len());
    for output in &report.outputs {
        outputs.push(match output {
            ObservedOutput::File { path } => {
                let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
                let (hash, size) = store.backend().put_file(path)?;
                Output::File {
                    path: StoredPath::new(path),
                    hash,
                    size,
                    mode: meta.permissions().mode(),
                }
            }
            ObservedOutput::Dir { path } => Output::Dir {
                path: StoredPath::new(path),
                mode: std::fs::metadata(path)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0o755),
            },
            ObservedOutput::Symlink { path, target } => Output::Symlink {
                path: StoredPath::new(path),
                target: StoredPath::new(target),
            },
            ObservedOutput::Deleted { path } => Output::Deleted {
                path: StoredPath::new(path),
            },
        });
    }
    Ok(outputs)
}

fn stdio(store: &Store, report: &TraceReport) -> Result<Vec<StdioChunk>> {
    let mut stdio = Vec::with_capacity(report.stdio.len());
    for chunk in &report.stdio {
        let bytes = if chunk.bytes.len() <= INLINE_LIMIT {
            Bytes::Inline(chunk.bytes.clone())
        } else {
            let (id, size) = store.backend().put_object(&mut chunk.bytes.as_slice())?;
            Bytes::Object { id, size }
        };
        stdio.push(StdioChunk {
            stream: match chunk.stream {
                casher_tracer::Stream::Stdout => Stream::Stdout,
                casher_tracer::Stream::Stderr => Stream::Stderr,
            },
            bytes,
        });
    }
    Ok(stdio)
}
