//! Replaying recorded stdout/stderr in their original order.

use std::io::Write;

use casher_store::{Backend, Bytes, Stream, Variant};

use crate::error::Result;

/// Writes every chunk to `stdout` or `stderr`, in order. Large chunks are
/// read (and verified) from the store.
pub fn replay_stdio(
    backend: &dyn Backend,
    variant: &Variant,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    // Read everything first: a corrupt object must make this a miss before
    // anything was printed.
    let mut pieces = Vec::with_capacity(variant.stdio.len());
    for chunk in &variant.stdio {
        let bytes = match &chunk.bytes {
            Bytes::Inline(b) => std::borrow::Cow::Borrowed(b.as_slice()),
            Bytes::Object { id, .. } => std::borrow::Cow::Owned(backend.read_object(id)?),
        };
        pieces.push((chunk.stream, bytes));
    }
    for (stream, bytes) in pieces {
        let target: &mut dyn Write = match stream {
            Stream::Stdout => {
                stderr.flush().ok();
                &mut *stdout
            }
            Stream::Stderr => {
                stdout.flush().ok();
                &mut *stderr
            }
        };
        // Our own stdout may be closed (`| head`): stop quietly.
        if target.write_all(&bytes).is_err() {
            break;
        }
    }
    stdout.flush().ok();
    stderr.flush().ok();
    Ok(())
}
