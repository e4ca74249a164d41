//! A session's server observations as the start of each of its calls.
//!
//! A call forked from the server has seen everything the server saw while
//! importing (thousands of paths with pandas). Copying those into every
//! call's recorder, and finishing all of them again at every call's end,
//! cost milliseconds per call. Instead the server's recorder is shared; a
//! call's own recorder holds only the paths it observed itself (a server
//! path is copied in when the call first observes it), and its end reuses
//! the server's finished inputs for every path it left alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ObservedInput, PathState, Recorder};
use crate::finish::Step;

pub(crate) struct Base {
    recorder: Recorder,
    /// Path → its position in the server's order.
    index: HashMap<PathBuf, usize>,
    /// Per position: the server's finished inputs of that path, which a
    /// call that leaves the path as the server saw it reuses as they are.
    /// `None`: checked again at each call's end, as any run's path (it
    /// finished to no input).
    known: Vec<Option<Vec<ObservedInput>>>,
    /// Per position: the server changed the path while importing (a file
    /// or a shared memory segment its import created). That is the
    /// import's doing, which the caller's own import did as well: not an
    /// output of the call, unless the call changes the path again.
    changed: Vec<bool>,
}

impl Base {
    /// `inputs`: what `recorder` finished to (`Recorder::finish`), checked
    /// against the filesystem then.
    pub(crate) fn new(recorder: Recorder, inputs: &[ObservedInput]) -> Self {
        let mut by_path: HashMap<&Path, Vec<ObservedInput>> = HashMap::new();
        for input in inputs {
            by_path.entry(input.path()).or_default().push(input.clone());
        }
        let index = recorder
            .order
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        let changed: Vec<bool> = recorder
            .order
            .iter()
            .map(|p| {
                recorder
                    .states
                    .get(p)
                    .is_some_and(|s| s.changes().is_some())
            })
            .collect();
        let known = recorder
            .order
            .iter()
            .zip(&changed)
            .map(|(p, &changed)| {
                let mut inputs = by_path.remove(p.as_path())?;
                // A file the import appended to without reading it (a log
                // it opened): its old content was a precondition of that
                // write's outcome, which is no output of the call. Keeping
                // it made every later call miss once the log had grown.
                let read = recorder
                    .states
                    .get(p)
                    .and_then(PathState::content)
                    .is_some_and(|c| c.was_read());
                if changed && !read {
                    inputs.retain(|i| !matches!(i, ObservedInput::File { .. }));
                }
                Some(inputs)
            })
            .collect();
        Base {
            recorder,
            index,
            known,
            changed,
        }
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// What the server recorded of `path`.
    pub(crate) fn state(&self, path: &Path) -> Option<&PathState> {
        self.recorder.states.get(path)
    }

    /// A path the server's import changed and the call left alone: what
    /// the server saw of it before its change, and none of its outputs.
    fn server_changed<'a>(&'a self, i: usize, p: &'a Path) -> (&'a Path, Step<'a>) {
        (p, Step::Known(self.known[i].as_deref().unwrap_or(&[])))
    }

    /// Every path to check, as one run's: the server's in its order (as the
    /// call left them), then the call's own.
    pub(crate) fn merged<'a>(
        &'a self,
        states: &'a HashMap<PathBuf, PathState>,
        order: &'a [PathBuf],
    ) -> impl Iterator<Item = (&'a Path, Step<'a>)> {
        let server = self
            .recorder
            .order
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| match states.get(p) {
                Some(now) if self.changed[i] && self.state(p) == Some(now) => {
                    Some(self.server_changed(i, p))
                }
                Some(now) => Some((p.as_path(), Step::Check(now))),
                None if self.changed[i] => Some(self.server_changed(i, p)),
                None => self.state(p).map(|s| (p.as_path(), Step::Check(s))),
            });
        server.chain(own(states, order))
    }

    /// As [`Base::merged`], but a server path the call left as the server
    /// saw it takes the server's finished inputs.
    pub(crate) fn steps<'a>(
        &'a self,
        states: &'a HashMap<PathBuf, PathState>,
        order: &'a [PathBuf],
    ) -> impl Iterator<Item = (&'a Path, Step<'a>)> {
        // The server's paths this call observed again (usually none or a few).
        let mut touched = vec![false; self.recorder.order.len()];
        for path in states.keys() {
            if let Some(&i) = self.index.get(path) {
                touched[i] = true;
            }
        }
        let server = self
            .recorder
            .order
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| {
                let now = if touched[i] { states.get(p) } else { None };
                let as_server_left = now.is_none() || self.state(p) == now;
                if as_server_left && self.changed[i] {
                    return Some(self.server_changed(i, p));
                }
                match (self.known[i].as_deref(), now) {
                    (Some(done), _) if as_server_left => Some((p.as_path(), Step::Known(done))),
                    (_, Some(now)) => Some((p.as_path(), Step::Check(now))),
                    (_, None) => self.state(p).map(|s| (p.as_path(), Step::Check(s))),
                }
            });
        server.chain(own(states, order))
    }
}

/// The paths only the call observed, in its order.
fn own<'a>(
    states: &'a HashMap<PathBuf, PathState>,
    order: &'a [PathBuf],
) -> impl Iterator<Item = (&'a Path, Step<'a>)> {
    order
        .iter()
        .filter_map(move |p| states.get(p).map(|s| (p.as_path(), Step::Check(s))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Reveals;
    use std::sync::Arc;

    fn meta(p: &Path) -> std::fs::Metadata {
        std::fs::metadata(p).unwrap()
    }

    /// A call's end reusing the server's finished inputs says exactly what
    /// checking every path again says, whatever the call did to them.
    #[test]
    fn reusing_the_servers_inputs_equals_checking_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        for name in [
            "kept.txt",
            "reread.txt",
            "rewritten.txt",
            "statted.txt",
            "own.txt",
        ] {
            std::fs::write(at(name), name).unwrap();
        }
        let mut server = Recorder::new(Vec::new(), false, Vec::new());
        for name in ["kept.txt", "reread.txt", "rewritten.txt"] {
            server.read(&at(name), &meta(&at(name)));
        }
        server.stat(
            &at("statted.txt"),
            true,
            &meta(&at("statted.txt")),
            Reveals::Kind,
        );
        server.absent(&at("missing.txt"), true);
        server.listed(dir.path());
        // The server's import made files itself (a shared memory segment,
        // a temporary directory): the caller's own import made its own.
        for name in ["made.txt", "remade.txt"] {
            let before = server.snapshot(&at(name), false).unwrap();
            std::fs::write(at(name), "m").unwrap();
            server.mutated(&at(name), before, false);
        }
        // A log it appended to without reading it, and a counter it read
        // and then rewrote (its old content is what the import used).
        for name in ["log.txt", "counter.txt"] {
            std::fs::write(at(name), "old").unwrap();
        }
        server.read(&at("counter.txt"), &meta(&at("counter.txt")));
        for name in ["log.txt", "counter.txt"] {
            let before = server.snapshot(&at(name), true).unwrap();
            std::fs::write(at(name), "old+new").unwrap();
            server.mutated(&at(name), before, true);
        }
        let (inputs, _, _) = server.clone().finish();
        let base = Arc::new(Base::new(server, &inputs));

        let mut call = Recorder::on(&base);
        call.read(&at("reread.txt"), &meta(&at("reread.txt")));
        call.stat(
            &at("statted.txt"),
            true,
            &meta(&at("statted.txt")),
            Reveals::All,
        );
        let before = call.snapshot(&at("rewritten.txt"), false).unwrap();
        std::fs::write(at("rewritten.txt"), "new").unwrap();
        call.mutated(&at("rewritten.txt"), before, false);
        call.read(&at("own.txt"), &meta(&at("own.txt")));
        call.absent(&at("missing.txt"), false);
        // The call writes one of them again: that is its own output.
        let before = call.snapshot(&at("remade.txt"), false).unwrap();
        std::fs::write(at("remade.txt"), "call").unwrap();
        call.mutated(&at("remade.txt"), before, false);

        let fast = call.clone().finish_from(true);
        let full = call.finish();
        assert_eq!(fast, full);
        let (inputs, outputs, _) = fast;
        assert!(inputs
            .iter()
            .any(|i| matches!(i, ObservedInput::File { path, .. } if *path == at("kept.txt"))));
        assert!(inputs.iter().any(|i| i.path() == at("own.txt")));
        assert!(outputs.iter().any(
            |o| matches!(o, crate::ObservedOutput::File { path } if *path == at("rewritten.txt"))
        ));
        let output = |name: &str| {
            outputs
                .iter()
                .any(|o| matches!(o, crate::ObservedOutput::File { path } if *path == at(name)))
        };
        assert!(!output("made.txt"), "the server's own doing");
        let content = |name: &str| {
            inputs
                .iter()
                .any(|i| matches!(i, ObservedInput::File { path, .. } if *path == at(name)))
        };
        assert!(!content("log.txt"), "appended to, never read: no input");
        assert!(content("counter.txt"), "read before it was rewritten");
        assert!(output("remade.txt"), "made again by the call");
    }

    /// A fresh interpreter's import ends with [`crate::IMPORTED_MARKER`]:
    /// from there on the run records as a session's call does on its
    /// server's base. What the import wrote is no output, what it read
    /// stays an input, what the call writes is an output.
    #[test]
    fn the_imported_marker_makes_the_import_a_base() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        std::fs::write(at("data.txt"), "data").unwrap();
        let mut run = Recorder::new(Vec::new(), false, Vec::new()).await_begin();
        run.absent(Path::new(crate::BEGIN_MARKER), true);
        run.read(&at("data.txt"), &meta(&at("data.txt")));
        for name in ["import.log", "call.txt"] {
            let before = run.snapshot(&at(name), false).unwrap();
            std::fs::write(at(name), "by the import").unwrap();
            run.mutated(&at(name), before, false);
            if name == "import.log" {
                run.absent(Path::new(crate::IMPORTED_MARKER), true);
            }
        }
        let (inputs, outputs, _) = run.finish();
        let output = |name: &str| {
            outputs
                .iter()
                .any(|o| matches!(o, crate::ObservedOutput::File { path } if *path == at(name)))
        };
        assert!(!output("import.log"), "the import's doing");
        assert!(output("call.txt"), "the call's doing");
        assert!(inputs.iter().any(|i| i.path() == at("data.txt")));
    }
}
