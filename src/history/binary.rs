//! The binary history form (`.lch`, docs/FORMAT.md §10.6): a fixed preamble, a header, the ops as
//! length-prefixed canonical encodings (§2, the bytes `log.db` stores and op ids hash) and a
//! trailing blake3 of everything before it. Read and written as a stream.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::{Header, HistoryError, Provenance};
use crate::op::Op;

/// The first eight bytes of every binary history: a byte with the high bit set (so no text file
/// starts this way), `LCH`, CR LF, ^Z, LF (so line-ending conversion or a text-mode copy shows).
pub const MAGIC: [u8; 8] = [0x89, b'L', b'C', b'H', 0x0D, 0x0A, 0x1A, 0x0A];
/// The binary history format version this build reads and writes.
pub const BINARY_VERSION: u32 = 3;
/// The largest header body a reader accepts.
pub const MAX_HEADER: u32 = 1 << 20;
/// The shortest canonical op encoding (no deps, empty payload).
pub const MIN_OP: u32 = 85;
/// The longest canonical op encoding of a valid op.
pub const MAX_OP: u32 = 85 + 32 * lattice_logic::op::MAX_CAUSAL_DEPS as u32 + lattice_logic::op::MAX_PAYLOAD as u32;
/// Bytes before the header body: magic, version, header length.
const PREAMBLE: u64 = 16;

/// The header body (§10.6) for `header` declaring `ops` ops.
pub(super) fn header_bytes(header: &Header, ops: u64) -> Vec<u8> {
    let prov = header.provenance.as_ref().map(|p| serde_json::to_vec(p).expect("provenance serializes")).unwrap_or_default();
    let mut body = Vec::with_capacity(16 + 8 + 8 + 2 + header.store_type.len() + 4 + prov.len());
    body.extend_from_slice(header.store_id.as_bytes());
    body.extend_from_slice(&header.schema_version.to_le_bytes());
    body.extend_from_slice(&ops.to_le_bytes());
    body.extend_from_slice(&(header.store_type.len() as u16).to_le_bytes());
    body.extend_from_slice(header.store_type.as_bytes());
    body.extend_from_slice(&(prov.len() as u32).to_le_bytes());
    body.extend_from_slice(&prov);
    // Version 2 adds the delivery plan after the provenance, version 3 the expected reads after
    // the plan (then always written, possibly empty); a history without either stays version 1.
    let version = super::version_for(&header.delivery, &header.expect);
    if version >= 2 {
        body.extend_from_slice(&header.delivery.to_bytes());
    }
    if version >= 3 {
        let expect = serde_json::to_vec(&header.expect).expect("reads serialize");
        body.extend_from_slice(&(expect.len() as u32).to_le_bytes());
        body.extend_from_slice(&expect);
    }
    let mut out = Vec::with_capacity(PREAMBLE as usize + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Offset of the op count inside the preamble + header (patched when a writer's count changes).
pub(super) const OP_COUNT_OFFSET: u64 = PREAMBLE + 16 + 8;

/// Writes one op record.
pub(super) fn write_op(out: &mut dyn Write, op: &Op) -> std::io::Result<()> {
    let enc = op.encode();
    out.write_all(&(enc.len() as u32).to_le_bytes())?;
    out.write_all(&enc)
}

/// A binary history being read: the header is parsed, the ops follow on demand.
pub(super) struct BinaryReader<R> {
    inner: R,
    path: PathBuf,
    /// Bytes consumed so far (the offset of the next byte).
    offset: u64,
    /// blake3 of every byte consumed.
    hasher: blake3::Hasher,
    declared: u64,
    next: u64,
    done: bool,
}

impl<R: Read> BinaryReader<R> {
    /// Reads the preamble and header; `inner` is positioned at the file's first byte.
    pub(super) fn open(inner: R, path: &Path) -> Result<(BinaryReader<R>, Header), HistoryError> {
        let mut r =
            BinaryReader { inner, path: path.to_path_buf(), offset: 0, hasher: blake3::Hasher::new(), declared: 0, next: 0, done: false };
        let magic: [u8; 8] = r.array("magic")?;
        if magic != MAGIC {
            return Err(r.bad(0, None, "not a binary history (the first 8 bytes are not 89 4C 43 48 0D 0A 1A 0A)".into()));
        }
        let version = u32::from_le_bytes(r.array("format version")?);
        if !(1..=BINARY_VERSION).contains(&version) {
            let how = if version > BINARY_VERSION { "newer than this build reads" } else { "older than this build reads" };
            return Err(r.bad(
                8,
                None,
                format!("binary history format version {version} is {how} ({BINARY_VERSION}); use a matching lattice-conform"),
            ));
        }
        let len = u32::from_le_bytes(r.array("header length")?);
        if len > MAX_HEADER {
            return Err(r.bad(12, None, format!("header length {len} exceeds the limit of {MAX_HEADER} bytes")));
        }
        let body = r.bytes(len as usize, "header")?;
        let header = parse_header(&body, version).map_err(|(at, what)| r.bad(PREAMBLE + at as u64, None, format!("header: {what}")))?;
        r.declared = header.1;
        Ok((r, header.0))
    }

    /// The op count the header declares.
    pub(super) fn declared(&self) -> u64 {
        self.declared
    }

    /// The next op, `None` after the trailer checked out.
    pub(super) fn next_op(&mut self) -> Option<Result<Op, HistoryError>> {
        if self.done {
            return None;
        }
        let r = if self.next == self.declared { self.trailer().map(|()| None) } else { self.op().map(Some) };
        match r {
            Ok(Some(op)) => Some(Ok(op)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// blake3 of the whole file, once the trailer has been read.
    pub(super) fn file_digest(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    fn op(&mut self) -> Result<Op, HistoryError> {
        let index = self.next;
        let at = self.offset;
        let len = u32::from_le_bytes(self.array_in_op("length", index)?);
        if !(MIN_OP..=MAX_OP).contains(&len) {
            return Err(self.bad(at, Some(index), format!("length {len} is outside {MIN_OP}..={MAX_OP}, the sizes of a valid op")));
        }
        let bytes = self.bytes_in_op(len as usize, index)?;
        let op = Op::decode(&bytes).map_err(|e| self.bad(at + 4, Some(index), e.to_string()))?;
        self.next += 1;
        Ok(op)
    }

    fn trailer(&mut self) -> Result<(), HistoryError> {
        let at = self.offset;
        let expected = self.hasher.finalize();
        let mut stated = [0u8; 32];
        let n = read_full(&mut self.inner, &mut stated).map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        self.hasher.update(&stated[..n]);
        self.offset += n as u64;
        if n < 32 {
            return Err(self.bad(
                at,
                None,
                format!("the file ends {n} bytes into the 32-byte trailing digest after all {} ops: truncated", self.declared),
            ));
        }
        if stated != *expected.as_bytes() {
            return Err(self.bad(
                at,
                None,
                format!(
                    "the trailing digest {} does not match the blake3 of the bytes before it ({}): the file is corrupt",
                    hex::encode(stated),
                    expected.to_hex()
                ),
            ));
        }
        let mut extra = [0u8; 1];
        let more = read_full(&mut self.inner, &mut extra).map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        if more > 0 {
            return Err(self.bad(
                self.offset,
                None,
                format!("bytes follow the trailing digest: the header declares {} ops and the file is longer", self.declared),
            ));
        }
        Ok(())
    }

    fn bad(&self, offset: u64, op: Option<u64>, reason: String) -> HistoryError {
        HistoryError::Binary { path: self.path.clone(), offset, op, reason }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], HistoryError> {
        let v = self.bytes(N, what)?;
        Ok(v.try_into().expect("N bytes"))
    }

    fn array_in_op<const N: usize>(&mut self, what: &str, index: u64) -> Result<[u8; N], HistoryError> {
        let at = self.offset;
        let mut buf = [0u8; N];
        let n = read_full(&mut self.inner, &mut buf).map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        self.consume(&buf[..n]);
        if n < N {
            return Err(self.truncated(at, Some(index), what));
        }
        Ok(buf)
    }

    fn bytes_in_op(&mut self, len: usize, index: u64) -> Result<Vec<u8>, HistoryError> {
        let at = self.offset;
        let mut buf = vec![0u8; len];
        let n = read_full(&mut self.inner, &mut buf).map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        self.consume(&buf[..n]);
        if n < len {
            return Err(self.truncated(at, Some(index), "encoding"));
        }
        Ok(buf)
    }

    fn bytes(&mut self, len: usize, what: &str) -> Result<Vec<u8>, HistoryError> {
        let at = self.offset;
        let mut buf = vec![0u8; len];
        let n = read_full(&mut self.inner, &mut buf).map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        self.consume(&buf[..n]);
        if n < len {
            return Err(self.truncated(at, None, what));
        }
        Ok(buf)
    }

    fn truncated(&self, at: u64, op: Option<u64>, what: &str) -> HistoryError {
        let of = match op {
            Some(i) => format!(" (op {i} of the {} the header declares)", self.declared),
            None => String::new(),
        };
        self.bad(at, op, format!("the file ends at byte {} inside the {what}{of}: truncated", self.offset))
    }

    fn consume(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Parses a header body: the header and the declared op count, or the offset in the body and
/// what is wrong there.
fn parse_header(b: &[u8], version: u32) -> Result<(Header, u64), (usize, String)> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<(usize, &[u8]), (usize, String)> {
        let start = at;
        if b.len() - at < n {
            return Err((start, format!("ends inside {what} (the header length is {})", b.len())));
        }
        at += n;
        Ok((start, &b[start..start + n]))
    };
    let store_id = Uuid::from_bytes(take(16, "store_id")?.1.try_into().expect("16 bytes"));
    let schema_version = u64::from_le_bytes(take(8, "schema_version")?.1.try_into().expect("8 bytes"));
    let ops = u64::from_le_bytes(take(8, "op count")?.1.try_into().expect("8 bytes"));
    let (tl_at, tl) = take(2, "store_type length")?;
    let type_len = u16::from_le_bytes(tl.try_into().expect("2 bytes")) as usize;
    if type_len == 0 {
        return Err((tl_at, "store_type is empty".into()));
    }
    let (ty_at, ty) = take(type_len, "store_type")?;
    let store_type = std::str::from_utf8(ty).map_err(|e| (ty_at, format!("store_type is not UTF-8: {e}")))?.to_string();
    let prov_len = u32::from_le_bytes(take(4, "provenance length")?.1.try_into().expect("4 bytes")) as usize;
    let (p_at, p) = take(prov_len, "provenance")?;
    let provenance = if prov_len == 0 {
        None
    } else {
        let p: Provenance = serde_json::from_slice(p).map_err(|e| (p_at, format!("provenance is not the JSON object of §10.4: {e}")))?;
        Some(p)
    };
    let mut delivery = super::Delivery::default();
    if version >= 2 {
        let (d, used) = super::Delivery::from_bytes(&b[at..]).map_err(|e| (at, e))?;
        if let Err(e) = d.check_len(ops) {
            return Err((at, e));
        }
        if d.is_plain() && version == 2 {
            return Err((at, "a version-2 header with an empty delivery plan (write version 1)".into()));
        }
        delivery = d;
        at += used;
    }
    let mut expect = Vec::new();
    if version >= 3 {
        let len_at = at;
        let len = b.get(at..at + 4).ok_or_else(|| (at, "ends inside the expected reads' length".to_string()))?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        at += 4;
        let text = b.get(at..at + len).ok_or_else(|| (len_at, format!("the expected reads ({len} bytes) run past the header")))?;
        expect = serde_json::from_slice::<Vec<super::ExpectedRead>>(text)
            .map_err(|e| (at, format!("the expected reads are not the JSON array of §10.10: {e}")))?;
        if expect.is_empty() {
            return Err((len_at, "a version-3 header with no expected reads (write version 1 or 2)".into()));
        }
        crate::expect::check_list(&expect, &store_type, &delivery.batch_ranges(), Some(ops)).map_err(|e| (at, e))?;
        at += len;
    }
    if at != b.len() {
        let after = match version {
            1 => "the provenance",
            2 => "the delivery plan",
            _ => "the expected reads",
        };
        return Err((at, format!("{} bytes follow {after} inside the header", b.len() - at)));
    }
    Ok((Header { store_id, store_type, schema_version, provenance, delivery, expect }, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_op_is_the_longest_valid_encoding() {
        let op = Op {
            author: [1; 32],
            hlc: lattice_logic::op::Hlc { wall_ms: 1, counter: 0 },
            prev: [0; 32],
            causal_deps: (0..lattice_logic::op::MAX_CAUSAL_DEPS as u32)
                .map(|i| {
                    let mut d = [0u8; 32];
                    d[..4].copy_from_slice(&i.to_be_bytes());
                    d
                })
                .collect(),
            payload: vec![7; lattice_logic::op::MAX_PAYLOAD],
        };
        op.validate().unwrap();
        assert_eq!(op.encode().len() as u32, MAX_OP);
        let mut small = op.clone();
        small.causal_deps.clear();
        small.payload.clear();
        assert_eq!(small.encode().len() as u32, MIN_OP);
    }
}
