//! Driver for the store's multi-process tests (see tests/processes.rs):
//!
//! ```text
//! casher-store-stress CACHE rw WORKER ROUNDS   write and read shared keys, check every read
//! casher-store-stress CACHE big SIZE_MB        store one large object (for kill -9 tests)
//! ```
//!
//! Exits 0 when every read was correct, 3 when one was wrong.

use std::io::Read;
use std::path::Path;

use casher_store::{
    Bytes, Lookup, NoCode, Output, StdioChunk, Store, StoreConfig, StoredPath, Stream, Variant,
};

fn payload(key: usize, round: usize) -> Vec<u8> {
    // Large enough to span several writes; content derived from the key only,
    // so every writer of a key writes identical bytes.
    let mut data = Vec::with_capacity(300_000);
    let seed = format!("key-{key}");
    while data.len() < 300_000 {
        data.extend_from_slice(
            blake3::hash(&[seed.as_bytes(), &data.len().to_le_bytes()].concat()).as_bytes(),
        );
    }
    let _ = round;
    data
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cache = Path::new(&args[1]);
    let store = Store::open(cache, StoreConfig::default()).expect("open store");
    match args[2].as_str() {
        "rw" => {
            let worker: usize = args[3].parse().unwrap_or(0);
            let rounds: usize = args[4].parse().unwrap_or(10);
            for round in 0..rounds {
                let k = (worker + round) % 4;
                let key = format!("{:064x}", k + 1);
                let data = payload(k, round);
                if let Ok(Lookup::Hit(hit)) = store.lookup(&key, &NoCode) {
                    let Some(Output::File { hash, .. }) = hit.variant.outputs.first() else {
                        std::process::exit(3);
                    };
                    match store.backend().read_object(hash) {
                        Ok(bytes) if bytes == data => {}
                        Ok(_) => std::process::exit(3),
                        Err(_) => {} // removed concurrently: a miss, never wrong data
                    }
                    continue;
                }
                let Ok((id, size)) = store.backend().put_object(&mut data.as_slice()) else {
                    continue;
                };
                let variant = Variant {
                    key: key.clone(),
                    description: format!("stress {k}"),
                    created_ns: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0),
                    shared: None,
                    inputs: vec![],
                    outputs: vec![Output::File {
                        path: StoredPath::new(Path::new("/tmp/stress-out")),
                        hash: id,
                        size,
                        mode: 0o644,
                    }],
                    stdio: vec![StdioChunk {
                        stream: Stream::Stdout,
                        bytes: Bytes::Inline(format!("{k}\n").into_bytes()),
                    }],
                    exit_code: 0,
                    value: None,
                    value_buffers: Vec::new(),
                };
                let _ = store.record(&variant);
            }
        }
        "big" => {
            // A full disk shows up as EFBIG under RLIMIT_FSIZE, not a signal.
            // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            let mb: u64 = args[3].parse().unwrap_or(64);
            let mut reader = std::io::repeat(7).take(mb << 20);
            if let Err(err) = store.backend().put_object(&mut reader) {
                eprintln!("warning: not cached: {err}");
                std::process::exit(4);
            }
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
