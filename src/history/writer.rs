//! Writing a history file of either form one op at a time ([`HistoryWriter`]), through a
//! temporary file renamed into place.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use super::{binary, json, Form, Header, History, HistoryError};
use crate::op::Op;

/// Writes a history file of either form one op at a time, through a temporary file in the same
/// directory renamed into place by [`HistoryWriter::finish`] (an abandoned writer leaves nothing).
pub struct HistoryWriter {
    path: PathBuf,
    form: Form,
    out: std::io::BufWriter<tempfile::NamedTempFile>,
    /// blake3 of everything written so far.
    hasher: blake3::Hasher,
    json: Option<json::JsonSink>,
    declared: u64,
    ops: u64,
}

/// What [`HistoryWriter::finish`] wrote.
#[derive(Clone, Debug)]
pub struct Written {
    pub ops: u64,
    pub bytes: u64,
    /// blake3 of the file's bytes (what a corpus manifest lists).
    pub blake3: String,
}

/// Feeds everything written to a hasher as well.
struct Tee<'a> {
    out: &'a mut dyn Write,
    hasher: &'a mut blake3::Hasher,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl HistoryWriter {
    /// Starts writing `path` in `form`. A binary header states `expected_ops` (the count is
    /// patched if the writer ends with another).
    pub fn create(path: &Path, form: Form, header: &Header, expected_ops: u64) -> Result<HistoryWriter, HistoryError> {
        let werr = |source| HistoryError::Write { path: path.to_path_buf(), source };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(werr)?;
        let tmp = crate::scratch::temp_for(path).map_err(werr)?;
        let mut w = HistoryWriter {
            path: path.to_path_buf(),
            form,
            out: std::io::BufWriter::with_capacity(1 << 16, tmp),
            hasher: blake3::Hasher::new(),
            json: None,
            declared: expected_ops,
            ops: 0,
        };
        let mut tee = Tee { out: &mut w.out, hasher: &mut w.hasher };
        match form {
            Form::Json => w.json = Some(json::JsonSink::start(&mut tee, header).map_err(werr)?),
            Form::Binary => tee.write_all(&binary::header_bytes(header, expected_ops)).map_err(werr)?,
        }
        Ok(w)
    }

    /// Appends one op (valid: [`Op::validate`] holds).
    pub fn push(&mut self, op: &Op) -> Result<(), HistoryError> {
        let werr = |source| HistoryError::Write { path: self.path.clone(), source };
        let mut tee = Tee { out: &mut self.out, hasher: &mut self.hasher };
        match (self.form, &mut self.json) {
            (Form::Json, Some(sink)) => sink.push(&mut tee, op).map_err(werr)?,
            _ => binary::write_op(&mut tee, op).map_err(werr)?,
        }
        self.ops += 1;
        Ok(())
    }

    /// Ends the file and renames it into place.
    pub fn finish(mut self) -> Result<Written, HistoryError> {
        let path = self.path.clone();
        let werr = |source| HistoryError::Write { path: path.clone(), source };
        let mut tee = Tee { out: &mut self.out, hasher: &mut self.hasher };
        match self.form {
            Form::Json => self.json.take().expect("a JSON writer has a sink").finish(&mut tee).map_err(werr)?,
            Form::Binary if self.ops == self.declared => {
                let digest = tee.hasher.finalize();
                tee.write_all(digest.as_bytes()).map_err(werr)?;
            }
            Form::Binary => {
                // The count in the header changes, and with it the trailing digest: patch it and
                // hash the file again.
                self.out.flush().map_err(werr)?;
                let file = self.out.get_mut().as_file_mut();
                file.seek(std::io::SeekFrom::Start(binary::OP_COUNT_OFFSET)).map_err(werr)?;
                file.write_all(&self.ops.to_le_bytes()).map_err(werr)?;
                file.rewind().map_err(werr)?;
                let mut hasher = blake3::Hasher::new();
                std::io::copy(&mut std::io::BufReader::new(&mut *file), &mut hasher).map_err(werr)?;
                file.seek(std::io::SeekFrom::End(0)).map_err(werr)?;
                let digest = hasher.finalize();
                file.write_all(digest.as_bytes()).map_err(werr)?;
                hasher.update(digest.as_bytes());
                self.hasher = hasher;
            }
        }
        let tmp = self.out.into_inner().map_err(|e| werr(e.into_error()))?;
        tmp.as_file().sync_all().map_err(werr)?;
        let bytes = tmp.as_file().metadata().map_err(werr)?.len();
        tmp.persist(&path).map_err(|e| werr(e.error))?;
        Ok(Written { ops: self.ops, bytes, blake3: self.hasher.finalize().to_hex().to_string() })
    }
}

/// Writes `history` to `path` in `form` (atomically).
pub fn write(path: &Path, form: Form, history: &History) -> Result<Written, HistoryError> {
    let mut w = HistoryWriter::create(path, form, &history.header(), history.ops.len() as u64)?;
    for op in &history.ops {
        w.push(op)?;
    }
    w.finish()
}
