//! The store through its public API: lookups, variants, restores, garbage
//! collection, verification and corruption.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use casher_store::*;

mod common;
use common::*;

fn file_input(path: &Path) -> Input {
    let meta = std::fs::metadata(path).unwrap();
    Input::File {
        path: StoredPath::new(path),
        hash: ObjectId::from(hash_file(path).unwrap().0),
        stamp: Stamp::of(&meta),
    }
}

fn variant(key: &str, inputs: Vec<Input>, outputs: Vec<Output>) -> Variant {
    Variant {
        key: key.to_owned(),
        description: "test".into(),
        created_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        shared: None,
        inputs,
        outputs,
        stdio: vec![StdioChunk {
            stream: Stream::Stdout,
            bytes: Bytes::Inline(b"out\n".to_vec()),
        }],
        exit_code: 0,
        value: None,
        value_buffers: Vec::new(),
    }
}

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn hit(store: &Store, key: &str) -> Option<Variant> {
    match store.lookup(key, &NoCode).unwrap() {
        Lookup::Hit(h) => Some(h.variant),
        Lookup::Miss(_) => None,
    }
}

fn miss(store: &Store, key: &str) -> Miss {
    match store.lookup(key, &NoCode).unwrap() {
        Lookup::Hit(_) => panic!("expected a miss"),
        Lookup::Miss(m) => m,
    }
}

#[test]
fn objects_round_trip_and_dedupe() {
    let e = env();
    let (a, size) = e.store.backend().put_object(&mut &b"hello"[..]).unwrap();
    let (b, _) = e.store.backend().put_object(&mut &b"hello"[..]).unwrap();
    assert_eq!(a, b);
    assert_eq!(size, 5);
    assert_eq!(e.store.backend().read_object(&a).unwrap(), b"hello");
    assert_eq!(e.store.stats().objects, 1);
}

#[test]
fn unseen_key_misses_and_recorded_key_hits() {
    let e = env();
    let k = key(1);
    assert_eq!(miss(&e.store, &k), Miss::NotSeen);
    let input = e.root.join("in.txt");
    std::fs::write(&input, "a").unwrap();
    e.store
        .record(&variant(&k, vec![file_input(&input)], vec![]))
        .unwrap();
    assert!(hit(&e.store, &k).is_some());
    let stats = e.store.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.entries, stats.variants),
        (1, 1, 1, 1)
    );
}

#[test]
fn changed_input_misses_with_the_reason_and_revert_hits_again() {
    let e = env();
    let k = key(2);
    let input = e.root.join("in.txt");
    std::fs::write(&input, "aaa").unwrap();
    e.store
        .record(&variant(&k, vec![file_input(&input)], vec![]))
        .unwrap();
    std::fs::write(&input, "bbb").unwrap(); // same size: the hash decides
    match miss(&e.store, &k) {
        Miss::Changed(Change {
            subject,
            kind: ChangeKind::Modified { .. },
        }) => assert_eq!(subject, input.display().to_string()),
        other => panic!("unexpected {other:?}"),
    }
    // Record the second state too: switching back and forth never recomputes.
    e.store
        .record(&variant(&k, vec![file_input(&input)], vec![]))
        .unwrap();
    std::fs::write(&input, "aaa").unwrap();
    assert!(hit(&e.store, &k).is_some());
    std::fs::write(&input, "bbb").unwrap();
    assert!(hit(&e.store, &k).is_some());
    std::fs::remove_file(&input).unwrap();
    assert!(matches!(
        miss(&e.store, &k),
        Miss::Changed(Change {
            kind: ChangeKind::Deleted,
            ..
        })
    ));
}

#[test]
fn touched_but_identical_input_hits_and_refreshes_the_snapshot() {
    let e = env();
    let k = key(3);
    let input = e.root.join("in.txt");
    std::fs::write(&input, "same").unwrap();
    e.store
        .record(&variant(&k, vec![file_input(&input)], vec![]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&input, "same").unwrap(); // new mtime, same content
                                             // The racy-clean rule: a stamp is only trusted (and written back) once
                                             // it is older than the filesystem's timestamp granularity.
    std::thread::sleep(Duration::from_nanos(
        casher_store::RACY_NS as u64 + 100_000_000,
    ));
    let v = hit(&e.store, &k).expect("content unchanged: a hit");
    let Input::File { stamp, .. } = &v.inputs[0] else {
        panic!()
    };
    assert_eq!(*stamp, Stamp::of(&std::fs::metadata(&input).unwrap()));
    let (_, stored) = e.store.show(&k[..8]).unwrap();
    let Input::File { stamp: saved, .. } = &stored[0].variant.inputs[0] else {
        panic!()
    };
    assert_eq!(saved, stamp, "the refreshed snapshot was written back");
}

#[test]
fn absent_path_appearing_and_directory_listing_changes_miss() {
    let e = env();
    let (k1, k2) = (key(4), key(5));
    let absent = e.root.join("later.h");
    e.store
        .record(&variant(
            &k1,
            vec![Input::Absent {
                path: StoredPath::new(&absent),
            }],
            vec![],
        ))
        .unwrap();
    assert!(hit(&e.store, &k1).is_some());
    std::fs::write(&absent, "").unwrap();
    assert!(matches!(
        miss(&e.store, &k1),
        Miss::Changed(Change {
            kind: ChangeKind::Appeared,
            ..
        })
    ));

    let dir = e.root.join("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a"), "").unwrap();
    let listing = Input::Dir {
        path: StoredPath::new(&dir),
        hash: dir_listing_hash(&dir, &Default::default()).unwrap(),
    };
    e.store
        .record(&variant(&k2, vec![listing], vec![]))
        .unwrap();
    assert!(hit(&e.store, &k2).is_some());
    std::fs::write(dir.join("b"), "").unwrap();
    assert!(matches!(
        miss(&e.store, &k2),
        Miss::Changed(Change {
            kind: ChangeKind::Listing,
            ..
        })
    ));
}

struct Oracle(&'static str);

impl CodeOracle for Oracle {
    fn code_hash(&self, _name: &str, _path: Option<&Path>) -> Option<String> {
        Some(self.0.to_owned())
    }
}

#[test]
fn code_inputs_are_checked_through_the_oracle() {
    let e = env();
    let k = key(6);
    let code = Input::Code {
        name: "pkg.helpers".into(),
        path: None,
        hash: "aaaa".into(),
    };
    e.store.record(&variant(&k, vec![code], vec![])).unwrap();
    assert!(matches!(
        e.store.lookup(&k, &Oracle("aaaa")).unwrap(),
        Lookup::Hit(_)
    ));
    match e.store.lookup(&k, &Oracle("bbbb")).unwrap() {
        Lookup::Miss(Miss::Changed(c)) => {
            assert!(c.to_string().contains("code pkg.helpers changed"))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn variants_per_key_are_bounded() {
    let e = env_with(StoreConfig {
        max_variants: 3,
        ..StoreConfig::default()
    });
    let k = key(7);
    let input = e.root.join("in.txt");
    for i in 0..6 {
        std::fs::write(&input, format!("{i}")).unwrap();
        e.store
            .record(&variant(&k, vec![file_input(&input)], vec![]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_, variants) = e.store.show(&k).unwrap();
    assert_eq!(variants.len(), 3);
    assert!(hit(&e.store, &k).is_some(), "the newest is kept");
}

fn stored_file(e: &Env, path: &Path, content: &[u8], mode: u32) -> Output {
    let (hash, size) = e.store.backend().put_object(&mut &content[..]).unwrap();
    Output::File {
        path: StoredPath::new(path),
        hash,
        size,
        mode,
    }
}

#[test]
fn restore_writes_files_modes_symlinks_dirs_and_deletions() {
    let e = env();
    let out = e.root.join("out");
    let gone = e.root.join("gone.txt");
    std::fs::write(&gone, "x").unwrap();
    let outputs = vec![
        Output::Dir {
            path: StoredPath::new(&out),
            mode: 0o755,
        },
        stored_file(&e, &out.join("run.sh"), b"#!/bin/sh\n", 0o755),
        Output::Symlink {
            path: StoredPath::new(&out.join("link")),
            target: StoredPath::new(Path::new("run.sh")),
        },
        Output::Deleted {
            path: StoredPath::new(&gone),
        },
    ];
    let v = variant(&key(8), vec![], outputs);
    let roots = AllowedRoots::new(vec![e.root.clone()]);
    let report = restore(e.store.backend(), &v, &roots).unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(std::fs::read(out.join("run.sh")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(
        std::fs::metadata(out.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("run.sh")
    );
    assert!(!gone.exists());
    // Again: identical files are left untouched.
    let mtime = std::fs::metadata(out.join("run.sh"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let again = restore(e.store.backend(), &v, &roots).unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(
        std::fs::metadata(out.join("run.sh"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
}

#[test]
fn restore_refuses_paths_outside_the_roots_and_writes_nothing() {
    let e = env();
    let allowed = e.root.join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let outside = e.root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink(&outside, allowed.join("escape")).unwrap();
    let roots = AllowedRoots::new(vec![allowed.clone()]);
    let inside = allowed.join("ok.txt");
    for bad in [
        outside.join("x.txt"),
        allowed.join("..").join("outside").join("y.txt"),
        allowed.join("escape").join("z.txt"),
        PathBuf::from("relative.txt"),
        PathBuf::from("/etc/casher-should-not-write"),
    ] {
        let v = variant(
            &key(9),
            vec![],
            vec![
                stored_file(&e, &inside, b"fine", 0o644),
                stored_file(&e, &bad, b"evil", 0o644),
            ],
        );
        let err = restore(e.store.backend(), &v, &roots).unwrap_err();
        assert!(
            matches!(err, StoreError::Forbidden { .. }),
            "{bad:?}: {err}"
        );
        assert!(
            !inside.exists(),
            "nothing may be written when one path is refused"
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn corrupt_objects_are_misses_never_wrong_data() {
    let e = env();
    let k = key(10);
    let target = e.root.join("result.bin");
    let output = stored_file(&e, &target, &[1u8; 4096], 0o644);
    let Output::File { hash, .. } = &output else {
        unreachable!()
    };
    let object = e
        .store
        .cache_dir()
        .join("store-v1/objects")
        .join(&hash.hex()[..2])
        .join(hash.hex());
    e.store
        .record(&variant(&k, vec![], vec![output.clone()]))
        .unwrap();
    let v = hit(&e.store, &k).unwrap();

    let mut bytes = std::fs::read(&object).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&object, &bytes).unwrap();
    let problems = e.store.verify(false);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::CorruptObject(_))),
        "{problems:?}"
    );

    let roots = AllowedRoots::new(vec![e.root.clone()]);
    let err = restore(e.store.backend(), &v, &roots).unwrap_err();
    assert!(matches!(err, StoreError::CorruptObject { .. }), "{err}");
    assert!(!target.exists(), "no partial or wrong output");
    assert!(!object.exists(), "the corrupt object is removed");
    assert!(matches!(
        miss(&e.store, &k),
        Miss::Changed(Change {
            kind: ChangeKind::OutputMissing,
            ..
        })
    ));
}

#[test]
fn truncated_object_is_detected_on_read() {
    let e = env();
    let (id, _) = e
        .store
        .backend()
        .put_object(&mut &[5u8; 10_000][..])
        .unwrap();
    let path = e
        .store
        .cache_dir()
        .join("store-v1/objects")
        .join(&id.hex()[..2])
        .join(id.hex());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(5000).unwrap();
    assert!(matches!(
        e.store.backend().read_object(&id),
        Err(StoreError::CorruptObject { .. })
    ));
}

/// The file of the one record under `key`.
fn record_file(store: &Store, key: &str) -> std::path::PathBuf {
    let dir = store
        .cache_dir()
        .join("store-v1/entries")
        .join(&key[..2])
        .join(key);
    std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn corrupt_record_is_a_miss_and_verify_reports_it() {
    let e = env();
    let k = key(11);
    e.store.record(&variant(&k, vec![], vec![])).unwrap();
    let record = record_file(&e.store, &k);
    let mut bytes = std::fs::read(&record).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&record, &bytes).unwrap();
    assert_eq!(miss(&e.store, &k), Miss::NotSeen);
    let problems = e.store.verify(false);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::BadRecord { .. })),
        "{problems:?}"
    );
    assert!(!e.store.verify(true).is_empty());
    assert!(e.store.verify(false).is_empty(), "repair removed it");
}

/// Records are not fsynced (`Durability::Verified`): after a power loss the
/// new name may hold nothing, a prefix, or zeros. Each is a miss.
#[test]
fn a_record_torn_by_a_power_loss_is_a_miss() {
    type Tear = fn(&[u8]) -> Vec<u8>;
    let tears: [(&str, Tear); 3] = [
        ("empty", |_| Vec::new()),
        ("prefix", |b| b[..b.len() / 2].to_vec()),
        ("zeros", |b| vec![0; b.len()]),
    ];
    for (n, (what, tear)) in tears.into_iter().enumerate() {
        let e = env();
        let k = key(40 + n as u8);
        e.store.record(&variant(&k, vec![], vec![])).unwrap();
        assert!(hit(&e.store, &k).is_some());
        let record = record_file(&e.store, &k);
        let bytes = std::fs::read(&record).unwrap();
        std::fs::write(&record, tear(&bytes)).unwrap();
        assert_eq!(miss(&e.store, &k), Miss::NotSeen, "{what}");
    }
}

#[test]
fn gc_drops_least_recently_used_first_and_leaves_a_clean_store() {
    let e = env_with(StoreConfig {
        grace: Duration::ZERO,
        gc_interval_secs: u64::MAX,
        touch_interval: Duration::ZERO,
        ..StoreConfig::default()
    });
    for n in 0..4u8 {
        let out = stored_file(&e, &e.root.join(format!("o{n}")), &vec![n; 100_000], 0o644);
        e.store
            .record(&variant(&key(20 + n), vec![], vec![out]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(hit(&e.store, &key(20)).is_some()); // key 20 becomes most recently used
    let report = e
        .store
        .gc(&GcOptions {
            max_size: 250_000,
            max_age: None,
        })
        .unwrap();
    assert_eq!(report.variants_removed, 2);
    assert!(hit(&e.store, &key(20)).is_some());
    assert!(hit(&e.store, &key(23)).is_some());
    assert!(hit(&e.store, &key(21)).is_none());
    assert!(e.store.stats().bytes <= 250_000);
    assert!(
        e.store.verify(false).is_empty(),
        "{:?}",
        e.store.verify(false)
    );
    // An orphaned object (no record) is found by verify and removed by gc.
    e.store.backend().put_object(&mut &b"orphan"[..]).unwrap();
    assert!(matches!(e.store.verify(false)[..], [Problem::Orphan(_)]));
    e.store
        .gc(&GcOptions {
            max_size: u64::MAX,
            max_age: None,
        })
        .unwrap();
    assert!(e.store.verify(false).is_empty());
}

#[test]
fn ls_and_show_by_prefix() {
    let e = env();
    e.store
        .record(&variant(&key(0xa1), vec![], vec![]))
        .unwrap();
    e.store
        .record(&variant(&key(0xa2), vec![], vec![]))
        .unwrap();
    assert_eq!(e.store.list().len(), 2);
    assert!(matches!(
        e.store.show("a"),
        Err(StoreError::KeyPrefix { .. })
    ));
    assert!(matches!(
        e.store.show("ff"),
        Err(StoreError::KeyPrefix { .. })
    ));
    let (k, variants) = e.store.show("a1").unwrap();
    assert_eq!(k, key(0xa1));
    assert_eq!(variants.len(), 1);
}

#[test]
fn concurrent_records_of_the_same_inputs_keep_one() {
    for _ in 0..20 {
        let e = env();
        let k = key(0x30);
        let input = e.root.join("in.txt");
        std::fs::write(&input, "same").unwrap();
        let store = &e.store;
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let v = variant(&k, vec![file_input(&input)], vec![]);
                scope.spawn(move || store.record(&v).unwrap());
            }
        });
        assert!(
            hit(&e.store, &k).is_some(),
            "every concurrent record was deleted by another"
        );
    }
}

#[test]
fn an_adopted_file_is_verified_once_unless_another_copy_became_the_object() {
    let env = env();
    let dir = env.root.join("cache");
    let first = dir.join("value.buf0");
    std::fs::write(&first, vec![7u8; 100_000]).unwrap();
    let (id, size, stamp) = env.store.backend().adopt_file_stamped(&first).unwrap();
    assert_eq!(size, 100_000);
    assert!(!first.exists());
    // The adopted file became the object: its stamp vouches for it.
    let stamp = stamp.expect("the adopted file is the object");
    let (path, now) = env
        .store
        .backend()
        .mappable_object(&id, Some(&stamp))
        .unwrap()
        .unwrap();
    assert_eq!(now, stamp);
    assert_eq!(std::fs::read(path).unwrap(), vec![7u8; 100_000]);
    // The same bytes again: the existing object stays, and is not vouched for.
    let second = dir.join("value.buf1");
    std::fs::write(&second, vec![7u8; 100_000]).unwrap();
    let (again, _, stamp) = env.store.backend().adopt_file_stamped(&second).unwrap();
    assert_eq!(again, id);
    assert!(stamp.is_none());
}
