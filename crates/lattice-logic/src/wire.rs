//! Little-endian cursor used by every decoder in this crate: reading past the end is an error
//! that names what was being read, never a panic.

use alloc::vec::Vec;

/// A read position over a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Takes `n` bytes or reports `what` as truncated.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(Truncated { what, at: self.pos })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn hash(&mut self, what: &'static str) -> Result<[u8; 32], Truncated> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, what)?);
        Ok(a)
    }

    /// A `u32` length prefix followed by that many bytes.
    pub(crate) fn bytes32(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
}

/// Input ended while reading `what` at byte offset `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncated {
    pub(crate) what: &'static str,
    pub(crate) at: usize,
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a `u32` length prefix and the bytes. Lengths above `u32::MAX` cannot be encoded; the
/// callers' inputs are bounded well below that (ops are read from files and Wasm memory).
pub(crate) fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(b);
}
