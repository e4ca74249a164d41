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

/// For `@cached`: says whether a file is project source, and its
/// normalized-AST hash. Such files become code inputs (a reformat stays a
/// hit); compiled caches (`__pycache__`) are dropped from inputs and outputs.
pub type CodeHasher<'a> = dyn Fn(&Path) -> Option<String> + Sync + 'a;

fn is_bytecode_cache(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "__pycache__")
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
    code: Option<&CodeHasher<'_>>,
) -> Result<Variant> {
    let outputs = outputs(store, report, code.is_some())?;
    let own = output_names(&outputs);
    // Hashing inputs is most of the cost of recording: skip files already
    // hashed with the same stat stamp, and use every core for the rest.
    let hashes = store.hash_cache();
    let inputs = report
        .inputs
        .par_iter()
        .filter(|input| match (code, input) {
            (Some(_), ObservedInput::File { path, .. } | ObservedInput::Absent { path }) => {
                !is_bytecode_cache(path)
            }
            _ => true,
        })
        .map(|input| to_input(input, &own, &hashes, code))
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
        value_buffers: Vec::new(),
    })
}

fn to_input(
    input: &ObservedInput,
    own: &HashMap<PathBuf, HashSet<Vec<u8>>>,
    hashes: &HashCache,
    code: Option<&CodeHasher<'_>>,
) -> Result<Input> {
    if let (Some(code), ObservedInput::File { path, before: None }) = (code, input) {
        if let Some(hash) = code(path) {
            return Ok(Input::Code {
                name: path.display().to_string(),
                path: Some(StoredPath::new(path)),
                hash,
            });
        }
    }
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

fn outputs(store: &Store, report: &TraceReport, skip_bytecode: bool) -> Result<Vec<Output>> {
    let mut outputs = Vec::with_capacity(report.outputs.len());
    for output in &report.outputs {
        let path = match output {
            ObservedOutput::File { path }
            | ObservedOutput::Dir { path }
            | ObservedOutput::Symlink { path, .. }
            | ObservedOutput::Deleted { path } => path,
        };
        if skip_bytecode && is_bytecode_cache(path) {
            continue;
        }
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
