//! The guest side of the lattice-conform Wasm ABI, version 3 (normative: docs/WASM_ABI.md).
//!
//! A guest crate is a `cdylib` that names one [`StoreLogic`] and calls [`export_store_logic!`];
//! the macro emits the ABI's exports, and this crate turns the host's `lattice_table` imports into
//! a [`Table`] and its `lattice_dag` import into a [`Dag`]. The store logic itself is `crates/lattice-logic`, unchanged, so a guest computes
//! exactly what the native build computes.
//!
//! Host imports never report errors to the guest: a host failure (bad pointer, storage error)
//! traps the call, so the guest only ever sees present or absent values.

use std::sync::{Mutex, MutexGuard};

use lattice_logic::op::Hlc;
use lattice_logic::{ApplyError, Dag, HostError, Op, OpId, StoreLogic, Table};

/// The ABI version this crate implements.
pub const ABI_VERSION: u32 = 3;

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
    pub const VIEW: u32 = 0;
    pub const UNSEEN: u32 = 1;
    pub const CORRUPT_STATE: u32 = 2;
}

/// The scratch size of the first `get` attempt; larger values take a second call.
const GET_SCRATCH: usize = 512;
/// Input buffers above this size are released after each op instead of being kept for reuse.
const KEEP_INPUT: usize = 1 << 20;

#[link(wasm_import_module = "lattice_table")]
extern "C" {
    #[link_name = "get"]
    fn table_get(key_ptr: *const u8, key_len: u32, dst_ptr: *mut u8, dst_cap: u32) -> i64;
    #[link_name = "put"]
    fn table_put(key_ptr: *const u8, key_len: u32, val_ptr: *const u8, val_len: u32);
    #[link_name = "delete"]
    fn table_delete(key_ptr: *const u8, key_len: u32);
}

#[link(wasm_import_module = "lattice_dag")]
extern "C" {
    #[link_name = "op_info"]
    fn dag_op_info(id_ptr: *const u8, dst_ptr: *mut u8) -> u32;
}

/// The buffer `lattice_alloc` hands out, read by `lattice_apply`.
static INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// The message of the last failed `lattice_apply`.
static MESSAGE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Packs a guest memory range as `len << 32 | ptr`.
pub fn pack(ptr: *const u8, len: usize) -> u64 {
    ((len as u64) << 32) | u64::from(ptr as usize as u32)
}

/// `lattice_store_type`: the type name as a packed range of static memory.
pub fn store_type(logic: &'static dyn StoreLogic) -> u64 {
    let name = logic.store_type();
    pack(name.as_ptr(), name.len())
}

/// `lattice_alloc`: a buffer of `len` bytes for the next `lattice_apply`; 0 if it cannot be had.
pub fn alloc(len: u32) -> *mut u8 {
    let mut buf = lock(&INPUT);
    buf.clear();
    if buf.try_reserve_exact(len as usize).is_err() {
        return core::ptr::null_mut();
    }
    buf.resize(len as usize, 0);
    buf.as_mut_ptr()
}

/// `lattice_message`: the last failure's message as a packed range (valid until the next call).
pub fn message() -> u64 {
    let msg = lock(&MESSAGE);
    pack(msg.as_ptr(), msg.len())
}

/// `lattice_apply`: decodes `op id ‖ canonical op` from the `lattice_alloc` buffer and applies it.
pub fn apply(logic: &'static dyn StoreLogic, ptr: *const u8, len: u32) -> u32 {
    let (code, msg) = match run(logic, ptr, len) {
        Ok(()) => (status::OK, String::new()),
        Err((code, msg)) => (code, msg),
    };
    let mut input = lock(&INPUT);
    if input.capacity() > KEEP_INPUT {
        *input = Vec::new();
    }
    *lock(&MESSAGE) = msg.into_bytes();
    code
}

fn run(logic: &'static dyn StoreLogic, ptr: *const u8, len: u32) -> Result<(), (u32, String)> {
    let (id, op) = decode_input(ptr, len)?;
    logic.apply(&id, &op, &mut HostTable, &mut HostDag).map_err(|e| match e {
        ApplyError::MalformedPayload(m) => (status::MALFORMED_PAYLOAD, m),
        ApplyError::CorruptState(m) => (status::CORRUPT_STATE, m),
        ApplyError::Refused(m) => (status::REFUSED, m),
        ApplyError::Host(_) => (status::HOST_ERROR, "the host table failed".to_string()),
    })
}

/// `lattice_observe`: views the row in the `lattice_alloc` buffer (`u32 LE key length ‖ key ‖
/// row`); the view (status 0) or the failure message (status 2) is what `lattice_message` returns.
pub fn observe(logic: &'static dyn StoreLogic, ptr: *const u8, len: u32) -> u32 {
    let (code, out) = {
        let input = lock(&INPUT);
        if ptr != input.as_ptr() || len as usize != input.len() || input.len() < 4 {
            (observe_status::CORRUPT_STATE, b"lattice_observe: the input is not the buffer lattice_alloc returned".to_vec())
        } else {
            let key_len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
            match input[4..].split_at_checked(key_len) {
                None => (observe_status::CORRUPT_STATE, b"lattice_observe: the key length runs past the input".to_vec()),
                Some((key, row)) => match logic.observe(key, row) {
                    Ok(Some(view)) => (observe_status::VIEW, view),
                    Ok(None) => (observe_status::UNSEEN, Vec::new()),
                    Err(e) => (observe_status::CORRUPT_STATE, format!("{e:?}").into_bytes()),
                },
            }
        }
    };
    let mut input = lock(&INPUT);
    if input.capacity() > KEEP_INPUT {
        *input = Vec::new();
    }
    *lock(&MESSAGE) = out;
    code
}

fn decode_input(ptr: *const u8, len: u32) -> Result<(OpId, Op), (u32, String)> {
    let bad = |m: String| (status::BAD_INPUT, m);
    let input = lock(&INPUT);
    if ptr != input.as_ptr() || len as usize != input.len() {
        return Err(bad("lattice_apply: the input is not the buffer lattice_alloc returned".to_string()));
    }
    if input.len() < 32 {
        return Err(bad(format!("lattice_apply: input of {} bytes is shorter than an op id", input.len())));
    }
    let (id, encoded) = input.split_at(32);
    let op = Op::decode(encoded).map_err(|e| bad(format!("lattice_apply: the op does not decode: {e}")))?;
    let id: OpId = id.try_into().map_err(|_| bad("lattice_apply: bad op id".to_string()))?;
    Ok((id, op))
}

/// The store's `data` table, reached through the host's `lattice_table` imports.
struct HostTable;

impl HostTable {
    fn get_into(key: &[u8], buf: &mut [u8]) -> i64 {
        // SAFETY: both ranges are live, correctly sized Rust slices for the duration of the call;
        // the host writes at most `buf.len()` bytes into `buf` and nothing else.
        unsafe { table_get(key.as_ptr(), key.len() as u32, buf.as_mut_ptr(), buf.len() as u32) }
    }
}

impl Table for HostTable {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let mut buf = vec![0u8; GET_SCRATCH];
        let n = Self::get_into(key, &mut buf);
        if n < 0 {
            return if n == -1 { Ok(None) } else { Err(HostError) };
        }
        let n = usize::try_from(n).map_err(|_| HostError)?;
        if n > buf.len() {
            buf.resize(n, 0);
            if Self::get_into(key, &mut buf) != n as i64 {
                return Err(HostError);
            }
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        // SAFETY: both ranges are live Rust slices; the host only reads them.
        unsafe { table_put(key.as_ptr(), key.len() as u32, value.as_ptr(), value.len() as u32) };
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        // SAFETY: the range is a live Rust slice; the host only reads it.
        unsafe { table_delete(key.as_ptr(), key.len() as u32) };
        Ok(())
    }
}

/// The received ops, reached through the host's `lattice_dag.op_info` import.
struct HostDag;

impl Dag for HostDag {
    fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError> {
        let mut out = [0u8; 44];
        // SAFETY: `id` is 32 readable bytes and `out` 44 writable ones, as the import requires.
        let found = unsafe { dag_op_info(id.as_ptr(), out.as_mut_ptr()) };
        match found {
            0 => Ok(None),
            1 => {
                let wall_ms = u64::from_le_bytes(out[..8].try_into().map_err(|_| HostError)?);
                let counter = u32::from_le_bytes(out[8..12].try_into().map_err(|_| HostError)?);
                let author: [u8; 32] = out[12..].try_into().map_err(|_| HostError)?;
                Ok(Some((Hlc { wall_ms, counter }, author)))
            }
            _ => Err(HostError),
        }
    }
}

/// Emits the ABI v3 exports for `static LOGIC: $ty = $init;`.
#[macro_export]
macro_rules! export_store_logic {
    ($ty:ty, $init:expr) => {
        static LOGIC: $ty = $init;

        #[no_mangle]
        pub extern "C" fn lattice_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn lattice_store_type() -> u64 {
            $crate::store_type(&LOGIC)
        }

        #[no_mangle]
        pub extern "C" fn lattice_schema_version() -> u64 {
            ::lattice_logic::StoreLogic::schema_version(&LOGIC)
        }

        #[no_mangle]
        pub extern "C" fn lattice_alloc(len: u32) -> *mut u8 {
            $crate::alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn lattice_apply(ptr: *const u8, len: u32) -> u32 {
            $crate::apply(&LOGIC, ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn lattice_observe(ptr: *const u8, len: u32) -> u32 {
            $crate::observe(&LOGIC, ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn lattice_message() -> u64 {
            $crate::message()
        }
    };
}
