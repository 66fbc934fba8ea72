//! The registry: store_type → opener, and the generic open flow (peek → resolve → open).
//!
//! A node opens any store without prior configuration: it peeks the identity, resolves the type
//! here, and opens the store with the resolved logic. Resolve order: a registered opener (native,
//! or a [`WasmOpener`](crate::wasm::WasmOpener) registered explicitly), else the Wasm cache's
//! registry file if one is attached ([`Registry::with_wasm_cache`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lattice_logic::kvstore::KvStore;
use lattice_logic::kvstore_v2::KvStoreV2;
use lattice_logic::logstore::LogStore;
use lattice_logic::StoreLogic;

use crate::store::{self, Logic, Store, StoreError, StoreIdentity, StoreReader};
use crate::wasm::{Limits, WasmCache, WasmError, WasmOpener};

/// Builds the logic for one store type and schema version.
pub trait StoreOpener: Send + Sync {
    fn store_type(&self) -> &str;
    fn schema_version(&self) -> u64;
    /// A short description of where the logic comes from, e.g. `native`.
    fn describe(&self) -> String;
    fn logic(&self) -> Logic;
}

/// A Wasm module's opener: each [`StoreOpener::logic`] call gets its own instance.
impl StoreOpener for WasmOpener {
    fn store_type(&self) -> &str {
        self.module().store_type()
    }

    fn schema_version(&self) -> u64 {
        self.module().schema_version()
    }

    fn describe(&self) -> String {
        format!("wasm {}", self.module().digest())
    }

    fn logic(&self) -> Logic {
        self.wasm_logic()
    }
}

/// An opener backed by a native constructor.
pub struct NativeOpener {
    store_type: String,
    schema_version: u64,
    make: Box<dyn Fn() -> Logic + Send + Sync>,
}

impl NativeOpener {
    /// An opener for a logic type that implements `Default`.
    pub fn of<L: StoreLogic + Default + Send + Sync + 'static>() -> NativeOpener {
        let probe = L::default();
        NativeOpener::new(probe.store_type(), probe.schema_version(), || Arc::new(L::default()))
    }

    pub fn new(store_type: &str, schema_version: u64, make: impl Fn() -> Logic + Send + Sync + 'static) -> NativeOpener {
        NativeOpener { store_type: store_type.to_string(), schema_version, make: Box::new(make) }
    }
}

impl StoreOpener for NativeOpener {
    fn store_type(&self) -> &str {
        &self.store_type
    }

    fn schema_version(&self) -> u64 {
        self.schema_version
    }

    fn describe(&self) -> String {
        "native".to_string()
    }

    fn logic(&self) -> Logic {
        (self.make)()
    }
}

/// Failures to find an opener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("no opener for store type `{store_type}`; registered types: {}", list(.registered))]
    NoOpener { store_type: String, registered: Vec<String> },
    #[error("the opener for `{store_type}` supports schema {supported}, but the store has schema {found}")]
    UnsupportedSchema { store_type: String, found: u64, supported: u64 },
    #[error("the Wasm module registered for `{store_type}` cannot be used")]
    Wasm {
        store_type: String,
        #[source]
        source: Box<WasmError>,
    },
}

fn list(types: &[String]) -> String {
    if types.is_empty() {
        "(none)".to_string()
    } else {
        types.join(", ")
    }
}

/// Any failure of the generic open flow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{dir}")]
    Resolve {
        dir: std::path::PathBuf,
        #[source]
        source: RegistryError,
    },
}

/// store_type → opener. Iteration is in type-name order.
#[derive(Clone, Default)]
pub struct Registry {
    openers: BTreeMap<String, Arc<dyn StoreOpener>>,
    wasm: Option<WasmCache>,
    /// The limits every Wasm guest this registry hands out runs under (the cache's and `--build`'s).
    wasm_limits: Limits,
}

impl Registry {
    /// A registry with the native reference types `core:kvstore` and `core:logstore`.
    pub fn with_reference_types() -> Registry {
        let mut r = Registry::default();
        r.register(Arc::new(NativeOpener::of::<KvStore>()));
        r.register(Arc::new(NativeOpener::of::<LogStore>()));
        r.register(Arc::new(NativeOpener::of::<KvStoreV2>()));
        r
    }

    /// Registers `opener` for its store type, replacing any earlier one.
    pub fn register(&mut self, opener: Arc<dyn StoreOpener>) {
        self.openers.insert(opener.store_type().to_string(), opener);
    }

    /// Falls back to the modules registered in `cache` for store types without a registered opener
    /// (run under this registry's [`Registry::wasm_limits`]).
    pub fn with_wasm_cache(self, cache: WasmCache) -> Registry {
        let limits = self.wasm_limits;
        Registry { wasm: Some(cache.with_limits(limits)), ..self }
    }

    /// Runs every Wasm guest this registry hands out — from the cache or a `--build` — under
    /// `limits`.
    pub fn with_wasm_limits(self, limits: Limits) -> Registry {
        let wasm = self.wasm.map(|c| c.with_limits(limits));
        Registry { wasm, wasm_limits: limits, ..self }
    }

    /// The limits of the Wasm guests this registry hands out.
    pub fn wasm_limits(&self) -> Limits {
        self.wasm_limits
    }

    /// The attached Wasm cache, if any.
    pub fn wasm_cache(&self) -> Option<&WasmCache> {
        self.wasm.as_ref()
    }

    pub fn registered_types(&self) -> Vec<String> {
        self.openers.keys().cloned().collect()
    }

    /// The opener for `store_type`.
    pub fn opener(&self, store_type: &str) -> Result<&Arc<dyn StoreOpener>, RegistryError> {
        self.openers
            .get(store_type)
            .ok_or_else(|| RegistryError::NoOpener { store_type: store_type.to_string(), registered: self.registered_types() })
    }

    /// The logic for a peeked identity: the type must be registered and the schema supported.
    pub fn resolve(&self, id: &StoreIdentity) -> Result<Logic, RegistryError> {
        let opener = self.resolve_opener(&id.store_type, id.schema_version)?;
        if opener.schema_version() != id.schema_version {
            return Err(RegistryError::UnsupportedSchema {
                store_type: id.store_type.clone(),
                found: id.schema_version,
                supported: opener.schema_version(),
            });
        }
        Ok(opener.logic())
    }

    /// The opener the open flow uses for `store_type`: the registered one, else one built from the
    /// Wasm cache (preferring the entry for `schema_version`). Loading a cached module re-checks
    /// its digest; a bad blob is an error, not a fallthrough.
    pub fn resolve_opener(&self, store_type: &str, schema_version: u64) -> Result<Arc<dyn StoreOpener>, RegistryError> {
        if let Some(opener) = self.openers.get(store_type) {
            return Ok(opener.clone());
        }
        let Some(cache) = &self.wasm else { return self.opener(store_type).cloned() };
        match cache.opener_for(store_type, schema_version) {
            Ok(Some(opener)) => Ok(Arc::new(opener)),
            Ok(None) => self.opener(store_type).cloned(),
            Err(source) => Err(RegistryError::Wasm { store_type: store_type.to_string(), source: Box::new(source) }),
        }
    }

    /// The generic open flow for reading: open both files read-only (the identity is read in the
    /// same transaction as the bookkeeping, so the peek costs nothing extra), resolve the type,
    /// and trust the stored hash (which was checked against the stored accumulator). Writes
    /// nothing, and works while another process holds the store for writing. A store a crash left
    /// behind (a file not closed cleanly, or `state.db` lagging `log.db`) is refused with
    /// [`StoreError::NotClosedCleanly`] or [`StoreError::StateLagsLog`]; [`Registry::open`] repairs it.
    pub fn open_read_only(&self, dir: &Path) -> Result<ReadOnlyStore, OpenError> {
        let reader = StoreReader::open(dir)?;
        let logic = self.resolve(reader.identity()).map_err(|source| OpenError::Resolve { dir: dir.to_path_buf(), source })?;
        Ok(ReadOnlyStore { reader, logic })
    }

    /// [`Registry::open_read_only`], falling back to the read-write [`Registry::open`] (which
    /// repairs and catches up) only when the store needs that after a crash.
    pub fn open_for_reading(&self, dir: &Path) -> Result<Opened, OpenError> {
        match self.open_read_only(dir) {
            Ok(ro) => Ok(Opened::ReadOnly(Box::new(ro))),
            Err(OpenError::Store(e)) if e.needs_repair() => Ok(Opened::Repaired(Box::new(self.open(dir)?))),
            Err(e) => Err(e),
        }
    }

    /// The generic open flow: peek the identity, resolve the type, open the store. A file left
    /// unclean by a crash is repaired by the read-write open (see [`store::peek_for_open`]).
    pub fn open(&self, dir: &Path) -> Result<Store, OpenError> {
        let identity = store::peek_for_open(dir)?;
        let logic = self.resolve(&identity).map_err(|source| OpenError::Resolve { dir: dir.to_path_buf(), source })?;
        Ok(Store::open(dir, logic)?)
    }
}

/// A store opened read-only through the registry: its reader and the logic its type resolved to.
pub struct ReadOnlyStore {
    pub reader: StoreReader,
    pub logic: Logic,
}

/// What [`Registry::open_for_reading`] opened.
pub enum Opened {
    /// Opened read-only; nothing was written.
    ReadOnly(Box<ReadOnlyStore>),
    /// The store needed repair after a crash and was opened read-write.
    Repaired(Box<Store>),
}

impl Opened {
    pub fn identity(&self) -> &StoreIdentity {
        match self {
            Opened::ReadOnly(s) => s.reader.identity(),
            Opened::Repaired(s) => s.identity(),
        }
    }

    pub fn state_hash(&self) -> crate::hash::StateHash {
        match self {
            Opened::ReadOnly(s) => s.reader.state_hash(),
            Opened::Repaired(s) => s.state_hash(),
        }
    }

    pub fn log_len(&self) -> u64 {
        match self {
            Opened::ReadOnly(s) => s.reader.log_len(),
            Opened::Repaired(s) => s.log_len(),
        }
    }

    /// Entries a concurrent writer had logged past the snapshot read (0 for a repaired store).
    pub fn logged_ahead(&self) -> u64 {
        match self {
            Opened::ReadOnly(s) => s.reader.logged_ahead(),
            Opened::Repaired(_) => 0,
        }
    }

    pub fn paused(&self) -> Option<&store::PauseRecord> {
        match self {
            Opened::ReadOnly(s) => s.reader.paused(),
            Opened::Repaired(s) => s.paused(),
        }
    }

    /// Recomputes the state hash from the tables; a mismatch is [`StoreError::Corrupt`].
    pub fn verify(&self) -> Result<crate::hash::StateHash, StoreError> {
        match self {
            Opened::ReadOnly(s) => s.reader.verify(),
            Opened::Repaired(s) => s.verify(),
        }
    }

    /// Calls `f` on every `data` row in key order.
    pub fn for_each_row(&self, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        match self {
            Opened::ReadOnly(s) => s.reader.for_each_row(f),
            Opened::Repaired(s) => s.for_each_row(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_lists_the_registered_ones() {
        let r = Registry::with_reference_types();
        let id = StoreIdentity { store_id: uuid::Uuid::nil(), store_type: "my.app.v2".into(), schema_version: 1 };
        let msg = r.resolve(&id).err().unwrap().to_string();
        assert_eq!(msg, "no opener for store type `my.app.v2`; registered types: core:kvstore, core:kvstore-v2, core:logstore");
        let wrong_schema = StoreIdentity { schema_version: 9, store_type: "core:kvstore".into(), ..id };
        assert!(matches!(r.resolve(&wrong_schema), Err(RegistryError::UnsupportedSchema { found: 9, supported: 1, .. })));
    }
}
