//! `casher cache` shows what the store's authentication rejected, and a
//! forged record is never replayed by `casher run`.

use std::path::{Path, PathBuf};
use std::process::Command;

use casher_store::{Lookup, NoCode, Store, StoreConfig};

fn casher(cache: &Path, cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_casher"))
        .args(args)
        .env("CASHER_DIR", cache)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn records(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(records(&e.path()));
        } else if e.path().extension().is_some_and(|x| x == "var") {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_tampered_record_is_not_replayed_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let cache = root.join("cache");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (code, stdout, _) = casher(&cache, &work, &["run", "--", "echo", "genuine"]);
    assert_eq!((code, stdout.as_str()), (0, "genuine\n"));
    let (_, stdout, stderr) = casher(&cache, &work, &["run", "-v", "--", "echo", "genuine"]);
    assert_eq!(stdout, "genuine\n");
    assert!(stderr.contains("hit"), "{stderr}");

    // Tamper with the replayed output inside the record (same length).
    let record = records(&cache.join("store-v1/entries")).pop().unwrap();
    let mut bytes = std::fs::read(&record).unwrap();
    let at = bytes.windows(8).position(|w| w == b"genuine\n").unwrap();
    bytes[at..at + 8].copy_from_slice(b"FORGED!\n");
    std::fs::write(&record, &bytes).unwrap();

    let (code, stdout, stderr) = casher(&cache, &work, &["run", "-v", "--", "echo", "genuine"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "genuine\n", "a forged record was replayed");
    assert!(stderr.contains("miss"), "{stderr}");

    let (_, stats, _) = casher(&cache, &work, &["cache", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["rejected"].as_u64().unwrap() >= 1, "{stats}");
    let (_, text, _) = casher(&cache, &work, &["cache", "stats"]);
    assert!(text.contains("rejected:"), "{text}");
    // The forged record was replaced by the new run's genuine one; forge
    // again and let verify report it.
    let record = records(&cache.join("store-v1/entries")).pop().unwrap();
    let mut bytes = std::fs::read(&record).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&record, &bytes).unwrap();
    let (code, report, _) = casher(&cache, &work, &["cache", "verify"]);
    assert_eq!(code, 1);
    assert!(report.contains("does not authenticate"), "{report}");
    let store = Store::open(&cache, StoreConfig::default()).unwrap();
    let key = record
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(matches!(
        store.lookup(&key, &NoCode).unwrap(),
        Lookup::Miss(_)
    ));
}
