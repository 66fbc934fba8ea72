//! Reading a history file as a stream: [`open`] tells the forms apart and gives an
//! [`OpStream`] (header, then ops; `finish` says whether the file was whole).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{binary, check_path, json, Form, Header, HistoryError};
use crate::op::Op;

/// Opens a history file of either form (told apart by its first bytes, §10.6) as a stream.
pub fn open(path: &Path) -> Result<OpStream, HistoryError> {
    let io = |source| HistoryError::Io { path: path.to_path_buf(), source };
    check_path(path)?;
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(io)?;
    file.rewind().map_err(io)?;
    let file = std::io::BufReader::with_capacity(1 << 16, file);
    match Form::of_bytes(&head[..n]) {
        Form::Binary => OpStream::binary(file, path),
        Form::Json => OpStream::json(file, path),
    }
}

/// A history being read: its header, then its ops one at a time.
///
/// Iterating yields ops until the end of the file or the first error; [`OpStream::finish`] then
/// says which (and checks the rest of the file if iteration stopped early). A consumer that
/// acts on ops as they come must call `finish` before trusting what it did.
pub struct OpStream {
    header: Header,
    path: PathBuf,
    source: Source,
    /// Ops yielded so far.
    yielded: u64,
    error: Option<HistoryError>,
    /// The file's blake3, once the whole file was read.
    blake3: Option<String>,
    ended: bool,
}

enum Source {
    /// The parsing thread's messages, and the ops of the last batch not yielded yet.
    Json(std::sync::mpsc::Receiver<json::Msg>, std::collections::VecDeque<Op>),
    Binary(Box<binary::BinaryReader<Box<dyn Read + Send>>>),
}

/// What a fully read history stream was.
#[derive(Clone, Debug)]
pub struct Finished {
    pub header: Header,
    pub ops: u64,
    /// blake3 of the file's bytes.
    pub blake3: String,
}

impl OpStream {
    pub(super) fn json<R: Read + Send + 'static>(reader: R, path: &Path) -> Result<OpStream, HistoryError> {
        let rx = json::spawn(reader, path.to_path_buf());
        let header = match rx.recv() {
            Ok(json::Msg::Header(h)) => h,
            Ok(json::Msg::Err(e)) => return Err(e),
            _ => return Err(HistoryError::ReaderLost { path: path.to_path_buf() }),
        };
        Ok(OpStream::new(header, path, Source::Json(rx, Default::default())))
    }

    pub(super) fn binary<R: Read + Send + 'static>(reader: R, path: &Path) -> Result<OpStream, HistoryError> {
        let (r, header) = binary::BinaryReader::open(Box::new(reader) as Box<dyn Read + Send>, path)?;
        Ok(OpStream::new(header, path, Source::Binary(Box::new(r))))
    }

    /// A stream over a history file's bytes held in memory (either form).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<OpStream, HistoryError> {
        match Form::of_bytes(&bytes) {
            Form::Binary => OpStream::binary(std::io::Cursor::new(bytes), path),
            Form::Json => OpStream::json(std::io::Cursor::new(bytes), path),
        }
    }

    fn new(header: Header, path: &Path, source: Source) -> OpStream {
        OpStream { header, path: path.to_path_buf(), source, yielded: 0, error: None, blake3: None, ended: false }
    }

    /// The header (a JSON `provenance` written after `ops` appears only once it has been read).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The op count the file declares, if its form declares one (binary).
    pub fn declared_ops(&self) -> Option<u64> {
        match &self.source {
            Source::Binary(r) => Some(r.declared()),
            Source::Json(..) => None,
        }
    }

    /// Ops yielded so far.
    pub fn yielded(&self) -> u64 {
        self.yielded
    }

    /// Reads whatever is left and says whether the whole file was a valid history.
    pub fn finish(mut self) -> Result<Finished, HistoryError> {
        while self.next().is_some() {}
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let blake3 = self.blake3.take().ok_or_else(|| HistoryError::ReaderLost { path: self.path.clone() })?;
        if let Err(reason) = self.header.delivery.check_len(self.yielded) {
            return Err(HistoryError::BadDelivery { path: self.path.clone(), reason });
        }
        let h = &self.header;
        if let Err(reason) = crate::expect::check_list(&h.expect, &h.store_type, &h.delivery.batch_ranges(), Some(self.yielded)) {
            return Err(HistoryError::BadExpect { path: self.path.clone(), reason });
        }
        Ok(Finished { header: self.header, ops: self.yielded, blake3 })
    }

    fn pull(&mut self) -> Option<Result<Op, HistoryError>> {
        match &mut self.source {
            Source::Binary(r) => {
                let next = r.next_op();
                if next.is_none() {
                    self.blake3 = Some(r.file_digest());
                }
                next
            }
            Source::Json(rx, queued) => loop {
                if let Some(op) = queued.pop_front() {
                    return Some(Ok(op));
                }
                match rx.recv() {
                    Ok(json::Msg::Ops(ops)) => queued.extend(ops),
                    Ok(json::Msg::Err(e)) => return Some(Err(e)),
                    Ok(json::Msg::LateProvenance(p)) => self.header.provenance = Some(p),
                    Ok(json::Msg::Done { blake3 }) => {
                        self.blake3 = Some(blake3);
                        return None;
                    }
                    Ok(json::Msg::Header(_)) | Err(_) => return Some(Err(HistoryError::ReaderLost { path: self.path.clone() })),
                }
            },
        }
    }
}

impl Iterator for OpStream {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        if self.ended {
            return None;
        }
        match self.pull() {
            Some(Ok(op)) => {
                self.yielded += 1;
                Some(op)
            }
            Some(Err(e)) => {
                self.error = Some(e);
                self.ended = true;
                None
            }
            None => {
                self.ended = true;
                None
            }
        }
    }
}

/// A reader that hashes what passes through it and publishes the digest when the input ends.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    slot: Arc<Mutex<Option<String>>>,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: blake3::Hasher::new(), slot: Arc::default() }
    }

    pub(super) fn digest_slot(&self) -> Arc<Mutex<Option<String>>> {
        self.slot.clone()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            *self.slot.lock().expect("digest slot") = Some(self.hasher.finalize().to_hex().to_string());
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
