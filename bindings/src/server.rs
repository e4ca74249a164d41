//! The traced fork server of `@cached` misses (`casher._server`): a traced
//! session whose server imported the function's module once; each miss is
//! one forked call.

use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casher_record::SharedInputs;
use casher_tracer::{CallOutput, ObservedInput, OutputSink, Session, SessionConfig};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::cache::TracedRun;
use crate::errors::CasherError;

fn err(e: impl std::fmt::Display) -> PyErr {
    CasherError::new_err(e.to_string())
}

/// Output forwarded to a Python callable `on_output(stream, bytes)`
/// (1 = stdout, 2 = stderr), called with the GIL held.
pub(crate) fn python_sink(on_output: Py<PyAny>) -> OutputSink {
    let callback = Arc::new(on_output);
    OutputSink(Arc::new(move |stream, data: &[u8]| {
        Python::attach(|py| {
            let code = match stream {
                casher_tracer::Stream::Stdout => 1u8,
                casher_tracer::Stream::Stderr => 2u8,
            };
            if let Err(e) = callback.call1(py, (code, PyBytes::new(py, data))) {
                e.print(py);
            }
        });
    }))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A server's import-time inputs (`Session::imports`), converted for the
/// record once per setting of the code roots (which decide what is
/// project code), then reused by every call of this server.
pub(crate) struct ServerInputs {
    observed: Arc<Vec<ObservedInput>>,
    converted: Mutex<Option<(Vec<PathBuf>, Arc<SharedInputs>)>>,
}

impl ServerInputs {
    pub(crate) fn for_roots(&self, non_local: &[PathBuf]) -> Arc<SharedInputs> {
        let Ok(mut converted) = self.converted.lock() else {
            return Arc::new(SharedInputs::new(&self.observed));
        };
        match &*converted {
            Some((roots, shared)) if roots == non_local => Arc::clone(shared),
            _ => {
                let shared = Arc::new(SharedInputs::new(&self.observed));
                *converted = Some((non_local.to_vec(), Arc::clone(&shared)));
                shared
            }
        }
    }
}

/// A traced server process and the call in flight (one at a time; the
/// Python side serializes calls per server).
#[pyclass(module = "casher._native")]
pub struct Server {
    session: Mutex<Option<Session>>,
    call: Mutex<Option<(CallOutput, u64)>>,
    /// Set at the first call; lives as long as this session (a replaced
    /// server is a new `Server`).
    inputs: Mutex<Option<Arc<ServerInputs>>>,
}

impl Server {
    fn inputs(&self) -> Option<Arc<ServerInputs>> {
        let mut inputs = self.inputs.lock().ok()?;
        if inputs.is_none() {
            let observed = self.with(|s| s.imports()).ok()??;
            *inputs = Some(Arc::new(ServerInputs {
                observed,
                converted: Mutex::new(None),
            }));
        }
        inputs.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> PyResult<T> {
        let mut guard = self
            .session
            .lock()
            .map_err(|_| err("server state poisoned"))?;
        let session = guard
            .as_mut()
            .ok_or_else(|| err("the traced server was closed"))?;
        Ok(f(session))
    }
}

#[pymethods]
impl Server {
    /// Starts `argv` traced; its descriptor 3 is the control socket.
    /// `ignore`: path prefixes that are never inputs (the store).
    #[new]
    fn new(py: Python<'_>, argv: Vec<PathBuf>, ignore: Vec<PathBuf>) -> PyResult<Self> {
        let config = SessionConfig {
            argv: argv.into_iter().map(PathBuf::into_os_string).collect(),
            ignore,
            pin: std::env::var_os("CASHER_NO_PIN").is_none(),
        };
        let session = py.detach(|| Session::start(&config)).map_err(err)?;
        Ok(Self {
            session: Mutex::new(Some(session)),
            call: Mutex::new(None),
            inputs: Mutex::new(None),
        })
    }

    /// The server's process id.
    #[getter]
    fn pid(&self) -> PyResult<i32> {
        self.with(|s| s.pid())
    }

    /// The CPU the server's calls run on, when the server may run on
    /// others (it then forks the next call's process while a call runs).
    #[getter]
    fn call_cpu(&self) -> PyResult<Option<usize>> {
        self.with(|s| s.call_cpu())
    }

    /// Our end of the control socket, as a descriptor the caller owns.
    fn take_control(&self) -> PyResult<i32> {
        self.with(|s| s.take_control().map(IntoRawFd::into_raw_fd))?
            .ok_or_else(|| err("the control socket was already taken"))
    }

    /// The server finished importing: processes it forks are calls now.
    fn mark_ready(&self) -> PyResult<()> {
        self.with(|s| s.mark_ready())
    }

    /// Why the server must be replaced (it ended, or an input of its
    /// imports changed), or None.
    fn stale(&self, py: Python<'_>) -> PyResult<Option<String>> {
        py.detach(|| self.with(|s| s.stale()))
    }

    /// What the server printed itself (a failed import's traceback).
    fn server_output<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(|s| s.server_output())?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Opens a call's stdout and stderr pipes, forwarded live to
    /// `on_output(stream, bytes)`; returns their write ends (the caller
    /// sends them to the server and closes its copies).
    fn open_call(&self, on_output: Py<PyAny>) -> PyResult<(i32, i32)> {
        let (output, out_w, err_w) = CallOutput::open(Some(python_sink(on_output))).map_err(err)?;
        let mut call = self.call.lock().map_err(|_| err("server state poisoned"))?;
        *call = Some((output, now_ns()));
        Ok((out_w.into_raw_fd(), err_w.into_raw_fd()))
    }

    /// Waits for the call whose root process is `pid` to end and for its
    /// output to close: the traced run, ready to record.
    fn finish_call(&self, py: Python<'_>, pid: i32) -> PyResult<TracedRun> {
        let (output, created_ns) = self
            .call
            .lock()
            .map_err(|_| err("server state poisoned"))?
            .take()
            .ok_or_else(|| err("no call is open"))?;
        py.detach(|| {
            let report = self.with(|s| s.report(pid, Duration::from_secs(u64::MAX / 4)));
            let stdio = output.finish();
            let mut report = report?.map_err(err)?;
            report.stdio = stdio;
            Ok(TracedRun::new(report, created_ns, self.inputs()))
        })
    }

    /// Drops the open call's output (its request never reached the server).
    fn abort_call(&self, py: Python<'_>) -> PyResult<()> {
        let call = self
            .call
            .lock()
            .map_err(|_| err("server state poisoned"))?
            .take();
        py.detach(move || drop(call.map(|(output, _)| output.finish())));
        Ok(())
    }

    /// Ends the server (and any call it runs).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let session = self
            .session
            .lock()
            .map_err(|_| err("server state poisoned"))?
            .take();
        py.detach(move || drop(session));
        Ok(())
    }
}

/// In a `@cached` call's child, before the call: a use of one of `fds` (the
/// descriptors the module's import left open) makes the call uncacheable
/// (`casher._descriptors`).
#[pyfunction]
pub(crate) fn watch_descriptors(fds: Vec<i32>) -> PyResult<()> {
    casher_tracer::watch_descriptors(&fds).map_err(err)
}
