//! The store and the tracer for `@cached`: look up a key (restoring files on
//! a hit), run the function's child process traced, record the result.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use casher_record::to_variant_sharing;
use casher_store::{AllowedRoots, Bytes, Input, Lookup, Store, StoreConfig, StoredPath, Stream};
use casher_tracer::{trace, TraceConfig, TraceReport};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::code::{definition_input, Analysis, LocalCode, Oracle, FUNCTION_INPUT};
use crate::errors::CasherError;
use crate::server::ServerInputs;
use casher_store::CodeOracle;

fn err(e: impl std::fmt::Display) -> PyErr {
    CasherError::new_err(e.to_string())
}

/// Prefix of the inputs that stand for an environment variable the call
/// read through `os.environ`: the hash of its value when recorded.
const ENV_INPUT: &str = "env:";

/// The key env-var values are hashed with: derived from the store's secret,
/// so a record's hashes cannot be matched against guessed values by whoever
/// reads the store without it.
fn env_key(store: &Store) -> [u8; 32] {
    blake3::derive_key("casher 2026 env input v1", store.secret())
}

/// The value of an environment variable as an input: hashed, never stored
/// in clear ("unset" differs from every value).
fn env_input_hash(key: &[u8; 32], name: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hasher = blake3::Hasher::new_keyed(key);
    match std::env::var_os(name) {
        Some(value) => {
            hasher.update(b"set");
            hasher.update(value.as_bytes());
        }
        None => {
            hasher.update(b"unset");
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// Prefix of the inputs that stand for the caller's process state a call
/// consumed (a global random generator): the digest of its value when the
/// call started, as the Python side computes it (it alone can see it).
const STATE_INPUT: &str = "python:";

/// Code inputs as `@cached` records them: the analyzer's code and
/// definition inputs, the environment variables the call read, and the
/// caller's process state it consumed (`state`: name -> digest now).
struct CallOracle<'a> {
    code: Oracle<'a>,
    env_key: [u8; 32],
    state: &'a [(String, String)],
}

impl<'a> CallOracle<'a> {
    fn new(store: &Store, analysis: &'a Analysis, state: &'a [(String, String)]) -> Self {
        Self {
            code: Oracle::new(analysis),
            env_key: env_key(store),
            state,
        }
    }
}

impl CodeOracle for CallOracle<'_> {
    fn code_hash(&self, name: &str, path: Option<&Path>) -> Option<String> {
        if let (Some(variable), None) = (name.strip_prefix(ENV_INPUT), path) {
            return Some(env_input_hash(&self.env_key, variable));
        }
        if let (Some(state), None) = (name.strip_prefix(STATE_INPUT), path) {
            return self
                .state
                .iter()
                .find(|(n, _)| n == state)
                .map(|(_, digest)| digest.clone());
        }
        self.code.code_hash(name, path)
    }
}

/// A traced run of a function's child process, waiting to be recorded.
#[pyclass(module = "casher._native")]
pub struct TracedRun {
    report: TraceReport,
    created_ns: u64,
    /// A fork server's call: the server's import-time inputs, converted once.
    shared: Option<Arc<ServerInputs>>,
}

impl TracedRun {
    pub(crate) fn new(
        report: TraceReport,
        created_ns: u64,
        shared: Option<Arc<ServerInputs>>,
    ) -> Self {
        Self {
            report,
            created_ns,
            shared,
        }
    }
}

#[pymethods]
impl TracedRun {
    /// The child's exit status as a shell reports it.
    #[getter]
    fn exit_code(&self) -> i32 {
        self.report.exit.shell_code()
    }

    /// The signal that ended the child, if one did.
    #[getter]
    fn exit_signal(&self) -> Option<i32> {
        match self.report.exit {
            casher_tracer::Exit::Signal(signal) => Some(signal),
            casher_tracer::Exit::Code(_) => None,
        }
    }

    /// Why this run cannot be cached (empty: it can).
    #[getter]
    fn uncacheable(&self) -> Vec<String> {
        self.report.uncacheable.clone()
    }

    /// Everything the child printed, in order: (1 = stdout | 2 = stderr, bytes).
    fn output<'py>(&self, py: Python<'py>) -> Vec<(u8, Bound<'py, PyBytes>)> {
        self.report
            .stdio
            .iter()
            .map(|c| (traced_stream_code(c.stream), PyBytes::new(py, &c.to_vec())))
            .collect()
    }
}

/// A lookup's answer before it becomes Python objects: the output chunks
/// and value bytes of a hit, or the reason for a miss.
enum Outcome {
    Hit(Vec<(u8, Vec<u8>)>, Option<Vec<u8>>, Vec<PathBuf>),
    Miss(String),
}

#[pyclass(module = "casher._native")]
pub struct Cache {
    store: Store,
    analysis: Analysis,
    verified: crate::values::Verified,
}

/// Streams as Python sees them: 1 = stdout, 2 = stderr.
fn stream_code(stream: Stream) -> u8 {
    match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

fn traced_stream_code(stream: casher_tracer::Stream) -> u8 {
    match stream {
        casher_tracer::Stream::Stdout => 1,
        casher_tracer::Stream::Stderr => 2,
    }
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (cwd, cache_dir=None, python=None))]
    fn new(cwd: PathBuf, cache_dir: Option<PathBuf>, python: Option<PathBuf>) -> PyResult<Self> {
        let (dir, _) = casher_store::cache_dir(cache_dir.as_deref(), &cwd).map_err(err)?;
        let store = Store::open(&dir, StoreConfig::default()).map_err(err)?;
        let analysis = Analysis {
            python: python.unwrap_or_else(|| PathBuf::from("python3")),
            cache_dir: dir,
        };
        Ok(Self {
            store,
            analysis,
            verified: Default::default(),
        })
    }

    #[getter]
    fn cache_dir(&self) -> PathBuf {
        self.store.cache_dir().to_path_buf()
    }

    /// On a hit: restores files, returns (True, output chunks, value bytes).
    /// On a miss: (False, reason, None). Nothing is printed here. `state`:
    /// the digests of the caller's process state a recorded call may have
    /// consumed (see `record`).
    #[pyo3(signature = (key, cwd, state=Vec::new()))]
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        cwd: PathBuf,
        state: Vec<(String, String)>,
    ) -> PyResult<(bool, Py<PyAny>, Py<PyAny>)> {
        let found = py.detach(|| -> casher_store::Result<Outcome> {
            match self
                .store
                .lookup(key, &CallOracle::new(&self.store, &self.analysis, &state))?
            {
                Lookup::Miss(reason) => Ok(Outcome::Miss(reason.to_string())),
                Lookup::Hit(hit) => {
                    let variant = &hit.variant;
                    // Read (and verify) what will be returned and printed
                    // before touching any file.
                    let value = match &variant.value {
                        Some(Bytes::Inline(b)) => Some(b.clone()),
                        Some(Bytes::Object { id, .. }) => {
                            Some(self.store.backend().read_object(id)?)
                        }
                        None => None,
                    };
                    let buffers =
                        crate::values::paths(&self.store, &variant.value_buffers, &self.verified)?;
                    let mut chunks = Vec::with_capacity(variant.stdio.len());
                    for chunk in &variant.stdio {
                        let bytes = match &chunk.bytes {
                            Bytes::Inline(b) => b.clone(),
                            Bytes::Object { id, .. } => self.store.backend().read_object(id)?,
                        };
                        chunks.push((stream_code(chunk.stream), bytes));
                    }
                    casher_store::restore(
                        self.store.backend(),
                        variant,
                        &AllowedRoots::default_for(&cwd),
                    )?;
                    Ok(Outcome::Hit(chunks, value, buffers))
                }
            }
        });
        match found {
            Ok(Outcome::Hit(chunks, value, buffers)) => {
                let chunks: Vec<(u8, Bound<'py, PyBytes>)> = chunks
                    .iter()
                    .map(|(s, b)| (*s, PyBytes::new(py, b)))
                    .collect();
                // With out-of-band buffers: (pickle, [object paths to map]).
                let value = match value {
                    Some(v) if !buffers.is_empty() => Some(
                        (PyBytes::new(py, &v), buffers)
                            .into_pyobject(py)?
                            .into_any()
                            .unbind(),
                    ),
                    v => v.map(|v| PyBytes::new(py, &v).into_any().unbind()),
                };
                Ok((
                    true,
                    chunks.into_pyobject(py)?.into_any().unbind(),
                    value.unwrap_or_else(|| py.None()),
                ))
            }
            Ok(Outcome::Miss(reason)) => Ok((
                false,
                reason.into_pyobject(py)?.into_any().unbind(),
                py.None(),
            )),
            Err(e) => Err(err(format!(
                "cache lookup failed ({e}); the function will run"
            ))),
        }
    }

    /// Writes out buffered hit/miss counts (called at interpreter exit).
    fn flush(&self) {
        self.store.flush_counters();
    }

    /// Whether `key` would hit, and why not, without touching anything.
    #[pyo3(signature = (key, state=Vec::new()))]
    fn explain(&self, key: &str, state: Vec<(String, String)>) -> PyResult<String> {
        Ok(
            match self
                .store
                .peek(key, &CallOracle::new(&self.store, &self.analysis, &state))
                .map_err(err)?
            {
                Lookup::Hit(_) => "hit".to_owned(),
                Lookup::Miss(reason) => format!("miss: {reason}"),
            },
        )
    }

    /// A run observed in-process (audit hooks and output capture) instead of
    /// traced: `reads`, `listed` and `written` paths, `deleted` paths and
    /// output chunks (1 = stdout, 2 = stderr). Recorded like a traced run.
    fn observed(
        &self,
        reads: Vec<PathBuf>,
        listed: Vec<PathBuf>,
        written: Vec<PathBuf>,
        deleted: Vec<PathBuf>,
        chunks: Vec<(u8, Vec<u8>)>,
    ) -> TracedRun {
        use casher_tracer::{Chunk, Exit, ObservedInput, ObservedOutput};
        let written_set: std::collections::HashSet<&PathBuf> = written.iter().collect();
        let mut inputs: Vec<ObservedInput> = reads
            .iter()
            .filter(|p| !written_set.contains(p) && p.is_file())
            .map(|p| ObservedInput::File {
                path: p.clone(),
                before: None,
            })
            .collect();
        inputs.extend(
            listed
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| ObservedInput::Dir { path: p.clone() }),
        );
        let mut outputs: Vec<ObservedOutput> = written
            .iter()
            .filter(|p| p.is_file())
            .map(|p| ObservedOutput::File { path: p.clone() })
            .collect();
        outputs.extend(
            deleted
                .iter()
                .filter(|p| !p.exists())
                .map(|p| ObservedOutput::Deleted { path: p.clone() }),
        );
        let stdio = chunks
            .into_iter()
            .map(|(stream, bytes)| {
                Chunk::new(
                    if stream == 2 {
                        casher_tracer::Stream::Stderr
                    } else {
                        casher_tracer::Stream::Stdout
                    },
                    bytes,
                )
            })
            .collect();
        TracedRun {
            report: TraceReport {
                exit: Exit::Code(0),
                inputs,
                outputs,
                stdio,
                uncacheable: Vec::new(),
            },
            created_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            shared: None,
        }
    }

    /// Runs `argv` traced. Output goes to `on_output(stream, bytes)` as it
    /// arrives (1 = stdout, 2 = stderr), called with the GIL held.
    fn run(
        &self,
        py: Python<'_>,
        argv: Vec<PathBuf>,
        ignore: Vec<PathBuf>,
        on_output: Py<PyAny>,
    ) -> PyResult<TracedRun> {
        let sink = crate::server::python_sink(on_output);
        let mut ignore = ignore;
        ignore.push(self.store.cache_dir().to_path_buf());
        let config = TraceConfig {
            argv: argv.into_iter().map(PathBuf::into_os_string).collect(),
            ignore,
            forward: false,
            merge_stdio: false,
            stdin_data: Some(Vec::new()),
            stdin_is_tty: false,
            pin: std::env::var_os("CASHER_NO_PIN").is_none(),
            sink: Some(sink),
            allow_network: false,
            on_main_exit: None,
            begin_marker: true,
        };
        let created_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // On a thread of its own: the tracer waits for *its* thread's
        // children (`__WNOTHREAD`), never for the caller's own (a
        // `subprocess.Popen` it started would lose its exit status to the
        // tracer, and a miss would wait for it to end).
        let report = py
            .detach(|| {
                std::thread::scope(|scope| {
                    std::thread::Builder::new()
                        .name("casher-trace".to_owned())
                        .spawn_scoped(scope, || trace(&config))
                        .map_err(|e| format!("starting the tracer's thread: {e}"))?
                        .join()
                        .map_err(|_| "the tracer's thread panicked".to_owned())?
                        .map_err(|e| e.to_string())
                })
            })
            .map_err(err)?;
        Ok(TracedRun::new(report, created_ns, None))
    }

    /// Records a successful run under `key` with the pickled return value
    /// and the files holding its out-of-band `buffers` (moved into the
    /// store, in order).
    /// `.py` files outside `non_local` become code inputs (normalized hash).
    /// With `function` (a top-level function of `source`), the files its
    /// reachable code lives in are covered by one function-level input
    /// instead, so edits it cannot reach do not invalidate; project files
    /// the child read beyond them stay whole-module inputs (the safety net
    /// for what static analysis missed).
    ///
    /// `executed` is the project code the call ran, as (file, first line):
    /// code the static identity does not cover (a registered handler, a
    /// subclass found at run time) makes its whole file an input, and is
    /// returned so the caller can say so. `env` names the environment
    /// variables the call read: their current values (hashed) are inputs.
    /// `state`: the caller's process state the call consumed (a global
    /// random generator), by its digest when the call started: a lookup
    /// hits only while the caller's is the same.
    #[pyo3(signature = (run, key, description, value, non_local, source, function=None, executed=Vec::new(), env=Vec::new(), buffers=Vec::new(), state=Vec::new()))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python call, plus `py`
    fn record(
        &self,
        py: Python<'_>,
        run: &TracedRun,
        key: &str,
        description: &str,
        value: &[u8],
        non_local: Vec<PathBuf>,
        source: PathBuf,
        function: Option<String>,
        executed: Vec<(PathBuf, u32)>,
        env: Vec<String>,
        buffers: Vec<PathBuf>,
        state: Vec<(String, String)>,
    ) -> PyResult<Vec<(PathBuf, u32)>> {
        let value = value.to_vec();
        let analysis = self.analysis.clone();
        py.detach(|| -> Result<Vec<(PathBuf, u32)>, String> {
            let local = LocalCode { non_local };
            let hasher = |p: &Path| local.hash_if_local(p);
            let shared = run.shared.as_ref().map(|s| s.for_roots(&local.non_local));
            let mut variant = to_variant_sharing(
                &self.store,
                key,
                description,
                &run.report,
                run.created_ns,
                Some(&hasher),
                shared.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            let identity = function
                .as_deref()
                .and_then(|f| analysis.function_identity(&source, f).map(|id| (f, id)));
            let covered_by_identity = identity.is_some();
            let missed: Vec<(PathBuf, u32)> = match identity {
                Some((function, id)) => {
                    // Executed code outside every reached definition keeps
                    // its whole file as an input (the run-time safety net).
                    let real =
                        |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                    let spans: Vec<(PathBuf, u32, u32)> = id
                        .definitions
                        .iter()
                        .map(|d| (real(&d.path), d.line, d.end_line))
                        .collect();
                    let missed: Vec<(PathBuf, u32)> = executed
                        .iter()
                        .filter(|(path, line)| {
                            !spans
                                .iter()
                                .any(|(p, first, last)| p == path && first <= line && line <= last)
                        })
                        .cloned()
                        .collect();
                    let kept: std::collections::HashSet<&PathBuf> =
                        missed.iter().map(|(p, _)| p).collect();
                    let covered: std::collections::HashSet<StoredPath> = id
                        .files
                        .iter()
                        .filter(|p| !kept.contains(&real(p)))
                        .map(|p| StoredPath::new(p))
                        .collect();
                    variant.retain_inputs(
                        |i| !matches!(i, Input::Code { path: Some(p), .. } if covered.contains(p)),
                    );
                    // Each reached definition first (a miss then names what
                    // changed), then the whole identity (which also covers
                    // definitions newly reached, fallbacks and libraries).
                    for d in &id.definitions {
                        variant.inputs.push(Input::Code {
                            name: definition_input(function, d),
                            path: Some(StoredPath::new(&source)),
                            hash: d.hash.clone(),
                        });
                    }
                    variant.inputs.push(Input::Code {
                        name: format!("{FUNCTION_INPUT}{function}"),
                        path: Some(StoredPath::new(&source)),
                        hash: id.digest,
                    });
                    missed
                }
                // Whole modules: the function's own file at least.
                None => executed,
            };
            // Every file whose code ran, and the function's own, is a
            // whole-module input unless the function's identity covers it.
            let mut whole: Vec<&Path> = missed.iter().map(|(p, _)| p.as_path()).collect();
            if function.is_none() {
                whole.push(&source);
            }
            for path in whole {
                let stored = StoredPath::new(path);
                let present = variant
                    .inputs
                    .iter()
                    .any(|i| matches!(i, Input::Code { path: Some(p), .. } if *p == stored));
                if let (false, Some(hash)) = (present, local.hash_if_local(path)) {
                    variant.inputs.push(Input::Code {
                        name: path.display().to_string(),
                        path: Some(stored),
                        hash,
                    });
                }
            }
            for name in env {
                let hash = env_input_hash(&env_key(&self.store), &name);
                variant.inputs.push(Input::Code {
                    name: format!("{ENV_INPUT}{name}"),
                    path: None,
                    hash,
                });
            }
            for (name, digest) in state {
                variant.inputs.push(Input::Code {
                    name: format!("{STATE_INPUT}{name}"),
                    path: None,
                    hash: digest,
                });
            }
            variant.value_buffers = crate::values::adopt(&self.store, &buffers, &self.verified)
                .map_err(|e| e.to_string())?;
            variant.value = Some(if value.len() <= casher_record::INLINE_LIMIT {
                Bytes::Inline(value)
            } else {
                let (id, size) = self
                    .store
                    .backend()
                    .put_object(&mut value.as_slice())
                    .map_err(|e| e.to_string())?;
                Bytes::Object { id, size }
            });
            self.store.record(&variant).map_err(|e| e.to_string())?;
            Ok(if covered_by_identity {
                missed
            } else {
                Vec::new()
            })
        })
        .map_err(|e| err(format!("not cached: {e}")))
    }

    /// The statements `function` of `source` reaches, as (path, first line,
    /// last line): for the CASHER_CHECK_REACH debug check. None when the
    /// analysis is not available.
    fn reached(
        &self,
        py: Python<'_>,
        source: PathBuf,
        function: &str,
    ) -> Option<Vec<(PathBuf, u32, u32)>> {
        py.detach(|| {
            self.analysis
                .function_identity(&source, function)
                .map(|id| {
                    id.definitions
                        .into_iter()
                        .map(|d| (d.path, d.line, d.end_line))
                        .collect()
                })
        })
    }

    /// Removes every entry recorded with this description (a function).
    fn clear(&self, description: &str) -> PyResult<usize> {
        let mut removed = 0;
        for key in self.store.keys() {
            for v in self.store.backend().variants(&key).map_err(err)? {
                if v.variant.description == description {
                    self.store.backend().remove_variant(&v.name).map_err(err)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Entries (keys) recorded with this description.
    fn entries(&self, description: &str) -> PyResult<usize> {
        let mut count = 0;
        for key in self.store.keys() {
            if self
                .store
                .backend()
                .variants(&key)
                .map_err(err)?
                .iter()
                .any(|v| v.variant.description == description)
            {
                count += 1;
            }
        }
        Ok(count)
    }
}
