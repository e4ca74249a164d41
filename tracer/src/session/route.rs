//! A session's routing: which call a traced process belongs to, the
//! server's observations as every call's start, a call's report when its
//! root process exits, and the stamps that say when the server is stale.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use nix::unistd::Pid;

use crate::effects::{Base, ObservedInput, Recorder};
use crate::tracer::{Exit, Route};
use crate::TraceReport;

use super::watch::Watch;

/// What identifies a file's state cheaply: the stat fast path.
pub(crate) type Stamp = (u64, u64, u64, i64, i64, i64, i64, u32);

/// `follow`: of what a symlink at `path` points to (else of the link).
pub(crate) fn stamp(path: &std::path::Path, follow: bool) -> Option<Stamp> {
    stamp_as(path, follow, false)
}

/// The stat stamp of `path`; with `identity`, only which object it is, its
/// type, permissions and owner: a directory the server only `stat`ed, or a
/// path whose symlink target it read, stays what the server saw while
/// entries come and go in it (`/tmp` changes all the time). What the
/// server listed or read is covered by its own, full stamp.
pub(crate) fn stamp_as(path: &std::path::Path, follow: bool, identity: bool) -> Option<Stamp> {
    let m = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .ok()?;
    if identity {
        return Some((
            m.dev(),
            m.ino(),
            u64::from(m.uid()),
            i64::from(m.gid()),
            0,
            0,
            0,
            m.mode(),
        ));
    }
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.mode(),
    ))
}

/// The server's inputs at its first call, with their stat stamps then.
pub(crate) struct Imports {
    /// What the server observed up to its first call: every call's report
    /// starts with these (the caller converts them once, see `Session::imports`).
    pub(crate) inputs: Arc<Vec<ObservedInput>>,
    /// Path, whether the stamp follows symlinks, whether it is an identity
    /// stamp (see [`stamp_as`]), the stamp.
    pub(crate) stamps: Vec<(PathBuf, bool, bool, Option<Stamp>)>,
    /// Says when the stamps need no check (`None`: they always do).
    pub(crate) watch: Option<Watch>,
    pub(crate) problems: Vec<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) ready: bool,
    pub(crate) done: bool,
    pub(crate) imports: Option<Imports>,
    pub(crate) reports: HashMap<i32, TraceReport>,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Condvar,
}

impl Shared {
    pub(crate) fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
        }
        self.changed.notify_all();
    }
}

/// A call: its recorder (started from the server's), its live processes.
struct Call {
    recorder: Recorder,
    live: HashSet<Pid>,
    problems: Vec<String>,
}

/// Sends each process's observations to the server's recorder (until the
/// first call), or to its call's.
pub(crate) struct Router<'a> {
    server: Pid,
    shared: &'a Shared,
    server_recorder: Recorder,
    server_problems: Vec<String>,
    /// The server's state at its first call; every call starts from it.
    snapshot: Option<Arc<Base>>,
    /// Where observations nobody will report go (the server after its
    /// first call, a call's processes outliving it).
    stray: Recorder,
    known: HashSet<Pid>,
    owner: HashMap<Pid, Pid>,
    calls: HashMap<Pid, Call>,
}

impl<'a> Router<'a> {
    pub(crate) fn new(server: Pid, ignore: Vec<PathBuf>, shared: &'a Shared) -> Self {
        Router {
            server,
            shared,
            server_recorder: Recorder::new(ignore.clone(), false, Vec::new()).await_begin(),
            server_problems: Vec::new(),
            snapshot: None,
            stray: Recorder::new(ignore, false, Vec::new()),
            known: HashSet::from([server]),
            owner: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    fn ready(&self) -> bool {
        self.shared.state.lock().is_ok_and(|s| s.ready)
    }

    /// The server's recorder as it is now becomes every call's start; its
    /// inputs are stamped so the caller can tell when they change.
    fn take_snapshot(&mut self) -> (Recorder, Vec<String>) {
        if let Some(snapshot) = &self.snapshot {
            let problems = self
                .shared
                .state
                .lock()
                .ok()
                .and_then(|s| s.imports.as_ref().map(|i| i.problems.clone()))
                .unwrap_or_default();
            return (Recorder::on(snapshot), problems);
        }
        let snapshot = self.server_recorder.clone();
        // Watched before its observations are checked (by `finish`): a
        // change after the check is an event.
        let watch = Watch::new(snapshot.paths().iter().map(PathBuf::as_path));
        let (inputs, _, mut problems) = snapshot.clone().finish();
        problems.append(&mut self.server_problems);
        let shared = Arc::new(inputs.clone());
        let base = Arc::new(Base::new(snapshot, &inputs));
        let stamps = inputs
            .into_iter()
            .map(|input| match input {
                ObservedInput::Stat {
                    path,
                    follow,
                    facts,
                    ..
                } if facts.kind == crate::observe::Kind::Dir => {
                    let now = stamp_as(&path, follow, true);
                    (path, follow, true, now)
                }
                ObservedInput::File { path, .. }
                | ObservedInput::Dir { path }
                | ObservedInput::Stat { path, .. }
                | ObservedInput::Fails { path, .. }
                | ObservedInput::Replaceable { path, .. } => {
                    let now = stamp(&path, true);
                    (path, true, false, now)
                }
                ObservedInput::Link { path, .. } => {
                    let now = stamp_as(&path, false, true);
                    (path, false, true, now)
                }
                ObservedInput::Absent { path } => (path, true, false, None),
                ObservedInput::NoEntry { path } => (path, false, false, None),
            })
            .collect();
        let imports = Imports {
            inputs: shared,
            stamps,
            watch,
            problems: problems.clone(),
        };
        self.shared.update(|s| s.imports = Some(imports));
        let start = Recorder::on(&base);
        self.snapshot = Some(base);
        (start, problems)
    }

    fn deliver(&mut self, root: Pid, exit: Exit) {
        let Some(call) = self.calls.remove(&root) else {
            return;
        };
        let mut uncacheable = call.problems;
        if !call.live.is_empty() {
            uncacheable.push("the call left processes running after it returned".to_owned());
        }
        // Paths the call left as the server saw them need no second check
        // while nothing changed on disk since the server's were checked.
        let unchanged = self.shared.state.lock().is_ok_and(|s| {
            s.imports
                .as_ref()
                .and_then(|i| i.watch.as_ref())
                .is_some_and(|w| !w.ever_changed())
        });
        let (inputs, outputs, problems) = call.recorder.finish_from(unchanged);
        uncacheable.extend(problems);
        let report = TraceReport {
            exit,
            inputs,
            outputs,
            stdio: Vec::new(),
            uncacheable,
        };
        self.shared.update(|s| {
            s.reports.insert(root.as_raw(), report);
        });
    }
}

impl Route for Router<'_> {
    fn recorder(&mut self, pid: Pid) -> &mut Recorder {
        match self.owner.get(&pid) {
            Some(root) => match self.calls.get_mut(root) {
                Some(call) => &mut call.recorder,
                None => &mut self.stray,
            },
            None if self.snapshot.is_some() => &mut self.stray,
            None => &mut self.server_recorder,
        }
    }

    fn knows(&mut self, pid: Pid) -> bool {
        self.known.contains(&pid)
    }

    /// The server runs casher's loop once it has imported: no code of the
    /// project runs in it any more, only in its calls.
    fn places(&mut self, pid: Pid) -> bool {
        pid == self.server && self.ready()
    }

    fn forked(&mut self, parent: Pid, child: Pid, event: i32) {
        self.known.insert(child);
        if let Some(&root) = self.owner.get(&parent) {
            self.owner.insert(child, root);
            if let Some(call) = self.calls.get_mut(&root) {
                call.live.insert(child);
            }
        } else if parent == self.server && event != libc::PTRACE_EVENT_CLONE && self.ready() {
            let (recorder, problems) = self.take_snapshot();
            self.owner.insert(child, child);
            self.calls.insert(
                child,
                Call {
                    recorder,
                    live: HashSet::new(),
                    problems,
                },
            );
        }
    }

    fn noted(&mut self, pid: Pid, reason: &str) {
        let list = match self.owner.get(&pid).and_then(|r| self.calls.get_mut(r)) {
            Some(call) => &mut call.problems,
            None if self.snapshot.is_none() => &mut self.server_problems,
            None => return,
        };
        if !list.iter().any(|r| r == reason) {
            list.push(reason.to_owned());
        }
    }

    /// A call's report goes out as soon as its root process is exiting
    /// with nothing of the call left running: tearing down its address
    /// space (a forked copy of an interpreter with pandas) takes
    /// milliseconds the caller need not wait for. (Its output closes
    /// earlier: the child closes it before exiting.)
    fn exiting(&mut self, pid: Pid, exit: Exit) {
        if self.owner.get(&pid) == Some(&pid)
            && self.calls.get(&pid).is_some_and(|c| c.live.is_empty())
        {
            self.deliver(pid, exit);
        }
    }

    fn exited(&mut self, pid: Pid, exit: Exit) {
        self.known.remove(&pid);
        let Some(root) = self.owner.remove(&pid) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&root) {
            call.live.remove(&pid);
        }
        if root == pid {
            self.deliver(root, exit);
        }
    }
}
