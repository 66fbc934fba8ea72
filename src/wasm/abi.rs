//! Guest ABI version 3 (normative: docs/WASM_ABI.md), host side.
//!
//! The ABI's constants and layouts — version, export and import names and signatures, status
//! codes, the `op_info` record, the input buffers, packed ranges, the limits on what the host reads
//! — are defined once, in `lattice_guest::abi` (the guest SDK's core-only module, which the
//! reference guests are built on), and re-exported here. This module adds what only the host
//! has: the fuel each host call costs ([`cost`]) and [`check_interface`], which runs on a compiled
//! module before it is ever instantiated: an import outside `lattice_table`/`lattice_dag` (a WASI
//! function, a memory, a global…), a missing export or a wrong signature is refused with a
//! message naming the item.

use wasmtime::{ExternType, FuncType, Module, ValType};

pub use lattice_guest::abi::{
    apply_input_len, observe_input_len, observe_status, pack, split_apply_input, split_observe_input, status, unpack, write_apply_input,
    write_observe_input, OpInfo, Sig, ABI_VERSION, ABI_VERSION_FN, ALLOC_FN, APPLY_FN, DAG_MODULE, DAG_OP_INFO, EXPORTS, GET_ABSENT,
    IMPORTS, MAX_MESSAGE, MAX_STORE_TYPE, MEMORY, MESSAGE_FN, OBSERVE_FN, OP_ID_LEN, OP_INFO_LEN, SCHEMA_VERSION_FN, STORE_TYPE_FN,
    TABLE_DELETE, TABLE_GET, TABLE_MODULE, TABLE_PUT,
};

use super::WasmError;

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

/// The wasmtime type of an ABI value type.
fn val_type(t: lattice_guest::abi::ValType) -> ValType {
    match t {
        lattice_guest::abi::ValType::I32 => ValType::I32,
        lattice_guest::abi::ValType::I64 => ValType::I64,
    }
}

/// Whether a function type is the signature `sig`.
fn matches(sig: &Sig, ft: &FuncType) -> bool {
    same(sig.params, ft.params()) && same(sig.results, ft.results())
}

/// `sig` as the ABI document writes it: `func (i32, i32) -> (i32)`.
fn describe_sig(sig: &Sig) -> String {
    describe(sig.params.iter().map(|&t| val_type(t)), sig.results.iter().map(|&t| val_type(t)))
}

fn same(want: &[lattice_guest::abi::ValType], got: impl ExactSizeIterator<Item = ValType>) -> bool {
    want.len() == got.len() && want.iter().zip(got).all(|(&w, g)| ValType::eq(&val_type(w), &g))
}

fn describe(params: impl Iterator<Item = ValType>, results: impl Iterator<Item = ValType>) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| it.map(|t| val_name(&t)).collect::<Vec<_>>().join(", ");
    format!("func ({}) -> ({})", list(&mut { params }), list(&mut { results }))
}

fn val_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
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
            ExternType::Func(ft) if matches(sig, &ft) => {}
            other => {
                return Err(WasmError::ImportSignature {
                    origin: origin.to_string(),
                    module: module.to_string(),
                    name: name.to_string(),
                    found: extern_name(&other),
                    expected: describe_sig(sig),
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
        check_export(module, origin, name, &describe_sig(sig), |ty| matches!(ty, ExternType::Func(ft) if matches(sig, ft)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_the_abi_document() {
        let apply = &EXPORTS.iter().find(|(n, _)| *n == APPLY_FN).unwrap().1;
        assert_eq!(describe_sig(apply), "func (i32, i32) -> (i32)");
        assert_eq!(describe_sig(&IMPORTS[1].2), "func (i32, i32, i32, i32) -> ()");
        assert_eq!(describe_sig(&IMPORTS[3].2), "func (i32, i32) -> (i32)");
        assert_eq!(unpack(0x0000_000c_0000_0010), (16, 12));
    }
}
