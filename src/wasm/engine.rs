//! The wasmtime engine, the per-op limits, and compiled modules cached by digest.
//!
//! One process-wide [`Engine`] with a deterministic configuration: NaN canonicalization on, relaxed
//! SIMD off (and deterministic should it ever be enabled), no threads (the wasmtime `threads`
//! feature is not compiled in, so shared memories are invalid), no 64-bit or multiple memories,
//! and fuel metering on. A [`WasmModule`] is a module compiled once, checked against the ABI,
//! probed for its identity, and kept in an in-process cache keyed by the blake3 digest of its
//! bytes, so loading the same bytes again costs a hash and a map lookup.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::{Config, Engine, InstancePre, Linker, Module};

use super::guest::{self, Guest, HostState};
use super::{abi, Digest, WasmError};

/// Bounds on one guest, per op. Guards only: they never enter a state hash or a golden.
///
/// Each op (and each row observed) gets a fresh allowance of every per-op limit. Fuel bounds the
/// guest's own work *and* the host's work on its behalf: every host call is charged
/// ([`super::abi::cost`]), so a loop of host calls runs out of fuel like a loop of instructions.
/// The write caps bound what one op can make the host hold in memory and put on disk; they are
/// checked before a write reaches the op's staged rows, and a rejected op's writes never reach
/// storage. The watchdog is wall-clock: the last line, for work fuel does not meter (bulk memory
/// instructions), reported distinctly because it is the one limit that is not deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Fuel for one op (`lattice_alloc` + `lattice_apply` + `lattice_message` and the host calls
    /// they make); roughly one unit per Wasm instruction. Running out traps the op.
    pub fuel_per_op: u64,
    /// The most linear memory the guest may have, in bytes; growing past it traps.
    pub memory_bytes: usize,
    /// The most bytes (keys and values of every `put`, keys of every `delete`) one op may write.
    pub write_bytes_per_op: u64,
    /// The most `put` and `delete` calls one op may make.
    pub row_writes_per_op: u64,
    /// Wall-clock milliseconds one guest call sequence (one op, one row observed, instantiation)
    /// may take before the watchdog interrupts it.
    pub watchdog_ms: u64,
}

impl Limits {
    /// Default fuel per op: 10⁹ units, well under a second of guest or host work and several
    /// times what a large valid kvstore op takes.
    pub const DEFAULT_FUEL_PER_OP: u64 = 1_000_000_000;
    /// Default memory cap: 256 MiB, room for a maximal op and its decoded form several times over.
    pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
    /// Default write cap: 64 MiB per op, four times the largest op payload Lattice accepts.
    pub const DEFAULT_WRITE_BYTES_PER_OP: u64 = 64 << 20;
    /// Default row-write cap: 262 144 `put`/`delete` calls per op (a maximal kvstore batch makes
    /// 65 536).
    pub const DEFAULT_ROW_WRITES_PER_OP: u64 = 1 << 18;
    /// Default watchdog: 5 s of wall time per op.
    pub const DEFAULT_WATCHDOG_MS: u64 = 5_000;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel_per_op: Limits::DEFAULT_FUEL_PER_OP,
            memory_bytes: Limits::DEFAULT_MEMORY_BYTES,
            write_bytes_per_op: Limits::DEFAULT_WRITE_BYTES_PER_OP,
            row_writes_per_op: Limits::DEFAULT_ROW_WRITES_PER_OP,
            watchdog_ms: Limits::DEFAULT_WATCHDOG_MS,
        }
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuel {} per op, memory {} MiB, writes {} MiB and {} rows per op, watchdog {} ms",
            self.fuel_per_op,
            self.memory_bytes >> 20,
            self.write_bytes_per_op >> 20,
            self.row_writes_per_op,
            self.watchdog_ms
        )
    }
}

/// The watchdog's clock: the engine's epoch advances once per tick.
pub const EPOCH_TICK_MS: u64 = 10;

impl Limits {
    /// The watchdog as an epoch deadline (ticks from now, at least one).
    pub(crate) fn epoch_ticks(&self) -> u64 {
        self.watchdog_ms.div_ceil(EPOCH_TICK_MS).max(1)
    }
}

/// The process-wide engine (and the thread that advances its epoch for the watchdog).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::new(&config()).expect("the fixed wasmtime configuration is valid");
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("lattice-wasm-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(EPOCH_TICK_MS));
                ticking.increment_epoch();
            })
            .expect("the watchdog thread starts");
        engine
    })
}

fn config() -> Config {
    let mut c = Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false);
    c
}

/// A module compiled, checked against the ABI and probed for the type it implements.
pub struct WasmModule {
    digest: Digest,
    store_type: String,
    schema_version: u64,
    pre: InstancePre<HostState>,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule")
            .field("digest", &self.digest.to_string())
            .field("store_type", &self.store_type)
            .field("schema_version", &self.schema_version)
            .finish()
    }
}

impl WasmModule {
    /// Loads `bytes` (named `origin` in errors): from the in-process cache if these bytes were
    /// loaded before, else compiled, checked and probed.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Arc<WasmModule>, WasmError> {
        let digest = Digest::of(bytes);
        if let Some(module) = WasmModule::compiled(&digest) {
            return Ok(module);
        }
        let module = Arc::new(WasmModule::compile(bytes, digest, origin)?);
        cache().lock().unwrap_or_else(|e| e.into_inner()).insert(digest, module.clone());
        Ok(module)
    }

    /// Compiles, checks and probes `bytes` as [`WasmModule::from_bytes`] does, but neither reads
    /// nor fills the in-process cache (for callers that load many one-off modules).
    pub fn compile_uncached(bytes: &[u8], origin: &str) -> Result<WasmModule, WasmError> {
        WasmModule::compile(bytes, Digest::of(bytes), origin)
    }

    /// The module with `digest` if this process has compiled it already. Content addressing makes
    /// the digest name the module exactly, so a hit needs neither the bytes nor a compile.
    pub fn compiled(digest: &Digest) -> Option<Arc<WasmModule>> {
        cache().lock().unwrap_or_else(|e| e.into_inner()).get(digest).cloned()
    }

    /// Drops every compiled module from the in-process cache (modules still in use stay alive
    /// through their `Arc`s). The next load of each module compiles it again.
    pub fn clear_compiled() {
        cache().lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Loads the module in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Arc<WasmModule>, WasmError> {
        let bytes = std::fs::read(path).map_err(|source| WasmError::Io { path: path.to_path_buf(), source })?;
        WasmModule::from_bytes(&bytes, &path.display().to_string())
    }

    fn compile(bytes: &[u8], digest: Digest, origin: &str) -> Result<WasmModule, WasmError> {
        if !bytes.starts_with(b"\0asm\x01\0\0\0") {
            return Err(WasmError::NotWasm { origin: origin.to_string() });
        }
        let module = Module::from_binary(engine(), bytes)
            .map_err(|e| WasmError::Invalid { origin: origin.to_string(), detail: format!("{e:#}") })?;
        abi::check_interface(&module, origin)?;
        let pre =
            linker().instantiate_pre(&module).map_err(|e| WasmError::Invalid { origin: origin.to_string(), detail: format!("{e:#}") })?;
        let mut probe = WasmModule { digest, store_type: String::new(), schema_version: 0, pre };
        let identity = Guest::instantiate(&probe, &Limits::default()).and_then(|mut g| g.identity()).map_err(|f| WasmError::Guest {
            origin: origin.to_string(),
            during: f.during,
            detail: f.detail_text(),
        })?;
        if identity.abi_version != abi::ABI_VERSION {
            return Err(WasmError::AbiVersion { origin: origin.to_string(), found: identity.abi_version, supported: abi::ABI_VERSION });
        }
        probe.store_type = identity.store_type.map_err(|what| WasmError::BadIdentity { origin: origin.to_string(), what })?;
        probe.schema_version = identity.schema_version;
        Ok(probe)
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn store_type(&self) -> &str {
        &self.store_type
    }

    pub fn schema_version(&self) -> u64 {
        self.schema_version
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// Refuses the module unless it declares `store_type`.
    pub fn expect_type(&self, store_type: &str, origin: &str) -> Result<(), WasmError> {
        if self.store_type == store_type {
            return Ok(());
        }
        Err(WasmError::WrongStoreType { origin: origin.to_string(), declared: self.store_type.clone(), expected: store_type.to_string() })
    }
}

fn cache() -> &'static Mutex<HashMap<Digest, Arc<WasmModule>>> {
    static CACHE: OnceLock<Mutex<HashMap<Digest, Arc<WasmModule>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn linker() -> &'static Linker<HostState> {
    static LINKER: OnceLock<Linker<HostState>> = OnceLock::new();
    LINKER.get_or_init(|| guest::linker(engine()))
}
