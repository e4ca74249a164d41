//! The byte-level encoding behind every normalized hash.
//!
//! Every value is written as a one-byte tag followed by a fixed-width or
//! length-prefixed payload, so two different trees can never produce the same
//! byte stream by accident (no ambiguity between `["ab"]` and `["a", "b"]`).
//! This is deliberately our own format rather than `#[derive(Hash)]`, whose
//! output is not a stable contract across compiler or crate versions.

/// Version of the normalized encoding. Bump it whenever the bytes fed to the
/// hasher for any tree change, so old hashes can never collide with new ones.
pub const NORMALIZED_FORMAT_VERSION: u32 = 1;

/// Writes tagged, length-prefixed values into a BLAKE3 hasher.
pub struct Sink {
    hasher: blake3::Hasher,
}

impl Sink {
    pub fn new(domain: &str) -> Self {
        let mut sink = Self {
            hasher: blake3::Hasher::new(),
        };
        sink.str(domain);
        sink.u64(u64::from(NORMALIZED_FORMAT_VERSION));
        sink
    }

    pub fn tag(&mut self, tag: u8) {
        self.hasher.update(&[tag]);
    }

    pub fn u64(&mut self, value: u64) {
        self.hasher.update(&value.to_le_bytes());
    }

    pub fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    pub fn bool(&mut self, value: bool) {
        self.hasher.update(&[u8::from(value)]);
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.len(value.len());
        self.hasher.update(value);
    }

    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// Floats are hashed by their bit pattern: `-0.0` and `0.0` differ, as
    /// they do for Python (`math.copysign`), and NaN payloads are preserved.
    pub fn f64(&mut self, value: f64) {
        self.u64(value.to_bits());
    }

    pub fn finish(self) -> blake3::Hash {
        self.hasher.finalize()
    }
}

/// Canonical form of an integer literal written in any base, with or without
/// underscores: the lowercase hex digits of its value. `0x10`, `0o20`, `16` and
/// `1_6` all give the same string, so rewriting a literal never invalidates.
pub fn canonical_int(token: &str) -> String {
    let cleaned: String = token.chars().filter(|c| *c != '_').collect();
    let lower = cleaned.to_ascii_lowercase();
    let (radix, digits) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ => (10, lower.as_str()),
    };
    // Little-endian base-2^32 limbs; multiply-add one digit at a time.
    let mut limbs: Vec<u32> = vec![0];
    for ch in digits.chars() {
        let Some(digit) = ch.to_digit(radix) else {
            // Not a number we understand: keep the token itself, which is
            // still deterministic (and only differs from equal values written
            // differently, which is a false miss, never a false hit).
            return format!("raw:{cleaned}");
        };
        let mut carry = u64::from(digit);
        for limb in &mut limbs {
            let wide = u64::from(*limb) * u64::from(radix) + carry;
            *limb = wide as u32;
            carry = wide >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut out = String::new();
    for (i, limb) in limbs.iter().rev().enumerate() {
        if i == 0 {
            out.push_str(&format!("{limb:x}"));
        } else {
            out.push_str(&format!("{limb:08x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonical_int;

    #[test]
    fn integers_in_any_base_agree() {
        assert_eq!(canonical_int("16"), "10");
        assert_eq!(canonical_int("0x10"), "10");
        assert_eq!(canonical_int("0o20"), "10");
        assert_eq!(canonical_int("0b1_0000"), "10");
        assert_eq!(
            canonical_int("0xFFFF_FFFF_FFFF_FFFF_FF"),
            canonical_int("4722366482869645213695")
        );
        assert_ne!(canonical_int("17"), canonical_int("16"));
    }
}
