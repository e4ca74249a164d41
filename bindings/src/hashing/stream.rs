//! A BLAKE3 stream that takes many small writes cheaply (staged in a
//! buffer) and large ones on all cores.

/// Writes at least this large are hashed in place (with rayon from
/// [`PARALLEL`] on) instead of being copied into the staging buffer.
const DIRECT: usize = 16 * 1024;
/// From this size BLAKE3's multithreaded update pays off.
pub(crate) const PARALLEL: usize = 1 << 20;

pub(crate) struct Stream {
    hasher: blake3::Hasher,
    staged: Vec<u8>,
    written: u64,
}

impl Stream {
    pub(crate) fn new() -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            staged: Vec::with_capacity(64 * 1024),
            written: 0,
        }
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.staged.push(b);
        self.written += 1;
        if self.staged.len() >= 64 * 1024 {
            self.flush();
        }
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) {
        self.written += data.len() as u64;
        if data.len() >= DIRECT {
            self.flush();
            update(&mut self.hasher, data);
        } else {
            self.staged.extend_from_slice(data);
            if self.staged.len() >= 64 * 1024 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.staged);
        self.staged.clear();
    }

    /// The digest, with the byte count (so the empty stream and a stream
    /// that was never used agree, and the streams cannot run together).
    pub(crate) fn finish(mut self) -> [u8; 32] {
        self.flush();
        self.hasher.update(&self.written.to_le_bytes());
        *self.hasher.finalize().as_bytes()
    }
}

/// Hashes `data` on all cores when it is large.
pub(crate) fn update(hasher: &mut blake3::Hasher, data: &[u8]) {
    if data.len() >= PARALLEL {
        casher_store::in_pool(|| hasher.update_rayon(data));
    } else {
        hasher.update(data);
    }
}
