//! The tracer against real programs: what it reports must match what they did.

use std::path::{Path, PathBuf};

use casher_tracer::*;

fn config(argv: &[&str]) -> TraceConfig {
    TraceConfig {
        argv: argv.iter().map(Into::into).collect(),
        ignore: vec![],
        forward: false,
        merge_stdio: false,
        stdin_data: None,
        stdin_is_tty: false,
        pin: false,
        sink: None,
        allow_network: false,
        on_main_exit: None,
        begin_marker: false,
    }
}

fn sh(script: &str, dir: &Path) -> TraceReport {
    let mut c = config(&["/bin/sh", "-c", script]);
    c.argv.push("sh".into());
    let _ = dir;
    trace(&c).unwrap()
}

fn files_in(report: &TraceReport) -> Vec<PathBuf> {
    report
        .inputs
        .iter()
        .filter_map(|i| match i {
            ObservedInput::File { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

fn stdout(report: &TraceReport) -> String {
    report
        .stdio
        .iter()
        .filter(|c| c.stream == Stream::Stdout)
        .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
        .collect()
}

#[test]
fn reads_writes_stdout_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(d.join("in.txt"), "hello\n").unwrap();
    let script = format!(
        "cat {0}/in.txt > {0}/out.txt; echo done; echo oops >&2; exit 3",
        d.display()
    );
    let r = sh(&script, &d);
    assert_eq!(r.exit, Exit::Code(3));
    assert_eq!(stdout(&r), "done\n");
    assert!(r
        .stdio
        .iter()
        .any(|c| c.stream == Stream::Stderr && c.bytes == b"oops\n"));
    assert!(files_in(&r).contains(&d.join("in.txt")), "{:?}", r.inputs);
    assert!(
        files_in(&r).iter().any(|p| p.ends_with("bin/cat")),
        "exec'd binary is an input: {:?}",
        r.inputs
    );
    assert!(
        files_in(&r)
            .iter()
            .any(|p| p.to_string_lossy().contains("ld-linux")),
        "ELF loader: {:?}",
        r.inputs
    );
    assert!(
        r.outputs.contains(&ObservedOutput::File {
            path: d.join("out.txt")
        }),
        "{:?}",
        r.outputs
    );
    assert!(r.uncacheable.is_empty(), "{:?}", r.uncacheable);
}

#[test]
fn temp_then_rename_is_one_output_and_create_delete_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(d.join("old.txt"), "x").unwrap();
    let script = format!(
        "cd {0} && echo a > tmp.123 && mv tmp.123 final.txt && echo b > scratch && rm scratch && rm old.txt && mkdir sub && echo c > sub/f",
        d.display()
    );
    let r = sh(&script, &d);
    assert_eq!(r.exit, Exit::Code(0));
    let outs = &r.outputs;
    assert!(
        outs.contains(&ObservedOutput::File {
            path: d.join("final.txt")
        }),
        "{outs:?}"
    );
    assert!(
        outs.contains(&ObservedOutput::Deleted {
            path: d.join("old.txt")
        }),
        "{outs:?}"
    );
    assert!(
        outs.contains(&ObservedOutput::Dir {
            path: d.join("sub")
        }),
        "{outs:?}"
    );
    assert!(
        outs.contains(&ObservedOutput::File {
            path: d.join("sub/f")
        }),
        "{outs:?}"
    );
    assert!(
        !outs
            .iter()
            .any(|o| format!("{o:?}").contains("tmp.123") || format!("{o:?}").contains("scratch")),
        "{outs:?}"
    );
}

#[test]
fn failed_lookups_are_absent_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let script = format!("test -e {0}/maybe.h || echo no", d.display());
    let r = sh(&script, &d);
    assert!(
        r.inputs.contains(&ObservedInput::Absent {
            path: d.join("maybe.h")
        }),
        "{:?}",
        r.inputs
    );
}

#[test]
fn directory_listings_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(d.join("a"), "").unwrap();
    let r = trace(&config(&["ls", d.to_str().unwrap()])).unwrap();
    assert!(
        r.inputs.contains(&ObservedInput::Dir { path: d.clone() }),
        "{:?}",
        r.inputs
    );
    assert_eq!(stdout(&r), "a\n");
}

#[test]
fn relative_paths_follow_each_process_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(d.join("x")).unwrap();
    std::fs::write(d.join("x/rel.txt"), "r").unwrap();
    let script = format!(
        "cd {0} && (cd x && cat rel.txt) && cat x/rel.txt > copy",
        d.display()
    );
    let r = sh(&script, &d);
    assert!(
        files_in(&r).contains(&d.join("x/rel.txt")),
        "{:?}",
        r.inputs
    );
    assert!(r.outputs.contains(&ObservedOutput::File {
        path: d.join("copy")
    }));
}

#[test]
fn signals_are_reported() {
    let r = trace(&config(&["/bin/sh", "-c", "kill -TERM $$"])).unwrap();
    assert_eq!(r.exit, Exit::Signal(libc::SIGTERM));
    assert_eq!(r.exit.shell_code(), 143);
}

#[test]
fn missing_program_is_a_clear_error() {
    let err = trace(&config(&["definitely-not-a-program-casher"])).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot run definitely-not-a-program-casher"),
        "{err}"
    );
}

#[test]
fn stdin_data_is_fed() {
    let mut c = config(&["cat"]);
    c.stdin_data = Some(b"piped\n".to_vec());
    let r = trace(&c).unwrap();
    assert_eq!(stdout(&r), "piped\n");
}

#[test]
fn multithreaded_writers_are_all_seen() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let code = format!(
        "import threading\ndef w(i):\n    open('{0}/t%d.txt' % i, 'w').write(str(i))\nts=[threading.Thread(target=w, args=(i,)) for i in range(8)]\n[t.start() for t in ts]\n[t.join() for t in ts]\n",
        d.display()
    );
    let r = trace(&config(&["python3", "-c", &code])).unwrap();
    assert_eq!(r.exit, Exit::Code(0), "{:?}", r.stdio);
    for i in 0..8 {
        assert!(
            r.outputs.contains(&ObservedOutput::File {
                path: d.join(format!("t{i}.txt"))
            }),
            "{:?}",
            r.outputs
        );
    }
}

/// Only casher's own interpreter may say where its inputs begin: a command
/// that probes the marker itself (after reading a file) still has that
/// file as an input.
#[test]
fn a_command_cannot_drop_its_reads_with_the_begin_marker() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(d.join("secret.txt"), "s").unwrap();
    let script = format!(
        "cat {}/secret.txt; test -e {BEGIN_MARKER}; true",
        d.display()
    );
    let r = sh(&script, &d);
    assert!(
        r.inputs.iter().any(|i| i.path() == d.join("secret.txt")),
        "{:?}",
        r.inputs
    );
    let mut c = config(&["/bin/sh", "-c", &script]);
    c.begin_marker = true;
    let r = trace(&c).unwrap();
    assert!(
        !r.inputs.iter().any(|i| i.path() == d.join("secret.txt")),
        "casher's own interpreter: what it read before the marker is its start-up"
    );
}

/// Pinning the traced processes to one CPU changes only speed: a program
/// asking which CPUs it may use (`nproc`, a thread pool sizing itself) is
/// told what it would be told untraced.
#[test]
fn pinned_processes_see_the_cpus_they_would_have_untraced() {
    let plain = std::process::Command::new("nproc").output().unwrap();
    let mut c = config(&["nproc"]);
    c.pin = true;
    let traced = trace(&c).unwrap();
    assert_eq!(stdout(&traced), String::from_utf8(plain.stdout).unwrap());
    // A process that chose its CPUs itself is told those.
    let plain = std::process::Command::new("taskset")
        .args(["-c", "0", "nproc"])
        .output()
        .unwrap();
    let mut c = config(&["taskset", "-c", "0", "nproc"]);
    c.pin = true;
    let traced = trace(&c).unwrap();
    assert_eq!(stdout(&traced), String::from_utf8(plain.stdout).unwrap());
}
