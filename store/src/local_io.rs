//! Moving bytes in and out of the local backend's objects: always with
//! `read(2)` (never a memory map, which dies with SIGBUS when another
//! process truncates the file), in bounded chunks, verifying as it goes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StoreError};
use crate::fsutil::{copy_hashing, try_reflink, Stamp};
use crate::id::ObjectId;
use crate::local::LocalBackend;

pub(crate) fn put_file(backend: &LocalBackend, path: &Path) -> Result<(ObjectId, u64)> {
    let src = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let before = src.metadata().map_err(|e| StoreError::io(path, e))?;
    let (tmp, dst) = backend.new_temp()?;
    // A reflink where possible (then the copy is hashed), else a
    // hashing copy: what is hashed is exactly what is kept. Plain reads,
    // never a memory map: another process may truncate the source
    // meanwhile (16 identical runs writing one file), which must make
    // this run "not cached", never kill it with SIGBUS. No fsync: a torn
    // object after a power loss fails verification on read and is a
    // miss, never a wrong result.
    let copied = if try_reflink(&src, &dst) {
        File::open(&tmp).and_then(crate::fsutil::hash_reader)
    } else {
        let mut writer = std::io::BufWriter::with_capacity(crate::fsutil::CHUNK, dst);
        copy_hashing(&src, &mut writer).and_then(|r| {
            writer.into_inner().map_err(|e| e.into_error())?;
            Ok(r)
        })
    };
    let after = src.metadata().map_err(|e| StoreError::io(path, e))?;
    let copied = copied.and_then(|(hash, size)| {
        if Stamp::of(&before) == Stamp::of(&after) && size == after.len() {
            Ok((hash, size))
        } else {
            Err(std::io::Error::other(format!(
                "{} changed while it was being stored",
                path.display()
            )))
        }
    });
    backend.publish(&tmp, copied)
}

pub(crate) fn copy_object_into(
    backend: &LocalBackend,
    id: &ObjectId,
    dest: &mut File,
) -> Result<()> {
    let path = backend.object_path(id);
    let src = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let verified = if try_reflink(&src, dest) {
        crate::fsutil::hash_reader(src)
    } else {
        // Read, hash, write, one chunk at a time (bounded memory, never
        // a memory map), checking for Ctrl-C between chunks.
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; crate::fsutil::CHUNK];
        crate::fsutil::for_each_chunk(&mut &src, &mut buf, |chunk| {
            if crate::interrupt::interrupted() {
                return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
            }
            hasher.update(chunk);
            dest.write_all(chunk)
        })
        .map(|()| (hasher.finalize(), hasher.count()))
    };
    match verified {
        Ok((hash, _)) if ObjectId::from(hash) == *id => Ok(()),
        Ok(_) => {
            let _ = std::fs::remove_file(&path);
            Err(StoreError::CorruptObject { path })
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(StoreError::Interrupted { path })
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

pub(crate) fn stream_object(
    backend: &LocalBackend,
    id: &ObjectId,
    out: &mut dyn Write,
) -> Result<u64> {
    let path = backend.object_path(id);
    let src = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; crate::fsutil::CHUNK];
    let mut out_error = None;
    crate::fsutil::for_each_chunk(&mut &src, &mut buf, |chunk| {
        hasher.update(chunk);
        if out_error.is_none() {
            if let Err(e) = out.write_all(chunk) {
                out_error = Some(e);
            }
        }
        Ok(())
    })
    .map_err(|e| StoreError::io(&path, e))?;
    if ObjectId::from(hasher.finalize()) != *id {
        let _ = std::fs::remove_file(&path);
        return Err(StoreError::CorruptObject { path });
    }
    match out_error {
        // Our own output closed (`| head`): not the store's problem.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(hasher.count()),
        Some(e) => Err(StoreError::io("<output>", e)),
        None => Ok(hasher.count()),
    }
}
