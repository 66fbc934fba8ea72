//! The Wasm ABI, version 3, as data (normative: `docs/WASM_ABI.md`): its version number, the
//! names and signatures of the exports and imports, the status codes, the layouts of the buffers
//! the host and the guest exchange, and the limits the host reads a guest under.
//!
//! This module is the one source of these definitions: the guest side of this crate (the imports
//! it declares, [`export_guest!`](crate::export_guest)) and the host (`lattice-conform`'s
//! `wasm` module, which checks modules against [`EXPORTS`] and [`IMPORTS`] and links the imports)
//! both use it. It uses only `core`, declares no import and emits no export, so a host links it
//! without any guest code. Rust requires literal names in `#[link(wasm_import_module = …)]`,
//! `#[link_name = …]` and exported function names, so the guest side spells those literally; the
//! host checks every reference guest, built on this crate, against [`EXPORTS`] and [`IMPORTS`].

/// The ABI version (`lattice_abi_version` returns it; the host runs no other).
pub const ABI_VERSION: u32 = 3;

/// The guest's exported linear memory (32-bit, unshared).
pub const MEMORY: &str = "memory";

/// Export `lattice_abi_version`: `() -> i32`.
pub const ABI_VERSION_FN: &str = "lattice_abi_version";
/// Export `lattice_store_type`: `() -> i64`, a packed range (see [`pack`]).
pub const STORE_TYPE_FN: &str = "lattice_store_type";
/// Export `lattice_schema_version`: `() -> i64`.
pub const SCHEMA_VERSION_FN: &str = "lattice_schema_version";
/// Export `lattice_alloc`: `(len: i32) -> i32`, a buffer of `len` bytes or 0.
pub const ALLOC_FN: &str = "lattice_alloc";
/// Export `lattice_apply`: `(ptr: i32, len: i32) -> i32`, a [`status`].
pub const APPLY_FN: &str = "lattice_apply";
/// Export `lattice_message`: `() -> i64`, a packed range.
pub const MESSAGE_FN: &str = "lattice_message";
/// Export `lattice_observe`: `(ptr: i32, len: i32) -> i32`, an [`observe_status`].
pub const OBSERVE_FN: &str = "lattice_observe";

/// The import module of the store's `data` table.
pub const TABLE_MODULE: &str = "lattice_table";
/// `lattice_table.get(key_ptr, key_len, dst_ptr, dst_cap) -> i64`.
pub const TABLE_GET: &str = "get";
/// `lattice_table.put(key_ptr, key_len, val_ptr, val_len)`.
pub const TABLE_PUT: &str = "put";
/// `lattice_table.delete(key_ptr, key_len)`.
pub const TABLE_DELETE: &str = "delete";
/// The import module of the received ops.
pub const DAG_MODULE: &str = "lattice_dag";
/// `lattice_dag.op_info(id_ptr, dst_ptr) -> i32`: 1 (found, [`OP_INFO_LEN`] bytes written) or 0.
pub const DAG_OP_INFO: &str = "op_info";

/// `lattice_table.get`'s result for an absent key (otherwise the value's length).
pub const GET_ABSENT: i64 = -1;

/// `lattice_apply` status codes (`docs/WASM_ABI.md` §5).
pub mod status {
    pub const OK: u32 = 0;
    pub const MALFORMED_PAYLOAD: u32 = 1;
    pub const CORRUPT_STATE: u32 = 2;
    pub const HOST_ERROR: u32 = 3;
    pub const BAD_INPUT: u32 = 4;
    pub const REFUSED: u32 = 5;
}

/// `lattice_observe` status codes (`docs/WASM_ABI.md` §5.1).
pub mod observe_status {
    /// The view is the range `lattice_message` returns.
    pub const VIEW: u32 = 0;
    /// Readers do not see the row.
    pub const UNSEEN: u32 = 1;
    /// The row does not decode (`lattice_message` says why).
    pub const CORRUPT_STATE: u32 = 2;
}

/// The longest store type name a guest may declare, in bytes.
pub const MAX_STORE_TYPE: usize = 256;
/// The longest failure message the host reads from a guest, in bytes (longer ones are cut).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Bytes of an op id.
pub const OP_ID_LEN: usize = 32;

/// Bytes `lattice_dag.op_info` writes: `wall_ms` (u64 LE) ‖ `counter` (u32 LE) ‖ author (32).
pub const OP_INFO_LEN: usize = 44;

/// What `lattice_dag.op_info` reports of a received op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpInfo {
    pub wall_ms: u64,
    pub counter: u32,
    pub author: [u8; 32],
}

impl OpInfo {
    /// The [`OP_INFO_LEN`] bytes the host writes.
    pub fn encode(&self) -> [u8; OP_INFO_LEN] {
        let mut out = [0u8; OP_INFO_LEN];
        out[..8].copy_from_slice(&self.wall_ms.to_le_bytes());
        out[8..12].copy_from_slice(&self.counter.to_le_bytes());
        out[12..].copy_from_slice(&self.author);
        out
    }

    /// Reads the bytes the host wrote.
    pub fn decode(bytes: &[u8; OP_INFO_LEN]) -> OpInfo {
        let (wall_ms, rest) = bytes.split_at(8);
        let (counter, author) = rest.split_at(4);
        OpInfo {
            wall_ms: u64::from_le_bytes(wall_ms.try_into().expect("8 bytes")),
            counter: u32::from_le_bytes(counter.try_into().expect("4 bytes")),
            author: author.try_into().expect("32 bytes"),
        }
    }
}

/// A packed range: `len << 32 | ptr` (bits 0–31 the pointer, 32–63 the length).
pub fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(len) << 32) | u64::from(ptr)
}

/// Splits a packed range into `(ptr, len)`.
pub fn unpack(packed: u64) -> (u32, u32) {
    (packed as u32, (packed >> 32) as u32)
}

/// `lattice_apply`'s input, `op id ‖ canonical op`: its length.
pub fn apply_input_len(op_len: usize) -> usize {
    OP_ID_LEN + op_len
}

/// Writes `lattice_apply`'s input into `out` (of [`apply_input_len`] bytes).
pub fn write_apply_input(out: &mut [u8], id: &[u8; 32], op: &[u8]) {
    let (head, tail) = out.split_at_mut(OP_ID_LEN);
    head.copy_from_slice(id);
    tail.copy_from_slice(op);
}

/// Splits `lattice_apply`'s input into the op id and the op's canonical encoding; `None` if it is
/// shorter than an op id.
pub fn split_apply_input(input: &[u8]) -> Option<(&[u8; 32], &[u8])> {
    let (id, op) = input.split_at_checked(OP_ID_LEN)?;
    Some((id.try_into().ok()?, op))
}

/// `lattice_observe`'s input, `key length (u32 LE) ‖ key ‖ row`: its length.
pub fn observe_input_len(key_len: usize, row_len: usize) -> usize {
    4 + key_len + row_len
}

/// Writes `lattice_observe`'s input into `out` (of [`observe_input_len`] bytes).
pub fn write_observe_input(out: &mut [u8], key: &[u8], row: &[u8]) {
    let (len, rest) = out.split_at_mut(4);
    len.copy_from_slice(&(key.len() as u32).to_le_bytes());
    let (k, r) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    r.copy_from_slice(row);
}

/// Splits `lattice_observe`'s input into the key and the row; `None` if the key length runs past
/// the input.
pub fn split_observe_input(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_at_checked(4)?;
    let key_len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    rest.split_at_checked(key_len)
}

/// A Wasm value type of the ABI's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    I32,
    I64,
}

/// A function signature: parameter and result types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sig {
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

use ValType::{I32, I64};

/// The function exports every guest has, in the order `docs/WASM_ABI.md` §3 lists them (the
/// memory [`MEMORY`] too).
pub const EXPORTS: [(&str, Sig); 7] = [
    (ABI_VERSION_FN, Sig { params: &[], results: &[I32] }),
    (STORE_TYPE_FN, Sig { params: &[], results: &[I64] }),
    (SCHEMA_VERSION_FN, Sig { params: &[], results: &[I64] }),
    (ALLOC_FN, Sig { params: &[I32], results: &[I32] }),
    (APPLY_FN, Sig { params: &[I32, I32], results: &[I32] }),
    (MESSAGE_FN, Sig { params: &[], results: &[I64] }),
    (OBSERVE_FN, Sig { params: &[I32, I32], results: &[I32] }),
];

/// The functions a guest may import (each optional): module, name, signature.
pub const IMPORTS: [(&str, &str, Sig); 4] = [
    (TABLE_MODULE, TABLE_GET, Sig { params: &[I32, I32, I32, I32], results: &[I64] }),
    (TABLE_MODULE, TABLE_PUT, Sig { params: &[I32, I32, I32, I32], results: &[] }),
    (TABLE_MODULE, TABLE_DELETE, Sig { params: &[I32, I32], results: &[] }),
    (DAG_MODULE, DAG_OP_INFO, Sig { params: &[I32, I32], results: &[I32] }),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        assert_eq!(unpack(pack(16, 12)), (16, 12));
        assert_eq!(pack(16, 12), 0x0000_000c_0000_0010);
        let info = OpInfo { wall_ms: 0x0102_0304_0506_0708, counter: 9, author: [7; 32] };
        let bytes = info.encode();
        assert_eq!(&bytes[..12], &[8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0]);
        assert_eq!(OpInfo::decode(&bytes), info);

        let mut input = [0u8; 4 + 2 + 3];
        assert_eq!(observe_input_len(2, 3), input.len());
        write_observe_input(&mut input, b"ke", b"row");
        assert_eq!(&input, b"\x02\0\0\0kerow");
        assert_eq!(split_observe_input(&input), Some((&b"ke"[..], &b"row"[..])));
        assert_eq!(split_observe_input(b"\x09\0\0\0ke"), None);
        assert_eq!(split_observe_input(b"\x00\0\0"), None);

        let mut input = [0u8; 32 + 2];
        assert_eq!(apply_input_len(2), input.len());
        write_apply_input(&mut input, &[5; 32], b"op");
        assert_eq!(split_apply_input(&input), Some((&[5; 32], &b"op"[..])));
        assert_eq!(split_apply_input(&[0; 31]), None);
    }
}
