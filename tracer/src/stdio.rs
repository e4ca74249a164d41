//! The child's stdout and stderr: read from pipes, forwarded live to ours,
//! and recorded in order as chunks.
//!
//! Memory stays bounded whatever the command prints: the first
//! [`MEMORY_LIMIT`] bytes are kept in memory; everything after goes to an
//! anonymous spool file in the temp directory (`TMPDIR`, `O_TMPFILE`: it
//! disappears with the process), and chunks refer to ranges of it. The
//! recorder streams those ranges into the store.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Output bytes kept in memory before spooling to a file.
pub const MEMORY_LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Output in the order it arrived; adjacent pieces of one stream merged.
/// Its bytes are in `bytes`, or, once the output outgrew memory, in a
/// range of the spool file (`spilled`, and `bytes` is empty): read them
/// with [`Chunk::reader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: Stream,
    pub bytes: Vec<u8>,
    pub spilled: Option<Spilled>,
}

/// A range of the spool file.
#[derive(Debug, Clone)]
pub struct Spilled {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl PartialEq for Spilled {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset && self.len == other.len
    }
}

impl Eq for Spilled {}

impl Chunk {
    /// A chunk held in memory.
    pub fn new(stream: Stream, bytes: Vec<u8>) -> Self {
        Self {
            stream,
            bytes,
            spilled: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.spilled
            .as_ref()
            .map_or(self.bytes.len() as u64, |s| s.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunk's bytes, streamed (bounded memory).
    pub fn reader(&self) -> Box<dyn Read + Send + '_> {
        match &self.spilled {
            None => Box::new(self.bytes.as_slice()),
            Some(s) => Box::new(RangeReader {
                file: Arc::clone(&s.file),
                offset: s.offset,
                end: s.offset + s.len,
            }),
        }
    }

    /// All of the chunk's bytes in memory (for small outputs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.reader().read_to_end(&mut out).is_err() {
            out.clear();
        }
        out
    }
}

struct RangeReader {
    file: Arc<File>,
    offset: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.offset).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Captured chunks, the bytes held in memory, and the spool file.
#[derive(Default)]
struct State {
    chunks: Vec<Chunk>,
    in_memory: usize,
    spool: Option<(Arc<File>, u64)>,
}

impl State {
    fn add(&mut self, stream: Stream, data: &[u8]) {
        if self.spool.is_none() && self.in_memory + data.len() > MEMORY_LIMIT {
            // If no spool file can be made, keep going in memory: a
            // correct record beats a bounded one.
            self.spool = open_spool().ok().map(|f| (Arc::new(f), 0));
        }
        if let Some((file, len)) = &mut self.spool {
            if file.write_all_at(data, *len).is_ok() {
                let offset = *len;
                *len += data.len() as u64;
                if let Some(Chunk {
                    stream: s,
                    spilled: Some(spilled),
                    ..
                }) = self.chunks.last_mut()
                {
                    if *s == stream && spilled.offset + spilled.len == offset {
                        spilled.len += data.len() as u64;
                        return;
                    }
                }
                self.chunks.push(Chunk {
                    stream,
                    bytes: Vec::new(),
                    spilled: Some(Spilled {
                        file: Arc::clone(file),
                        offset,
                        len: data.len() as u64,
                    }),
                });
                return;
            }
        }
        self.in_memory += data.len();
        match self.chunks.last_mut() {
            Some(last) if last.stream == stream && last.spilled.is_none() => {
                last.bytes.extend_from_slice(data);
            }
            _ => self.chunks.push(Chunk::new(stream, data.to_vec())),
        }
    }
}

/// An anonymous file in the temp directory (gone when closed).
fn open_spool() -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let anonymous = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(&dir);
    match anonymous {
        Ok(f) => Ok(f),
        Err(_) => {
            // No O_TMPFILE on this filesystem: a named file, unlinked at once.
            let path = dir.join(format!(
                ".casher-tmp-{}-spool-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            Ok(f)
        }
    }
}

/// Where forwarded output goes instead of our own stdout/stderr (a Python
/// caller's `sys.stdout`, say).
#[derive(Clone)]
pub struct OutputSink(pub Arc<SinkFn>);

/// Receives each piece of output as it arrives.
pub type SinkFn = dyn Fn(Stream, &[u8]) + Send + Sync;

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputSink")
    }
}

#[derive(Clone, Default)]
pub struct Capture {
    state: Arc<Mutex<State>>,
}

impl Capture {
    /// Reads `pipe` until EOF on a thread, forwarding to our own stream.
    pub fn pump(
        &self,
        pipe: OwnedFd,
        stream: Stream,
        forward: bool,
        sink: Option<OutputSink>,
    ) -> JoinHandle<()> {
        let state = Arc::clone(&self.state);
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(pipe);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let data = &buf[..n];
                // The sink is called with the state locked, so what it sees
                // (a Python caller waiting for the GIL, say) comes in the
                // recorded order across stdout and stderr.
                let mut recorded = state.lock().ok();
                if let Some(state) = recorded.as_mut() {
                    state.add(stream, data);
                }
                if let Some(sink) = &sink {
                    (sink.0)(stream, data);
                    drop(recorded);
                } else if forward {
                    // Our own streams may block (a slow reader): the other
                    // stream's pump must not wait for that.
                    drop(recorded);
                    // A closed terminal must not stop the capture.
                    let _ = match stream {
                        Stream::Stdout => {
                            let mut out = std::io::stdout().lock();
                            out.write_all(data).and_then(|()| out.flush())
                        }
                        Stream::Stderr => std::io::stderr().lock().write_all(data),
                    };
                }
            }
        })
    }

    pub fn take(&self) -> Vec<Chunk> {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut *s).chunks)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_memory_limit_is_spooled_and_read_back_in_order() {
        let mut state = State::default();
        let piece = vec![b'x'; 1 << 20];
        for i in 0..(MEMORY_LIMIT >> 20) + 4 {
            let stream = if i % 7 == 6 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            state.add(stream, &piece);
        }
        assert!(state.in_memory <= MEMORY_LIMIT);
        assert!(state.chunks.iter().any(|c| c.spilled.is_some()));
        let total: u64 = state.chunks.iter().map(Chunk::len).sum();
        assert_eq!(total, ((MEMORY_LIMIT >> 20) as u64 + 4) << 20);
        for chunk in &state.chunks {
            let bytes = chunk.to_vec();
            assert_eq!(bytes.len() as u64, chunk.len());
            assert!(bytes.iter().all(|b| *b == b'x'));
        }
        let stderr: u64 = state
            .chunks
            .iter()
            .filter(|c| c.stream == Stream::Stderr)
            .map(Chunk::len)
            .sum();
        let expected = (0..(MEMORY_LIMIT >> 20) + 4).filter(|i| i % 7 == 6).count() as u64;
        assert_eq!(stderr, expected << 20);
    }
}
