//! The guest side of the lattice-conform Wasm ABI, version 3 (normative: `docs/WASM_ABI.md`), for
//! authors of store logic — outside this repository, and the reference guests in `guests/`, which
//! are built on it too. Depend on it by path, implement [`Logic`] for a
//! type, and call [`export_guest!`]: the macro emits every export the host requires, and this
//! crate declares the host's imports (`lattice_table.get`/`put`/`delete`, `lattice_dag.op_info`)
//! behind the safe functions of [`table`] and [`dag`]. It has no dependencies and makes no
//! assumption about how the logic encodes its rows.
//!
//! ```
//! // Cargo.toml:  [lib] crate-type = ["cdylib"]
//! //              [dependencies] lattice-guest = { path = "…/crates/lattice-guest" }
//! //              [profile.release] panic = "abort"
//! // Build:       cargo build --release --target wasm32-unknown-unknown
//! use lattice_guest::{export_guest, table, Failure, Logic, Op, View};
//!
//! /// `demo:last-writer`: the payload is `key_len (u8) ‖ key ‖ value`; the last op applied for a
//! /// key wins. Readers see the value.
//! struct LastWriter;
//!
//! impl Logic for LastWriter {
//!     const STORE_TYPE: &'static str = "demo:last-writer";
//!     const SCHEMA_VERSION: u64 = 1;
//!
//!     fn apply(_id: &[u8; 32], op: &Op<'_>) -> Result<(), Failure> {
//!         let (&n, rest) = op.payload.split_first().ok_or_else(|| Failure::malformed_payload("empty payload"))?;
//!         if rest.len() < n as usize {
//!             return Err(Failure::malformed_payload("the key runs past the payload"));
//!         }
//!         let (key, value) = rest.split_at(n as usize);
//!         table::put(key, value);
//!         Ok(())
//!     }
//!
//!     fn observe(_key: &[u8], row: &[u8]) -> Result<View, String> {
//!         Ok(View::Seen(row.to_vec()))
//!     }
//! }
//!
//! export_guest!(LastWriter);
//!
//! // Off Wasm, the imports are an in-memory table, so the logic can be tested natively:
//! # fn main() {
//! let op = lattice_guest::testing::encode_op(&[7; 32], 1, 0, &[0; 32], &[], b"\x01kv");
//! assert_eq!(lattice_guest::testing::apply::<LastWriter>(&[1; 32], &op), 0);
//! assert_eq!(table::get(b"k"), Some(b"v".to_vec()));
//! # }
//! ```
//!
//! What the host guarantees and expects (`docs/WASM_ABI.md` §2–§6), in short:
//! * An instance serves one store; the host MAY drop it and make a new one at any time (after every
//!   failure, and for every replay), so a guest MUST NOT rely on state kept between calls.
//! * The buffer [`rt::alloc`] hands out belongs to the guest; the host writes the input into it and
//!   reads nothing back. It is reused by the next call.
//! * A failure — a trap, running out of fuel (host calls are charged too), the memory cap, the
//!   per-op write caps, the watchdog — rejects the op; the host rolls its writes back.
//! * Extra exports are allowed and ignored; imports other than the four above are refused.
//!
//! The ABI's constants and layouts — version, export and import names and signatures, status
//! codes, the `op_info` record, the input buffers, packed ranges — are in [`abi`], which uses only
//! `core` and is the one definition the host (`lattice-conform`) checks and runs guests by.

#![forbid(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;

pub mod abi;

/// The ABI version this crate implements (`lattice_abi_version` returns it).
pub use abi::ABI_VERSION;
/// `lattice_apply` and `lattice_observe` status codes (`docs/WASM_ABI.md` §5, §5.1).
pub use abi::{observe_status, status};

/// Why an op was not applied: a status code of §5 and a message for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: u32,
    pub message: String,
}

impl Failure {
    /// The payload does not decode for this store type (`malformed_payload`).
    pub fn malformed_payload(message: impl Into<String>) -> Failure {
        Failure { status: status::MALFORMED_PAYLOAD, message: message.into() }
    }

    /// A stored row the logic had to read does not decode (`corrupt_state`).
    pub fn corrupt_state(message: impl Into<String>) -> Failure {
        Failure { status: status::CORRUPT_STATE, message: message.into() }
    }

    /// The store's rules refuse the op (`refused`).
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure { status: status::REFUSED, message: message.into() }
    }
}

/// What a reader sees of a stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// The row's view bytes (any bytes; the host digests them into the observed hash).
    Seen(Vec<u8>),
    /// Readers do not see the row.
    Unseen,
}

/// One op, decoded from its canonical encoding (`docs/FORMAT.md` §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<'a> {
    pub author: [u8; 32],
    pub wall_ms: u64,
    pub counter: u32,
    /// The author's previous op, all zero for the author's first.
    pub prev: [u8; 32],
    /// Strictly ascending op ids.
    pub causal_deps: Vec<[u8; 32]>,
    pub payload: &'a [u8],
}

impl<'a> Op<'a> {
    /// Decodes a canonical op encoding: `0x01 ‖ author ‖ wall_ms u64 LE ‖ counter u32 LE ‖ prev ‖
    /// n u32 LE ‖ n × 32-byte deps ‖ p u32 LE ‖ payload`, nothing after it.
    pub fn decode(bytes: &'a [u8]) -> Result<Op<'a>, String> {
        let mut r = Reader(bytes);
        if r.take(1)? != [1] {
            return Err("op encoding version is not 1".into());
        }
        let author = r.hash()?;
        let wall_ms = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let counter = r.u32()?;
        let prev = r.hash()?;
        let n = r.u32()? as usize;
        let causal_deps = (0..n).map(|_| r.hash()).collect::<Result<Vec<_>, _>>()?;
        let p = r.u32()? as usize;
        let payload = r.take(p)?;
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the payload", r.0.len()));
        }
        Ok(Op { author, wall_ms, counter, prev, causal_deps, payload })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("the op ends {} bytes early", n - self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn hash(&mut self) -> Result<[u8; 32], String> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
}

/// A store type's logic, as a guest implements it.
pub trait Logic {
    /// The store type name (UTF-8, 1–256 bytes), e.g. `demo:last-writer`.
    const STORE_TYPE: &'static str;
    /// The schema version; the host refuses the build for a store, corpus or certificate of
    /// another schema.
    const SCHEMA_VERSION: u64;
    /// Applies one op through [`table`] (and [`dag`]). Must be deterministic: the same table
    /// contents and op give the same writes and result on every host.
    fn apply(id: &[u8; 32], op: &Op<'_>) -> Result<(), Failure>;
    /// What readers see of `row` stored under `key`; `Err` if the row does not decode. No host
    /// import may be called here (the host traps such a call).
    fn observe(key: &[u8], row: &[u8]) -> Result<View, String>;
}

/// The imports of `abi::IMPORTS` (Rust wants the names as literals here).
#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "lattice_table")]
    extern "C" {
        pub fn get(key_ptr: *const u8, key_len: u32, dst_ptr: *mut u8, dst_cap: u32) -> i64;
        pub fn put(key_ptr: *const u8, key_len: u32, val_ptr: *const u8, val_len: u32);
        pub fn delete(key_ptr: *const u8, key_len: u32);
    }

    #[link(wasm_import_module = "lattice_dag")]
    extern "C" {
        pub fn op_info(id_ptr: *const u8, dst_ptr: *mut u8) -> u32;
    }
}

/// The store's `data` table during the op being applied (`lattice_table`, §4). Reads see the op's
/// own earlier writes. Every call is charged fuel by the host (a base plus a cost per byte), and
/// writes count against the op's write caps: a loop of host calls runs out like a loop of code.
pub mod table {
    /// The value stored under `key`, if any.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        imp::get(key)
    }

    /// Sets `key`'s row to `value`.
    pub fn put(key: &[u8], value: &[u8]) {
        imp::put(key, value)
    }

    /// Removes `key`'s row (no effect if absent).
    pub fn delete(key: &[u8]) {
        imp::delete(key)
    }

    #[cfg(target_arch = "wasm32")]
    mod imp {
        use crate::host;

        const SCRATCH: usize = 256;

        pub fn get(key: &[u8]) -> Option<Vec<u8>> {
            let mut buf = vec![0u8; SCRATCH];
            loop {
                // SAFETY: both ranges are live and in guest memory; the host writes at most
                // `buf.len()` bytes.
                let n = unsafe { host::get(key.as_ptr(), key.len() as u32, buf.as_mut_ptr(), buf.len() as u32) };
                // `abi::GET_ABSENT`; the host returns no other negative value.
                if n < 0 {
                    return None;
                }
                let n = n as usize;
                if n <= buf.len() {
                    buf.truncate(n);
                    return Some(buf);
                }
                buf.resize(n, 0);
            }
        }

        pub fn put(key: &[u8], value: &[u8]) {
            // SAFETY: both ranges are live and in guest memory; the host only reads them.
            unsafe { host::put(key.as_ptr(), key.len() as u32, value.as_ptr(), value.len() as u32) }
        }

        pub fn delete(key: &[u8]) {
            // SAFETY: the range is live and in guest memory; the host only reads it.
            unsafe { host::delete(key.as_ptr(), key.len() as u32) }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod imp {
        use crate::testing::TABLE;

        pub fn get(key: &[u8]) -> Option<Vec<u8>> {
            TABLE.with(|t| t.borrow().get(key).cloned())
        }

        pub fn put(key: &[u8], value: &[u8]) {
            TABLE.with(|t| t.borrow_mut().insert(key.to_vec(), value.to_vec()));
        }

        pub fn delete(key: &[u8]) {
            TABLE.with(|t| t.borrow_mut().remove(key));
        }
    }
}

/// The ops the replica has received (`lattice_dag`, §4).
pub mod dag {
    /// The HLC and author of a received op.
    pub use crate::abi::OpInfo;

    /// The op with id `id`, if the replica has received it (floating or witnessed).
    pub fn op_info(id: &[u8; 32]) -> Option<OpInfo> {
        imp::op_info(id)
    }

    #[cfg(target_arch = "wasm32")]
    mod imp {
        use crate::abi::{OpInfo, OP_INFO_LEN};

        pub fn op_info(id: &[u8; 32]) -> Option<OpInfo> {
            let mut out = [0u8; OP_INFO_LEN];
            // SAFETY: `id` is 32 live bytes, `out` OP_INFO_LEN writable ones, both in guest memory.
            let found = unsafe { crate::host::op_info(id.as_ptr(), out.as_mut_ptr()) };
            (found == 1).then(|| OpInfo::decode(&out))
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod imp {
        pub fn op_info(id: &[u8; 32]) -> Option<super::OpInfo> {
            crate::testing::OPS.with(|o| o.borrow().get(id).copied())
        }
    }
}

/// The runtime behind the exports [`export_guest!`] emits. Not called directly.
#[doc(hidden)]
pub mod rt {
    use super::*;

    thread_local! {
        /// The input buffer `lattice_alloc` hands out: the guest's, reused by the next call.
        static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        /// What `lattice_message` returns: the last failure's message, or the last view.
        static MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// `len << 32 | ptr` ([`abi::pack`]).
    pub fn pack(ptr: *const u8, len: usize) -> u64 {
        abi::pack(ptr as usize as u32, len as u32)
    }

    pub fn store_type<L: Logic>() -> u64 {
        pack(L::STORE_TYPE.as_ptr(), L::STORE_TYPE.len())
    }

    /// A buffer of `len` bytes (8-byte aligned, like every allocation of at least 8 bytes on
    /// wasm32), or 0 if it cannot be had.
    pub fn alloc(len: u32) -> *mut u8 {
        INPUT.with(|b| {
            let mut buf = b.borrow_mut();
            buf.clear();
            if buf.try_reserve_exact(len as usize).is_err() {
                return core::ptr::null_mut();
            }
            buf.resize(len as usize, 0);
            buf.as_mut_ptr()
        })
    }

    fn input() -> Vec<u8> {
        INPUT.with(|b| std::mem::take(&mut *b.borrow_mut()))
    }

    fn set_message(bytes: Vec<u8>) {
        MESSAGE.with(|m| *m.borrow_mut() = bytes);
    }

    /// The bytes behind [`message`] (for native tests).
    pub fn message_bytes() -> Vec<u8> {
        MESSAGE.with(|m| m.borrow().clone())
    }

    pub fn message() -> u64 {
        MESSAGE.with(|m| {
            let m = m.borrow();
            pack(m.as_ptr(), m.len())
        })
    }

    /// `lattice_apply` over the `lattice_alloc` buffer (`ptr`, `len` are its address and length).
    pub fn apply<L: Logic>(_ptr: *const u8, len: u32) -> u32 {
        let input = input();
        let result = match abi::split_apply_input(&input).filter(|_| input.len() == len as usize) {
            None => Err(Failure { status: status::BAD_INPUT, message: "the input is not op id ‖ op".into() }),
            Some((id, op)) => match Op::decode(op) {
                Ok(op) => L::apply(id, &op),
                Err(e) => Err(Failure { status: status::BAD_INPUT, message: e }),
            },
        };
        match result {
            Ok(()) => {
                set_message(Vec::new());
                status::OK
            }
            Err(f) => {
                set_message(f.message.into_bytes());
                f.status
            }
        }
    }

    /// `lattice_observe` over the `lattice_alloc` buffer: `u32 LE key length ‖ key ‖ row`.
    pub fn observe<L: Logic>(_ptr: *const u8, len: u32) -> u32 {
        let input = input();
        let Some((key, row)) = abi::split_observe_input(&input).filter(|_| input.len() == len as usize) else {
            set_message(b"the input is not key length \xe2\x80\x96 key \xe2\x80\x96 row".to_vec());
            return observe_status::CORRUPT_STATE;
        };
        match L::observe(key, row) {
            Ok(View::Seen(view)) => {
                set_message(view);
                observe_status::VIEW
            }
            Ok(View::Unseen) => observe_status::UNSEEN,
            Err(e) => {
                set_message(e.into_bytes());
                observe_status::CORRUPT_STATE
            }
        }
    }
}

/// Emits the ABI's exports (`docs/WASM_ABI.md` §3) for a type implementing [`Logic`].
#[macro_export]
macro_rules! export_guest {
    ($logic:ty) => {
        #[no_mangle]
        pub extern "C" fn lattice_abi_version() -> u32 {
            $crate::ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn lattice_store_type() -> u64 {
            $crate::rt::store_type::<$logic>()
        }
        #[no_mangle]
        pub extern "C" fn lattice_schema_version() -> u64 {
            <$logic as $crate::Logic>::SCHEMA_VERSION
        }
        #[no_mangle]
        pub extern "C" fn lattice_alloc(len: u32) -> *mut u8 {
            $crate::rt::alloc(len)
        }
        #[no_mangle]
        pub extern "C" fn lattice_apply(ptr: *const u8, len: u32) -> u32 {
            $crate::rt::apply::<$logic>(ptr, len)
        }
        #[no_mangle]
        pub extern "C" fn lattice_observe(ptr: *const u8, len: u32) -> u32 {
            $crate::rt::observe::<$logic>(ptr, len)
        }
        #[no_mangle]
        pub extern "C" fn lattice_message() -> u64 {
            $crate::rt::message()
        }
    };
}

/// Native testing of a guest's logic: off Wasm, [`table`] and [`dag`] are this thread's in-memory
/// table and op list, and [`testing::apply`] runs an op the way the host would.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::collections::BTreeMap;

    use super::*;

    thread_local! {
        pub(crate) static TABLE: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
        pub(crate) static OPS: RefCell<BTreeMap<[u8; 32], dag::OpInfo>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// This thread's table, in key order.
    pub fn rows() -> Vec<(Vec<u8>, Vec<u8>)> {
        TABLE.with(|t| t.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Makes `id` a received op for [`dag::op_info`].
    pub fn receive(id: [u8; 32], info: dag::OpInfo) {
        OPS.with(|o| o.borrow_mut().insert(id, info));
    }

    /// Empties this thread's table and op list.
    pub fn reset() {
        TABLE.with(|t| t.borrow_mut().clear());
        OPS.with(|o| o.borrow_mut().clear());
    }

    /// The canonical encoding (`docs/FORMAT.md` §2) of an op.
    pub fn encode_op(author: &[u8; 32], wall_ms: u64, counter: u32, prev: &[u8; 32], deps: &[[u8; 32]], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(author);
        out.extend_from_slice(&wall_ms.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(prev);
        out.extend_from_slice(&(deps.len() as u32).to_le_bytes());
        deps.iter().for_each(|d| out.extend_from_slice(d));
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Runs `L` on one op as the host does (alloc, copy, apply); the status.
    pub fn apply<L: Logic>(id: &[u8; 32], op: &[u8]) -> u32 {
        let len = abi::apply_input_len(op.len()) as u32;
        let ptr = rt::alloc(len);
        // SAFETY: `alloc` returned a buffer of `len` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len as usize) };
        abi::write_apply_input(buf, id, op);
        rt::apply::<L>(ptr, len)
    }

    /// The bytes `lattice_message` would return now (the last failure's message or view).
    pub fn message() -> Vec<u8> {
        rt::message_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refuser;

    impl Logic for Refuser {
        const STORE_TYPE: &'static str = "test:refuser";
        const SCHEMA_VERSION: u64 = 2;

        fn apply(_: &[u8; 32], op: &Op<'_>) -> Result<(), Failure> {
            match op.payload {
                b"ok" => {
                    table::put(&op.author, op.payload);
                    Ok(())
                }
                _ => Err(Failure::refused(format!("payload of {} bytes", op.payload.len()))),
            }
        }

        fn observe(_: &[u8], row: &[u8]) -> Result<View, String> {
            if row.is_empty() {
                return Err("empty row".into());
            }
            Ok(View::Unseen)
        }
    }

    #[test]
    fn ops_decode_from_their_canonical_encoding_and_truncations_are_refused() {
        let bytes = testing::encode_op(&[3; 32], 7, 9, &[4; 32], &[[5; 32], [6; 32]], b"pay");
        assert_eq!(bytes.len(), 85 + 64 + 3);
        let op = Op::decode(&bytes).unwrap();
        assert_eq!((op.author, op.wall_ms, op.counter, op.prev), ([3; 32], 7, 9, [4; 32]));
        assert_eq!((op.causal_deps, op.payload), (vec![[5; 32], [6; 32]], &b"pay"[..]));
        assert_eq!(Op::decode(&bytes[..bytes.len() - 1]).unwrap_err(), "the op ends 1 bytes early");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Op::decode(&longer).unwrap_err(), "1 bytes after the payload");
    }

    #[test]
    fn apply_reports_statuses_and_messages_as_the_host_reads_them() {
        testing::reset();
        let ok = testing::encode_op(&[1; 32], 1, 0, &[0; 32], &[], b"ok");
        assert_eq!(testing::apply::<Refuser>(&[9; 32], &ok), status::OK);
        assert_eq!(testing::rows(), vec![(vec![1; 32], b"ok".to_vec())]);
        let no = testing::encode_op(&[1; 32], 2, 0, &[0; 32], &[], b"nope");
        assert_eq!(testing::apply::<Refuser>(&[9; 32], &no), status::REFUSED);
        assert_eq!(testing::message(), b"payload of 4 bytes");
        assert_eq!(testing::apply::<Refuser>(&[9; 32], &no[..10]), status::BAD_INPUT);
        assert_eq!(testing::message(), b"the op ends 23 bytes early");
    }

    #[test]
    fn observe_passes_the_key_and_row_and_maps_the_view() {
        let call = |key: &[u8], row: &[u8]| {
            let mut input = vec![0; abi::observe_input_len(key.len(), row.len())];
            abi::write_observe_input(&mut input, key, row);
            let ptr = rt::alloc(input.len() as u32);
            // SAFETY: `alloc` returned a buffer of this length.
            unsafe { std::slice::from_raw_parts_mut(ptr, input.len()) }.copy_from_slice(&input);
            rt::observe::<Refuser>(ptr, input.len() as u32)
        };
        assert_eq!(call(b"k", b"row"), observe_status::UNSEEN);
        assert_eq!(call(b"k", b""), observe_status::CORRUPT_STATE);
        assert_eq!(testing::message(), b"empty row");
        assert_eq!((Refuser::STORE_TYPE, Refuser::SCHEMA_VERSION), ("test:refuser", 2));
    }
}
