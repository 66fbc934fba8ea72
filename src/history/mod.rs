//! History files: a store's identity and its ops, in two forms with one meaning.
//!
//! - **JSON** (`format_version` 1, docs/FORMAT.md §10.1–§10.5): every field explicit, the
//!   human-readable interchange and review form. A corpus history also records its provenance,
//!   and small payloads carry a decoded form beside the hex, which must agree with the hex.
//! - **Binary** (`.lch`, §10.6, [`binary`]): a header and the ops' canonical encodings, length-
//!   prefixed, with a trailing digest; for large recorded and generated histories.
//!
//! Both are read as a stream ([`open`] → [`OpStream`]) and written as one ([`HistoryWriter`]), so
//! memory does not grow with the history; [`History`] is the whole history in memory, for the
//! small ones (certify's mutations, the Lattice scenarios). Errors name the op index and field
//! (JSON) or the byte offset and op index (binary); a newer format version is refused as such.

mod binary;
mod json;
mod plan;

pub use plan::{Batch, Delivery, Step, Walk};

pub use binary::{BINARY_VERSION, MAGIC, MAX_OP, MIN_OP};

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::expect::Read as ExpectedRead;
use crate::op::{op_id, Hlc, Op, OpId};
use crate::store::StoreIdentity;

/// The `format` tag every history file carries.
pub const FORMAT_TAG: &str = "lattice-conform/history";
/// The newest history format version this build reads and writes: 2 adds the delivery plan
/// (§10.9), 3 the expected reads (§10.10). A history is written in the oldest version that holds
/// it, so a history without either keeps the bytes it had.
pub const FORMAT_VERSION: u32 = 3;

/// The version a history with this plan and these expectations is written in.
pub fn version_for(delivery: &Delivery, expect: &[ExpectedRead]) -> u32 {
    if !expect.is_empty() {
        3
    } else if delivery.is_plain() {
        1
    } else {
        2
    }
}

/// A loaded, checked history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
    /// How the history was made; `None` for hand-written ones.
    pub provenance: Option<Provenance>,
    /// Batches and restarts (§10.9); empty: every op delivered on its own.
    pub delivery: Delivery,
    /// Expected reads (§10.10), checked by `verify` for every build.
    pub expect: Vec<ExpectedRead>,
    pub ops: Vec<Op>,
}

/// How a generated history was made: enough to regenerate it byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Generator name and version, e.g. `lattice-conform-gen/1`.
    pub generator: String,
    pub seed: u64,
    pub scenario: String,
    /// Position of this history in its `gen` run.
    pub index: u32,
    /// The `--ops` argument it was generated with.
    pub ops: u32,
    /// What the history exercises, for coverage tables.
    pub tags: Vec<String>,
}

/// Payloads up to this size carry a decoded form in the file.
pub const DECODED_MAX_PAYLOAD: usize = 4096;

/// Why a history file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("{path}: a directory, not a history file{}", if *.store { " (it is a store directory; `lattice-conform record` exports a store's log as a history)" } else { "" })]
    IsADirectory { path: PathBuf, store: bool },
    #[error("{path}: no such history file")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("{path}: op {index}, field `{field}`: {reason}")]
    BadOp { path: PathBuf, index: usize, field: &'static str, reason: String },
    #[error("{path}: {reason}")]
    BadDelivery { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadExpect { path: PathBuf, reason: String },
    #[error("{path}: {}at byte {offset}: {reason}", op.map(|i| format!("op {i}, ")).unwrap_or_default())]
    Binary { path: PathBuf, offset: u64, op: Option<u64>, reason: String },
    #[error("{path}: the history reader stopped without a result (a bug: please report it)")]
    ReaderLost { path: PathBuf },
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unknown history form `{ext}`: name a history `*.json` (JSON) or `*.lch` (binary), or pass `--format`")]
    UnknownForm { path: PathBuf, ext: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    format: String,
    format_version: u32,
    store_id: Uuid,
    store_type: String,
    schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provenance: Option<Provenance>,
    #[serde(default, skip_serializing_if = "Delivery::is_plain")]
    delivery: Delivery,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expect: Vec<ExpectedRead>,
    ops: Vec<OpJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    author: String,
    hlc: HlcJson,
    prev: String,
    #[serde(default)]
    causal_deps: Vec<String>,
    payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decoded: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HlcJson {
    wall_ms: u64,
    counter: u32,
}

impl History {
    /// A history of the store `id` (no provenance).
    pub fn new(id: &StoreIdentity, ops: Vec<Op>) -> History {
        History {
            store_id: id.store_id,
            store_type: id.store_type.clone(),
            schema_version: id.schema_version,
            provenance: None,
            delivery: Default::default(),
            expect: Vec::new(),
            ops,
        }
    }

    /// The identity of the store this history belongs to.
    pub fn identity(&self) -> StoreIdentity {
        StoreIdentity { store_id: self.store_id, store_type: self.store_type.clone(), schema_version: self.schema_version }
    }

    /// The header: everything but the ops.
    pub fn header(&self) -> Header {
        Header {
            store_id: self.store_id,
            store_type: self.store_type.clone(),
            schema_version: self.schema_version,
            provenance: self.provenance.clone(),
            delivery: self.delivery.clone(),
            expect: self.expect.clone(),
        }
    }

    /// Loads and checks a history file of either form, whole.
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        History::collect(open(path))
    }

    /// Parses history JSON; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<History, HistoryError> {
        History::collect(OpStream::json(std::io::Cursor::new(text.as_bytes().to_vec()), path))
    }

    /// Parses a history of either form from its bytes; `path` is only used in messages.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<History, HistoryError> {
        History::collect(OpStream::from_bytes(bytes, path))
    }

    fn collect(stream: Result<OpStream, HistoryError>) -> Result<History, HistoryError> {
        let mut stream = stream?;
        let ops: Vec<Op> = stream.by_ref().collect();
        let header = stream.finish()?.header;
        Ok(History {
            store_id: header.store_id,
            store_type: header.store_type,
            schema_version: header.schema_version,
            provenance: header.provenance,
            delivery: header.delivery,
            expect: header.expect,
            ops,
        })
    }

    /// The binary form (§10.6).
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = binary::header_bytes(&self.header(), self.ops.len() as u64);
        for op in &self.ops {
            binary::write_op(&mut out, op).expect("writing to memory");
        }
        let digest = blake3::hash(&out);
        out.extend_from_slice(digest.as_bytes());
        out
    }

    /// Pretty JSON (two-space indent, trailing newline), with each op's id written out.
    pub fn to_json(&self) -> String {
        let ops = self.ops.iter().map(|op| op_json(op, op_id(&self.store_id, op), &self.store_type)).collect();
        let file = FileJson {
            format: FORMAT_TAG.into(),
            format_version: version_for(&self.delivery, &self.expect),
            store_id: self.store_id,
            store_type: self.store_type.clone(),
            schema_version: self.schema_version,
            provenance: self.provenance.clone(),
            delivery: self.delivery.clone(),
            expect: self.expect.clone(),
            ops,
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a history always serializes");
        s.push('\n');
        s
    }
}

/// Everything in a history but its ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
    pub provenance: Option<Provenance>,
    /// Batches and restarts (§10.9).
    pub delivery: Delivery,
    /// Expected reads (§10.10).
    pub expect: Vec<ExpectedRead>,
}

impl Header {
    /// The identity of the store the history belongs to.
    pub fn identity(&self) -> StoreIdentity {
        StoreIdentity { store_id: self.store_id, store_type: self.store_type.clone(), schema_version: self.schema_version }
    }

    /// The header of a history of the store `id` (no provenance).
    pub fn of(id: &StoreIdentity) -> Header {
        Header {
            store_id: id.store_id,
            store_type: id.store_type.clone(),
            schema_version: id.schema_version,
            provenance: None,
            delivery: Delivery::default(),
            expect: Vec::new(),
        }
    }
}

/// The two forms of a history file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// JSON (§10.1), `*.json`.
    Json,
    /// Binary (§10.6), `*.lch`.
    #[value(name = "bin")]
    Binary,
}

impl Form {
    /// The form a file name asks for: `*.lch` is binary, `*.json` JSON; anything else is an error
    /// unless `default` is given.
    pub fn for_path(path: &Path, default: Option<Form>) -> Result<Form, HistoryError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("lch") => Ok(Form::Binary),
            Some("json") => Ok(Form::Json),
            other => default.ok_or_else(|| HistoryError::UnknownForm { path: path.to_path_buf(), ext: other.unwrap_or("").to_string() }),
        }
    }

    /// The file extension of this form, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Form::Json => "json",
            Form::Binary => "lch",
        }
    }

    /// The form of a history file whose bytes begin with `head` (§10.6: the binary form's first
    /// byte is its magic's, which no JSON document starts with); the one place that tells them apart.
    pub fn of_bytes(head: &[u8]) -> Form {
        if head.first() == Some(&MAGIC[0]) {
            Form::Binary
        } else {
            Form::Json
        }
    }
}

/// The form of the history file at `path`, from its first byte ([`Form::of_bytes`]).
pub fn form_of(path: &Path) -> std::io::Result<Form> {
    let mut first = [0u8; 1];
    let n = std::fs::File::open(path)?.read(&mut first)?;
    Ok(Form::of_bytes(&first[..n]))
}

/// Refuses a history path that cannot be a history file, in words rather than an OS error: a
/// directory (a store directory said so) or nothing at all (docs/FORMAT.md §10.2).
pub fn check_path(path: &Path) -> Result<(), HistoryError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let store = ["state.db", "log.db"].iter().any(|f| path.join(f).is_file());
            Err(HistoryError::IsADirectory { path: path.to_path_buf(), store })
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HistoryError::NotFound { path: path.to_path_buf() }),
        Err(source) => Err(HistoryError::Io { path: path.to_path_buf(), source }),
    }
}

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
    fn json<R: Read + Send + 'static>(reader: R, path: &Path) -> Result<OpStream, HistoryError> {
        let rx = json::spawn(reader, path.to_path_buf());
        let header = match rx.recv() {
            Ok(json::Msg::Header(h)) => h,
            Ok(json::Msg::Err(e)) => return Err(e),
            _ => return Err(HistoryError::ReaderLost { path: path.to_path_buf() }),
        };
        Ok(OpStream::new(header, path, Source::Json(rx, Default::default())))
    }

    fn binary<R: Read + Send + 'static>(reader: R, path: &Path) -> Result<OpStream, HistoryError> {
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
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    slot: Arc<Mutex<Option<String>>>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: blake3::Hasher::new(), slot: Arc::default() }
    }

    fn digest_slot(&self) -> Arc<Mutex<Option<String>>> {
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

fn parse_op(j: &OpJson, store_id: &Uuid, store_type: &str, index: usize, path: &Path) -> Result<Op, HistoryError> {
    let bad = |field, reason| HistoryError::BadOp { path: path.to_path_buf(), index, field, reason };
    let deps = j.causal_deps.iter().map(|d| hash32(d)).collect::<Result<Vec<_>, _>>().map_err(|r| bad("causal_deps", r))?;
    let op = Op {
        author: hash32(&j.author).map_err(|r| bad("author", r))?,
        hlc: Hlc { wall_ms: j.hlc.wall_ms, counter: j.hlc.counter },
        prev: hash32(&j.prev).map_err(|r| bad("prev", r))?,
        causal_deps: deps,
        payload: hex::decode(&j.payload).map_err(|e| bad("payload", format!("not hex: {e}")))?,
    };
    op.validate().map_err(|e| bad("op", e.to_string()))?;
    if let Some(stated) = j.decoded.as_ref().filter(|_| crate::decode::has_payload_decoder(store_type)) {
        if decoded_payload(store_type, &op.payload).as_ref() != Some(stated) {
            return Err(bad("decoded", "does not agree with `payload` (the hex is authoritative; fix or drop `decoded`)".into()));
        }
    }
    if let Some(stated) = &j.id {
        let computed = hex::encode(op_id(store_id, &op));
        if stated.to_ascii_lowercase() != computed {
            return Err(bad("id", format!("states {stated} but the op's contents hash to {computed}")));
        }
    }
    Ok(op)
}

/// The decoded form written beside a payload: present for payloads up to
/// [`DECODED_MAX_PAYLOAD`] bytes that decode for the store type.
fn decoded_payload(store_type: &str, payload: &[u8]) -> Option<serde_json::Value> {
    if payload.len() > DECODED_MAX_PAYLOAD {
        return None;
    }
    crate::decode::decode_payload(store_type, payload)
}

fn op_json(op: &Op, id: OpId, store_type: &str) -> OpJson {
    OpJson {
        id: Some(hex::encode(id)),
        author: hex::encode(op.author),
        hlc: HlcJson { wall_ms: op.hlc.wall_ms, counter: op.hlc.counter },
        prev: hex::encode(op.prev),
        causal_deps: op.causal_deps.iter().map(hex::encode).collect(),
        payload: hex::encode(&op.payload),
        decoded: decoded_payload(store_type, &op.payload),
    }
}

/// Decodes 64 lowercase-or-uppercase hex digits into 32 bytes.
pub fn hash32(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 {
        return Err(format!("expected 64 hex digits (32 bytes), found {} characters", s.len()));
    }
    let bytes = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    Ok(bytes.try_into().expect("64 hex digits are 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versioned::VersionError;

    fn sample() -> History {
        let op = Op { author: [3; 32], hlc: Hlc { wall_ms: 5, counter: 1 }, prev: [0; 32], causal_deps: vec![], payload: vec![0xab] };
        History {
            store_id: Uuid::from_bytes([9; 16]),
            store_type: "core:logstore".into(),
            schema_version: 1,
            provenance: None,
            delivery: Delivery::default(),
            expect: Vec::new(),
            ops: vec![op],
        }
    }

    /// Bad inputs tried: `delivery` in a version-1 file, after `ops`, naming ops past the end,
    /// and overlapping batches; a good plan round-trips through both forms as version 2.
    #[test]
    fn a_delivery_plan_is_version_2_in_both_forms_and_bad_plans_are_named() {
        let mut h = with_provenance(4);
        let plain_json = h.to_json();
        assert!(plain_json.contains("\"format_version\": 1"));
        h.delivery = Delivery { batches: vec![Batch { start: 1, len: 2 }], restarts: vec![3] };
        let json = h.to_json();
        assert!(json.contains("\"format_version\": 2") && json.contains("\"delivery\""), "{json}");
        assert_eq!(History::parse(&json, Path::new("h.json")).unwrap(), h);
        let bin = h.to_binary();
        assert_eq!(u32::from_le_bytes(bin[8..12].try_into().unwrap()), 2);
        assert_eq!(History::from_bytes(bin, Path::new("h.lch")).unwrap(), h);
        let v1 = json.replace("\"format_version\": 2", "\"format_version\": 1");
        let e = History::parse(&v1, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("`delivery` needs \"format_version\": 2"), "{e}");
        let past = json.replace("\"restarts\": [\n      3\n    ]", "\"restarts\": [\n      9\n    ]");
        assert_ne!(past, json);
        let e = History::parse(&past, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("delivery.restarts[0]: a restart before op 9 but the history has 4 ops"), "{e}");
        let overlap = json.replace("\"restarts\": [\n      3\n    ]", "\"restarts\": [\n      2\n    ]");
        let e = History::parse(&overlap, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("falls inside the batch of ops 1 to 2"), "{e}");
    }

    fn with_provenance(ops: usize) -> History {
        let mut h = sample();
        h.provenance =
            Some(Provenance { generator: "g/1".into(), seed: 3, scenario: "s".into(), index: 0, ops: 2, tags: vec!["t".into()] });
        let op = h.ops[0].clone();
        h.ops = (0..ops as u64).map(|i| Op { hlc: Hlc { wall_ms: i, counter: 0 }, ..op.clone() }).collect();
        h
    }

    #[test]
    fn streamed_writes_are_byte_for_byte_the_whole_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 3] {
            let h = with_provenance(n);
            for form in [Form::Json, Form::Binary] {
                let path = dir.path().join(format!("h{n}.{}", form.extension()));
                let written = write(&path, form, &h).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                let whole = if form == Form::Json { h.to_json().into_bytes() } else { h.to_binary() };
                assert_eq!(bytes, whole, "{n} ops, {form:?}");
                assert_eq!(written.blake3, blake3::hash(&bytes).to_hex().to_string());
                assert_eq!(History::load(&path).unwrap(), h, "{n} ops, {form:?}");
                let finished = open(&path).unwrap().finish().unwrap();
                assert_eq!((finished.ops, finished.blake3), (n as u64, written.blake3));
            }
        }
    }

    #[test]
    fn a_binary_writer_that_ends_with_another_count_patches_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let h = with_provenance(3);
        let path = dir.path().join("h.lch");
        let mut w = HistoryWriter::create(&path, Form::Binary, &h.header(), 10).unwrap();
        for op in &h.ops {
            w.push(op).unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), h.to_binary());
        assert_eq!(written.blake3, blake3::hash(&h.to_binary()).to_hex().to_string());
    }

    #[test]
    fn every_damaged_binary_history_is_refused_with_its_offset() {
        let good = with_provenance(3).to_binary();
        let p = Path::new("h.lch");
        // Every truncation (bad input: the file cut at each length).
        for len in 1..good.len() {
            let err = History::from_bytes(good[..len].to_vec(), p).unwrap_err();
            assert!(matches!(err, HistoryError::Binary { .. }), "cut at {len}: {err}");
            assert!(err.to_string().contains("truncated") || err.to_string().contains("not a binary"), "cut at {len}: {err}");
        }
        // Every single-bit flip (bad input: one corrupted bit anywhere).
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(History::from_bytes(bad, p).is_err(), "a flipped bit at byte {i} was accepted");
        }
        // An extra byte after the trailer (bad input: an over-long file).
        let mut long = good.clone();
        long.push(0);
        let err = History::from_bytes(long, p).unwrap_err().to_string();
        assert!(err.contains(&format!("at byte {}", good.len())) && err.contains("bytes follow the trailing digest"), "{err}");
        // A length prefix beyond the longest valid op (bad input: a huge length) is refused before
        // anything is allocated for it.
        let mut huge = good.clone();
        let first_op = 16 + u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
        huge[first_op..first_op + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = History::from_bytes(huge, p).unwrap_err().to_string();
        assert_eq!(err, format!("h.lch: op 0, at byte {first_op}: length 4294967295 is outside 85..={MAX_OP}, the sizes of a valid op"));
    }

    #[test]
    fn json_whose_ops_come_before_the_header_still_loads() {
        let h = sample();
        let v: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
        let reordered = format!(
            "{{\"ops\": {}, \"store_type\": {}, \"schema_version\": 1, \"store_id\": {}, \"format_version\": 1, \"format\": {}}}",
            v["ops"], v["store_type"], v["store_id"], v["format"]
        );
        assert_eq!(History::parse(&reordered, Path::new("h")).unwrap(), h);
    }

    #[test]
    fn json_round_trips() {
        let h = sample();
        assert_eq!(History::parse(&h.to_json(), Path::new("h.json")).unwrap(), h);
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = History::parse("{\n  \"format\": ,\n}", Path::new("h.json")).unwrap_err();
        assert!(matches!(err, HistoryError::Version(VersionError::Json { line: 2, column: 13, .. })), "{err}");
    }

    #[test]
    fn wrong_length_hash_names_op_and_field() {
        let text = sample().to_json().replace(&"00".repeat(32), &"00".repeat(31));
        let err = History::parse(&text, Path::new("h.json")).unwrap_err().to_string();
        assert_eq!(err, "h.json: op 0, field `prev`: expected 64 hex digits (32 bytes), found 62 characters");
    }

    /// Expected reads make a history version 3 in both forms and round-trip; bad ones are named
    /// with their index: past the last op, out of order, inside a batch, a field of another type,
    /// `expect` in a version-2 file or after `ops`, and a version-3 binary header with none.
    #[test]
    fn expected_reads_are_version_3_in_both_forms_and_bad_ones_are_named() {
        use crate::expect::Read;
        let mut h = sample();
        h.expect = vec![Read { after: Some(1), log: Some(vec!["hex:ab".into()]), entries: Some(1), ..Read::default() }];
        let json = h.to_json();
        assert!(json.contains("\"format_version\": 3"), "{json}");
        assert_eq!(History::parse(&json, Path::new("h")).unwrap(), h);
        assert_eq!(History::from_bytes(h.to_binary(), Path::new("h.lch")).unwrap(), h);
        assert_eq!(u32::from_le_bytes(h.to_binary()[8..12].try_into().unwrap()), 3, "binary version 3");
        let bad = |from: &str, to: &str| {
            assert!(json.contains(from), "{from}");
            History::parse(&json.replacen(from, to, 1), Path::new("h")).unwrap_err().to_string()
        };
        let err = bad("\"after\": 1", "\"after\": 2");
        assert!(err.contains("expect[0]: after 2 ops, but the history has 1 ops"), "{err}");
        let err = bad("\"entries\": 1", "\"entries\": 1, \"conflicts\": 1");
        assert!(err.contains("expect[0]: `conflicts` is not a read of core:logstore"), "{err}");
        let err = bad("\"format_version\": 3", "\"format_version\": 2");
        assert!(err.contains("`expect` needs \"format_version\": 3"), "{err}");
        let err = bad("\"expect\": [", "\"expect\": [{\"after\": 1, \"entries\": 1}, {\"after\": 0, \"entries\": 0},");
        assert!(err.contains("expect[1]: `after` 0 is below the expectation before it (1)"), "{err}");
        // A version-3 binary header must hold reads.
        let mut plain = sample();
        plain.expect.clear();
        let mut bin = plain.to_binary();
        bin[8..12].copy_from_slice(&3u32.to_le_bytes());
        let err = History::from_bytes(bin, Path::new("h.lch")).unwrap_err().to_string();
        assert!(err.contains("ends inside the delivery plan") || err.contains("cut short"), "{err}");
    }

    #[test]
    fn stated_id_must_match_and_newer_formats_are_refused() {
        let text = sample().to_json();
        let tampered = text.replace("\"payload\": \"ab\"", "\"payload\": \"ac\"");
        assert!(matches!(History::parse(&tampered, Path::new("h")), Err(HistoryError::BadOp { field: "decoded", .. })));
        let mut v: serde_json::Value = serde_json::from_str(&tampered).unwrap();
        v["ops"][0].as_object_mut().unwrap().remove("decoded");
        assert!(matches!(History::parse(&v.to_string(), Path::new("h")), Err(HistoryError::BadOp { field: "id", .. })));
        let newer = text.replace("\"format_version\": 1", "\"format_version\": 4, \"new_field\": true");
        assert!(matches!(History::parse(&newer, Path::new("h")), Err(HistoryError::Version(VersionError::TooNew { found: 4, .. }))));
        let id = op_id(&Uuid::from_bytes([9; 16]), &sample().ops[0]);
        let upper = text.replace(&hex::encode(id), &hex::encode_upper(id));
        assert_eq!(History::parse(&upper, Path::new("h")).unwrap(), sample(), "hex is case-insensitive, `id` included");
    }
}
