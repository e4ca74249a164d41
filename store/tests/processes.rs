//! Many real processes against one store: concurrent writers and readers,
//! writers killed with SIGKILL mid-write, a full filesystem, and memory use
//! while storing a large object.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use casher_store::{Store, StoreConfig};

const STRESS: &str = env!("CARGO_BIN_EXE_casher-store-stress");

fn stress(cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(STRESS);
    cmd.arg(cache).args(args);
    cmd
}

fn open(cache: &Path) -> Store {
    Store::open(cache, StoreConfig::default()).unwrap()
}

#[test]
fn sixteen_processes_read_and_write_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let children: Vec<Child> = (0..16)
        .map(|w| {
            stress(&cache, &["rw", &w.to_string(), "12"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "a reader saw wrong data or failed: {status}"
        );
    }
    let store = open(&cache);
    assert!(store.verify(false).is_empty(), "{:?}", store.verify(false));
    let stats = store.stats();
    assert_eq!(stats.entries, 4);
    assert!(stats.hits > 0 && stats.misses > 0);
    assert_eq!(stats.objects, 4, "identical content is stored once");
}

#[test]
fn writers_killed_at_random_points_leave_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for i in 0..8u64 {
        let mut big = stress(&cache, &["big", "200"]).spawn().unwrap();
        let mut rw = stress(&cache, &["rw", &i.to_string(), "50"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(15 + 37 * i));
        let _ = big.kill();
        let _ = rw.kill();
        let _ = big.wait();
        let _ = rw.wait();
    }
    let store = open(&cache);
    // Leftover temp files are younger than the grace period: they may belong
    // to a live writer, so they are not problems; everything else is clean.
    assert!(store.verify(false).is_empty(), "{:?}", store.verify(false));
    // And every readable answer is still right.
    let status = stress(&cache, &["rw", "99", "8"]).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_full_filesystem_degrades_to_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    open(&cache); // create it before the limit applies
    let mut cmd = stress(&cache, &["big", "8"]);
    // SAFETY: setrlimit is async-signal-safe and runs in the child only.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not cached") && stderr.contains("cache store I/O failed"),
        "{stderr}"
    );
    let store = open(&cache);
    assert_eq!(store.stats().objects, 0, "no partial object was published");
    assert!(store.verify(false).is_empty());
}

#[test]
fn storing_a_large_object_uses_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let status = stress(&cache, &["big", "512"]).status().unwrap();
    assert!(status.success());
    // SAFETY: getrusage only writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let max_rss_mb = usage.ru_maxrss / 1024;
    assert!(
        max_rss_mb < 100,
        "storing 512 MiB peaked at {max_rss_mb} MiB of memory"
    );
    assert_eq!(open(&cache).stats().objects, 1);
}
