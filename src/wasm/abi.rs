//! Guest ABI version 3 (normative: docs/WASM_ABI.md): the exports a guest must have, the imports
//! it may have, their exact signatures, and the `lattice_apply` status codes.
//!
//! [`check_interface`] runs on a compiled module before it is ever instantiated: an import outside
//! `lattice_table` (a WASI function, a memory, a global…), a missing export or a wrong signature is
//! refused with a message naming the item.

use wasmtime::{ExternType, FuncType, Module, ValType};

use super::WasmError;

/// The ABI version this host implements (`lattice_abi_version` must return it).
pub const ABI_VERSION: u32 = 3;
/// The import module of the `data` table functions.
pub const IMPORT_MODULE: &str = "lattice_table";
/// The import module of the op lookup.
pub const DAG_MODULE: &str = "lattice_dag";
/// Bytes `lattice_dag.op_info` writes: wall_ms u64 LE ‖ counter u32 LE ‖ author (32).
pub const OP_INFO_LEN: usize = 44;
/// The guest's exported linear memory.
pub const MEMORY: &str = "memory";

pub const ABI_VERSION_FN: &str = "lattice_abi_version";
pub const STORE_TYPE_FN: &str = "lattice_store_type";
pub const SCHEMA_VERSION_FN: &str = "lattice_schema_version";
pub const ALLOC_FN: &str = "lattice_alloc";
pub const APPLY_FN: &str = "lattice_apply";
pub const MESSAGE_FN: &str = "lattice_message";
pub const OBSERVE_FN: &str = "lattice_observe";

/// `lattice_apply` status codes.
pub mod status {
    pub const OK: u32 = 0;
    pub const MALFORMED_PAYLOAD: u32 = 1;
    pub const CORRUPT_STATE: u32 = 2;
    pub const HOST_ERROR: u32 = 3;
    pub const BAD_INPUT: u32 = 4;
    pub const REFUSED: u32 = 5;
}

/// `lattice_observe` status codes.
pub mod observe_status {
    /// The view is the range `lattice_message` returns.
    pub const VIEW: u32 = 0;
    /// Readers do not see the row.
    pub const UNSEEN: u32 = 1;
    /// The row does not decode (`lattice_message` says why).
    pub const CORRUPT_STATE: u32 = 2;
}

/// Fuel charged for the host's work on a guest's behalf (docs/WASM_ABI.md §6.1), taken from the
/// op's allowance before the work is done: a base per call plus a cost per byte the host copies,
/// hashes and stores. Calibrated so that one unit of host work takes no longer than one unit of
/// guest work (about 0.6 ns here; BENCHMARKS.md).
pub mod cost {
    /// `get`, `op_info`: a lookup.
    pub const READ_CALL: u64 = 2_000;
    /// `get`: per byte of the key, and per byte of the value found (copied out of the table and
    /// into guest memory, whether or not it fits the buffer).
    pub const READ_BYTE: u64 = 2;
    /// `put`, `delete`: a lookup of the old row, two state-hash updates and a staged row.
    pub const WRITE_CALL: u64 = 10_000;
    /// `put`, `delete`: per byte of the key and of the value (copied, hashed and stored).
    pub const WRITE_BYTE: u64 = 8;
}

/// `get`'s return value for an absent key.
pub const GET_ABSENT: i64 = -1;
/// The longest store type name a guest may declare, in bytes.
pub const MAX_STORE_TYPE: usize = 256;
/// The longest failure message the host reads from a guest, in bytes (longer ones are cut).
pub const MAX_MESSAGE: usize = 64 * 1024;

use ValType::{I32, I64};

/// A function signature: parameter and result types.
pub struct Sig {
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

/// The function exports, in the order docs/WASM_ABI.md lists them.
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
    (IMPORT_MODULE, "get", Sig { params: &[I32, I32, I32, I32], results: &[I64] }),
    (IMPORT_MODULE, "put", Sig { params: &[I32, I32, I32, I32], results: &[] }),
    (IMPORT_MODULE, "delete", Sig { params: &[I32, I32], results: &[] }),
    (DAG_MODULE, "op_info", Sig { params: &[I32, I32], results: &[I32] }),
];

impl Sig {
    fn matches(&self, ft: &FuncType) -> bool {
        same(self.params, ft.params()) && same(self.results, ft.results())
    }

    fn describe(&self) -> String {
        describe(self.params.iter().cloned(), self.results.iter().cloned())
    }
}

fn same(want: &[ValType], got: impl ExactSizeIterator<Item = ValType>) -> bool {
    want.len() == got.len() && want.iter().zip(got).all(|(w, g)| ValType::eq(w, &g))
}

fn describe(params: impl Iterator<Item = ValType>, results: impl Iterator<Item = ValType>) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| it.map(|t| val_name(&t)).collect::<Vec<_>>().join(", ");
    format!("func ({}) -> ({})", list(&mut { params }), list(&mut { results }))
}

fn val_name(t: &ValType) -> &'static str {
    match t {
        I32 => "i32",
        I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(_) => "ref",
    }
}

/// What an extern is, for messages: a function's signature, or its kind.
fn extern_name(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(ft) => describe(ft.params(), ft.results()),
        ExternType::Memory(_) => "a memory".to_string(),
        ExternType::Table(_) => "a table".to_string(),
        ExternType::Global(_) => "a global".to_string(),
        ExternType::Tag(_) => "a tag".to_string(),
    }
}

/// Checks a compiled module's imports and exports against ABI v3.
pub fn check_interface(module: &Module, origin: &str) -> Result<(), WasmError> {
    check_imports(module, origin)?;
    check_exports(module, origin)
}

fn check_imports(module: &Module, origin: &str) -> Result<(), WasmError> {
    for import in module.imports() {
        let forbidden = || WasmError::ForbiddenImport {
            origin: origin.to_string(),
            module: import.module().to_string(),
            name: import.name().to_string(),
        };
        let allowed = IMPORTS.iter().find(|(module, name, _)| import.module() == *module && *name == import.name());
        let Some((module, name, sig)) = allowed else { return Err(forbidden()) };
        match import.ty() {
            ExternType::Func(ft) if sig.matches(&ft) => {}
            other => {
                return Err(WasmError::ImportSignature {
                    origin: origin.to_string(),
                    module: module.to_string(),
                    name: name.to_string(),
                    found: extern_name(&other),
                    expected: sig.describe(),
                })
            }
        }
    }
    Ok(())
}

fn check_exports(module: &Module, origin: &str) -> Result<(), WasmError> {
    let memory_ok = |ty: &ExternType| matches!(ty, ExternType::Memory(m) if !m.is_64() && !m.is_shared());
    check_export(module, origin, MEMORY, "a 32-bit unshared memory", memory_ok)?;
    for (name, sig) in &EXPORTS {
        check_export(module, origin, name, &sig.describe(), |ty| matches!(ty, ExternType::Func(ft) if sig.matches(ft)))?;
    }
    Ok(())
}

fn check_export(module: &Module, origin: &str, name: &str, expected: &str, ok: impl Fn(&ExternType) -> bool) -> Result<(), WasmError> {
    let err = |found: Option<String>| match found {
        None => WasmError::MissingExport { origin: origin.to_string(), name: name.to_string(), expected: expected.to_string() },
        Some(found) => {
            WasmError::ExportSignature { origin: origin.to_string(), name: name.to_string(), found, expected: expected.to_string() }
        }
    };
    match module.get_export(name) {
        None => Err(err(None)),
        Some(ty) if ok(&ty) => Ok(()),
        Some(ty) => Err(err(Some(extern_name(&ty)))),
    }
}

/// Splits a packed `len << 32 | ptr` range.
pub fn unpack(packed: u64) -> (u32, u32) {
    (packed as u32, (packed >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_the_abi_document() {
        let apply = &EXPORTS.iter().find(|(n, _)| *n == APPLY_FN).unwrap().1;
        assert_eq!(apply.describe(), "func (i32, i32) -> (i32)");
        assert_eq!(IMPORTS[1].2.describe(), "func (i32, i32, i32, i32) -> ()");
        assert_eq!(IMPORTS[3].2.describe(), "func (i32, i32) -> (i32)");
        assert_eq!(unpack(0x0000_000c_0000_0010), (16, 12));
    }
}
