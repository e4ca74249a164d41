//! A traced run becomes a stored variant: inputs hashed with their stat
//! snapshot, outputs stored as objects, output chunks kept in order.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use casher_store::{
    dir_listing_hash, output_names, stamp_trusted, Bytes, HashCache, Input, ObjectId, Output,
    SharedPrefix, Stamp, StdioChunk, Store, StoredPath, Stream, Variant, UNKNOWN_STAMP,
};
use casher_tracer::{ObservedInput, ObservedOutput, TraceReport};
use rayon::prelude::*;

use crate::error::{RecordError, Result};
use crate::observation::directory_times_last;
use crate::shared::{touched, Converted, SharedInputs};

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
/// (or modified too recently for their stamp to be trusted) carry the
/// content hash taken during the run and an unknown stamp, so a lookup
/// re-hashes them.
pub fn to_variant(
    store: &Store,
    key: &str,
    description: &str,
    report: &TraceReport,
    created_ns: u64,
    code: Option<&CodeHasher<'_>>,
) -> Result<Variant> {
    to_variant_sharing(store, key, description, report, created_ns, code, None)
}

/// Inputs to convert from which the work is shared among the cores.
const PARALLEL_FROM: usize = 64;

/// `to_variant` for a call of a fork server: the server's import-time
/// inputs (`shared`) are converted once and reused (see `SharedInputs`).
pub fn to_variant_sharing(
    store: &Store,
    key: &str,
    description: &str,
    report: &TraceReport,
    created_ns: u64,
    code: Option<&CodeHasher<'_>>,
    shared: Option<&SharedInputs>,
) -> Result<Variant> {
    let outputs = outputs(store, report, code.is_some())?;
    let own = output_names(&outputs);
    // The server's inputs this call did not touch: converted (or left
    // out) once, for every call (only with `code`: `@cached` calls).
    let shared = shared.filter(|_| code.is_some());
    let all: Vec<&ObservedInput> = report.inputs.iter().collect();
    let found = match shared {
        Some(s) => s.find(&all),
        None => vec![None; all.len()],
    };
    // (input, its position among the server's if reusable, what it became)
    let mut slots: Vec<(&ObservedInput, Option<usize>, Converted)> = all
        .into_iter()
        .zip(found)
        .map(|(input, found)| match found {
            Some((i, converted)) if !touched(input, &own) => (input, Some(i), converted),
            _ => (input, None, Converted::Pending),
        })
        .collect();
    let mut done: Vec<(usize, Converted)> = Vec::new();
    let mut pending: Vec<&ObservedInput> = Vec::new();
    for (input, at, converted) in slots.iter_mut() {
        if !matches!(converted, Converted::Pending) {
            continue;
        }
        if code.is_some() && is_bytecode_cache(input.path()) {
            *converted = Converted::Skipped;
            done.extend(at.map(|i| (i, Converted::Skipped)));
        } else {
            pending.push(input);
        }
    }
    // Hashing inputs is most of the cost of recording: skip files already
    // hashed with the same stat stamp, and use every core for the rest.
    // A few (a fork server's call adds a handful to the server's) stay on
    // this thread: handing them to the pool meant waiting for one of its
    // threads to be scheduled, milliseconds while the other core is busy.
    let hashes = store.hash_cache();
    let convert = |input: &&ObservedInput| to_input(input, &own, &hashes, code);
    let inputs = if pending.len() < PARALLEL_FROM {
        pending
            .iter()
            .map(convert)
            .collect::<Result<Vec<Option<Input>>>>()
    } else {
        casher_store::in_pool(|| {
            pending
                .par_iter()
                .map(convert)
                .collect::<Result<Vec<Option<Input>>>>()
        })
    }?;
    hashes.save();
    let mut inputs = inputs.into_iter();
    for (_, at, converted) in slots.iter_mut() {
        if matches!(converted, Converted::Pending) {
            *converted = Converted::Stored(inputs.next().flatten());
            done.extend(at.map(|i| (i, converted.clone())));
        }
    }
    if let Some(shared) = shared {
        shared.keep(done);
    }
    // (from the server, input): the server's come first in the record,
    // where the store keeps them once for every call (`Variant::shared`).
    let mut inputs: Vec<(bool, Input)> = slots
        .into_iter()
        .filter_map(|(_, at, converted)| match converted {
            Converted::Stored(stored) => stored.map(|i| (at.is_some() && shared.is_some(), i)),
            _ => None,
        })
        .collect();
    if code.is_some() {
        // A file seen both as code and otherwise is one code input.
        let mut seen = HashSet::new();
        inputs.retain(|(_, i)| match i {
            Input::Code { path: Some(p), .. } => seen.insert(p.clone()),
            _ => true,
        });
    }
    let (from_server, mut inputs): (Vec<bool>, Vec<Input>) = inputs.into_iter().unzip();
    if code.is_some() {
        content_decides(&mut inputs);
    }
    crate::observation::relate_output_mtimes(&mut inputs, &outputs);
    let (server, own): (Vec<_>, Vec<_>) =
        from_server.into_iter().zip(inputs).partition(|(s, _)| *s);
    let shared_len = server.len();
    let mut inputs = directory_times_last(server.into_iter().map(|(_, i)| i).collect());
    inputs.extend(directory_times_last(
        own.into_iter().map(|(_, i)| i).collect(),
    ));
    let stdio = stdio(store, report)?;
    Ok(Variant {
        key: key.to_owned(),
        description: description.to_owned(),
        created_ns,
        shared: (shared_len > 0).then(|| SharedPrefix {
            len: u32::try_from(shared_len).unwrap_or(0),
            object: None,
        }),
        inputs,
        outputs,
        stdio,
        exit_code: report.exit.shell_code(),
        value: None,
        value_buffers: Vec::new(),
    })
}

/// `@cached`: where a function read a file's content, that content (with
/// its size and type) is what decides, not the exact mtime its readers'
/// `stat` also returned (pandas, polars and Python's own `open` all stat
/// what they read). Otherwise a file restored by an upstream step's hit,
/// identical but with a fresh mtime, would make every downstream step miss.
/// A function that reads a file's content *and* acts on its mtime is
/// documented in docs/limitations.md; `casher run` keeps exact mtimes
/// (`make` compares them).
fn content_decides(inputs: &mut [Input]) {
    let read: HashSet<StoredPath> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File { path, .. }
            | Input::Code {
                path: Some(path), ..
            } => Some(path.clone()),
            _ => None,
        })
        .collect();
    for input in inputs.iter_mut() {
        if let Input::Meta { path, meta, .. } = input {
            if meta.kind == casher_store::FileKind::File && read.contains(path) {
                meta.mtime_ns = None;
                meta.mtime_window = None;
            }
        }
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// One input as stored, or `None` when it is left out (`@cached`: a stat
/// of a project source file, which the code identity covers).
fn to_input(
    input: &ObservedInput,
    own: &HashMap<PathBuf, HashSet<Vec<u8>>>,
    hashes: &HashCache,
    code: Option<&CodeHasher<'_>>,
) -> Result<Option<Input>> {
    if let Some(code) = code {
        // Project source: checked by its normalized AST (a reformat stays
        // a hit), whether it was read or only stat'ed (Python stats a
        // module's source to validate its bytecode cache).
        // (`before` is also set for a source edited just before the call:
        // only a file the run itself rewrote is not code.)
        if let ObservedInput::File { path, .. } | ObservedInput::Stat { path, .. } = input {
            let written = path
                .parent()
                .zip(path.file_name())
                .and_then(|(dir, name)| own.get(dir).map(|names| names.contains(name.as_bytes())))
                .unwrap_or(false);
            if let Some(hash) = code(path).filter(|_| !written) {
                return Ok(Some(Input::Code {
                    name: path.display().to_string(),
                    path: Some(StoredPath::new(path)),
                    hash,
                }));
            }
        }
    }
    Ok(Some(match input {
        ObservedInput::File {
            path,
            before: Some(hash),
        } => Input::File {
            path: StoredPath::new(path),
            hash: ObjectId(*hash),
            stamp: UNKNOWN_STAMP,
        },
        ObservedInput::File { path, before: None } => {
            let hashed_at = now_ns();
            let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
            let hash = hashes.hash(path, &meta).map_err(|e| unreadable(path, e))?;
            let stamp = Stamp::of(&meta);
            Input::File {
                path: StoredPath::new(path),
                hash,
                // The racy-clean rule: a stamp too close to the moment the
                // content was hashed cannot vouch for it later.
                stamp: if stamp_trusted(&stamp, hashed_at) {
                    stamp
                } else {
                    UNKNOWN_STAMP
                },
            }
        }
        ObservedInput::Absent { path } => Input::Absent {
            path: StoredPath::new(path),
        },
        ObservedInput::NoEntry { path } => Input::NoEntry {
            path: StoredPath::new(path),
        },
        ObservedInput::Dir { path } => Input::Dir {
            path: StoredPath::new(path),
            hash: dir_listing_hash(path, own.get(path).unwrap_or(&HashSet::new()))
                .map_err(|e| unreadable(path, e))?,
        },
        ObservedInput::Stat {
            path,
            follow,
            facts,
            reveals,
        } => Input::Meta {
            path: StoredPath::new(path),
            follow: *follow,
            meta: crate::observation::observed_meta(facts, *reveals, code.is_none()),
        },
        ObservedInput::Link { path, target } => Input::Link {
            path: StoredPath::new(path),
            target: target.as_deref().map(StoredPath::new),
        },
        ObservedInput::Fails { path, errno } => Input::Fails {
            path: StoredPath::new(path),
            errno: *errno,
        },
        ObservedInput::Replaceable { path, mode } => Input::Replaceable {
            path: StoredPath::new(path),
            mode: *mode,
        },
    }))
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
        // Large output is streamed from the capture (memory or its spool
        // file) into the store: never held whole in memory.
        let bytes = if chunk.len() <= INLINE_LIMIT as u64 {
            Bytes::Inline(chunk.to_vec())
        } else {
            let (id, size) = store.backend().put_object(&mut chunk.reader())?;
            if size != chunk.len() {
                return Err(unreadable(
                    Path::new("<captured output>"),
                    "the spooled output could not be read back",
                ));
            }
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
