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
use std::path::PathBuf;
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

/// The server's observations (in its order) and their conversions.
pub struct SharedInputs {
    observed: Vec<ObservedInput>,
    /// Path (as bytes: a `Path`'s hash walks its components, too slow for
    /// thousands per call) → positions in `observed`.
    by_path: HashMap<OsString, Vec<usize>>,
    converted: Mutex<Vec<Converted>>,
}

impl SharedInputs {
    /// For a session's import-time observations (`Session::imports`).
    pub fn new(inputs: &Arc<Vec<ObservedInput>>) -> Self {
        let mut by_path: HashMap<OsString, Vec<usize>> = HashMap::new();
        for (i, input) in inputs.iter().enumerate() {
            by_path
                .entry(input.path().as_os_str().to_owned())
                .or_default()
                .push(i);
        }
        Self {
            observed: inputs.to_vec(),
            by_path,
            converted: Mutex::new(vec![Converted::Pending; inputs.len()]),
        }
    }

    /// For each of `inputs`: its position among the server's observations
    /// (`None`: not exactly one of them) and what it became so far. A
    /// call's report lists the server's observations first, in the
    /// server's order: they are matched by position, by path otherwise.
    pub(crate) fn find(&self, inputs: &[&ObservedInput]) -> Vec<Option<(usize, Converted)>> {
        let Ok(converted) = self.converted.lock() else {
            return vec![None; inputs.len()];
        };
        let mut next = 0;
        inputs
            .iter()
            .map(|input| {
                let at = if self.observed.get(next) == Some(*input) {
                    Some(next)
                } else {
                    self.by_path
                        .get(input.path().as_os_str())
                        .and_then(|all| all.iter().copied().find(|&i| self.observed[i] == **input))
                };
                at.map(|i| {
                    next = i + 1;
                    (i, converted[i].clone())
                })
            })
            .collect()
    }

    /// Keeps what the observations at these positions became.
    pub(crate) fn keep(&self, done: Vec<(usize, Converted)>) {
        if let Ok(mut converted) = self.converted.lock() {
            for (i, c) in done {
                if let Some(slot) = converted.get_mut(i) {
                    *slot = c;
                }
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
    let path = input.path();
    own.contains_key(path)
        || path
            .parent()
            .zip(path.file_name())
            .and_then(|(dir, name)| own.get(dir).map(|names| names.contains(name.as_bytes())))
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent(p: &str) -> ObservedInput {
        ObservedInput::Absent { path: p.into() }
    }

    #[test]
    fn server_observations_are_found_in_order_or_by_path_and_only_exactly() {
        let server = Arc::new(vec![absent("/a"), absent("/b"), absent("/c")]);
        let shared = SharedInputs::new(&server);
        let file_b = ObservedInput::File {
            path: "/b".into(),
            before: None,
        };
        let report = [absent("/a"), file_b.clone(), absent("/c"), absent("/own")];
        let refs: Vec<&ObservedInput> = report.iter().collect();
        let found: Vec<Option<usize>> = shared
            .find(&refs)
            .into_iter()
            .map(|f| f.map(|(i, _)| i))
            .collect();
        // `/b` was observed otherwise by the call: not the server's.
        assert_eq!(found, vec![Some(0), None, Some(2), None]);
        shared.keep(vec![(2, Converted::Skipped)]);
        let again = shared.find(&[&absent("/c")]);
        assert!(matches!(again[0], Some((2, Converted::Skipped))));
        assert!(matches!(
            shared.find(&[&absent("/a")])[0],
            Some((0, Converted::Pending))
        ));
    }
}
