//! Replaying recorded stdout/stderr in their original order.

use std::io::Write;

use casher_store::{Backend, Bytes, Stream, Variant};

use crate::error::Result;

/// Output objects up to this total are read (and verified) into memory
/// before anything is printed; beyond it, they are verified first and then
/// streamed, so a hit replaying gigabytes uses bounded memory.
const IN_MEMORY: u64 = 64 << 20;

/// Writes every chunk to `stdout` or `stderr`, in order. Large chunks are
/// read (and verified) from the store; a corrupt object makes this an
/// error (a miss) before anything was printed.
pub fn replay_stdio(
    backend: &dyn Backend,
    variant: &Variant,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let objects: u64 = variant
        .stdio
        .iter()
        .map(|c| match c.bytes {
            Bytes::Object { size, .. } => size,
            Bytes::Inline(_) => 0,
        })
        .sum();
    let streaming = objects > IN_MEMORY;
    let mut pieces = Vec::with_capacity(variant.stdio.len());
    for chunk in &variant.stdio {
        let bytes = match &chunk.bytes {
            Bytes::Inline(b) => Piece::Memory(std::borrow::Cow::Borrowed(b.as_slice())),
            Bytes::Object { id, .. } if streaming => {
                backend.verify_object(id)?;
                Piece::Object(*id)
            }
            Bytes::Object { id, .. } => {
                Piece::Memory(std::borrow::Cow::Owned(backend.read_object(id)?))
            }
        };
        pieces.push((chunk.stream, bytes));
    }
    let mut out = Quiet::new(stdout);
    let mut err = Quiet::new(stderr);
    for (stream, piece) in pieces {
        let (target, other) = match stream {
            Stream::Stdout => (&mut out, &mut err),
            Stream::Stderr => (&mut err, &mut out),
        };
        other.flush().ok();
        match piece {
            Piece::Memory(bytes) => {
                let _ = target.write_all(&bytes);
            }
            Piece::Object(id) => {
                backend.stream_object(&id, target)?;
            }
        }
        // Our own stdout may be closed (`| head`): stop quietly.
        if target.closed {
            break;
        }
    }
    out.flush().ok();
    err.flush().ok();
    Ok(())
}

enum Piece<'a> {
    Memory(std::borrow::Cow<'a, [u8]>),
    Object(casher_store::ObjectId),
}

/// A writer that turns a failed write (a closed pipe) into "discard the
/// rest", remembering that it happened.
struct Quiet<'a> {
    inner: &'a mut dyn Write,
    closed: bool,
}

impl<'a> Quiet<'a> {
    fn new(inner: &'a mut dyn Write) -> Self {
        Self {
            inner,
            closed: false,
        }
    }
}

impl Write for Quiet<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.closed && self.inner.write_all(buf).is_err() {
            self.closed = true;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.closed && self.inner.flush().is_err() {
            self.closed = true;
        }
        Ok(())
    }
}
