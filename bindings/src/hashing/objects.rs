//! Object arrays (numpy `object` dtype, pandas object columns) hashed
//! element by element, exactly: the common scalars are encoded here without
//! a round trip through Python, anything else by the Python walker's digest.
//! No sampling: every element is looked at, so `None` and `NaN` differ
//! wherever they are.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

pub(crate) fn feed(
    py: Python<'_>,
    hasher: &mut blake3::Hasher,
    address: usize,
    count: usize,
    fallback: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if count == 0 {
        return Ok(());
    }
    if address == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("null object array"));
    }
    let items = address as *const *mut ffi::PyObject;
    let mut staged: Vec<u8> = Vec::with_capacity(64 * 1024);
    for i in 0..count {
        // SAFETY: the caller passes the data pointer of a live, contiguous
        // object array of `count` elements, each a valid reference.
        let item = unsafe { Bound::from_borrowed_ptr(py, *items.add(i)) };
        if !encode(&item, &mut staged) {
            let digest = fallback.call1((&item,))?;
            let digest = digest.cast::<PyBytes>()?;
            staged.push(b'X');
            staged.extend_from_slice(digest.as_bytes());
        }
        if staged.len() >= 60 * 1024 {
            hasher.update(&staged);
            staged.clear();
        }
    }
    hasher.update(&staged);
    Ok(())
}

/// The Python walker's encoding of the common scalars; false when `item`
/// is something else (or a str that is not valid UTF-8).
fn encode(item: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> bool {
    let text = |out: &mut Vec<u8>, tag: &[u8], s: &[u8]| {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    };
    if item.is_none() {
        out.push(b'N');
    } else if item.is_exact_instance_of::<PyString>() {
        match item.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
            Some(s) => text(out, b"S", s.as_bytes()),
            None => return false,
        }
    } else if item.is_exact_instance_of::<PyFloat>() {
        let v = item
            .cast::<PyFloat>()
            .map(|f| f.value())
            .unwrap_or(f64::NAN);
        if v.is_nan() {
            out.extend_from_slice(b"Fnan");
        } else {
            out.push(b'F');
            out.extend_from_slice(&v.to_le_bytes());
        }
    } else if item.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if item.is_truthy().unwrap_or(false) {
            b"B1"
        } else {
            b"B0"
        });
    } else if item.is_exact_instance_of::<PyInt>() {
        match item.extract::<i64>() {
            Ok(v) => text(out, b"I", v.to_string().as_bytes()),
            Err(_) => return false,
        }
    } else {
        return false;
    }
    true
}
