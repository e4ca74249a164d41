//! Streaming BLAKE3 for argument hashing: Python walks the value and feeds
//! tagged fields; large buffers (numpy, pandas, polars) are hashed from
//! their memory directly, without a copy and with the GIL released.

use pyo3::prelude::*;

#[pyclass(module = "casher._native")]
pub struct Hasher {
    inner: blake3::Hasher,
}

#[pymethods]
impl Hasher {
    #[new]
    fn new() -> Self {
        Self {
            inner: blake3::Hasher::new(),
        }
    }

    /// Feeds bytes (small values: tags, lengths, strings).
    fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// Feeds `length` bytes at `address` (an array's data pointer, from
    /// `__array_interface__`). The caller keeps the array alive for the
    /// call; the GIL is released while hashing, on all cores when large.
    fn update_memory(&mut self, py: Python<'_>, address: usize, length: usize) -> PyResult<()> {
        if length == 0 {
            return Ok(());
        }
        if address == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "null buffer address",
            ));
        }
        // SAFETY: the Python caller passes the data pointer and byte length
        // of a live, contiguous buffer it holds a reference to.
        let data = unsafe { std::slice::from_raw_parts(address as *const u8, length) };
        let hasher = &mut self.inner;
        py.detach(|| {
            if length >= 1 << 20 {
                hasher.update_rayon(data);
            } else {
                hasher.update(data);
            }
        });
        Ok(())
    }

    fn hexdigest(&self) -> String {
        self.inner.finalize().to_hex().to_string()
    }
}
