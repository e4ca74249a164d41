//! Reading Python source the way CPython does: a UTF-8 BOM, or a PEP 263
//! coding cookie on one of the first two lines, decides the encoding.

use std::borrow::Cow;
use std::path::Path;

use crate::error::{AnalyzerError, Result};

/// Decodes raw file bytes into source text.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8(path, rest, "UTF-8");
    }
    let encoding = coding_cookie(bytes);
    let Some(label) = encoding else {
        return utf8(path, bytes, "UTF-8");
    };
    let normalized = label.to_ascii_lowercase().replace('_', "-");
    match normalized.as_str() {
        "utf-8" | "utf8" | "utf-8-sig" | "u8" | "ascii" | "us-ascii" => utf8(path, bytes, &label),
        // Python's latin-1 maps every byte to the code point of the same value;
        // WHATWG's "latin1" label means windows-1252, which differs in 0x80-0x9F.
        "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" | "8859" | "cp819" => {
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
        other => {
            let Some(enc) = encoding_rs::Encoding::for_label(other.as_bytes()) else {
                return Err(AnalyzerError::UnknownEncoding {
                    path: path.to_path_buf(),
                    encoding: label,
                });
            };
            let (text, had_errors) = enc.decode_without_bom_handling(bytes);
            if had_errors {
                return Err(AnalyzerError::Decode {
                    path: path.to_path_buf(),
                    encoding: label,
                });
            }
            Ok(text.into_owned())
        }
    }
}

fn utf8(path: &Path, bytes: &[u8], encoding: &str) -> Result<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Err(AnalyzerError::Decode {
            path: path.to_path_buf(),
            encoding: encoding.to_owned(),
        }),
    }
}

/// The encoding named by a PEP 263 cookie (`coding[:=]\s*([-\w.]+)`) in a
/// comment on line 1 or 2; line 2 counts only if line 1 is blank or a comment.
fn coding_cookie(bytes: &[u8]) -> Option<String> {
    let mut lines = bytes.split(|&b| b == b'\n').take(2);
    let first = lines.next()?;
    if let Some(found) = cookie_in_line(first) {
        return Some(found);
    }
    let first_text = String::from_utf8_lossy(first);
    let trimmed = first_text.trim();
    if !(trimmed.is_empty() || trimmed.starts_with('#')) {
        return None;
    }
    cookie_in_line(lines.next()?)
}

fn cookie_in_line(line: &[u8]) -> Option<String> {
    let text: Cow<'_, str> = String::from_utf8_lossy(line);
    let trimmed = text.trim_start();
    if !trimmed.starts_with('#') {
        return None;
    }
    let at = trimmed.find("coding")?;
    let rest = &trimmed[at + "coding".len()..];
    let rest = rest.strip_prefix([':', '='])?;
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_cookies() {
        let p = Path::new("x.py");
        assert_eq!(decode(p, b"\xEF\xBB\xBFx = 1\n").unwrap(), "x = 1\n");
        let latin = b"# -*- coding: latin-1 -*-\ns = '\xe9'\n";
        assert!(decode(p, latin).unwrap().contains('\u{e9}'));
        let second = b"#!/usr/bin/env python\n# vim: set fileencoding=iso-8859-15 :\ns = '\xa4'\n";
        assert!(decode(p, second).unwrap().contains('\u{20ac}'));
        assert!(matches!(
            decode(p, b"# coding: klingon\n"),
            Err(AnalyzerError::UnknownEncoding { .. })
        ));
        assert!(matches!(
            decode(p, b"s = '\xff'\n"),
            Err(AnalyzerError::Decode { .. })
        ));
        // A cookie on line 2 is ignored when line 1 is code.
        assert_eq!(
            decode(p, b"x = 1\n# coding: klingon\n").unwrap(),
            "x = 1\n# coding: klingon\n"
        );
    }

    #[test]
    fn positions() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 0), (1, 1));
    }
}
