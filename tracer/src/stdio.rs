//! The child's stdout and stderr: read from pipes, forwarded live to ours,
//! and recorded in order as chunks.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Output in the order it arrived; adjacent pieces of one stream merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: Stream,
    pub bytes: Vec<u8>,
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
    chunks: Arc<Mutex<Vec<Chunk>>>,
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
        let chunks = Arc::clone(&self.chunks);
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
                // The sink is called with the chunks locked, so what it sees
                // (a Python caller waiting for the GIL, say) comes in the
                // recorded order across stdout and stderr.
                let mut recorded = chunks.lock().ok();
                if let Some(chunks) = recorded.as_mut() {
                    match chunks.last_mut() {
                        Some(last) if last.stream == stream => last.bytes.extend_from_slice(data),
                        _ => chunks.push(Chunk {
                            stream,
                            bytes: data.to_vec(),
                        }),
                    }
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
        self.chunks
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}
