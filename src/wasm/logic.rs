//! [`WasmLogic`]: a [`StoreLogic`] whose `apply` runs in a Wasm guest; [`WasmOpener`]: one module
//! under its limits, which hands out a `WasmLogic` per store (the registry makes it a
//! `StoreOpener`: this module knows nothing of stores, the kernel or the registry).
//!
//! The guest instance sits behind a mutex (the kernel calls `apply(&self, …)` and a logic is shared
//! between threads) and is created on first use. One `WasmLogic` is one instance: every store —
//! on disk, or in memory for a replay ([`fresh_instance_of`], called by `MemStore::new`) — gets its
//! own, so a guest that (against the ABI) keeps state between calls cannot carry it from one
//! replay into another. Any failure of a guest call — a trap, running out
//! of fuel, the memory cap, a bad pointer — rejects the op as `host_failure` (the kernel rolls it
//! back), drops the instance (its memory may be half-written) so the next op starts from a fresh
//! one, and leaves the reason in [`WasmLogic::last_failure`]. A guest's status codes for a
//! malformed payload, corrupt state and a refused op map to the same [`ApplyError`]s the native logic returns.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use lattice_logic::{ApplyError, Dag, HostError, Op, OpId, StoreLogic, Table};

use super::abi;
use super::engine::{Limits, WasmModule};
use super::guest::{Failure, Guest, Status};

/// A store logic implemented by a Wasm module.
pub struct WasmLogic {
    module: Arc<WasmModule>,
    limits: Limits,
    guest: Mutex<Option<Guest>>,
    last_failure: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl WasmLogic {
    pub fn new(module: Arc<WasmModule>, limits: Limits) -> WasmLogic {
        WasmLogic { module, limits, guest: Mutex::new(None), last_failure: Mutex::new(None) }
    }

    pub fn module(&self) -> &Arc<WasmModule> {
        &self.module
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Why the last rejected op failed inside or around the guest (a trap, fuel, a limit, a bad
    /// pointer, an unexpected status), if an op has failed that way.
    pub fn last_failure(&self) -> Option<String> {
        lock(&self.last_failure).clone()
    }

    fn record(&self, failure: String) -> ApplyError {
        let module = &self.module;
        let text = format!("Wasm module {} (`{}`): {failure}", module.digest().short(), module.store_type());
        *lock(&self.last_failure) = Some(text);
        ApplyError::Host(HostError)
    }

    fn run(&self, slot: &mut Option<Guest>, input: &[u8], table: &mut dyn Table, dag: &mut dyn Dag) -> Result<Status, Failure> {
        let guest = match slot {
            Some(g) => g,
            None => slot.insert(Guest::instantiate(&self.module, &self.limits)?),
        };
        guest.apply(input, table, dag)
    }
}

impl StoreLogic for WasmLogic {
    fn store_type(&self) -> &str {
        self.module.store_type()
    }

    fn schema_version(&self) -> u64 {
        self.module.schema_version()
    }

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
        let encoded = op.encode();
        let mut input = vec![0; abi::apply_input_len(encoded.len())];
        abi::write_apply_input(&mut input, id, &encoded);
        let mut slot = lock(&self.guest);
        match self.run(&mut slot, &input, table, dag) {
            Ok(Status::Ok) => Ok(()),
            Ok(Status::Refused(m)) => Err(ApplyError::Refused(m)),
            Ok(Status::MalformedPayload(m)) => Err(ApplyError::MalformedPayload(m)),
            Ok(Status::CorruptState(m)) => Err(ApplyError::CorruptState(m)),
            Ok(Status::GuestError(code, m)) => Err(self.record(format!("lattice_apply returned status {code}: {m}"))),
            Err(failure) => {
                *slot = None;
                Err(self.record(failure.to_string()))
            }
        }
    }

    fn observe(&self, key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        let mut input = vec![0; abi::observe_input_len(key.len(), row.len())];
        abi::write_observe_input(&mut input, key, row);
        let mut slot = lock(&self.guest);
        let result = match slot.as_mut() {
            Some(g) => g.observe(&input),
            None => Guest::instantiate(&self.module, &self.limits).and_then(|g| slot.insert(g).observe(&input)),
        };
        match result {
            Ok(Ok(view)) => Ok(view),
            Ok(Err(m)) => Err(ApplyError::CorruptState(m)),
            Err(failure) => {
                *slot = None;
                Err(self.record(failure.to_string()))
            }
        }
    }
}

/// Why the Wasm guest behind `logic` failed its last call, if `logic` is a Wasm build that failed
/// (the kernel puts it in the rejection's reason, in place of a bare "host failure").
/// `logic` is a store's logic seen as [`Any`], so that this module needs nothing of the kernel.
pub fn failure_of(logic: &dyn Any) -> Option<String> {
    logic.downcast_ref::<WasmLogic>().and_then(WasmLogic::last_failure)
}

/// The limits of `logic` (a store's logic seen as [`Any`]) if it is a Wasm build.
pub fn limits_of(logic: &dyn Any) -> Option<Limits> {
    logic.downcast_ref::<WasmLogic>().map(WasmLogic::limits)
}

/// A new instance of the same module under the same limits, if `logic` (a store's logic seen as
/// [`Any`]) is a Wasm build (the replay gives every new store its own instance).
pub fn fresh_instance_of(logic: &dyn Any) -> Option<Arc<WasmLogic>> {
    logic.downcast_ref::<WasmLogic>().map(|w| Arc::new(WasmLogic::new(w.module.clone(), w.limits)))
}

/// Opens stores of one type with one Wasm module; each logic it hands out ([`WasmOpener::wasm_logic`],
/// the registry's `StoreOpener::logic`) is an instance of its own.
#[derive(Clone, Debug)]
pub struct WasmOpener {
    module: Arc<WasmModule>,
    limits: Limits,
}

impl WasmOpener {
    pub fn new(module: Arc<WasmModule>, limits: Limits) -> WasmOpener {
        WasmOpener { module, limits }
    }

    pub fn module(&self) -> &Arc<WasmModule> {
        &self.module
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh logic with its concrete type (for callers that want [`WasmLogic::last_failure`]).
    pub fn wasm_logic(&self) -> Arc<WasmLogic> {
        Arc::new(WasmLogic::new(self.module.clone(), self.limits))
    }
}
