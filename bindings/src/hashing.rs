//! Streaming BLAKE3 for argument hashing: Python walks the value and feeds
//! tagged fields; large buffers (numpy), Arrow data (pyarrow, polars,
//! pandas' Arrow-backed columns) and object arrays are hashed here, from
//! their memory directly, without a copy and with the GIL released where
//! no Python object is touched.

mod arrow;
mod ffi;
mod objects;
mod stream;

use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use arrow::{Column, Unsupported};
use ffi::{ArrowArray, ArrowArrayStream, ArrowSchema};

/// Every digest starts with this: bumped whenever the encoding changes, so
/// a digest of the old encoding can never equal one of the new.
const FORMAT: &[u8] = b"casher-values-2\0";

#[pyclass(module = "casher._native")]
pub struct Hasher {
    inner: blake3::Hasher,
}

/// Raw Arrow pointers moved into the GIL-free closure; the capsules that
/// own them stay alive on the caller's stack for the whole call.
struct Raw<T>(T);
// SAFETY: the pointed-to Arrow structures are immutable while hashed and
// outlive the closure (their owners are held by the calling frame).
unsafe impl<T> Send for Raw<T> {}

impl<T> Raw<T> {
    /// Taking the whole wrapper (not its field) keeps closures `Send`.
    fn into_inner(self) -> T {
        self.0
    }
}

#[pymethods]
impl Hasher {
    #[new]
    fn new() -> Self {
        let mut inner = blake3::Hasher::new();
        inner.update(FORMAT);
        Self { inner }
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
        py.detach(|| stream::update(hasher, data));
        Ok(())
    }

    /// Feeds the canonical digest of an Arrow object: anything exporting
    /// `__arrow_c_stream__` (tables, chunked arrays, polars frames and
    /// series) or `__arrow_c_array__` (arrays, record batches). With
    /// `metadata`, schema metadata counts too. Returns None when hashed,
    /// else why not (nothing was fed then; the caller falls back).
    #[pyo3(signature = (value, metadata=true))]
    fn update_arrow(
        &mut self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        metadata: bool,
    ) -> PyResult<Option<String>> {
        let digest = if value.hasattr("__arrow_c_stream__")? {
            let capsule = value.call_method0("__arrow_c_stream__")?;
            let capsule = capsule.cast::<PyCapsule>()?;
            let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
            // Move the stream out of the capsule (the protocol's way to take
            // ownership): the capsule's destructor then sees it released.
            let stream = pointer.as_ptr() as *mut ArrowArrayStream;
            // SAFETY: a valid stream struct owned by the capsule.
            let owned = unsafe {
                let owned = std::ptr::read(stream);
                (*stream).release = None;
                owned
            };
            let raw = Raw(owned);
            py.detach(move || hash_stream(raw.into_inner(), metadata))
        } else if value.hasattr("__arrow_c_array__")? {
            let pair = value.call_method0("__arrow_c_array__")?;
            let (schema, array): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
            let schema = schema.cast::<PyCapsule>()?;
            let array = array.cast::<PyCapsule>()?;
            let s = schema.pointer_checked(Some(c"arrow_schema"))?.as_ptr() as *const ArrowSchema;
            let a = array.pointer_checked(Some(c"arrow_array"))?.as_ptr() as *const ArrowArray;
            let raw = Raw((s, a));
            py.detach(move || {
                let (s, a) = raw.into_inner();
                // SAFETY: both are alive (their capsules are held above).
                let (schema, array) = unsafe { (&*s, &*a) };
                let mut column = Column::new(schema, metadata)?;
                column.feed(schema, array, 0, array.length.max(0) as usize)?;
                Ok(column.finish())
            })
        } else {
            return Ok(Some("not an Arrow object".to_owned()));
        };
        match digest {
            Ok(digest) => {
                self.inner.update(b"arrow");
                self.inner.update(&digest);
                Ok(None)
            }
            Err(Unsupported(reason)) => Ok(Some(reason)),
        }
    }

    /// Feeds `count` elements of a contiguous object array at `address`
    /// (numpy's `PyObject*` data), element by element: None, str, float,
    /// int and bool directly, anything else through `fallback(item)`, which
    /// returns that item's 32-byte digest.
    fn update_objects(
        &mut self,
        py: Python<'_>,
        address: usize,
        count: usize,
        fallback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        objects::feed(py, &mut self.inner, address, count, fallback)
    }

    fn hexdigest(&self) -> String {
        self.inner.finalize().to_hex().to_string()
    }

    fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, self.inner.finalize().as_bytes())
    }
}

fn hash_stream(mut stream: ArrowArrayStream, metadata: bool) -> Result<[u8; 32], Unsupported> {
    let failed = |stream: &mut ArrowArrayStream, what: &str| {
        let detail = stream
            .get_last_error
            // SAFETY: the producer's callback; the string lives until the next call.
            .map(|f| unsafe { f(stream) })
            .filter(|p| !p.is_null())
            .map(|p| {
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        Unsupported(format!("Arrow stream {what} failed: {detail}"))
    };
    let mut schema = ArrowSchema::empty();
    let get_schema = stream
        .get_schema
        .ok_or_else(|| Unsupported("stream without schema".into()))?;
    // SAFETY: the producer's callback, filling our struct.
    if unsafe { get_schema(&mut stream, &mut schema) } != 0 {
        return Err(failed(&mut stream, "get_schema"));
    }
    let mut column = Column::new(&schema, metadata)?;
    let get_next = stream
        .get_next
        .ok_or_else(|| Unsupported("stream without get_next".into()))?;
    loop {
        let mut array = ArrowArray::empty();
        // SAFETY: as above.
        if unsafe { get_next(&mut stream, &mut array) } != 0 {
            return Err(failed(&mut stream, "get_next"));
        }
        if array.release.is_none() {
            break;
        }
        column.feed(&schema, &array, 0, array.length.max(0) as usize)?;
    }
    Ok(column.finish())
}
