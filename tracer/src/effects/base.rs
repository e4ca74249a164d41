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
    /// `None`: checked again at each call's end, as any run's path (the
    /// server changed it, or it finished to no input).
    known: Vec<Option<Vec<ObservedInput>>>,
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
        let known = recorder
            .order
            .iter()
            .map(|p| {
                let unchanged = recorder
                    .states
                    .get(p)
                    .is_some_and(|s| s.changes().is_none());
                if unchanged {
                    by_path.remove(p.as_path())
                } else {
                    None
                }
            })
            .collect();
        Base {
            recorder,
            index,
            known,
        }
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// What the server recorded of `path`.
    pub(crate) fn state(&self, path: &Path) -> Option<&PathState> {
        self.recorder.states.get(path)
    }

    /// Every path to check, as one run's: the server's in its order (as the
    /// call left them), then the call's own.
    pub(crate) fn merged<'a>(
        &'a self,
        states: &'a HashMap<PathBuf, PathState>,
        order: &'a [PathBuf],
    ) -> impl Iterator<Item = (&'a Path, Step<'a>)> {
        self.recorder
            .order
            .iter()
            .chain(order)
            .filter_map(move |p| {
                let s = states.get(p).or_else(|| self.state(p))?;
                Some((p.as_path(), Step::Check(s)))
            })
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
                let known = self.known[i].as_deref();
                if !touched[i] {
                    return match known {
                        Some(done) => Some((p.as_path(), Step::Known(done))),
                        None => self.state(p).map(|s| (p.as_path(), Step::Check(s))),
                    };
                }
                let now = states.get(p)?;
                match known {
                    Some(done) if self.state(p) == Some(now) => {
                        Some((p.as_path(), Step::Known(done)))
                    }
                    _ => Some((p.as_path(), Step::Check(now))),
                }
            });
        let own = order
            .iter()
            .filter_map(move |p| states.get(p).map(|s| (p.as_path(), Step::Check(s))));
        server.chain(own)
    }
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
        // The server changed a path itself: checked again at every call.
        let before = server.snapshot(&at("made.txt"), false).unwrap();
        std::fs::write(at("made.txt"), "m").unwrap();
        server.mutated(&at("made.txt"), before, false);
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
        assert!(outputs
            .iter()
            .any(|o| matches!(o, crate::ObservedOutput::File { path } if *path == at("made.txt"))));
    }
}
