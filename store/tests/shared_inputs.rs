//! Inputs shared by many records (a fork server's import-time inputs) are
//! stored once, as an object each record names: lookups see every input,
//! in order, exactly as if each record held them all.

use std::path::{Path, PathBuf};

use casher_store::*;

mod common;
use common::*;

/// Files `name0..n` under `dir`, each read by the run.
fn read_files(dir: &Path, n: usize) -> Vec<Input> {
    (0..n)
        .map(|i| {
            let path = dir.join(format!("lib{i}.py"));
            std::fs::write(&path, format!("x = {i}\n")).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            Input::File {
                path: StoredPath::new(&path),
                hash: ObjectId::from(hash_file(&path).unwrap().0),
                stamp: Stamp::of(&meta),
            }
        })
        .collect()
}

fn call(key: &str, shared: &[Input], own: Vec<Input>, created_ns: u64) -> Variant {
    let mut inputs = shared.to_vec();
    inputs.extend(own);
    Variant {
        key: key.to_owned(),
        description: "steps.tiny".into(),
        created_ns,
        shared: Some(SharedPrefix {
            len: shared.len() as u32,
            object: None,
        }),
        inputs,
        outputs: vec![],
        stdio: vec![],
        exit_code: 0,
        value: Some(Bytes::Inline(b"value".to_vec())),
        value_buffers: vec![],
    }
}

fn lookup(store: &Store, key: &str) -> Lookup {
    store.lookup(key, &NoCode).unwrap()
}

fn records(cache: &Path) -> Vec<PathBuf> {
    walk(&cache.join("store-v1/entries"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "var"))
        .collect()
}

fn objects(cache: &Path) -> Vec<PathBuf> {
    walk(&cache.join("store-v1/objects"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn shared_inputs_are_stored_once_and_every_lookup_sees_them_all_in_order() {
    let e = env();
    let shared = read_files(&e.root, 300);
    let own: Vec<Vec<Input>> = (0..5)
        .map(|i| {
            vec![Input::Absent {
                path: StoredPath::new(&e.root.join(format!("own{i}"))),
            }]
        })
        .collect();
    for (i, own) in own.iter().enumerate() {
        e.store
            .record(&call(&key(i as u8), &shared, own.clone(), 1 + i as u64))
            .unwrap();
    }
    // One object holds the shared inputs; each record is small.
    assert_eq!(objects(&e.cache).len(), 1);
    let sizes: Vec<u64> = records(&e.cache)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(sizes.len(), 5);
    assert!(
        sizes.iter().all(|&s| s < 1024),
        "records hold only their own inputs: {sizes:?}"
    );
    // A fresh process (no memory of the set) sees every input, in order.
    let fresh = Store::open(&e.cache, StoreConfig::default()).unwrap();
    for (i, own) in own.iter().enumerate() {
        let Lookup::Hit(hit) = lookup(&fresh, &key(i as u8)) else {
            panic!("call {i} should hit")
        };
        let mut expected = shared.clone();
        expected.extend(own.clone());
        assert_eq!(hit.variant.inputs, expected);
    }
}

#[test]
fn a_changed_shared_input_misses_every_record_naming_it() {
    let e = env();
    let shared = read_files(&e.root, 50);
    e.store.record(&call(&key(1), &shared, vec![], 1)).unwrap();
    e.store.record(&call(&key(2), &shared, vec![], 2)).unwrap();
    let edited = e.root.join("lib17.py");
    std::fs::write(&edited, "x = 'edited'\n").unwrap();
    for k in [key(1), key(2)] {
        match lookup(&e.store, &k) {
            Lookup::Miss(Miss::Changed(change)) => {
                assert_eq!(change.subject, edited.display().to_string())
            }
            other => panic!("expected a miss naming {}: {other:?}", edited.display()),
        }
    }
}

#[test]
fn a_missing_or_corrupt_shared_set_is_a_miss_and_verify_names_it() {
    let e = env();
    let shared = read_files(&e.root, 20);
    e.store.record(&call(&key(1), &shared, vec![], 1)).unwrap();
    let [set] = objects(&e.cache).try_into().unwrap();
    // Same length, other bytes: the object no longer matches its name.
    let mut bytes = std::fs::read(&set).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&set, &bytes).unwrap();
    let fresh = Store::open(&e.cache, StoreConfig::default()).unwrap();
    assert!(matches!(lookup(&fresh, &key(1)), Lookup::Miss(_)));
    assert!(!set.exists(), "the corrupt set was removed");
    let problems = fresh.verify(false);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::MissingObject { .. })),
        "{problems:?}"
    );
    // Recording again stores the set again (this process remembered it).
    e.store.record(&call(&key(1), &shared, vec![], 2)).unwrap();
    assert!(matches!(lookup(&fresh, &key(1)), Lookup::Hit(_)));
}

#[test]
fn garbage_collection_keeps_a_set_while_a_record_names_it() {
    let e = env();
    let store = Store::open(
        &e.cache,
        StoreConfig {
            grace: std::time::Duration::ZERO,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let shared = read_files(&e.root, 20);
    store.record(&call(&key(1), &shared, vec![], 1)).unwrap();
    let (stray, _) = store.backend().put_object(&mut &b"nobody's"[..]).unwrap();
    store
        .gc(&GcOptions {
            max_size: u64::MAX,
            max_age: None,
        })
        .unwrap();
    assert!(
        !store.backend().has_object(&stray),
        "unreferenced objects are collected"
    );
    assert_eq!(objects(&e.cache).len(), 1, "the set is kept");
    let fresh = Store::open(&e.cache, StoreConfig::default()).unwrap();
    assert!(matches!(lookup(&fresh, &key(1)), Lookup::Hit(_)));
}

#[test]
fn a_refreshed_stamp_of_a_shared_input_is_written_back_with_a_new_set() {
    let e = env();
    let shared = read_files(&e.root, 10);
    e.store.record(&call(&key(1), &shared, vec![], 1)).unwrap();
    let touched = e.root.join("lib3.py");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&touched, "x = 3\n").unwrap(); // same content, new stamp
    std::thread::sleep(std::time::Duration::from_nanos(
        RACY_NS as u64 + 100_000_000,
    ));
    assert!(matches!(lookup(&e.store, &key(1)), Lookup::Hit(_)));
    let fresh = Store::open(&e.cache, StoreConfig::default()).unwrap();
    let Lookup::Hit(hit) = lookup(&fresh, &key(1)) else {
        panic!("still a hit")
    };
    let Input::File { stamp, .. } = &hit.variant.inputs[3] else {
        panic!()
    };
    assert_eq!(*stamp, Stamp::of(&std::fs::metadata(&touched).unwrap()));
}
