//! The Arrow C data interface structs (as the spec defines them) and safe
//! views of an imported array: what the canonical hasher reads. Defined here
//! rather than pulling in `arrow-rs`: the hasher needs the three structs and
//! nothing else.

use std::ffi::{c_char, c_int, c_void, CStr};

#[repr(C)]
pub(crate) struct ArrowSchema {
    pub format: *const c_char,
    pub name: *const c_char,
    pub metadata: *const c_char,
    pub flags: i64,
    pub n_children: i64,
    pub children: *mut *mut ArrowSchema,
    pub dictionary: *mut ArrowSchema,
    pub release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    pub private_data: *mut c_void,
}

#[repr(C)]
pub(crate) struct ArrowArray {
    pub length: i64,
    pub null_count: i64,
    pub offset: i64,
    pub n_buffers: i64,
    pub n_children: i64,
    pub buffers: *mut *const c_void,
    pub children: *mut *mut ArrowArray,
    pub dictionary: *mut ArrowArray,
    pub release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    pub private_data: *mut c_void,
}

#[repr(C)]
pub(crate) struct ArrowArrayStream {
    pub get_schema: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut ArrowSchema) -> c_int>,
    pub get_next: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut ArrowArray) -> c_int>,
    pub get_last_error: Option<unsafe extern "C" fn(*mut ArrowArrayStream) -> *const c_char>,
    pub release: Option<unsafe extern "C" fn(*mut ArrowArrayStream)>,
    pub private_data: *mut c_void,
}

impl ArrowSchema {
    pub(crate) fn empty() -> Self {
        Self {
            format: std::ptr::null(),
            name: std::ptr::null(),
            metadata: std::ptr::null(),
            flags: 0,
            n_children: 0,
            children: std::ptr::null_mut(),
            dictionary: std::ptr::null_mut(),
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }

    pub(crate) fn format(&self) -> &str {
        cstr(self.format)
    }

    pub(crate) fn name(&self) -> &str {
        cstr(self.name)
    }

    /// The raw metadata (Arrow's length-prefixed key/value encoding).
    pub(crate) fn metadata(&self) -> &[u8] {
        if self.metadata.is_null() {
            return &[];
        }
        // SAFETY: per the spec, metadata starts with an int32 count followed
        // by int32-length-prefixed keys and values.
        unsafe {
            let base = self.metadata as *const u8;
            let read = |at: usize| i32::from_ne_bytes(*(base.add(at) as *const [u8; 4])) as usize;
            let count = read(0);
            let mut at = 4;
            for _ in 0..count * 2 {
                at += 4 + read(at);
            }
            std::slice::from_raw_parts(base, at)
        }
    }

    pub(crate) fn child(&self, i: usize) -> &ArrowSchema {
        // SAFETY: i < n_children, checked by callers through `children()`.
        unsafe { &**self.children.add(i) }
    }

    pub(crate) fn children(&self) -> usize {
        self.n_children.max(0) as usize
    }

    pub(crate) fn dictionary(&self) -> Option<&ArrowSchema> {
        // SAFETY: null or a valid schema owned by this one.
        unsafe { self.dictionary.as_ref() }
    }
}

impl Drop for ArrowSchema {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the producer's release callback, called once.
            unsafe { release(self) }
        }
    }
}

impl ArrowArray {
    pub(crate) fn empty() -> Self {
        Self {
            length: 0,
            null_count: 0,
            offset: 0,
            n_buffers: 0,
            n_children: 0,
            buffers: std::ptr::null_mut(),
            children: std::ptr::null_mut(),
            dictionary: std::ptr::null_mut(),
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }

    /// Buffer `i` (null when absent, e.g. a validity bitmap without nulls).
    pub(crate) fn buffer(&self, i: usize) -> *const u8 {
        if i >= self.n_buffers.max(0) as usize {
            return std::ptr::null();
        }
        // SAFETY: i < n_buffers.
        unsafe { *self.buffers.add(i) as *const u8 }
    }

    pub(crate) fn child(&self, i: usize) -> Option<&ArrowArray> {
        if i >= self.n_children.max(0) as usize {
            return None;
        }
        // SAFETY: i < n_children.
        unsafe { (*self.children.add(i)).as_ref() }
    }

    pub(crate) fn dictionary(&self) -> Option<&ArrowArray> {
        // SAFETY: null or a valid array owned by this one.
        unsafe { self.dictionary.as_ref() }
    }

    pub(crate) fn has_nulls(&self) -> bool {
        self.null_count != 0 && !self.buffer(0).is_null()
    }
}

impl Drop for ArrowArray {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the producer's release callback, called once.
            unsafe { release(self) }
        }
    }
}

impl Drop for ArrowArrayStream {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the producer's release callback, called once.
            unsafe { release(self) }
        }
    }
}

fn cstr<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the spec's strings are NUL-terminated UTF-8.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}
