//! Fuzz harnesses: one function per input the tool reads from outside, fed arbitrary bytes.
//!
//! Each returns normally for any input — a clear error is a fine outcome — and panics only when
//! an invariant breaks: a loader accepts something it cannot write back identically, an error
//! does not name the file it is about, a decoder accepts a second encoding of the same value, a
//! rejected op changes the state, or a stored hash disagrees with a recompute. The cargo-fuzz
//! targets under `fuzz/` call these, and `tests/integration/fuzz_inputs.rs` replays the seeds and
//! every crash input ever found (`fuzz/regressions/<target>/`), so a fixed crash stays fixed.
//!
//! Not part of the stable API.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lattice_logic::kvstore::KvStore;
use lattice_logic::kvstore_v2::KvStoreV2;
use lattice_logic::logstore::LogStore;

use crate::history::History;
use crate::kernel::RejectKind;
use crate::op::{Hlc, Op, ZERO_HASH};
use crate::replay::MemStore;
use crate::store::{Logic, Store, StoreIdentity, StoreReader};

/// A harness: runs one input, panics only on a broken invariant.
pub type Harness = fn(&[u8]);

/// Every harness, by the name of its fuzz target.
pub const TARGETS: &[(&str, Harness)] = &[
    ("history_json", history_json),
    ("op_decode", op_decode),
    ("payload_kvstore", payload_kvstore),
    ("payload_logstore", payload_logstore),
    ("payload_kvstore_v2", payload_kvstore_v2),
    ("peek_file", peek_file),
    ("golden_json", golden_json),
    ("certificate_json", certificate_json),
    ("wasm_module", wasm_module),
];

/// The harness for `target`, if there is one.
pub fn by_name(target: &str) -> Option<Harness> {
    TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f)
}

const JSON_NAME: &str = "fuzz-input.json";

fn assert_names_file(error: &dyn std::fmt::Display, name: &str) {
    let msg = error.to_string();
    assert!(msg.contains(name), "error does not name the file `{name}`: {msg}");
}

/// The history loader: an accepted history writes back to text that loads to the same history.
pub fn history_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match History::parse(text, Path::new(JSON_NAME)) {
        Ok(h) => {
            let again = History::parse(&h.to_json(), Path::new(JSON_NAME)).expect("a written history loads");
            assert_eq!(again.to_json(), h.to_json(), "a history changed on a write/load round trip");
        }
        Err(e) => assert_names_file(&e, JSON_NAME),
    }
}

/// The canonical op decoder: an accepted encoding is the only one of its op.
pub fn op_decode(data: &[u8]) {
    if let Ok(op) = Op::decode(data) {
        assert_eq!(op.encode(), data, "the op decoder accepted a non-canonical encoding");
    }
}

/// A `core:kvstore` payload: decoded, shown, and applied as a first op.
pub fn payload_kvstore(data: &[u8]) {
    let decoded = lattice_logic::kvstore::decode_payload(data);
    if let Ok(entries) = &decoded {
        assert_eq!(lattice_logic::kvstore::encode_payload(entries), data, "a second encoding of a kvstore payload was accepted");
    }
    payload("core:kvstore", Arc::new(KvStore), data, decoded.is_ok());
}

/// A `core:logstore` payload (any bytes are a log entry; an empty one stores nothing).
pub fn payload_logstore(data: &[u8]) {
    payload("core:logstore", Arc::new(LogStore), data, true);
}

/// A `core:kvstore-v2` payload: decoded, shown, and applied as a first op.
pub fn payload_kvstore_v2(data: &[u8]) {
    let decoded = lattice_logic::kvstore_v2::decode_payload(data);
    if let Ok(entries) = &decoded {
        assert_eq!(lattice_logic::kvstore_v2::encode_payload(entries), data, "a second encoding of a kvstore-v2 payload was accepted");
    }
    payload("core:kvstore-v2", Arc::new(KvStoreV2), data, decoded.is_ok());
}

fn payload(store_type: &str, logic: Logic, data: &[u8], decodes: bool) {
    if crate::decode::has_payload_decoder(store_type) {
        assert_eq!(crate::decode::decode_payload(store_type, data).is_some(), decodes, "the shown payload disagrees with the decoder");
    }
    // The same bytes read as a stored row: key and value split at the first byte's value.
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len().saturating_sub(1)));
    let (key, value) = data.get(1..).map_or((&[][..], &[][..]), |rest| rest.split_at(split.min(rest.len())));
    let _ = crate::decode::decode_row(store_type, key, value).to_string();

    let identity = StoreIdentity { store_id: uuid::Uuid::from_u128(1), store_type: store_type.into(), schema_version: 1 };
    let mut store = MemStore::new(identity, logic);
    let empty = store.state_hash();
    let op = Op { author: [1; 32], hlc: Hlc { wall_ms: 1, counter: 0 }, prev: ZERO_HASH, causal_deps: vec![], payload: data.to_vec() };
    store.deliver(&op);
    match store.stall() {
        None => assert!(decodes, "an op whose payload does not decode was applied"),
        Some(r) => {
            assert!(!decodes || r.kind != RejectKind::MalformedPayload, "a decodable payload was rejected as malformed: {}", r.reason);
            assert_eq!(store.state_hash(), empty, "a rejected op changed the state");
            assert!(store.rows().is_empty(), "a rejected op left rows behind");
        }
    }
    assert_eq!(store.recompute(), store.state_hash(), "the incremental hash disagrees with a recompute");
}

/// A store directory holding one good file and one file of arbitrary bytes. The first input byte
/// picks which file the rest replaces: even → `state.db` (beside a good `log.db`), odd → `log.db`
/// (with `state.db` absent, so peek reads the log). Peek, the read-only reader and `verify` must
/// give an answer or a clear error naming the file, and never write the damaged file.
pub fn peek_file(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else { return };
    let good = good_store();
    let dir = scratch_dir();
    let (bad, other) = if which % 2 == 0 { ("state.db", "log.db") } else { ("log.db", "state.db") };
    std::fs::write(dir.join(bad), bytes).expect("the scratch directory is writable");
    if which % 2 == 0 {
        std::fs::copy(good.join(other), dir.join(other)).expect("the good store is readable");
    } else {
        let _ = std::fs::remove_file(dir.join(other));
    }
    match crate::store::peek_info(&dir) {
        Ok(_) => {}
        Err(e) => assert_names_file(&e, bad),
    }
    if let Ok(reader) = StoreReader::open(&dir) {
        let _ = reader.verify();
        let _ = reader.for_each_row(|_, _| {});
        let _ = reader.tips();
    }
    let _ = crate::store::audit_facts(&dir);
    let after = std::fs::read(dir.join(bad)).expect("the damaged file is still there");
    assert!(after == bytes, "a read-only peek or reader wrote to {bad}");
}

/// A small clean store, made once per process.
fn good_store() -> &'static Path {
    static GOOD: OnceLock<PathBuf> = OnceLock::new();
    GOOD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lattice-conform-harness-good-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::create(&dir, uuid::Uuid::from_u128(7), Arc::new(KvStore)).expect("a store can be created");
        store.apply_ops(&[first_put()], 0).expect("the op applies");
        dir
    })
}

/// An author's first op, putting `k` = `v` (kvstore payload).
fn first_put() -> Op {
    let entries = [lattice_logic::kvstore::Entry::Put { key: b"k".to_vec(), value: b"v".to_vec() }];
    let payload = lattice_logic::kvstore::encode_payload(&entries);
    Op { author: [2; 32], hlc: Hlc { wall_ms: 1, counter: 0 }, prev: ZERO_HASH, causal_deps: vec![], payload }
}

/// A directory of this thread's own for the damaged store.
fn scratch_dir() -> PathBuf {
    let name = format!("lattice-conform-harness-{}-{:?}", std::process::id(), std::thread::current().id());
    let dir = std::env::temp_dir().join(name.replace(['(', ')'], ""));
    std::fs::create_dir_all(&dir).expect("a scratch directory can be made");
    dir
}

/// The golden loader: an accepted golden writes back to the same text.
pub fn golden_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match crate::golden::parse(text, Path::new(JSON_NAME)) {
        Ok(g) => {
            let written = crate::golden::to_text(&g);
            let again = crate::golden::parse(&written, Path::new(JSON_NAME)).expect("a written golden loads");
            assert_eq!(crate::golden::to_text(&again), written, "a golden changed on a write/load round trip");
        }
        Err(e) => assert_names_file(&e, JSON_NAME),
    }
}

/// The certificate loader: an accepted certificate writes back to the same text.
pub fn certificate_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = crate::certify::parse_certificate(text, Path::new(JSON_NAME)) {
        let written = crate::certify::to_text(&c);
        let again = crate::certify::parse_certificate(&written, Path::new(JSON_NAME)).expect("a written certificate loads");
        assert_eq!(crate::certify::to_text(&again), written, "a certificate changed on a write/load round trip");
    }
}

/// Wasm module loading: arbitrary bytes are compiled, checked against the ABI and probed, without
/// the in-process cache (so a long run does not keep every mutant). A module that loads is then
/// asked to apply one op; whatever it does, the host stays up and a rejection changes nothing.
pub fn wasm_module(data: &[u8]) {
    const NAME: &str = "fuzz-input.wasm";
    let module = match crate::wasm::WasmModule::compile_uncached(data, NAME) {
        Ok(m) => Arc::new(m),
        Err(e) => return assert_names_file(&e, NAME),
    };
    let limits = crate::wasm::Limits { fuel_per_op: 10_000_000, ..crate::wasm::Limits::default() };
    let logic: Logic = Arc::new(crate::wasm::WasmLogic::new(module.clone(), limits));
    let identity = StoreIdentity {
        store_id: uuid::Uuid::from_u128(1),
        store_type: module.store_type().into(),
        schema_version: module.schema_version(),
    };
    let mut store = MemStore::new(identity, logic);
    let empty = store.state_hash();
    store.deliver(&first_put());
    if let Some(stall) = store.stall() {
        assert_eq!(store.state_hash(), empty, "a rejected op changed the state");
        if stall.kind == crate::kernel::RejectKind::HostFailure {
            assert!(stall.reason.starts_with("Wasm module "), "a guest failure without its reason: {}", stall.reason);
        }
    }
    assert_eq!(store.recompute(), store.state_hash(), "the incremental hash disagrees with a recompute");
}
