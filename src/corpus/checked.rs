//! Listed histories read through the manifest: whole ([`load_checked`]) or as a stream
//! ([`open_checked`] → [`CheckedStream`]), their digest and type checked against their entry.

use std::path::{Path, PathBuf};

use super::{CorpusError, ManifestEntry};
use crate::history::History;

/// Loads a listed history, whole, after checking its digest and type against the manifest.
pub fn load_checked(dir: &Path, entry: &ManifestEntry) -> Result<History, CorpusError> {
    let path = dir.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(|source| listed_io(dir, &path, source))?;
    check_digest(&path, &entry.blake3, blake3::hash(&bytes).to_hex().to_string())?;
    let history = History::from_bytes(bytes, &path)?;
    check_type(&path, entry, &history.store_type)?;
    Ok(history)
}

/// Files up to this size are read whole and their digest checked before any op is handed out;
/// larger ones are streamed and checked at the end ([`CheckedStream::finish`]).
pub const STREAM_ABOVE: u64 = 8 << 20;

/// Opens a listed history as a stream: its type is checked at once, its digest before any op
/// (files up to [`STREAM_ABOVE`] bytes) or by [`CheckedStream::finish`] (larger ones), so a
/// consumer must call `finish` before trusting what it computed.
pub fn open_checked(dir: &Path, entry: &ManifestEntry) -> Result<CheckedStream, CorpusError> {
    let path = dir.join(&entry.path);
    let io = |source| listed_io(dir, &path, source);
    let len = std::fs::metadata(&path).map_err(io)?.len();
    let stream = if len <= STREAM_ABOVE {
        let bytes = std::fs::read(&path).map_err(io)?;
        check_digest(&path, &entry.blake3, blake3::hash(&bytes).to_hex().to_string())?;
        crate::history::OpStream::from_bytes(bytes, &path)?
    } else {
        crate::history::open(&path)?
    };
    check_type(&path, entry, &stream.header().store_type)?;
    Ok(CheckedStream { stream, path, expected: entry.blake3.clone() })
}

/// A listed history being read ([`open_checked`]).
pub struct CheckedStream {
    stream: crate::history::OpStream,
    path: PathBuf,
    expected: String,
}

impl CheckedStream {
    pub fn header(&self) -> &crate::history::Header {
        self.stream.header()
    }

    /// The ops, one at a time (stopping at the first error, which `finish` reports).
    pub fn ops(&mut self) -> &mut crate::history::OpStream {
        &mut self.stream
    }

    /// Reads what is left; fails if the file did not parse to its end or its digest is not the
    /// manifest's.
    pub fn finish(self) -> Result<crate::history::Finished, CorpusError> {
        let done = self.stream.finish()?;
        check_digest(&self.path, &self.expected, done.blake3.clone())?;
        Ok(done)
    }
}

pub(super) fn check_digest(path: &Path, expected: &str, actual: String) -> Result<(), CorpusError> {
    if actual != expected {
        return Err(CorpusError::DigestMismatch { path: path.to_path_buf(), expected: expected.to_string(), actual });
    }
    Ok(())
}

fn check_type(path: &Path, entry: &ManifestEntry, found: &str) -> Result<(), CorpusError> {
    if found != entry.store_type {
        return Err(CorpusError::TypeMismatch { path: path.to_path_buf(), listed: entry.store_type.clone(), found: found.to_string() });
    }
    Ok(())
}

/// The error of reading a listed history at `path`: one the manifest lists but that is gone is
/// named as such (with the manifest), any other failure as what the OS said.
fn listed_io(dir: &Path, path: &Path, source: std::io::Error) -> CorpusError {
    match source.kind() {
        std::io::ErrorKind::NotFound => CorpusError::ListedButMissing { path: path.to_path_buf(), manifest: dir.join(super::MANIFEST) },
        _ => CorpusError::Io { path: path.to_path_buf(), source },
    }
}
