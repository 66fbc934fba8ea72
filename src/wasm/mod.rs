//! Wasm builds of store logic: a guest module behind the same [`StoreLogic`] the native build
//! implements, run on wasmtime with a deterministic configuration (normative ABI:
//! docs/WASM_ABI.md).
//!
//! - [`abi`] — ABI v3: the names and signatures a guest must export and may import; checked
//!   before a module is ever instantiated, so a module importing anything else (WASI included) is
//!   refused at load, naming the import.
//! - [`engine`] — the one wasmtime engine (NaN canonicalization, no relaxed SIMD, no threads, fuel
//!   metering), the [`Limits`] that bound a guest per op, and the in-process cache of compiled
//!   modules by digest.
//! - [`guest`] — one instance of a module and the host side of the `lattice_table` imports.
//! - [`logic`] — [`WasmLogic`] (a [`StoreLogic`] over a guest behind a mutex) and [`WasmOpener`].
//! - [`cas`] — content-addressed blobs: a cache directory of modules named by their blake3 digest
//!   plus a registry file (store type, schema version → digest).
//!
//! Fuel and memory limits are guards against runaway guests, never inputs of a state hash: a
//! guest that exceeds them has its op rejected (`host_failure`) and rolled back, and the reason is
//! kept in [`WasmLogic::last_failure`].
//!
//! [`StoreLogic`]: lattice_logic::StoreLogic

pub mod abi;
pub mod cas;
pub mod engine;
pub mod guest;
pub mod logic;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use cas::{RegistryEntry, WasmCache};
pub use engine::{Limits, WasmModule};
pub use guest::{Failure, FailureKind};
pub use logic::{failure_of, fresh_instance_of, limits_of, WasmLogic, WasmOpener};

/// The blake3 digest of a module's bytes: its content address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The first 8 bytes as hex, for messages.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for Digest {
    type Err = String;

    /// 64 hex digits, either case.
    fn from_str(s: &str) -> Result<Digest, String> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(format!("a digest is 64 hex digits, got {} characters", s.len()));
        }
        hex::decode_to_slice(s, &mut out).map_err(|e| format!("a digest is 64 hex digits: {e}"))?;
        Ok(Digest(out))
    }
}

/// Everything that can go wrong loading, checking or running a Wasm module. Each names the module
/// (its file, blob or digest) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WasmError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not a WebAssembly module (it does not start with the `\\0asm` magic and version 1)")]
    NotWasm { origin: String },
    #[error("{origin}: invalid WebAssembly module: {detail}")]
    Invalid { origin: String, detail: String },
    #[error(
        "{origin}: imports `{module}`.`{name}`; a guest may import only `lattice_table`.`get`, `put`, `delete` \
         and `lattice_dag`.`op_info` (no WASI, no other host functions, memories, tables or globals)"
    )]
    ForbiddenImport { origin: String, module: String, name: String },
    #[error("{origin}: import `{module}`.`{name}` has type {found}; ABI v3 requires {expected}")]
    ImportSignature { origin: String, module: String, name: String, found: String, expected: String },
    #[error("{origin}: missing export `{name}` (ABI v3 requires {expected})")]
    MissingExport { origin: String, name: String, expected: String },
    #[error("{origin}: export `{name}` is {found}; ABI v3 requires {expected}")]
    ExportSignature { origin: String, name: String, found: String, expected: String },
    #[error("{origin}: implements guest ABI version {found}; this host supports version {supported}")]
    AbiVersion { origin: String, found: u32, supported: u32 },
    #[error("{origin}: {what}")]
    BadIdentity { origin: String, what: String },
    #[error("{origin}: {during} failed: {detail}")]
    Guest { origin: String, during: &'static str, detail: String },
    #[error("{path}: blob content has digest {actual}, but it is stored as {expected}; refusing it")]
    DigestMismatch { path: PathBuf, expected: Digest, actual: Digest },
    #[error("{path}: no such blob in the Wasm cache (digest {digest})")]
    MissingBlob { path: PathBuf, digest: Digest },
    #[error("{path}: {detail}")]
    RegistryFile { path: PathBuf, detail: String },
    #[error("{origin}: declares store type `{declared}`, but it was asked to run `{expected}`")]
    WrongStoreType { origin: String, declared: String, expected: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_either_case_and_print_lowercase() {
        let d: Digest = "AB".repeat(32).parse().unwrap();
        assert_eq!(d.to_string(), "ab".repeat(32));
        assert_eq!(d.short(), "ab".repeat(8));
        assert_eq!(Digest::of(b"abc").to_string(), blake3::hash(b"abc").to_hex().as_str());
        assert!("ab".parse::<Digest>().unwrap_err().contains("64 hex digits, got 2"));
        assert!("zz".repeat(32).parse::<Digest>().is_err());
    }
}
