//! One instance of a guest module, and the host side of its `lattice_table` and `lattice_dag`
//! imports.
//!
//! A [`Guest`] owns a wasmtime store (fuel, memory cap, watchdog deadline, the table the current op
//! writes to and the op's write budget) and the instance's typed exports. The host functions
//! charge fuel for their own work before doing it, check every guest pointer range against the
//! guest memory before touching it, and check the op's write caps before a write reaches the
//! table; a bad range, a table failure or a limit traps the call, and the reason — with its
//! [`FailureKind`] — is kept in [`HostState`] so the caller reports it instead of a bare trap.

use std::ptr::NonNull;

use lattice_logic::{Dag, Table};
use wasmtime::{
    Caller, Engine, Error as WtError, Instance, Linker, Memory, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc,
};

use super::abi::{self, cost, status};
use super::engine::{self, Limits, WasmModule};

/// Most elements a guest's tables may have.
const TABLE_ELEMENTS: usize = 65_536;

/// The data a wasmtime store holds for a guest.
pub struct HostState {
    limits: StoreLimits,
    caps: Limits,
    memory: Option<Memory>,
    table: TableSlot,
    dag: DagSlot,
    /// What the current op may still write: bytes, and `put`/`delete` calls.
    write_bytes_left: u64,
    row_writes_left: u64,
    /// Why the host trapped the current call, if it did.
    failure: Option<(FailureKind, String)>,
}

/// The table of the op being applied, lent to the host functions for one `lattice_apply` call.
struct TableSlot(Option<NonNull<dyn Table + 'static>>);

/// The op DAG lookup lent the same way, for `lattice_dag.op_info`.
struct DagSlot(Option<NonNull<dyn Dag + 'static>>);

// SAFETY: the pointers are set only by `Guest::apply`, which holds `&mut Guest` (so the store is
// not shared), and cleared before that call returns; they are never dereferenced outside the call.
unsafe impl Send for TableSlot {}
// SAFETY: as for `TableSlot`.
unsafe impl Send for DagSlot {}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let r = self.limits.memory_growing(current, desired, maximum);
        if r.is_err() {
            self.failure = Some((
                FailureKind::MemoryCap,
                format!(
                    "the guest tried to grow its memory from {current} to {desired} bytes; the cap is {} bytes",
                    self.caps.memory_bytes
                ),
            ));
        }
        r
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let r = self.limits.table_growing(current, desired, maximum);
        if r.is_err() {
            self.failure = Some((FailureKind::MemoryCap, format!("the guest tried to grow a table to {desired} elements")));
        }
        r
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// What kind of failure stopped a guest call (docs/WASM_ABI.md §5, "Failures").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// The op's fuel ran out, in the guest or in a host call it made.
    OutOfFuel,
    /// The guest trapped (`unreachable`, an out-of-bounds access of its own memory, a division by
    /// zero, a stack overflow, a guest panic).
    Trap,
    /// The guest passed the host a range outside its memory (or returned one).
    OutOfBounds,
    /// The guest called a host function where it may not (outside `lattice_apply`).
    BadHostCall,
    /// The guest's memory (or table) would have grown past its cap, or an input did not fit it.
    MemoryCap,
    /// The op would have written more bytes or rows than its cap.
    WriteCap,
    /// The wall-clock watchdog interrupted the call.
    Watchdog,
    /// The guest returned something unusable (no buffer, an unknown status).
    BadResult,
    /// The host's table or op store failed underneath.
    Storage,
}

impl FailureKind {
    /// The kind as reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out of fuel",
            FailureKind::Trap => "trap",
            FailureKind::OutOfBounds => "out-of-bounds host call",
            FailureKind::BadHostCall => "forbidden host call",
            FailureKind::MemoryCap => "memory cap",
            FailureKind::WriteCap => "write cap",
            FailureKind::Watchdog => "watchdog",
            FailureKind::BadResult => "bad result",
            FailureKind::Storage => "storage failure",
        }
    }
}

/// Why a guest call failed: a trap, running out of fuel, a limit, or a bad argument to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The call that failed, e.g. `lattice_apply`.
    pub during: &'static str,
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    fn new(during: &'static str, kind: FailureKind, detail: String) -> Failure {
        Failure { during, kind, detail }
    }

    /// `<kind>: <detail>`.
    pub fn detail_text(&self) -> String {
        format!("{}: {}", self.kind.as_str(), self.detail)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.during, self.kind.as_str(), self.detail)
    }
}

/// What a module says it is.
pub struct Identity {
    pub abi_version: u32,
    /// The store type, or why it is not a usable name.
    pub store_type: Result<String, String>,
    pub schema_version: u64,
}

/// The outcome of a `lattice_apply` that returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    MalformedPayload(String),
    CorruptState(String),
    /// The store's rules refuse the op (status 5).
    Refused(String),
    /// Any other status code, with the guest's message.
    GuestError(u32, String),
}

/// A live instance of a guest module.
pub struct Guest {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    apply: TypedFunc<(u32, u32), u32>,
    observe: TypedFunc<(u32, u32), u32>,
    message: TypedFunc<(), u64>,
    instance: Instance,
    caps: Limits,
}

impl Guest {
    /// Instantiates `module` under `limits` (its start function, if any, runs on the op fuel).
    pub fn instantiate(module: &WasmModule, limits: &Limits) -> Result<Guest, Failure> {
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(TABLE_ELEMENTS)
                .instances(1)
                .memories(1)
                .tables(4)
                .trap_on_grow_failure(true)
                .build(),
            caps: *limits,
            memory: None,
            table: TableSlot(None),
            dag: DagSlot(None),
            write_bytes_left: limits.write_bytes_per_op,
            row_writes_left: limits.row_writes_per_op,
            failure: None,
        };
        let mut store = Store::new(engine::engine(), state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        let during = "instantiation";
        store.set_fuel(limits.fuel_per_op).map_err(|e| Failure::new(during, FailureKind::BadResult, format!("{e:#}")))?;
        store.set_epoch_deadline(limits.epoch_ticks());
        let instance = module.instance_pre().instantiate(&mut store).map_err(|e| failure(&mut store, during, e))?;
        let memory = instance
            .get_memory(&mut store, abi::MEMORY)
            .ok_or_else(|| Failure::new(during, FailureKind::BadResult, "the instance has no `memory` export".to_string()))?;
        store.data_mut().memory = Some(memory);
        let alloc = typed(&instance, &mut store, abi::ALLOC_FN)?;
        let apply = typed(&instance, &mut store, abi::APPLY_FN)?;
        let observe = typed(&instance, &mut store, abi::OBSERVE_FN)?;
        let message = typed(&instance, &mut store, abi::MESSAGE_FN)?;
        Ok(Guest { store, memory, alloc, apply, observe, message, instance, caps: *limits })
    }

    /// Calls the identity exports.
    pub fn identity(&mut self) -> Result<Identity, Failure> {
        self.refuel(abi::ABI_VERSION_FN)?;
        let abi_version = self.call0::<u32>(abi::ABI_VERSION_FN)?;
        let packed = self.call0::<u64>(abi::STORE_TYPE_FN)?;
        let schema_version = self.call0::<u64>(abi::SCHEMA_VERSION_FN)?;
        let store_type = self.read_store_type(packed);
        Ok(Identity { abi_version, store_type, schema_version })
    }

    fn call0<R: wasmtime::WasmResults>(&mut self, name: &'static str) -> Result<R, Failure> {
        let f = typed::<(), R>(&self.instance, &mut self.store, name)?;
        f.call(&mut self.store, ()).map_err(|e| failure(&mut self.store, name, e))
    }

    fn read_store_type(&mut self, packed: u64) -> Result<String, String> {
        let (ptr, len) = abi::unpack(packed);
        if len == 0 || len as usize > abi::MAX_STORE_TYPE {
            return Err(format!("{}: store type of {len} bytes (must be 1..={})", abi::STORE_TYPE_FN, abi::MAX_STORE_TYPE));
        }
        let data = self.memory.data(&self.store);
        let bytes = range(data.len(), ptr, len).map(|r| &data[r]).map_err(|e| format!("{}: {e}", abi::STORE_TYPE_FN))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{}: the store type is not UTF-8", abi::STORE_TYPE_FN))
    }

    /// A fresh per-op allowance: fuel, write budget, watchdog deadline.
    fn refuel(&mut self, during: &'static str) -> Result<(), Failure> {
        let caps = self.caps;
        let state = self.store.data_mut();
        state.failure = None;
        state.write_bytes_left = caps.write_bytes_per_op;
        state.row_writes_left = caps.row_writes_per_op;
        self.store.set_epoch_deadline(caps.epoch_ticks());
        self.store.set_fuel(caps.fuel_per_op).map_err(|e| Failure::new(during, FailureKind::BadResult, format!("{e:#}")))
    }

    /// Applies one op: `input` is `op id ‖ canonical op encoding`, `table` the store's `data`,
    /// `dag` the received ops.
    pub fn apply(&mut self, input: &[u8], table: &mut dyn Table, dag: &mut dyn Dag) -> Result<Status, Failure> {
        self.refuel(abi::ALLOC_FN)?;
        let ptr = self.pass_input(input)?;
        let len = input.len() as u32;
        let code = self.with_lent(table, dag, |g| g.apply.call(&mut g.store, (ptr, len)));
        let code = code.map_err(|e| failure(&mut self.store, abi::APPLY_FN, e))?;
        if code == status::OK {
            return Ok(Status::Ok);
        }
        let msg = self.last_message()?;
        Ok(match code {
            status::MALFORMED_PAYLOAD => Status::MalformedPayload(msg),
            status::CORRUPT_STATE => Status::CorruptState(msg),
            status::REFUSED => Status::Refused(msg),
            other => Status::GuestError(other, msg),
        })
    }

    /// Views one stored row: `input` is `u32 LE key length ‖ key ‖ row`. No table or op store is
    /// reachable (a call to an import traps). `Ok(Ok(view))`, or `Ok(Err(message))` when the
    /// guest says the row does not decode.
    pub fn observe(&mut self, input: &[u8]) -> Result<Result<Option<Vec<u8>>, String>, Failure> {
        self.refuel(abi::ALLOC_FN)?;
        let ptr = self.pass_input(input)?;
        let code = self.observe.call(&mut self.store, (ptr, input.len() as u32));
        let code = code.map_err(|e| failure(&mut self.store, abi::OBSERVE_FN, e))?;
        match code {
            abi::observe_status::VIEW => Ok(Ok(Some(self.message_bytes()?))),
            abi::observe_status::UNSEEN => Ok(Ok(None)),
            abi::observe_status::CORRUPT_STATE => Ok(Err(self.last_message()?)),
            other => Err(Failure::new(abi::OBSERVE_FN, FailureKind::BadResult, format!("returned the unknown status {other}"))),
        }
    }

    /// The bytes of the range `lattice_message` returns, uncut (a view may be long).
    fn message_bytes(&mut self) -> Result<Vec<u8>, Failure> {
        let packed = self.message.call(&mut self.store, ()).map_err(|e| failure(&mut self.store, abi::MESSAGE_FN, e))?;
        let (ptr, len) = abi::unpack(packed);
        let data = self.memory.data(&self.store);
        let r = range(data.len(), ptr, len)
            .map_err(|e| Failure::new(abi::MESSAGE_FN, FailureKind::BadResult, format!("returned an unusable view: {e}")))?;
        Ok(data[r].to_vec())
    }

    /// Asks the guest for a buffer and copies `input` into it; returns its address.
    fn pass_input(&mut self, input: &[u8]) -> Result<u32, Failure> {
        let during = abi::ALLOC_FN;
        let cap = self.caps.memory_bytes;
        let len = u32::try_from(input.len()).ok().filter(|_| input.len() <= cap).ok_or_else(|| {
            Failure::new(
                during,
                FailureKind::MemoryCap,
                format!("the op ({} bytes) is larger than the guest memory cap ({cap} bytes)", input.len()),
            )
        })?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(|e| failure(&mut self.store, during, e))?;
        let data = self.memory.data_mut(&mut self.store);
        if ptr == 0 {
            return Err(Failure::new(during, FailureKind::BadResult, format!("the guest could not allocate {len} bytes (it returned 0)")));
        }
        let r = range(data.len(), ptr, len)
            .map_err(|e| Failure::new(during, FailureKind::BadResult, format!("returned an unusable buffer: {e}")))?;
        data[r].copy_from_slice(input);
        Ok(ptr)
    }

    /// Runs `f` with `table` and `dag` reachable from the host functions, and unreachable again
    /// afterwards.
    fn with_lent<R>(&mut self, table: &mut dyn Table, dag: &mut dyn Dag, f: impl FnOnce(&mut Guest) -> R) -> R {
        struct Clear<'a>(&'a mut Guest);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                let state = self.0.store.data_mut();
                state.table.0 = None;
                state.dag.0 = None;
            }
        }
        let table = NonNull::from(table);
        let dag = NonNull::from(dag);
        // SAFETY: only erases the trait objects' lifetimes; the pointers are cleared (by `Clear`,
        // also on unwind) before the borrows end, so they are never used past them.
        let (table, dag): (NonNull<dyn Table + 'static>, NonNull<dyn Dag + 'static>) = unsafe {
            (
                std::mem::transmute::<NonNull<dyn Table + '_>, NonNull<dyn Table + 'static>>(table),
                std::mem::transmute::<NonNull<dyn Dag + '_>, NonNull<dyn Dag + 'static>>(dag),
            )
        };
        let state = self.store.data_mut();
        state.table.0 = Some(table);
        state.dag.0 = Some(dag);
        let guard = Clear(self);
        f(guard.0)
    }

    fn last_message(&mut self) -> Result<String, Failure> {
        let packed = self.message.call(&mut self.store, ()).map_err(|e| failure(&mut self.store, abi::MESSAGE_FN, e))?;
        let (ptr, len) = abi::unpack(packed);
        let data = self.memory.data(&self.store);
        let r = range(data.len(), ptr, len.min(abi::MAX_MESSAGE as u32))
            .map_err(|e| Failure::new(abi::MESSAGE_FN, FailureKind::BadResult, format!("returned an unusable message: {e}")))?;
        Ok(String::from_utf8_lossy(&data[r]).into_owned())
    }
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, Failure> {
    instance.get_typed_func::<P, R>(&mut *store, name).map_err(|e| Failure::new(name, FailureKind::BadResult, format!("{e:#}")))
}

/// Describes a failed call: the host's recorded reason if it trapped the call, else the trap.
fn failure(store: &mut Store<HostState>, during: &'static str, e: WtError) -> Failure {
    let caps = store.data().caps;
    if let Some((kind, reason)) = store.data_mut().failure.take() {
        return Failure::new(during, kind, reason);
    }
    let (kind, detail) = match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (FailureKind::OutOfFuel, format!("the call needed more than the limit of {} units", caps.fuel_per_op)),
        Some(Trap::Interrupt) => (
            FailureKind::Watchdog,
            format!("interrupted after about {} ms of wall time (a last-resort guard: fuel did not stop this call)", caps.watchdog_ms),
        ),
        Some(trap) => (FailureKind::Trap, trap.to_string().trim_start_matches("wasm trap: ").to_string()),
        None => (FailureKind::Trap, format!("{e:#}")),
    };
    Failure::new(during, kind, detail)
}

/// `ptr..ptr + len` as a range of a memory of `size` bytes, or why it is not one.
fn range(size: usize, ptr: u32, len: u32) -> Result<std::ops::Range<usize>, String> {
    let (start, len) = (ptr as usize, len as usize);
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(format!("bytes {start}..{} are outside the guest memory of {size} bytes", start as u64 + len as u64)),
    }
}

/// The `lattice_table` and `lattice_dag` host functions.
pub(crate) fn linker(engine: &Engine) -> Linker<HostState> {
    let mut l = Linker::new(engine);
    l.func_wrap(abi::TABLE_MODULE, abi::TABLE_GET, host_get).expect("`get` is defined once");
    l.func_wrap(abi::TABLE_MODULE, abi::TABLE_PUT, host_put).expect("`put` is defined once");
    l.func_wrap(abi::TABLE_MODULE, abi::TABLE_DELETE, host_delete).expect("`delete` is defined once");
    l.func_wrap(abi::DAG_MODULE, abi::DAG_OP_INFO, host_op_info).expect("`op_info` is defined once");
    l
}

/// Traps the current call with `reason`, recording it (and its kind) for the report.
fn trap(caller: &mut Caller<'_, HostState>, kind: FailureKind, reason: String) -> WtError {
    caller.data_mut().failure = Some((kind, reason.clone()));
    WtError::msg(reason)
}

/// Takes `units` of fuel for the host's work in `name`, before doing it; traps (out of fuel) if
/// the op's allowance has less left.
fn charge(caller: &mut Caller<'_, HostState>, name: &str, units: u64) -> Result<(), WtError> {
    let left = caller.get_fuel()?;
    if units > left {
        caller.set_fuel(0)?;
        let limit = caller.data().caps.fuel_per_op;
        return Err(trap(
            caller,
            FailureKind::OutOfFuel,
            format!("{name} needs {units} units of fuel for the host's work, {left} are left of the op's limit of {limit}"),
        ));
    }
    caller.set_fuel(left - units)
}

/// Counts one write of `bytes` against the op's caps, before it reaches the table; traps (write
/// cap) if it would exceed either.
fn budget_write(caller: &mut Caller<'_, HostState>, name: &str, bytes: u64) -> Result<(), WtError> {
    let (caps, state) = (caller.data().caps, caller.data());
    if state.row_writes_left == 0 {
        let msg = format!(
            "{name} would be write number {} of this op; the cap is {} writes per op",
            caps.row_writes_per_op + 1,
            caps.row_writes_per_op
        );
        return Err(trap(caller, FailureKind::WriteCap, msg));
    }
    if bytes > state.write_bytes_left {
        let written = caps.write_bytes_per_op - state.write_bytes_left;
        let msg = format!(
            "{name} of {bytes} bytes after {written} bytes written would exceed the cap of {} bytes per op",
            caps.write_bytes_per_op
        );
        return Err(trap(caller, FailureKind::WriteCap, msg));
    }
    let state = caller.data_mut();
    state.row_writes_left -= 1;
    state.write_bytes_left -= bytes;
    Ok(())
}

/// The guest memory and the lent table; traps if called outside `lattice_apply`.
fn parts<'a>(caller: &mut Caller<'_, HostState>, name: &str) -> Result<(Memory, &'a mut dyn Table), WtError> {
    let (memory, table) = (caller.data().memory, caller.data().table.0);
    match (memory, table) {
        // SAFETY: `Guest::with_table` set the pointer for the duration of the current call and
        // holds the only `&mut` to the store, so nothing else reaches the table meanwhile.
        (Some(m), Some(t)) => Ok((m, unsafe { &mut *t.as_ptr() })),
        _ => Err(trap(caller, FailureKind::BadHostCall, format!("lattice_table.{name} was called outside lattice_apply"))),
    }
}

/// Checks a guest range for host function `name`, argument `what`.
fn guest_range(
    caller: &mut Caller<'_, HostState>,
    memory: Memory,
    name: &str,
    what: &str,
    ptr: u32,
    len: u32,
) -> Result<std::ops::Range<usize>, WtError> {
    let size = memory.data_size(&*caller);
    range(size, ptr, len).map_err(|e| {
        trap(caller, FailureKind::OutOfBounds, format!("the guest passed an out-of-range {what} to lattice_table.{name}: {e}"))
    })
}

fn table_failed(caller: &mut Caller<'_, HostState>, name: &str) -> WtError {
    trap(caller, FailureKind::Storage, format!("the data table failed under lattice_table.{name}"))
}

fn host_get(mut caller: Caller<'_, HostState>, key_ptr: u32, key_len: u32, dst_ptr: u32, dst_cap: u32) -> wasmtime::Result<i64> {
    charge(&mut caller, "lattice_table.get", cost::READ_CALL + cost::READ_BYTE * key_len as u64)?;
    let (memory, table) = parts(&mut caller, "get")?;
    let key = guest_range(&mut caller, memory, "get", "key", key_ptr, key_len)?;
    let dst = guest_range(&mut caller, memory, "get", "destination buffer", dst_ptr, dst_cap)?;
    let value = match table.get(&memory.data(&caller)[key]) {
        Ok(v) => v,
        Err(_) => return Err(table_failed(&mut caller, "get")),
    };
    let Some(value) = value else { return Ok(abi::GET_ABSENT) };
    charge(&mut caller, "lattice_table.get", cost::READ_BYTE * value.len() as u64)?;
    if value.len() <= dst.len() {
        memory.data_mut(&mut caller)[dst.start..dst.start + value.len()].copy_from_slice(&value);
    }
    Ok(value.len() as i64)
}

fn host_op_info(mut caller: Caller<'_, HostState>, id_ptr: u32, dst_ptr: u32) -> wasmtime::Result<u32> {
    charge(&mut caller, "lattice_dag.op_info", cost::READ_CALL)?;
    let (memory, dag) = match (caller.data().memory, caller.data().dag.0) {
        // SAFETY: as in `parts`: set by `Guest::with_lent` for the current call only.
        (Some(m), Some(d)) => (m, unsafe { &mut *d.as_ptr() }),
        _ => return Err(trap(&mut caller, FailureKind::BadHostCall, "lattice_dag.op_info was called outside lattice_apply".to_string())),
    };
    let id = guest_range(&mut caller, memory, "op_info", "op id", id_ptr, abi::OP_ID_LEN as u32)?;
    let dst = guest_range(&mut caller, memory, "op_info", "destination buffer", dst_ptr, abi::OP_INFO_LEN as u32)?;
    let id: [u8; 32] = memory.data(&caller)[id].try_into().expect("the range is 32 bytes");
    let info = match dag.op_info(&id) {
        Ok(info) => info,
        Err(_) => return Err(trap(&mut caller, FailureKind::Storage, "the op store failed under lattice_dag.op_info".to_string())),
    };
    let Some((hlc, author)) = info else { return Ok(0) };
    let info = abi::OpInfo { wall_ms: hlc.wall_ms, counter: hlc.counter, author };
    memory.data_mut(&mut caller)[dst].copy_from_slice(&info.encode());
    Ok(1)
}

fn host_put(mut caller: Caller<'_, HostState>, key_ptr: u32, key_len: u32, val_ptr: u32, val_len: u32) -> wasmtime::Result<()> {
    let bytes = key_len as u64 + val_len as u64;
    charge(&mut caller, "lattice_table.put", cost::WRITE_CALL + cost::WRITE_BYTE * bytes)?;
    let (memory, table) = parts(&mut caller, "put")?;
    let key = guest_range(&mut caller, memory, "put", "key", key_ptr, key_len)?;
    let value = guest_range(&mut caller, memory, "put", "value", val_ptr, val_len)?;
    budget_write(&mut caller, "lattice_table.put", bytes)?;
    let data = memory.data(&caller);
    match table.put(&data[key], &data[value]) {
        Ok(()) => Ok(()),
        Err(_) => Err(table_failed(&mut caller, "put")),
    }
}

fn host_delete(mut caller: Caller<'_, HostState>, key_ptr: u32, key_len: u32) -> wasmtime::Result<()> {
    charge(&mut caller, "lattice_table.delete", cost::WRITE_CALL + cost::WRITE_BYTE * key_len as u64)?;
    let (memory, table) = parts(&mut caller, "delete")?;
    let key = guest_range(&mut caller, memory, "delete", "key", key_ptr, key_len)?;
    budget_write(&mut caller, "lattice_table.delete", key_len as u64)?;
    match table.delete(&memory.data(&caller)[key]) {
        Ok(()) => Ok(()),
        Err(_) => Err(table_failed(&mut caller, "delete")),
    }
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn guest_ranges_are_checked_without_overflow() {
        assert_eq!(range(100, 10, 90), Ok(10..100));
        assert_eq!(range(100, 100, 0), Ok(100..100));
        assert_eq!(range(100, 10, 91), Err("bytes 10..101 are outside the guest memory of 100 bytes".to_string()));
        assert!(range(100, u32::MAX, u32::MAX).unwrap_err().contains("bytes 4294967295..8589934590"));
    }
}
