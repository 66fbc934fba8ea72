//! The op and its canonical byte encoding (normative: docs/FORMAT.md, "Canonical op encoding").
//!
//! The encoding is the one form an op is hashed, logged and handed to a Wasm guest in. Decoding
//! accepts exactly the bytes [`Op::encode`] produces: unsorted or repeated `causal_deps`, an unknown
//! version byte or trailing bytes are errors, so every op has one encoding and one id.

use alloc::vec::Vec;
use core::fmt;

use crate::wire::{put_bytes32, put_u32, put_u64, Reader, Truncated};

/// A 32-byte hash naming an op (the op id) — blake3, computed by the host.
pub type OpId = [u8; 32];

/// The all-zero hash: the `prev` of an author's first op.
pub const ZERO_HASH: [u8; 32] = [0u8; 32];

/// Version byte that opens every canonical op encoding.
pub const OP_ENCODING_VERSION: u8 = 1;

/// Lattice's `MAX_PAYLOAD_SIZE` (1 MiB). Lattice applies it to an intention's `ops` bytes, which
/// hold the payload wrapped in its `UniversalOp { app_data = 10 }` envelope: one tag byte, the
/// payload length as a protobuf varint, then the payload. See [`envelope_len`].
pub const MAX_OPS_BYTES: usize = 1 << 20;

/// Largest payload an op may carry: the one whose envelope is exactly [`MAX_OPS_BYTES`]
/// (1 048 572 bytes: 1 tag byte and a 3-byte length).
pub const MAX_PAYLOAD: usize = MAX_OPS_BYTES - 4;

/// The size of Lattice's `UniversalOp` envelope around a payload of `len` bytes: the field tag
/// (`0x52`), the length as a varint, the payload.
pub const fn envelope_len(len: usize) -> usize {
    let mut varint = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        varint += 1;
        rest >>= 7;
    }
    1 + varint + len
}

/// Most `causal_deps` an op may name: Lattice's `MAX_CAUSAL_DEPS`.
pub const MAX_CAUSAL_DEPS: usize = 1024;

/// Hybrid logical clock timestamp: wall-clock milliseconds and a logical counter.
/// Ordered by `wall_ms`, then `counter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    pub wall_ms: u64,
    pub counter: u32,
}

/// One operation of a store's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The author's 32-byte public key.
    pub author: [u8; 32],
    pub hlc: Hlc,
    /// Id of the author's previous op, or [`ZERO_HASH`] for the author's first op.
    pub prev: [u8; 32],
    /// Ids of the ops this op supersedes, strictly ascending.
    pub causal_deps: Vec<OpId>,
    /// Opaque to the kernel; interpreted by the store logic.
    pub payload: Vec<u8>,
}

/// Why bytes are not a canonical op encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated { what: &'static str, at: usize },
    UnknownVersion(u8),
    DepsNotAscending { index: usize },
    TooManyDeps(usize),
    PayloadTooLarge(usize),
    TrailingBytes { at: usize },
}

impl From<Truncated> for DecodeError {
    fn from(t: Truncated) -> Self {
        DecodeError::Truncated { what: t.what, at: t.at }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, at } => write!(f, "truncated while reading {what} at byte {at}"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown op encoding version {v} (this build reads version {OP_ENCODING_VERSION})"),
            DecodeError::DepsNotAscending { index } => write!(
                f,
                "causal_deps[{index}] is not strictly greater than the one before it (deps must be sorted ascending, without repeats)"
            ),
            DecodeError::TooManyDeps(n) => write!(f, "{n} causal_deps exceed the limit of {MAX_CAUSAL_DEPS}"),
            DecodeError::PayloadTooLarge(n) => write!(f, "payload of {n} bytes exceeds the limit of {MAX_PAYLOAD}"),
            DecodeError::TrailingBytes { at } => write!(f, "trailing bytes after the op at byte {at}"),
        }
    }
}

impl Op {
    /// Checks the invariants the encoding relies on: deps strictly ascending, limits respected.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.causal_deps.len() > MAX_CAUSAL_DEPS {
            return Err(DecodeError::TooManyDeps(self.causal_deps.len()));
        }
        if envelope_len(self.payload.len()) > MAX_OPS_BYTES {
            return Err(DecodeError::PayloadTooLarge(self.payload.len()));
        }
        match self.causal_deps.windows(2).position(|w| w[0] >= w[1]) {
            Some(i) => Err(DecodeError::DepsNotAscending { index: i + 1 }),
            None => Ok(()),
        }
    }

    /// The canonical encoding. Call [`Op::validate`] first: an invalid op encodes to bytes that
    /// [`Op::decode`] refuses.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 12 + 32 + 4 + 32 * self.causal_deps.len() + 4 + self.payload.len());
        out.push(OP_ENCODING_VERSION);
        out.extend_from_slice(&self.author);
        put_u64(&mut out, self.hlc.wall_ms);
        put_u32(&mut out, self.hlc.counter);
        out.extend_from_slice(&self.prev);
        put_u32(&mut out, self.causal_deps.len() as u32);
        for dep in &self.causal_deps {
            out.extend_from_slice(dep);
        }
        put_bytes32(&mut out, &self.payload);
        out
    }

    /// Decodes a canonical encoding, refusing anything [`Op::encode`] would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Op, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != OP_ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let author = r.hash("author")?;
        let hlc = Hlc { wall_ms: r.u64("hlc.wall_ms")?, counter: r.u32("hlc.counter")? };
        let prev = r.hash("prev")?;
        let n = r.u32("causal_deps count")? as usize;
        if n > MAX_CAUSAL_DEPS {
            return Err(DecodeError::TooManyDeps(n));
        }
        let causal_deps = (0..n).map(|_| r.hash("causal_deps")).collect::<Result<Vec<_>, _>>()?;
        let len = r.u32("payload length")? as usize;
        if len > MAX_PAYLOAD {
            return Err(DecodeError::PayloadTooLarge(len));
        }
        let payload = r.take(len, "payload")?.to_vec();
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes { at: r.pos() });
        }
        let op = Op { author, hlc, prev, causal_deps, payload };
        op.validate()?;
        Ok(op)
    }

    /// Whether this op is the author's first (its `prev` is all zero).
    pub fn is_genesis(&self) -> bool {
        self.prev == ZERO_HASH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_payload_limit_is_lattices_envelope_limit() {
        assert_eq!(envelope_len(0), 2);
        assert_eq!(envelope_len(127), 129);
        assert_eq!(envelope_len(128), 131);
        assert_eq!(envelope_len(MAX_PAYLOAD), MAX_OPS_BYTES);
        assert!(envelope_len(MAX_PAYLOAD + 1) > MAX_OPS_BYTES);
        let mut op = Op { author: [1; 32], hlc: Hlc::default(), prev: ZERO_HASH, causal_deps: vec![], payload: vec![0; MAX_PAYLOAD] };
        assert_eq!(op.validate(), Ok(()));
        op.payload.push(0);
        assert_eq!(op.validate(), Err(DecodeError::PayloadTooLarge(MAX_PAYLOAD + 1)));
    }

    fn sample() -> Op {
        Op {
            author: [7; 32],
            hlc: Hlc { wall_ms: 1_700_000_000_000, counter: 3 },
            prev: [1; 32],
            causal_deps: vec![[2; 32], [9; 32]],
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn encode_decode_round_trips() {
        let op = sample();
        assert_eq!(Op::decode(&op.encode()).unwrap(), op);
    }

    #[test]
    fn encoding_layout_is_fixed() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), 1 + 32 + 8 + 4 + 32 + 4 + 64 + 4 + 3);
        assert_eq!(bytes[0], OP_ENCODING_VERSION);
        assert_eq!(&bytes[33..41], &1_700_000_000_000u64.to_le_bytes());
        assert_eq!(&bytes[bytes.len() - 7..], &[3, 0, 0, 0, 1, 2, 3]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(matches!(Op::decode(&bytes[..cut]), Err(DecodeError::Truncated { .. })), "cut at {cut}");
        }
    }

    #[test]
    fn non_canonical_inputs_are_refused() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert!(matches!(Op::decode(&bytes), Err(DecodeError::TrailingBytes { .. })));
        let mut unsorted = sample();
        unsorted.causal_deps.reverse();
        assert_eq!(Op::decode(&unsorted.encode()), Err(DecodeError::DepsNotAscending { index: 1 }));
        let mut v2 = sample().encode();
        v2[0] = 2;
        assert_eq!(Op::decode(&v2), Err(DecodeError::UnknownVersion(2)));
    }
}
