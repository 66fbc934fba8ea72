//! The JSON history form, streamed: a reader that parses the file on its own thread and hands
//! ops over a bounded channel, so memory does not grow with the history (docs/FORMAT.md §10.2),
//! and a writer that emits exactly the bytes of [`History::to_json`] one op at a time (§10.3).
//!
//! The top-level object is visited field by field in file order. `format` and `format_version`
//! are checked where they stand; the header fields must all precede `ops` for the ops to stream
//! (every file this tool writes is in that order); when they do not, the ops are held until the
//! end of the object and then checked and handed over, which is correct but not bounded.

use std::cell::RefCell;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use uuid::Uuid;

use super::{op_json, parse_op, Header, HistoryError, OpJson, Provenance, FORMAT_TAG, FORMAT_VERSION};
use crate::op::Op;
use crate::versioned::VersionError;

/// Batches in flight between the parsing thread and the consumer.
const CHANNEL_DEPTH: usize = 4;
/// A batch is sent when it holds this many ops, or this many payload bytes: one hand-over per
/// op cost more in thread switches than parsing (a batch bounds memory as the channel did).
const BATCH_OPS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;

/// What the parsing thread sends, in this order: one `Header`, then ops (each `Op` or one `Err`
/// that ends the stream), then `Done` with the file's blake3.
pub(super) enum Msg {
    Header(Header),
    /// The next ops, in file order.
    Ops(Vec<Op>),
    /// `provenance` stood after `ops`: the header's provenance, known only now.
    LateProvenance(Provenance),
    Err(HistoryError),
    Done {
        blake3: String,
    },
}

/// Starts parsing `reader` (the whole file, from its first byte) on a thread; returns the
/// receiving end. The first message is a `Header` or an `Err`.
pub(super) fn spawn<R: Read + Send + 'static>(reader: R, path: PathBuf) -> Receiver<Msg> {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_DEPTH);
    std::thread::Builder::new()
        .name("history-json".into())
        .spawn(move || parse(reader, &path, &tx))
        .expect("spawn the history reader thread");
    rx
}

fn parse<R: Read>(reader: R, path: &Path, tx: &SyncSender<Msg>) {
    let mut hashing = super::HashingReader::new(reader);
    let digest = hashing.digest_slot();
    // A byte-order mark is named as such, not reported as "expected value at 1:1".
    let mut head = Vec::with_capacity(3);
    if let Err(source) = (&mut hashing).take(3).read_to_end(&mut head) {
        let _ = tx.send(Msg::Err(HistoryError::Io { path: path.to_path_buf(), source }));
        return;
    }
    if head == [0xEF, 0xBB, 0xBF] {
        let _ = tx.send(Msg::Err(HistoryError::Version(VersionError::ByteOrderMark { path: path.to_path_buf() })));
        return;
    }
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(std::io::Cursor::new(head).chain(hashing)));
    let state = State { path, tx, failure: RefCell::new(None), cancelled: RefCell::new(false), batch: RefCell::new((Vec::new(), 0)) };
    let result = FileSeed { state: &state }.deserialize(&mut de).and_then(|()| de.end());
    drop(de);
    if *state.cancelled.borrow() || state.flush::<serde_json::Error>().is_err() {
        return;
    }
    if let Err(e) = result {
        let err = state.failure.take().unwrap_or_else(|| HistoryError::Version(crate::versioned::json_error(path, &e)));
        let _ = tx.send(Msg::Err(err));
        return;
    }
    // `end` read to the end of the input, so the digest is complete.
    let blake3 = digest.lock().expect("digest slot").clone().expect("the reader reached the end of the file");
    let _ = tx.send(Msg::Done { blake3 });
}

struct State<'a> {
    path: &'a Path,
    tx: &'a SyncSender<Msg>,
    /// The typed error behind a custom serde error raised by the visitors.
    failure: RefCell<Option<HistoryError>>,
    /// The consumer went away: stop quietly.
    cancelled: RefCell<bool>,
    /// Ops parsed and not sent yet, and their payload bytes.
    batch: RefCell<(Vec<Op>, usize)>,
}

impl State<'_> {
    fn fail<E: serde::de::Error>(&self, err: HistoryError) -> E {
        let msg = err.to_string();
        *self.failure.borrow_mut() = Some(err);
        E::custom(msg)
    }

    /// Sends `msg` after the ops parsed before it.
    fn send<E: serde::de::Error>(&self, msg: Msg) -> Result<(), E> {
        self.flush()?;
        self.tx.send(msg).map_err(|_| {
            *self.cancelled.borrow_mut() = true;
            E::custom("the consumer stopped reading")
        })
    }

    /// Queues `op`, sending the batch when it is full.
    fn send_op<E: serde::de::Error>(&self, op: Op) -> Result<(), E> {
        let full = {
            let mut b = self.batch.borrow_mut();
            b.1 += op.payload.len();
            b.0.push(op);
            b.0.len() >= BATCH_OPS || b.1 >= BATCH_BYTES
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the queued ops, if any.
    fn flush<E: serde::de::Error>(&self) -> Result<(), E> {
        let (ops, _) = std::mem::take(&mut *self.batch.borrow_mut());
        if ops.is_empty() {
            return Ok(());
        }
        self.tx.send(Msg::Ops(ops)).map_err(|_| {
            *self.cancelled.borrow_mut() = true;
            E::custom("the consumer stopped reading")
        })
    }
}

const FIELDS: &[&str] =
    &["format", "format_version", "store_id", "store_type", "schema_version", "provenance", "delivery", "expect", "ops"];

struct FileSeed<'a> {
    state: &'a State<'a>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(FileVisitor { state: self.state })
    }
}

struct FileVisitor<'a> {
    state: &'a State<'a>,
}

#[derive(Default)]
struct Seen {
    format: bool,
    version: Option<u32>,
    store_id: Option<Uuid>,
    store_type: Option<String>,
    schema_version: Option<u64>,
    provenance: Option<Option<Provenance>>,
    delivery: Option<super::Delivery>,
    expect: Option<Vec<super::ExpectedRead>>,
    ops: bool,
    /// The first unknown field, when it came before `format_version` (then a newer version wins).
    unknown: Option<String>,
}

impl Seen {
    fn header(&self) -> Option<Header> {
        Some(Header {
            store_id: self.store_id?,
            store_type: self.store_type.clone()?,
            schema_version: self.schema_version?,
            provenance: self.provenance.clone().flatten(),
            delivery: self.delivery.clone().unwrap_or_default(),
            expect: self.expect.clone().unwrap_or_default(),
        })
    }
}

impl<'de> Visitor<'de> for FileVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a history object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let st = self.state;
        let path = st.path.to_path_buf();
        let mut seen = Seen::default();
        // Ops held because the header was not complete when `ops` began.
        let mut held: Option<Vec<OpJson>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => {
                    if seen.format {
                        return Err(A::Error::duplicate_field("format"));
                    }
                    let found: String = map.next_value()?;
                    if found != FORMAT_TAG {
                        return Err(st.fail(HistoryError::Version(VersionError::WrongFormat { path, found, expected: FORMAT_TAG })));
                    }
                    seen.format = true;
                }
                "format_version" => {
                    if seen.version.is_some() {
                        return Err(A::Error::duplicate_field("format_version"));
                    }
                    let found: u32 = map.next_value()?;
                    let (expected, reads) = (FORMAT_TAG, FORMAT_VERSION);
                    if found > reads {
                        return Err(st.fail(HistoryError::Version(VersionError::TooNew { path, expected, found, reads })));
                    }
                    if found < 1 {
                        return Err(st.fail(HistoryError::Version(VersionError::TooOld { path, expected, found, reads })));
                    }
                    if let Some(unknown) = seen.unknown.take() {
                        return Err(A::Error::unknown_field(&unknown, FIELDS));
                    }
                    seen.version = Some(found);
                }
                "store_id" => set(&mut seen.store_id, map.next_value()?, "store_id")?,
                "store_type" => set(&mut seen.store_type, map.next_value()?, "store_type")?,
                "schema_version" => set(&mut seen.schema_version, map.next_value()?, "schema_version")?,
                "delivery" => {
                    let d: super::Delivery = map.next_value()?;
                    if seen.ops {
                        return Err(st.fail(HistoryError::BadDelivery { path, reason: "`delivery` must come before `ops`".into() }));
                    }
                    if seen.version.is_none_or(|v| v < 2) {
                        return Err(st.fail(HistoryError::BadDelivery {
                            path,
                            reason: "`delivery` needs \"format_version\": 2 or later (given before it)".into(),
                        }));
                    }
                    if let Err(reason) = d.check() {
                        return Err(st.fail(HistoryError::BadDelivery { path, reason }));
                    }
                    set(&mut seen.delivery, d, "delivery")?;
                }
                "expect" => {
                    let e: Vec<super::ExpectedRead> = map.next_value()?;
                    if seen.ops {
                        return Err(st.fail(HistoryError::BadExpect { path, reason: "`expect` must come before `ops`".into() }));
                    }
                    if seen.version.is_none_or(|v| v < 3) {
                        return Err(st.fail(HistoryError::BadExpect {
                            path,
                            reason: "`expect` needs \"format_version\": 3 (given before it)".into(),
                        }));
                    }
                    // Checked again, whole, when the ops have been read (`OpStream::finish`).
                    if let Some(ty) = &seen.store_type {
                        let batches = seen.delivery.as_ref().map(super::Delivery::batch_ranges).unwrap_or_default();
                        if let Err(reason) = crate::expect::check_list(&e, ty, &batches, None) {
                            return Err(st.fail(HistoryError::BadExpect { path, reason }));
                        }
                    }
                    set(&mut seen.expect, e, "expect")?;
                }
                "provenance" => {
                    let p: Option<Provenance> = map.next_value()?;
                    set(&mut seen.provenance, p.clone(), "provenance")?;
                    if seen.ops && held.is_none() {
                        if let Some(p) = p {
                            st.send(Msg::LateProvenance(p))?;
                        }
                    }
                }
                "ops" => {
                    if seen.ops {
                        return Err(A::Error::duplicate_field("ops"));
                    }
                    seen.ops = true;
                    match seen.header().filter(|_| seen.format && seen.version.is_some()) {
                        Some(header) => {
                            let store = (header.store_id, header.store_type.clone());
                            st.send(Msg::Header(header))?;
                            map.next_value_seed(OpsSeed { state: st, store })?;
                        }
                        None => held = Some(map.next_value()?),
                    }
                }
                other => {
                    if seen.version.is_some() {
                        return Err(A::Error::unknown_field(other, FIELDS));
                    }
                    seen.unknown.get_or_insert_with(|| other.to_string());
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen.format {
            return Err(A::Error::missing_field("format"));
        }
        if seen.version.is_none() {
            return Err(A::Error::missing_field("format_version"));
        }
        for (name, missing) in [
            ("store_id", seen.store_id.is_none()),
            ("store_type", seen.store_type.is_none()),
            ("schema_version", seen.schema_version.is_none()),
            ("ops", !seen.ops),
        ] {
            if missing {
                return Err(A::Error::missing_field(name));
            }
        }
        if let Some(ops) = held {
            let header = seen.header().expect("every header field is present");
            let (id, ty) = (header.store_id, header.store_type.clone());
            st.send(Msg::Header(header))?;
            for (i, j) in ops.iter().enumerate() {
                let op = parse_op(j, &id, &ty, i, st.path).map_err(|e| st.fail::<A::Error>(e))?;
                st.send_op(op)?;
            }
        }
        Ok(())
    }
}

fn set<T, E: serde::de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

struct OpsSeed<'a> {
    state: &'a State<'a>,
    store: (Uuid, String),
}

impl<'de> DeserializeSeed<'de> for OpsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OpsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of ops")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.state;
        let mut index = 0;
        while let Some(j) = seq.next_element::<OpJson>()? {
            let op = parse_op(&j, &self.store.0, &self.store.1, index, st.path).map_err(|e| st.fail::<A::Error>(e))?;
            st.send_op(op)?;
            index += 1;
        }
        Ok(())
    }
}

/// The header of a JSON history as written (§10.3), with an empty `ops`.
#[derive(Serialize)]
struct HeaderJson<'a> {
    format: &'static str,
    format_version: u32,
    store_id: Uuid,
    store_type: &'a str,
    schema_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
    #[serde(skip_serializing_if = "super::Delivery::is_plain")]
    delivery: &'a super::Delivery,
    #[serde(skip_serializing_if = "<[super::ExpectedRead]>::is_empty")]
    expect: &'a [super::ExpectedRead],
    ops: [u8; 0],
}

/// Writes a JSON history one op at a time, byte for byte what [`super::History::to_json`] writes.
pub(super) struct JsonSink {
    store_id: Uuid,
    store_type: String,
    ops: u64,
}

/// The text after `"ops": ` in a header serialized with no ops.
const EMPTY_TAIL: &str = "[]\n}";

impl JsonSink {
    pub(super) fn start(out: &mut dyn Write, header: &Header) -> std::io::Result<JsonSink> {
        let text = head_text(header);
        out.write_all(&text.as_bytes()[..text.len() - EMPTY_TAIL.len()])?;
        Ok(JsonSink { store_id: header.store_id, store_type: header.store_type.clone(), ops: 0 })
    }

    pub(super) fn push(&mut self, out: &mut dyn Write, op: &Op) -> std::io::Result<()> {
        let j = op_json(op, crate::op::op_id(&self.store_id, op), &self.store_type);
        let text = serde_json::to_string_pretty(&j).expect("an op always serializes");
        out.write_all(if self.ops == 0 { b"[\n    " } else { b",\n    " })?;
        out.write_all(text.replace('\n', "\n    ").as_bytes())?;
        self.ops += 1;
        Ok(())
    }

    pub(super) fn finish(self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(if self.ops == 0 { b"[]\n}\n" } else { b"\n  ]\n}\n" })
    }
}

fn head_text(header: &Header) -> String {
    let h = HeaderJson {
        format: FORMAT_TAG,
        format_version: super::version_for(&header.delivery, &header.expect),
        store_id: header.store_id,
        store_type: &header.store_type,
        schema_version: header.schema_version,
        provenance: header.provenance.as_ref(),
        delivery: &header.delivery,
        expect: &header.expect,
        ops: [],
    };
    let text = serde_json::to_string_pretty(&h).expect("a header always serializes");
    debug_assert!(text.ends_with(EMPTY_TAIL));
    text
}
