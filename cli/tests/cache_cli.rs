//! `casher cache ...` end to end: the real binary against a store populated
//! through the store crate (the first CLI writer, `casher run`, comes later).

use std::path::Path;
use std::process::Command;

use casher_store::{
    Bytes, Input, Output, StdioChunk, Store, StoreConfig, StoredPath, Stream, Variant,
};
use serde_json::Value;

fn casher(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_casher"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(cache: &Path, args: &[&str]) -> Value {
    let (code, stdout, stderr) = casher(cache, args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn populate(cache: &Path, work: &Path) -> String {
    let store = Store::open(cache, StoreConfig::default()).unwrap();
    let input = work.join("input.txt");
    std::fs::write(&input, "data").unwrap();
    let (hash, size) = store.backend().put_object(&mut &b"result"[..]).unwrap();
    let key = "ab".repeat(32);
    let variant = Variant {
        key: key.clone(),
        description: "make -C docs html".into(),
        created_ns: 1_700_000_000_000_000_000,
        shared: None,
        inputs: vec![
            Input::File {
                path: StoredPath::new(&input),
                hash: casher_store::ObjectId::from(casher_store::hash_file(&input).unwrap().0),
                stamp: casher_store::Stamp::of(&std::fs::metadata(&input).unwrap()),
            },
            Input::Absent {
                path: StoredPath::new(&work.join("missing.h")),
            },
        ],
        outputs: vec![Output::File {
            path: StoredPath::new(&work.join("out.txt")),
            hash,
            size,
            mode: 0o644,
        }],
        stdio: vec![StdioChunk {
            stream: Stream::Stdout,
            bytes: Bytes::Inline(b"built\n".to_vec()),
        }],
        exit_code: 0,
        value: None,
        value_buffers: Vec::new(),
    };
    store.record(&variant).unwrap();
    key
}

#[test]
fn stats_ls_show_verify_gc_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let key = populate(&cache, tmp.path());

    let stats = json(&cache, &["cache", "stats", "--json"]);
    for k in ["entries", "variants", "objects", "bytes", "hits", "misses"] {
        assert!(stats[k].is_u64(), "{k} missing from {stats}");
    }
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["objects"], 1);

    let ls = json(&cache, &["cache", "ls", "--json"]);
    assert_eq!(ls[0]["key"], key);
    assert_eq!(ls[0]["description"], "make -C docs html");
    assert_eq!(ls[0]["variants"], 1);

    let show = json(&cache, &["cache", "show", &key[..6], "--json"]);
    assert_eq!(show["key"], key);
    let v = &show["variants"][0];
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["created"], 1_700_000_000);
    assert_eq!(v["inputs"][0]["kind"], "file");
    assert_eq!(v["inputs"][1]["kind"], "absent");
    assert_eq!(v["outputs"][0]["kind"], "file");
    assert_eq!(v["outputs"][0]["hash"].as_str().unwrap().len(), 64);

    let (code, _, stderr) = casher(&cache, &["cache", "show", "zz"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no entry key starts with"), "{stderr}");

    let (code, _, _) = casher(&cache, &["cache", "verify"]);
    assert_eq!(code, 0);

    // Corrupt the object: verify finds it (exit 1), --repair removes it.
    let objects = cache.join("store-v1/objects");
    let shard = std::fs::read_dir(&objects)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let object = std::fs::read_dir(shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&object, b"tampered").unwrap();
    let (code, stdout, _) = casher(&cache, &["cache", "verify"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("corrupt object"), "{stdout}");
    let (code, _, _) = casher(&cache, &["cache", "verify", "--repair"]);
    assert_eq!(code, 1);
    let (code, stdout, _) = casher(&cache, &["cache", "verify"]);
    assert_eq!(code, 0, "{stdout}");

    let (code, stdout, _) = casher(
        &cache,
        &["cache", "gc", "--max-size", "1K", "--max-age", "1d"],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("removed"), "{stdout}");
    let (code, _, stderr) = casher(&cache, &["cache", "gc", "--max-size", "lots"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid size"), "{stderr}");

    populate(&cache, tmp.path());
    let (code, _, _) = casher(&cache, &["cache", "clear"]);
    assert_eq!(code, 0);
    assert_eq!(json(&cache, &["cache", "stats", "--json"])["entries"], 0);
    assert!(
        cache.join("CACHEDIR.TAG").is_file(),
        "the cache dir itself stays"
    );
}
