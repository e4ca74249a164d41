//! The end of a run: every observation becomes an input (checked to still
//! hold where the run did not change the path itself, so an outside change
//! during the run is caught), every changed path an output with its final
//! state, in the order the run produced them.

use std::path::Path;

use crate::effects::{ObservedInput, ObservedOutput, PathState};
use crate::observe::{self, content_stamp, Kind, Reveals, StatFacts};

fn same(recorded: &StatFacts, now: &StatFacts, reveals: Reveals) -> bool {
    match reveals {
        Reveals::Kind => recorded.kind == now.kind,
        Reveals::KindMode => recorded.kind == now.kind && recorded.mode == now.mode,
        // A directory's size and mtime change with the run's own writes
        // in it; they are never inputs (see `casher_record::observed_meta`).
        Reveals::All if recorded.kind == Kind::Dir => {
            (recorded.kind, recorded.mode, recorded.uid, recorded.gid)
                == (now.kind, now.mode, now.uid, now.gid)
        }
        Reveals::All => recorded == now,
    }
}

fn lookup_errno(result: &std::io::Result<std::fs::Metadata>) -> Option<i32> {
    result.as_ref().err().map(|e| e.raw_os_error().unwrap_or(0))
}

fn is_absent(errno: i32) -> bool {
    errno == libc::ENOENT
}

/// One path at the end of a run.
pub(crate) enum Step<'a> {
    /// Its inputs, already finished and still holding (a session's call:
    /// the server's, for a path the call left as the server saw it).
    Known(&'a [ObservedInput]),
    /// Its recorded state, to check against the filesystem now.
    Check(&'a PathState),
}

/// Every path's inputs and outputs, in the order of `steps`.
pub(crate) fn finish<'a>(
    steps: impl IntoIterator<Item = (&'a Path, Step<'a>)>,
    mut problems: Vec<String>,
) -> (Vec<ObservedInput>, Vec<ObservedOutput>, Vec<String>) {
    let mut inputs = Vec::new();
    let mut outputs: Vec<(u64, ObservedOutput)> = Vec::new();
    let mut problem = |text: String| {
        if !problems.contains(&text) {
            problems.push(text);
        }
    };
    for (path, step) in steps {
        let s = match step {
            Step::Known(done) => {
                inputs.extend_from_slice(done);
                continue;
            }
            Step::Check(s) => s,
        };
        let path = path.to_path_buf();
        let changed = s.changes();
        let shown = path.display();
        // Observations of a path the run did not change must still hold
        // now: otherwise something outside the run changed it meanwhile.
        let follow_now = changed.is_none().then(|| std::fs::metadata(&path));
        let nofollow_now =
            (changed.is_none() && s.stats()[0].is_some()).then(|| std::fs::symlink_metadata(&path));
        if let Some(content) = s.content() {
            if changed.is_some() {
                match s.before().hash.or(content.hash()) {
                    Some(hash) => inputs.push(ObservedInput::File {
                        path: path.clone(),
                        before: Some(hash),
                    }),
                    None => problem(format!(
                        "{shown} could not be read before the command changed it"
                    )),
                }
            } else {
                match follow_now.as_ref().and_then(|r| r.as_ref().ok()) {
                    Some(m) if m.is_file() && content_stamp(m) == content.stamp() => {
                        let hash = content.hash();
                        if hash.is_some() && observe::hash_file(&path) != hash {
                            problem(format!("{shown} changed while the command ran"));
                        }
                        inputs.push(ObservedInput::File {
                            path: path.clone(),
                            before: hash,
                        });
                    }
                    _ => problem(format!("{shown} changed while the command ran")),
                }
            }
        }
        for (follow, slot) in [(false, 0), (true, 1)] {
            let Some((facts, reveals)) = s.stats()[slot] else {
                continue;
            };
            if changed.is_none() {
                let now = if follow { &follow_now } else { &nofollow_now };
                let holds = now
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .is_some_and(|m| same(&facts, &StatFacts::of(m), reveals));
                if !holds {
                    problem(format!("{shown} changed while the command ran"));
                }
            }
            inputs.push(ObservedInput::Stat {
                path: path.clone(),
                follow,
                facts,
                reveals,
            });
        }
        if let Some(target) = s.link_target() {
            if changed.is_none() {
                let now = std::fs::read_link(&path).ok();
                if now.as_ref() != target.as_ref() {
                    problem(format!("{shown} was re-pointed while the command ran"));
                }
            }
            inputs.push(ObservedInput::Link {
                path: path.clone(),
                target: target.clone(),
            });
        }
        if s.was_absent() {
            if changed.is_none() {
                let errno = follow_now.as_ref().and_then(lookup_errno);
                if !errno.is_some_and(is_absent) {
                    problem(format!(
                        "{shown} appeared while the command ran (created outside the traced processes)"
                    ));
                }
            }
            inputs.push(ObservedInput::Absent { path: path.clone() });
        }
        if s.had_no_entry() {
            if changed.is_none() && std::fs::symlink_metadata(&path).is_ok() {
                problem(format!(
                    "{shown} appeared while the command ran (created outside the traced processes)"
                ));
            }
            inputs.push(ObservedInput::NoEntry { path: path.clone() });
        }
        if let Some(errno) = s.failed() {
            inputs.push(ObservedInput::Fails {
                path: path.clone(),
                errno,
            });
        }
        let Some((first, last)) = changed else {
            if s.was_listed() {
                match follow_now.as_ref().and_then(|r| r.as_ref().ok()) {
                    Some(m) if m.is_dir() => inputs.push(ObservedInput::Dir { path: path.clone() }),
                    _ => problem(format!("{shown} was removed while the command ran")),
                }
            }
            continue;
        };
        let before = s.before();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(&path) {
                Ok(target) => outputs.push((last, ObservedOutput::Symlink { path, target })),
                Err(_) => problem(format!("{shown} changed while the command ran")),
            },
            Ok(meta) if meta.is_dir() => {
                if s.was_listed() && before.existed {
                    inputs.push(ObservedInput::Dir { path: path.clone() });
                }
                outputs.push((first, ObservedOutput::Dir { path }));
            }
            Ok(meta) => {
                if StatFacts::of(&meta).kind != Kind::File {
                    problem(format!(
                        "the command created {shown}, which is not a regular file, directory or symlink"
                    ));
                    continue;
                }
                if s.was_replaceable() {
                    match before
                        .facts
                        .filter(|f| before.existed && f.kind == Kind::File)
                    {
                        // Truncated an existing file: it keeps its mode, which
                        // a fresh creation (the open's mode less the umask)
                        // need not give, so "absent" is not the same outcome.
                        Some(facts) => inputs.push(ObservedInput::Stat {
                            path: path.clone(),
                            follow: false,
                            facts,
                            reveals: Reveals::KindMode,
                        }),
                        // Created (or reached through a symlink): a file
                        // already there with the mode this run gave it would
                        // end the same after truncation.
                        None => inputs.push(ObservedInput::Replaceable {
                            path: path.clone(),
                            mode: StatFacts::of(&meta).mode,
                        }),
                    }
                }
                outputs.push((last, ObservedOutput::File { path }));
            }
            Err(_) if before.existed => outputs.push((last, ObservedOutput::Deleted { path })),
            // Created and removed by the run (a temp file): no output, but it
            // was absent before (a file there would have been removed).
            Err(_) => {
                if !s.had_no_entry() {
                    inputs.push(ObservedInput::NoEntry { path });
                }
            }
        }
    }
    outputs.sort_by_key(|(seq, _)| *seq);
    (
        inputs,
        outputs.into_iter().map(|(_, o)| o).collect(),
        problems,
    )
}
