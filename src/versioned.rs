//! Format tags and versions of our JSON files, checked before the strict parse.
//!
//! Every file we write carries `format` (what it is) and `format_version`. Readers probe these two
//! fields first, leniently, so that a file from a newer tool — which may also have new fields —
//! is reported as "too new" with guidance, never as a generic decode failure.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A file's format tag or version is not the one this build reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    #[error("{path}: starts with a UTF-8 byte-order mark (bytes EF BB BF); our JSON files are UTF-8 without one: save it again without the mark")]
    ByteOrderMark { path: PathBuf },
    #[error("{path}: invalid JSON at line {line}, column {column}: {msg}")]
    Json { path: PathBuf, line: usize, column: usize, msg: String },
    #[error("{path}: `format` is {found:?}, expected {expected:?}")]
    WrongFormat { path: PathBuf, found: String, expected: &'static str },
    #[error("{path}: {expected} format_version {found} is newer than this build reads ({reads}); upgrade lattice-conform")]
    TooNew { path: PathBuf, expected: &'static str, found: u32, reads: u32 },
    #[error(
        "{path}: {expected} format_version {found} is older than this build reads ({reads}); regenerate it with the tool that wrote it"
    )]
    TooOld { path: PathBuf, expected: &'static str, found: u32, reads: u32 },
}

#[derive(Deserialize)]
struct Probe {
    format: String,
    format_version: u32,
}

/// Checks `text`'s `format` and `format_version` against what this build reads.
pub fn check(text: &str, path: &Path, expected: &'static str, reads: u32) -> Result<(), VersionError> {
    if text.starts_with('\u{feff}') {
        return Err(VersionError::ByteOrderMark { path: path.to_path_buf() });
    }
    let p: Probe = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
    let path = path.to_path_buf();
    match p {
        Probe { format, .. } if format != expected => Err(VersionError::WrongFormat { path, found: format, expected }),
        Probe { format_version: found, .. } if found > reads => Err(VersionError::TooNew { path, expected, found, reads }),
        Probe { format_version: found, .. } if found < reads => Err(VersionError::TooOld { path, expected, found, reads }),
        _ => Ok(()),
    }
}

/// A serde_json error as a located error (serde_json's own " at line L column C" suffix removed).
pub fn json_error(path: &Path, e: &serde_json::Error) -> VersionError {
    let s = e.to_string();
    let msg = s.rfind(" at line ").map_or(s.clone(), |i| s[..i].to_string());
    VersionError::Json { path: path.to_path_buf(), line: e.line(), column: e.column(), msg }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_files_with_new_fields_are_too_new_not_invalid() {
        let p = Path::new("f.json");
        let newer = r#"{"format": "x", "format_version": 3, "brand_new": [1]}"#;
        assert!(matches!(check(newer, p, "x", 1), Err(VersionError::TooNew { found: 3, .. })));
        assert!(matches!(check(r#"{"format": "x", "format_version": 0}"#, p, "x", 1), Err(VersionError::TooOld { .. })));
        assert!(matches!(check(r#"{"format": "y", "format_version": 1}"#, p, "x", 1), Err(VersionError::WrongFormat { .. })));
        assert!(matches!(check("{\n  \"format\": ,", p, "x", 1), Err(VersionError::Json { line: 2, .. })));
        check(r#"{"format": "x", "format_version": 1}"#, p, "x", 1).unwrap();
        // A byte-order mark is named as such, not reported as "expected value at 1:1".
        let bom = "\u{feff}{\"format\": \"x\", \"format_version\": 1}";
        assert!(matches!(check(bom, p, "x", 1), Err(VersionError::ByteOrderMark { .. })));
    }
}
