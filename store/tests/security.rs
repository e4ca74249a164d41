//! The store as an attacker sees it: forged records, planted symlinks raced
//! against restores, setuid bits, leftovers of killed restores, and the
//! maintenance defects that hid broken entries.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use casher_store::*;

mod common;
use common::*;

fn variant(key: &str, inputs: Vec<Input>, outputs: Vec<Output>) -> Variant {
    Variant {
        key: key.to_owned(),
        description: "test".into(),
        created_ns: 1,
        shared: None,
        inputs,
        outputs,
        stdio: vec![StdioChunk {
            stream: Stream::Stdout,
            bytes: Bytes::Inline(b"pwned\n".to_vec()),
        }],
        exit_code: 0,
        value: Some(Bytes::Inline(b"gadget".to_vec())),
        value_buffers: Vec::new(),
    }
}

fn stored_file(store: &Store, path: &Path, content: &[u8], mode: u32) -> Output {
    let (hash, size) = store.backend().put_object(&mut &content[..]).unwrap();
    Output::File {
        path: StoredPath::new(path),
        hash,
        size,
        mode,
    }
}

fn record_files(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![cache.join("store-v1/entries")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "var") {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_record_written_without_the_secret_is_never_served_and_is_counted() {
    let e = env();
    let key = "cd".repeat(32);
    // A genuine record, to learn where records live and what they look like.
    let real = variant(&key, vec![], vec![]);
    e.store.record(&real).unwrap();
    assert!(matches!(
        e.store.lookup(&key, &NoCode).unwrap(),
        Lookup::Hit(_)
    ));
    // The attacker edits it: the value becomes a gadget, inputs stay empty
    // (always hits), and the old unkeyed checksum is recomputed.
    let path = record_files(&e.cache).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"gadget").unwrap();
    bytes[at..at + 6].copy_from_slice(b"GADGET");
    let body = bytes.len() - 32;
    let checksum = *blake3::hash(&bytes[..body]).as_bytes();
    bytes[body..].copy_from_slice(&checksum);
    std::fs::write(&path, &bytes).unwrap();
    let fresh = Store::open(&e.cache, StoreConfig::default()).unwrap();
    assert!(matches!(
        fresh.lookup(&key, &NoCode).unwrap(),
        Lookup::Miss(Miss::NotSeen)
    ));
    assert_eq!(fresh.stats().rejected, 1);
    let problems = fresh.verify(false);
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("does not authenticate")),
        "{problems:?}"
    );
    // A store with another secret (the same record copied elsewhere) does
    // not trust it either.
    let other = tempfile::tempdir().unwrap();
    let other_store = Store::open(other.path(), StoreConfig::default()).unwrap();
    assert_ne!(other_store.secret(), fresh.secret());
}

#[test]
fn the_secret_is_private_and_salts_nothing_in_clear() {
    let e = env();
    let secret = e.cache.join("secret.key");
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&secret).unwrap(), e.store.secret().to_vec());
    // Reopening keeps the same secret (records stay valid).
    let again = Store::open(&e.cache, StoreConfig::default()).unwrap();
    assert_eq!(again.secret(), e.store.secret());
}

#[test]
fn restores_never_set_setuid_setgid_or_sticky_bits() {
    let e = env();
    let out = e.root.join("work/tool");
    let dir = e.root.join("work/shared");
    let v = variant(
        &"ef".repeat(32),
        vec![],
        vec![
            Output::Dir {
                path: StoredPath::new(&dir),
                mode: 0o41777,
            },
            stored_file(&e.store, &out, b"#!/bin/sh\n", 0o106755),
        ],
    );
    restore(
        e.store.backend(),
        &v,
        &AllowedRoots::new(vec![e.root.clone()]),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o777
    );
}

#[test]
fn a_symlink_planted_during_restores_never_redirects_a_write() {
    let e = env();
    let allowed = e.root.join("allowed");
    let outside = e.root.join("outside");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let target = allowed.join("sub/deeper/out.txt");
    let v = variant(
        &"ab".repeat(32),
        vec![],
        vec![stored_file(&e.store, &target, b"restored", 0o644)],
    );
    let roots = AllowedRoots::new(vec![allowed.clone()]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut refused, mut written) = (0, 0);
    std::thread::scope(|s| {
        // The attacker flips `allowed/sub` between a real directory and a
        // symlink to `outside` as fast as it can.
        s.spawn(|| {
            let sub = allowed.join("sub");
            let link_tmp = allowed.join("sub.link");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = symlink(&outside, &link_tmp);
                let _ = std::fs::remove_dir_all(&sub);
                let _ = std::fs::rename(&link_tmp, &sub);
                std::thread::yield_now();
                let _ = std::fs::remove_file(&sub);
                let _ = std::fs::create_dir(&sub);
            }
        });
        for _ in 0..400 {
            match restore(e.store.backend(), &v, &roots) {
                Ok(_) => written += 1,
                Err(StoreError::Forbidden { .. } | StoreError::Io { .. }) => refused += 1,
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let leaked: Vec<_> = walk(&outside);
    assert!(leaked.is_empty(), "written outside the root: {leaked:?}");
    assert_eq!(written + refused, 400);
    assert!(refused > 0, "the race never planted a symlink in time");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn restores_write_outputs_in_recorded_order_through_real_directories() {
    let e = env();
    let dir = e.root.join("w/out");
    let first = dir.join("a.txt");
    let second = dir.join("b.txt");
    let v = variant(
        &"12".repeat(32),
        vec![],
        vec![
            Output::Dir {
                path: StoredPath::new(&dir),
                mode: 0o750,
            },
            stored_file(&e.store, &second, b"second", 0o644),
            stored_file(&e.store, &first, b"first", 0o600),
            Output::Symlink {
                path: StoredPath::new(&dir.join("link")),
                target: StoredPath::new(Path::new("a.txt")),
            },
        ],
    );
    let roots = AllowedRoots::new(vec![e.root.clone()]);
    let report = restore(e.store.backend(), &v, &roots).unwrap();
    assert_eq!(report.written, 4);
    assert_eq!(std::fs::read(&first).unwrap(), b"first");
    assert_eq!(std::fs::read(dir.join("link")).unwrap(), b"first");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o750
    );
    // Written in record order: b.txt is not newer than a.txt.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    assert!(mtime(&second) <= mtime(&first));
    // No temp file is left, and a second restore changes nothing.
    assert!(walk(&dir).iter().all(|p| !p
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(".casher-tmp-")));
    // Same content, other mode: only the mode is restored (mtime kept).
    std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o4644)).unwrap();
    let before = mtime(&first);
    let again = restore(e.store.backend(), &v, &roots).unwrap();
    assert_eq!(again.unchanged, 3);
    assert_eq!(
        std::fs::metadata(&first).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(mtime(&first), before);
    // A symlink planted where a parent directory goes is refused.
    std::fs::remove_dir_all(e.root.join("w")).unwrap();
    symlink(e.root.join("cache"), e.root.join("w")).unwrap();
    assert!(matches!(
        restore(e.store.backend(), &v, &roots),
        Err(StoreError::Forbidden { .. })
    ));
}

#[test]
fn temp_files_of_a_killed_restore_are_removed_by_gc_and_the_next_restore() {
    let e = env();
    let work = e.root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // What a SIGKILLed restore leaves: a partial temp file and its journal
    // (pid 0 never names a live process).
    let plant = |n: u32| {
        let leftover = work.join(format!(".casher-tmp-0-{n}-1"));
        std::fs::write(&leftover, vec![0u8; 1000]).unwrap();
        let journals = e.cache.join("store-v1/restores");
        std::fs::create_dir_all(&journals).unwrap();
        let mut line = work.as_os_str().as_encoded_bytes().to_vec();
        line.push(0);
        line.extend_from_slice(leftover.file_name().unwrap().as_encoded_bytes());
        line.push(0);
        // A journal naming a file that is not ours is ignored.
        line.extend_from_slice(work.as_os_str().as_encoded_bytes());
        line.extend_from_slice(b"\0precious\0");
        std::fs::write(journals.join(format!("0-{n}")), line).unwrap();
        leftover
    };
    std::fs::write(work.join("precious"), b"keep").unwrap();
    let leftover = plant(1);
    let report = e
        .store
        .gc(&GcOptions {
            max_size: u64::MAX,
            max_age: None,
        })
        .unwrap();
    assert!(!leftover.exists());
    assert_eq!(report.temp_removed, 1);
    assert!(report.bytes_freed >= 1000);
    assert!(work.join("precious").exists());

    let leftover = plant(2);
    let v = variant(
        &"34".repeat(32),
        vec![],
        vec![stored_file(&e.store, &work.join("x"), b"x", 0o644)],
    );
    restore(
        e.store.backend(),
        &v,
        &AllowedRoots::new(vec![e.root.clone()]),
    )
    .unwrap();
    assert!(!leftover.exists());
    assert!(work.join("precious").exists());
    assert!(std::fs::read_dir(e.cache.join("store-v1/restores"))
        .unwrap()
        .next()
        .is_none());
}

fn gc_all(store: &Store, max_size: u64) -> GcReport {
    store
        .gc(&GcOptions {
            max_size,
            max_age: None,
        })
        .unwrap()
}

#[test]
fn gc_after_corrupt_objects_leaves_a_clean_store_and_forgets_removed_keys() {
    let e = env();
    let key = "56".repeat(32);
    let out = stored_file(&e.store, &e.root.join("o"), &[7u8; 100_000], 0o644);
    let Output::File { hash, .. } = out.clone() else {
        unreachable!()
    };
    e.store.record(&variant(&key, vec![], vec![out])).unwrap();
    // The object is corrupted, found and dropped by a read.
    let object = e
        .cache
        .join("store-v1/objects")
        .join(&hash.hex()[..2])
        .join(hash.hex());
    std::fs::write(&object, b"garbage").unwrap();
    assert!(e.store.backend().read_object(&hash).is_err());
    assert!(!object.exists());
    let report = gc_all(&e.store, u64::MAX);
    assert_eq!(report.variants_removed, 1);
    assert!(
        e.store.verify(false).is_empty(),
        "{:?}",
        e.store.verify(false)
    );
    // The key is gone for `cache show` too.
    assert!(e.store.show(&key[..8]).is_err());
    assert!(e.store.keys().is_empty());
}

#[test]
fn gc_removes_records_nobody_can_use_after_the_grace_period() {
    let e = env();
    let key = "78".repeat(32);
    e.store.record(&variant(&key, vec![], vec![])).unwrap();
    let path = record_files(&e.cache).pop().unwrap();
    // An old-format record (or a forged one), last touched long ago.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 2;
    std::fs::write(&path, &bytes).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let report = gc_all(&e.store, u64::MAX);
    assert_eq!(report.variants_removed, 1);
    assert!(!path.exists());
    assert!(e.store.keys().is_empty());
    assert!(e.store.verify(false).is_empty());
}

#[test]
fn gc_reports_every_byte_it_freed() {
    let e = env();
    for n in 0..6u8 {
        let key = format!("{n:02x}").repeat(32);
        let out = stored_file(
            &e.store,
            &e.root.join(format!("o{n}")),
            &vec![n; 100_000],
            0o644,
        );
        let mut v = variant(&key, vec![], vec![out]);
        v.created_ns = u64::from(n) + 1;
        e.store.record(&v).unwrap();
    }
    let before = e.store.stats().bytes;
    let report = gc_all(&e.store, 250_000);
    let after = e.store.stats().bytes;
    assert_eq!(report.bytes_freed, before - after);
    assert!(after <= 250_000 && after > 0, "{after}");
    assert_eq!(e.store.keys().len(), 6 - report.variants_removed as usize);
}

#[test]
fn a_store_that_exists_but_is_not_writable_says_so() {
    // As root, permissions do not stop writes: only check the wording of
    // the error (the end-to-end test runs this as another user).
    let err = StoreError::NotWritable {
        path: PathBuf::from("/x"),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    }
    .to_string();
    assert!(err.contains("is not writable"), "{err}");
    assert!(!err.contains("cannot create"), "{err}");
}

#[test]
fn large_objects_stream_verified_into_a_writer() {
    let e = env();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (id, size) = e.store.backend().put_object(&mut data.as_slice()).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        e.store.backend().stream_object(&id, &mut out).unwrap(),
        size
    );
    assert_eq!(out, data);
    e.store.backend().verify_object(&id).unwrap();
    // A file shrinking under put_file is "not cached", never a crash.
    let path = e.root.join("shrinking");
    std::fs::write(&path, &data).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::write(&path, &data[..1000]);
                let _ = std::fs::write(&path, &data);
            }
        });
        for _ in 0..50 {
            if let Ok((id, size)) = e.store.backend().put_file(&path) {
                // Whatever was stored is exactly what its id says.
                let bytes = e.store.backend().read_object(&id).unwrap();
                assert_eq!(bytes.len() as u64, size);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
