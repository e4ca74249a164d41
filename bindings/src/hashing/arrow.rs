//! Canonical hashing of Arrow data (pyarrow, polars, pandas' Arrow-backed
//! columns) straight from its buffers, through the Arrow C data interface.
//!
//! A column is hashed as separate streams (validity, values, variable-length
//! data, children), each fed element by element in order and skipping null
//! slots (whose bytes are undefined). So the digest depends only on the
//! logical values: chunking, slicing offsets, dictionary encoding per chunk
//! and string layout (offsets vs views) do not change it, while the type, a
//! value, a null and the field names do.

use super::ffi::{ArrowArray, ArrowSchema};
use super::stream::Stream;

/// Why an array cannot be hashed here (the caller falls back to a
/// per-element walk in Python).
#[derive(Debug)]
pub(crate) struct Unsupported(pub String);

/// The canonical state of one column (or nested child) across its chunks.
pub(crate) struct Column {
    format: String,
    name: String,
    metadata: Vec<u8>,
    len: u64,
    saw_null: bool,
    validity: Stream,
    values: Stream,
    data: Stream,
    children: Vec<Column>,
    /// A dictionary column's decoded values.
    decoded: Option<Box<Column>>,
}

/// Byte width of fixed-width formats; None for everything else.
fn fixed_width(format: &str) -> Option<usize> {
    Some(match format {
        "c" | "C" => 1,
        "s" | "S" | "e" => 2,
        "i" | "I" | "f" | "tdD" | "tts" | "ttm" | "tiM" => 4,
        "l" | "L" | "g" | "tdm" | "ttu" | "ttn" | "tiD" => 8,
        "tin" => 16,
        f if f.starts_with("ts") || f.starts_with("tD") => 8,
        f if f.starts_with("w:") => f[2..].parse().ok()?,
        f if f.starts_with("d:") => match f.split(',').nth(2) {
            Some(bits) => bits.parse::<usize>().ok()? / 8,
            None => 16,
        },
        _ => return None,
    })
}

impl Column {
    pub(crate) fn new(schema: &ArrowSchema, with_metadata: bool) -> Result<Self, Unsupported> {
        let mut format = schema.format().to_owned();
        let decoded = match schema.dictionary() {
            Some(dict) => {
                format = format!("dictionary<{format}>");
                Some(Box::new(Column::new(dict, with_metadata)?))
            }
            None => None,
        };
        let children = (0..schema.children())
            .map(|i| Column::new(schema.child(i), with_metadata))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            format,
            name: schema.name().to_owned(),
            metadata: if with_metadata {
                schema.metadata().to_vec()
            } else {
                Vec::new()
            },
            len: 0,
            saw_null: false,
            validity: Stream::new(),
            values: Stream::new(),
            data: Stream::new(),
            children,
            decoded,
        })
    }

    /// Feeds elements `start..start + len` of `array` (relative to its
    /// offset), whose type is `schema`.
    pub(crate) fn feed(
        &mut self,
        schema: &ArrowSchema,
        array: &ArrowArray,
        start: usize,
        len: usize,
    ) -> Result<(), Unsupported> {
        if start + len > array.length.max(0) as usize {
            return Err(Unsupported("slice beyond the array's length".into()));
        }
        let nulls = array.has_nulls() && self.format != "n";
        // Validity is a stream of one byte per element from the first null
        // on (with the elements before it as valid): chunks without nulls
        // then cost nothing, and chunking does not change the stream.
        if nulls && !self.saw_null {
            self.saw_null = true;
            for _ in 0..self.len {
                self.validity.byte(1);
            }
        }
        // One byte per element, extracted once: the validity stream and the
        // runs of valid elements both come from it.
        let valid = if nulls {
            validity_bytes(array, start, len)
        } else {
            Vec::new()
        };
        if self.saw_null {
            if nulls {
                self.validity.bytes(&valid);
            } else {
                self.validity.bytes(&vec![1u8; len]);
            }
        }
        self.len += len as u64;
        let base = array.offset.max(0) as usize;
        // Runs of valid elements, in absolute (offset-applied) positions.
        let runs = valid_runs(&valid, base + start, len, nulls);
        let format = self.format.clone();
        if let (Some(dict_schema), Some(decoded)) = (schema.dictionary(), self.decoded.as_mut()) {
            let dict = array
                .dictionary()
                .ok_or_else(|| Unsupported("dictionary array without dictionary".into()))?;
            let width = fixed_width(schema.format())
                .ok_or_else(|| Unsupported(format!("dictionary index type {format}")))?;
            let indices = array.buffer(1);
            for (a, b) in runs {
                for i in a..b {
                    let index = read_index(indices, i, width, schema.format());
                    decoded.feed(dict_schema, dict, index, 1)?;
                }
            }
            return Ok(());
        }
        if let Some(width) = fixed_width(&format) {
            let values = array.buffer(1);
            for (a, b) in runs {
                // SAFETY: the values buffer holds offset + length elements.
                let bytes =
                    unsafe { std::slice::from_raw_parts(values.add(a * width), (b - a) * width) };
                self.values.bytes(bytes);
            }
            return Ok(());
        }
        match format.as_str() {
            "n" => Ok(()),
            "b" => {
                let bits = array.buffer(1);
                for (a, b) in runs {
                    for i in a..b {
                        // SAFETY: the bitmap holds offset + length bits.
                        let bit = unsafe { *bits.add(i / 8) } & (1 << (i % 8)) != 0;
                        self.values.byte(bit as u8);
                    }
                }
                Ok(())
            }
            "u" | "z" => self.var_len::<i32>(array, runs),
            "U" | "Z" => self.var_len::<i64>(array, runs),
            "vu" | "vz" => self.views(array, runs),
            "+l" | "+m" => self.list::<i32>(schema, array, runs),
            "+L" => self.list::<i64>(schema, array, runs),
            "+s" => {
                // Every slot of the children, also under a null parent: a
                // program can read them (`StructArray.field`).
                for (i, child) in self.children.iter_mut().enumerate() {
                    let data = array
                        .child(i)
                        .ok_or_else(|| Unsupported("struct array without child".into()))?;
                    child.feed(schema.child(i), data, base + start, len)?;
                }
                Ok(())
            }
            f if f.starts_with("+w:") => {
                let size: usize = f[3..]
                    .parse()
                    .map_err(|_| Unsupported(format!("format {f}")))?;
                let data = array
                    .child(0)
                    .ok_or_else(|| Unsupported("list array without child".into()))?;
                for (a, b) in runs {
                    self.children[0].feed(schema.child(0), data, a * size, (b - a) * size)?;
                }
                Ok(())
            }
            other => Err(Unsupported(format!("Arrow format {other:?}"))),
        }
    }

    fn var_len<O: Offset>(
        &mut self,
        array: &ArrowArray,
        runs: Vec<(usize, usize)>,
    ) -> Result<(), Unsupported> {
        let offsets = array.buffer(1) as *const O;
        let data = array.buffer(2);
        let (Some(&(start, _)), Some(&(_, end))) = (runs.first(), runs.last()) else {
            return Ok(());
        };
        // SAFETY: offsets hold offset + length + 1 entries into `data`.
        let at = |i: usize| unsafe { (*offsets.add(i)).to_usize() };
        let mut lengths = Vec::with_capacity(end - start);
        let mut valid_bytes = 0;
        for &(a, b) in &runs {
            for i in a..b {
                varint(&mut lengths, (at(i + 1) - at(i)) as u64);
            }
            valid_bytes += at(b) - at(a);
        }
        self.values.bytes(&lengths);
        let (first, last) = (at(start), at(end));
        // SAFETY: the data buffer holds every byte the offsets point to.
        let slice = |a: usize, b: usize| unsafe { std::slice::from_raw_parts(data.add(a), b - a) };
        if valid_bytes == last - first {
            // Null slots hold no bytes (the usual layout): the valid data is
            // one contiguous range, hashed in one go (on all cores if large).
            if last > first {
                self.data.bytes(slice(first, last));
            }
        } else {
            for (a, b) in runs {
                if at(b) > at(a) {
                    self.data.bytes(slice(at(a), at(b)));
                }
            }
        }
        Ok(())
    }

    fn views(&mut self, array: &ArrowArray, runs: Vec<(usize, usize)>) -> Result<(), Unsupported> {
        let views = array.buffer(1);
        // Buffers: validity, views, the data buffers, then their sizes.
        let data_buffers = (array.n_buffers.max(3) - 3) as usize;
        let mut lengths = Vec::new();
        for (a, b) in runs {
            for i in a..b {
                // SAFETY: 16-byte views; long ones point into the variadic
                // data buffers (buffer 2 onwards).
                unsafe {
                    let view = views.add(i * 16);
                    let n = i32::from_le_bytes(*(view as *const [u8; 4])) as usize;
                    varint(&mut lengths, n as u64);
                    if n <= 12 {
                        self.data.bytes(std::slice::from_raw_parts(view.add(4), n));
                    } else {
                        let index = i32::from_le_bytes(*(view.add(8) as *const [u8; 4])) as usize;
                        let at = i32::from_le_bytes(*(view.add(12) as *const [u8; 4])) as usize;
                        let buffer = array.buffer(2 + index);
                        if index >= data_buffers || buffer.is_null() {
                            return Err(Unsupported("string view past its buffers".into()));
                        }
                        self.data
                            .bytes(std::slice::from_raw_parts(buffer.add(at), n));
                    }
                }
                if lengths.len() >= 64 * 1024 {
                    self.values.bytes(&lengths);
                    lengths.clear();
                }
            }
        }
        self.values.bytes(&lengths);
        Ok(())
    }

    fn list<O: Offset>(
        &mut self,
        schema: &ArrowSchema,
        array: &ArrowArray,
        runs: Vec<(usize, usize)>,
    ) -> Result<(), Unsupported> {
        let offsets = array.buffer(1) as *const O;
        let data = array
            .child(0)
            .ok_or_else(|| Unsupported("list array without child".into()))?;
        for (a, b) in runs {
            // SAFETY: offsets hold offset + length + 1 entries into the child.
            unsafe {
                let mut lengths = Vec::with_capacity(b - a);
                for i in a..b {
                    let n = (*offsets.add(i + 1)).to_usize() - (*offsets.add(i)).to_usize();
                    varint(&mut lengths, n as u64);
                }
                self.values.bytes(&lengths);
                let (first, last) = ((*offsets.add(a)).to_usize(), (*offsets.add(b)).to_usize());
                self.children[0].feed(schema.child(0), data, first, last - first)?;
            }
        }
        Ok(())
    }

    /// The column's digest: its type, name, length and every stream.
    pub(crate) fn finish(self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        let mut text = |tag: &[u8], s: &[u8]| {
            h.update(tag);
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s);
        };
        text(b"format", self.format.as_bytes());
        text(b"name", self.name.as_bytes());
        text(b"metadata", &self.metadata);
        h.update(&self.len.to_le_bytes());
        h.update(&self.validity.finish());
        h.update(&self.values.finish());
        h.update(&self.data.finish());
        h.update(&(self.children.len() as u64).to_le_bytes());
        for child in self.children {
            h.update(&child.finish());
        }
        if let Some(decoded) = self.decoded {
            h.update(&decoded.finish());
        }
        *h.finalize().as_bytes()
    }
}

/// Runs `[a, b)` of valid elements among `start..start + len`, as absolute
/// positions (the array's offset applied).
fn valid_runs(valid: &[u8], first: usize, len: usize, nulls: bool) -> Vec<(usize, usize)> {
    if !nulls {
        return if len > 0 {
            vec![(first, first + len)]
        } else {
            Vec::new()
        };
    }
    let mut runs = Vec::new();
    let mut i = 0;
    while i < len {
        match valid[i..].iter().position(|&v| v == 1) {
            None => break,
            Some(skip) => i += skip,
        }
        let end = valid[i..]
            .iter()
            .position(|&v| v == 0)
            .map_or(len, |n| i + n);
        runs.push((first + i, first + end));
        i = end;
    }
    runs
}

/// Validity of elements `start..start + len` as 0/1 bytes.
fn validity_bytes(array: &ArrowArray, start: usize, len: usize) -> Vec<u8> {
    let bits = array.buffer(0);
    let first = array.offset.max(0) as usize + start;
    // SAFETY: the bitmap covers offset + length bits (has_nulls checked it
    // is present).
    (first..first + len)
        .map(|at| unsafe { (*bits.add(at >> 3) >> (at & 7)) & 1 })
        .collect()
}

/// Lengths as LEB128: short strings cost one byte, and the encoding is the
/// same whatever the offset width (32, 64 bits or views).
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_index(indices: *const u8, i: usize, width: usize, format: &str) -> usize {
    // SAFETY: the index buffer holds offset + length integers of `width`.
    unsafe {
        let p = indices.add(i * width);
        let signed = format
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase());
        match (width, signed) {
            (1, true) => *(p as *const i8) as usize,
            (1, false) => *p as usize,
            (2, true) => i16::from_ne_bytes(*(p as *const [u8; 2])) as usize,
            (2, false) => u16::from_ne_bytes(*(p as *const [u8; 2])) as usize,
            (4, true) => i32::from_ne_bytes(*(p as *const [u8; 4])) as usize,
            (4, false) => u32::from_ne_bytes(*(p as *const [u8; 4])) as usize,
            _ => u64::from_ne_bytes(*(p as *const [u8; 8])) as usize,
        }
    }
}

/// Offsets of variable-length layouts: 32 or 64 bits.
pub(crate) trait Offset: Copy {
    fn to_usize(self) -> usize;
}

impl Offset for i32 {
    fn to_usize(self) -> usize {
        self.max(0) as usize
    }
}

impl Offset for i64 {
    fn to_usize(self) -> usize {
        self.max(0) as usize
    }
}
