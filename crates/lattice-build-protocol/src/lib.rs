//! The outside-build protocol's frames and messages, byte for byte (lattice-conform's
//! docs/BUILD_PROTOCOL.md).
//!
//! A frame is a u32 little-endian length `L` (1 ≤ `L` ≤ [`MAX_FRAME`]), then `L` bytes: a type
//! byte and the message body. One source for every side: the host (`lattice_conform::outside::
//! exec`), the reference adapter (`lattice_conform::outside::serve`) and the adapters outside the
//! workspace (`adapters/lattice`). Decoding never panics and never allocates more than the
//! frame holds: every count is checked against the bytes left.

use std::io::{Read, Write};

/// The protocol version this host speaks.
pub const VERSION: u32 = 1;
/// The 8 bytes a HELLO starts with.
pub const MAGIC: &[u8; 8] = b"LCBUILD\0";
/// The largest frame length accepted (64 MiB): a DELIVER of up to 64 ops of the largest valid
/// size fits.
pub const MAX_FRAME: u32 = 64 << 20;

/// Message type bytes.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const OPEN: u8 = 0x02;
    pub const DELIVER: u8 = 0x03;
    pub const RESTART: u8 = 0x04;
    pub const DUMP: u8 = 0x05;
    pub const CLOSE: u8 = 0x06;
    pub const BYE: u8 = 0x07;
    pub const HELLO_OK: u8 = 0x81;
    pub const OPENED: u8 = 0x82;
    pub const DELIVERED: u8 = 0x83;
    pub const RESTARTED: u8 = 0x84;
    pub const DUMPED: u8 = 0x85;
    pub const CLOSED: u8 = 0x86;
    pub const ERROR: u8 = 0xFF;
}

/// DELIVER modes.
pub const MODE_EACH: u8 = 0;
pub const MODE_BATCH: u8 = 1;

/// What the host sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Hello {
        version: u32,
    },
    Open {
        store_id: [u8; 16],
        store_type: String,
        schema_version: u64,
    },
    /// Ops as (op id, canonical encoding).
    Deliver {
        mode: u8,
        ops: Vec<([u8; 32], Vec<u8>)>,
    },
    Restart,
    Dump,
    Close,
    Bye,
}

/// How one op was taken on arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    Received,
    Redelivered,
    Refused {
        kind: String,
        reason: String,
    },
    /// Not delivered: an earlier op of its batch was refused (docs/FORMAT.md §4.5).
    Skipped,
}

/// A row the build stores (docs/FORMAT.md §8.1): table 0 is `data`, table 1 the author tips.
pub const TABLE_DATA: u8 = 0;
pub const TABLE_TIP: u8 = 1;

/// A row written by a delivery: its new value, or `None` if deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub table: u8,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A key's view after a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Readers do not see the key (or it has no row).
    Absent,
    Value(Vec<u8>),
    /// The build could not view the row; its reason.
    Unviewable(String),
}

/// The stall a delivery caused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StallMsg {
    pub op_id: [u8; 32],
    pub kind: String,
    pub reason: String,
}

/// What one ingest did after receiving.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub witnessed: Vec<[u8; 32]>,
    pub applied: Vec<[u8; 32]>,
    pub stall: Option<StallMsg>,
    pub changes: Vec<Change>,
    pub views: Vec<(Vec<u8>, View)>,
}

/// What the build answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    HelloOk {
        version: u32,
        name: String,
        build_version: String,
        types: Vec<(String, u64)>,
    },
    Opened,
    /// `MODE_EACH`: one (receipt, effects) per op. `MODE_BATCH`: one receipt per op and one
    /// effects record (`effects` then holds exactly one element).
    Delivered {
        receipts: Vec<Receipt>,
        effects: Vec<Effects>,
    },
    Restarted,
    Dumped {
        rows: Vec<(u8, Vec<u8>, Vec<u8>)>,
        views: Vec<(Vec<u8>, View)>,
        floating: Vec<[u8; 32]>,
    },
    Closed,
    Error {
        message: String,
    },
}

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("end of stream")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame length {0} outside 1..={MAX_FRAME}")]
    BadLength(u32),
    #[error("{0}")]
    Malformed(String),
}

/// Writes one frame of type `ty` holding `body`.
pub fn write_frame(w: &mut impl Write, ty: u8, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len() + 1).expect("frames are built below MAX_FRAME");
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&[ty])?;
    w.write_all(body)
}

/// Reads one frame: its type byte and body. A stream that ends before the first length byte is
/// [`WireError::Eof`]; one that ends inside a frame is an I/O error (unexpected EOF).
pub fn read_frame(r: &mut impl Read) -> Result<(u8, Vec<u8>), WireError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(WireError::Eof),
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(len);
    if len == 0 || len > MAX_FRAME {
        return Err(WireError::BadLength(len));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    let ty = buf[0];
    buf.remove(0);
    Ok((ty, buf))
}

/// A body being written.
#[derive(Default)]
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).expect("fields fit a frame")).raw(v)
    }
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).expect("counts fit a frame"))
    }
}

/// A body being read; every read checks the bytes left.
pub struct In<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> In<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> In<'a> {
        In { buf, what }
    }
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Malformed(format!("{}: truncated at {field} (needs {n} bytes, {} left)", self.what, self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self, field: &str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }
    pub fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4, field)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self, field: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8, field)?.try_into().expect("8 bytes")))
    }
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], WireError> {
        Ok(self.take(N, field)?.try_into().expect("N bytes"))
    }
    pub fn bytes(&mut self, field: &str) -> Result<Vec<u8>, WireError> {
        let n = self.u32(field)? as usize;
        Ok(self.take(n, field)?.to_vec())
    }
    pub fn string(&mut self, field: &str) -> Result<String, WireError> {
        String::from_utf8(self.bytes(field)?).map_err(|_| WireError::Malformed(format!("{}: {field} is not UTF-8", self.what)))
    }
    /// A count of items each at least `min` bytes long, checked against the bytes left.
    pub fn count(&mut self, field: &str, min: usize) -> Result<usize, WireError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min.max(1)) > self.buf.len() {
            return Err(WireError::Malformed(format!("{}: {field} count {n} exceeds the frame", self.what)));
        }
        Ok(n)
    }
    pub fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed(format!("{}: {} bytes after the end of the message", self.what, self.buf.len())))
        }
    }
}

impl Request {
    /// The frame type and body.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut o = Out::default();
        let ty = match self {
            Request::Hello { version } => {
                o.raw(MAGIC).u32(*version);
                kind::HELLO
            }
            Request::Open { store_id, store_type, schema_version } => {
                o.raw(store_id).bytes(store_type.as_bytes()).u64(*schema_version);
                kind::OPEN
            }
            Request::Deliver { mode, ops } => {
                o.u8(*mode).count(ops.len());
                for (id, enc) in ops {
                    o.raw(id).bytes(enc);
                }
                kind::DELIVER
            }
            Request::Restart => kind::RESTART,
            Request::Dump => kind::DUMP,
            Request::Close => kind::CLOSE,
            Request::Bye => kind::BYE,
        };
        (ty, o.0)
    }

    pub fn decode(ty: u8, body: &[u8]) -> Result<Request, WireError> {
        let mut i = In::new(body, "request");
        let req = match ty {
            kind::HELLO => {
                if &i.array::<8>("magic")? != MAGIC {
                    return Err(WireError::Malformed("HELLO: wrong magic".into()));
                }
                Request::Hello { version: i.u32("version")? }
            }
            kind::OPEN => Request::Open {
                store_id: i.array("store_id")?,
                store_type: i.string("store_type")?,
                schema_version: i.u64("schema_version")?,
            },
            kind::DELIVER => {
                let mode = i.u8("mode")?;
                let n = i.count("ops", 36)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push((i.array("op id")?, i.bytes("op")?));
                }
                Request::Deliver { mode, ops }
            }
            kind::RESTART => Request::Restart,
            kind::DUMP => Request::Dump,
            kind::CLOSE => Request::Close,
            kind::BYE => Request::Bye,
            other => return Err(WireError::Malformed(format!("unknown request type 0x{other:02x}"))),
        };
        i.end()?;
        Ok(req)
    }
}

fn put_view(o: &mut Out, v: &View) {
    match v {
        View::Absent => {
            o.u8(0);
        }
        View::Value(bytes) => {
            o.u8(1).bytes(bytes);
        }
        View::Unviewable(why) => {
            o.u8(2).bytes(why.as_bytes());
        }
    }
}

fn get_view(i: &mut In) -> Result<View, WireError> {
    match i.u8("view status")? {
        0 => Ok(View::Absent),
        1 => Ok(View::Value(i.bytes("view")?)),
        2 => Ok(View::Unviewable(i.string("unviewable reason")?)),
        s => Err(WireError::Malformed(format!("view status {s} (expected 0, 1 or 2)"))),
    }
}

fn put_effects(o: &mut Out, e: &Effects) {
    o.count(e.witnessed.len());
    e.witnessed.iter().for_each(|id| {
        o.raw(id);
    });
    o.count(e.applied.len());
    e.applied.iter().for_each(|id| {
        o.raw(id);
    });
    match &e.stall {
        None => {
            o.u8(0);
        }
        Some(s) => {
            o.u8(1).raw(&s.op_id).bytes(s.kind.as_bytes()).bytes(s.reason.as_bytes());
        }
    }
    o.count(e.changes.len());
    for c in &e.changes {
        o.u8(c.table).bytes(&c.key);
        match &c.value {
            None => o.u8(0),
            Some(v) => o.u8(1).bytes(v),
        };
    }
    o.count(e.views.len());
    for (k, v) in &e.views {
        o.bytes(k);
        put_view(o, v);
    }
}

fn get_effects(i: &mut In) -> Result<Effects, WireError> {
    let n = i.count("witnessed", 32)?;
    let witnessed = (0..n).map(|_| i.array("witnessed id")).collect::<Result<_, _>>()?;
    let n = i.count("applied", 32)?;
    let applied = (0..n).map(|_| i.array("applied id")).collect::<Result<_, _>>()?;
    let stall = match i.u8("stalled")? {
        0 => None,
        1 => Some(StallMsg { op_id: i.array("stall op id")?, kind: i.string("stall kind")?, reason: i.string("stall reason")? }),
        s => return Err(WireError::Malformed(format!("stalled flag {s} (expected 0 or 1)"))),
    };
    let n = i.count("changes", 6)?;
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        let table = i.u8("change table")?;
        let key = i.bytes("change key")?;
        let value = match i.u8("change present")? {
            0 => None,
            1 => Some(i.bytes("change value")?),
            s => return Err(WireError::Malformed(format!("change present flag {s} (expected 0 or 1)"))),
        };
        changes.push(Change { table, key, value });
    }
    let n = i.count("views", 5)?;
    let mut views = Vec::with_capacity(n);
    for _ in 0..n {
        let k = i.bytes("view key")?;
        views.push((k, get_view(i)?));
    }
    Ok(Effects { witnessed, applied, stall, changes, views })
}

impl Reply {
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut o = Out::default();
        let ty = match self {
            Reply::HelloOk { version, name, build_version, types } => {
                o.u32(*version).bytes(name.as_bytes()).bytes(build_version.as_bytes()).count(types.len());
                for (t, s) in types {
                    o.bytes(t.as_bytes()).u64(*s);
                }
                kind::HELLO_OK
            }
            Reply::Opened => kind::OPENED,
            Reply::Delivered { receipts, effects } => {
                o.count(receipts.len());
                for r in receipts {
                    match r {
                        Receipt::Received => o.u8(0),
                        Receipt::Redelivered => o.u8(1),
                        Receipt::Refused { kind, reason } => o.u8(2).bytes(kind.as_bytes()).bytes(reason.as_bytes()),
                        Receipt::Skipped => o.u8(3),
                    };
                }
                o.count(effects.len());
                effects.iter().for_each(|e| put_effects(&mut o, e));
                kind::DELIVERED
            }
            Reply::Restarted => kind::RESTARTED,
            Reply::Dumped { rows, views, floating } => {
                o.count(rows.len());
                for (t, k, v) in rows {
                    o.u8(*t).bytes(k).bytes(v);
                }
                o.count(views.len());
                for (k, v) in views {
                    o.bytes(k);
                    put_view(&mut o, v);
                }
                o.count(floating.len());
                floating.iter().for_each(|id| {
                    o.raw(id);
                });
                kind::DUMPED
            }
            Reply::Closed => kind::CLOSED,
            Reply::Error { message } => {
                o.bytes(message.as_bytes());
                kind::ERROR
            }
        };
        (ty, o.0)
    }

    pub fn decode(ty: u8, body: &[u8]) -> Result<Reply, WireError> {
        let mut i = In::new(body, "reply");
        let reply = match ty {
            kind::HELLO_OK => {
                let version = i.u32("version")?;
                let name = i.string("name")?;
                let build_version = i.string("build version")?;
                let n = i.count("store types", 12)?;
                let types = (0..n).map(|_| Ok((i.string("store type")?, i.u64("schema version")?))).collect::<Result<_, WireError>>()?;
                Reply::HelloOk { version, name, build_version, types }
            }
            kind::OPENED => Reply::Opened,
            kind::DELIVERED => {
                let n = i.count("receipts", 1)?;
                let mut receipts = Vec::with_capacity(n);
                for _ in 0..n {
                    receipts.push(match i.u8("receipt")? {
                        0 => Receipt::Received,
                        1 => Receipt::Redelivered,
                        2 => Receipt::Refused { kind: i.string("refusal kind")?, reason: i.string("refusal reason")? },
                        3 => Receipt::Skipped,
                        s => return Err(WireError::Malformed(format!("receipt {s} (expected 0 to 3)"))),
                    });
                }
                let n = i.count("effects", 17)?;
                let effects = (0..n).map(|_| get_effects(&mut i)).collect::<Result<_, _>>()?;
                Reply::Delivered { receipts, effects }
            }
            kind::RESTARTED => Reply::Restarted,
            kind::DUMPED => {
                let n = i.count("rows", 9)?;
                let rows = (0..n)
                    .map(|_| Ok((i.u8("row table")?, i.bytes("row key")?, i.bytes("row value")?)))
                    .collect::<Result<_, WireError>>()?;
                let n = i.count("views", 5)?;
                let mut views = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = i.bytes("view key")?;
                    views.push((k, get_view(&mut i)?));
                }
                let n = i.count("floating", 32)?;
                let floating = (0..n).map(|_| i.array("floating id")).collect::<Result<_, _>>()?;
                Reply::Dumped { rows, views, floating }
            }
            kind::CLOSED => Reply::Closed,
            kind::ERROR => Reply::Error { message: i.string("message")? },
            other => return Err(WireError::Malformed(format!("unknown reply type 0x{other:02x}"))),
        };
        i.end()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_a_cut_frame_is_an_error_not_a_panic() {
        let effects = Effects {
            witnessed: vec![[1; 32], [2; 32]],
            applied: vec![[1; 32]],
            stall: Some(StallMsg { op_id: [2; 32], kind: "malformed_payload".into(), reason: "bad".into() }),
            changes: vec![
                Change { table: 0, key: b"k".to_vec(), value: Some(b"v".to_vec()) },
                Change { table: 1, key: vec![9; 32], value: None },
            ],
            views: vec![
                (b"k".to_vec(), View::Value(b"v".to_vec())),
                (b"j".to_vec(), View::Absent),
                (b"x".to_vec(), View::Unviewable("no".into())),
            ],
        };
        let requests = [
            Request::Hello { version: 1 },
            Request::Open { store_id: [7; 16], store_type: "core:kvstore".into(), schema_version: 1 },
            Request::Deliver { mode: MODE_BATCH, ops: vec![([3; 32], vec![1, 2, 3])] },
            Request::Restart,
            Request::Dump,
            Request::Close,
            Request::Bye,
        ];
        let replies = [
            Reply::HelloOk { version: 1, name: "n".into(), build_version: "1".into(), types: vec![("core:kvstore".into(), 1)] },
            Reply::Opened,
            Reply::Delivered {
                receipts: vec![Receipt::Received, Receipt::Refused { kind: "malformed_op".into(), reason: "r".into() }],
                effects: vec![effects.clone(), Effects::default()],
            },
            Reply::Dumped { rows: vec![(0, b"k".to_vec(), b"v".to_vec())], views: effects.views.clone(), floating: vec![[4; 32]] },
            Reply::Error { message: "boom".into() },
        ];
        for r in &requests {
            let (ty, body) = r.encode();
            assert_eq!(&Request::decode(ty, &body).unwrap(), r);
            for cut in 0..body.len() {
                assert!(Request::decode(ty, &body[..cut]).is_err(), "{r:?} cut at {cut}");
            }
        }
        for r in &replies {
            let (ty, body) = r.encode();
            assert_eq!(&Reply::decode(ty, &body).unwrap(), r);
            for cut in 0..body.len() {
                assert!(Reply::decode(ty, &body[..cut]).is_err(), "{r:?} cut at {cut}");
            }
            let mut framed = Vec::new();
            write_frame(&mut framed, ty, &body).unwrap();
            assert_eq!(read_frame(&mut framed.as_slice()).unwrap(), (ty, body));
        }
        assert!(matches!(read_frame(&mut [0u8, 0, 0, 0].as_slice()), Err(WireError::BadLength(0))));
        assert!(matches!(read_frame(&mut [0xffu8, 0xff, 0xff, 0xff].as_slice()), Err(WireError::BadLength(_))));
        assert!(matches!(read_frame(&mut [].as_slice()), Err(WireError::Eof)));
        assert!(Reply::decode(0x42, &[]).is_err());
        let huge_count = [0xff, 0xff, 0xff, 0x7f];
        assert!(Reply::decode(kind::DELIVERED, &huge_count).is_err());
    }
}
