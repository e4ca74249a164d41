//! The inputs a fork server's calls share: what the server observed while
//! importing the function's module (~850 files, directories and probes for
//! numpy and pandas). Every call's report starts with them, and recording
//! each call used to stat, look up and hash all of them again. They are
//! converted to stored inputs once per server instead, and reused for every
//! later call's record: the caller checks before each call that none of
//! them changed since the server observed them (`Session::stale`), and
//! replaces the server (and so these) when one did.
//!
//! Every recorded variant still holds all of them, so a later lookup in a
//! fresh process, with no server, checks each one as before.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use casher_store::Input;
use casher_tracer::ObservedInput;

/// What became of one of the server's observations in a record: not yet
/// converted, left out (a compiled cache), or this stored input (`None`:
/// a stat of project source, which the code identity covers).
#[derive(Clone)]
pub(crate) enum Converted {
    Pending,
    Skipped,
    Stored(Option<Input>),
}

/// The server's observations and their conversions, by path (as bytes: a
/// `Path`'s hash walks its components, too slow for thousands per call).
pub struct SharedInputs {
    by_path: Mutex<HashMap<OsString, Vec<(ObservedInput, Converted)>>>,
}

impl SharedInputs {
    /// For a session's import-time observations (`Session::imports`).
    pub fn new(inputs: &Arc<Vec<ObservedInput>>) -> Self {
        let mut by_path: HashMap<OsString, Vec<(ObservedInput, Converted)>> = HashMap::new();
        for input in inputs.iter() {
            by_path
                .entry(observed_path(input).as_os_str().to_owned())
                .or_default()
                .push((input.clone(), Converted::Pending));
        }
        Self {
            by_path: Mutex::new(by_path),
        }
    }

    /// `None` when `input` is not exactly one of the server's observations;
    /// else what it became so far.
    pub(crate) fn get(&self, input: &ObservedInput) -> Option<Converted> {
        let by_path = self.by_path.lock().ok()?;
        by_path
            .get(observed_path(input).as_os_str())?
            .iter()
            .find(|(observed, _)| observed == input)
            .map(|(_, converted)| converted.clone())
    }

    pub(crate) fn keep(&self, input: &ObservedInput, converted: Converted) {
        if let Ok(mut by_path) = self.by_path.lock() {
            if let Some(slot) = by_path
                .get_mut(observed_path(input).as_os_str())
                .and_then(|all| all.iter_mut().find(|(observed, _)| observed == input))
            {
                slot.1 = converted;
            }
        }
    }
}

/// Whether a call's own outputs touch `input` (a file it rewrote, a
/// directory it added entries to): then its conversion depends on this
/// call and is neither reused nor kept.
pub(crate) fn touched(input: &ObservedInput, own: &HashMap<PathBuf, HashSet<Vec<u8>>>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if own.is_empty() {
        return false;
    }
    let path = observed_path(input);
    own.contains_key(path)
        || path
            .parent()
            .zip(path.file_name())
            .and_then(|(dir, name)| own.get(dir).map(|names| names.contains(name.as_bytes())))
            .unwrap_or(false)
}

pub(crate) fn observed_path(input: &ObservedInput) -> &Path {
    match input {
        ObservedInput::File { path, .. }
        | ObservedInput::Absent { path }
        | ObservedInput::NoEntry { path }
        | ObservedInput::Dir { path }
        | ObservedInput::Stat { path, .. }
        | ObservedInput::Link { path, .. }
        | ObservedInput::Fails { path, .. }
        | ObservedInput::Replaceable { path, .. } => path,
    }
}
