//! [`WasmLogic`]: a [`StoreLogic`] whose `apply` runs in a Wasm guest; [`WasmOpener`]: the
//! [`StoreOpener`] that hands one out per store.
//!
//! The guest instance sits behind a mutex (the kernel calls `apply(&self, …)` and a logic is shared
//! between threads) and is created on first use. One `WasmLogic` is one instance: every store —
//! on disk, or in memory for a replay ([`fresh_instance`], called by `MemStore::new`) — gets its
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
use crate::registry::StoreOpener;
use crate::store::Logic;

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

/// `logic` for a new store: a new instance of the same module under the same limits if `logic` is
/// a Wasm build, else `logic` itself (native logics keep no state).
pub fn fresh_instance(logic: &Logic) -> Logic {
    match (&**logic as &dyn Any).downcast_ref::<WasmLogic>() {
        Some(w) => Arc::new(WasmLogic::new(w.module.clone(), w.limits)),
        None => logic.clone(),
    }
}

/// Why the Wasm guest behind `logic` failed its last call, if `logic` is a Wasm build that failed
/// (the kernel puts it in the rejection's reason, in place of a bare "host failure").
pub fn failure_of(logic: &dyn crate::kernel::HostLogic) -> Option<String> {
    (logic as &dyn Any).downcast_ref::<WasmLogic>().and_then(WasmLogic::last_failure)
}

/// The limits of `logic` if it is a Wasm build.
pub fn limits_of(logic: &Logic) -> Option<Limits> {
    (&**logic as &dyn Any).downcast_ref::<WasmLogic>().map(WasmLogic::limits)
}

/// Opens stores of one type with one Wasm module; each [`StoreOpener::logic`] call gets its own
/// instance.
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

impl StoreOpener for WasmOpener {
    fn store_type(&self) -> &str {
        self.module.store_type()
    }

    fn schema_version(&self) -> u64 {
        self.module.schema_version()
    }

    fn describe(&self) -> String {
        format!("wasm {}", self.module.digest())
    }

    fn logic(&self) -> Logic {
        self.wasm_logic()
    }
}
