//! Wasm builds: the committed guests reproduce the native hashes (example, corpus, generated
//! histories), the faulty guest diverges where it must, hostile modules are refused or rolled back
//! with a clear reason in bounded time, and the open flow resolves through the Wasm cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lattice_conform::build::{BuildError, BuildSpec};
use lattice_conform::history::History;
use lattice_conform::kernel::RejectKind;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::lattice_logic::logstore::LogStore;
use lattice_conform::op::{Op, OpId};
use lattice_conform::registry::{Registry, RegistryError};
use lattice_conform::replay::{replay, MemStore};
use lattice_conform::store::{Logic, Store, StoreIdentity};
use lattice_conform::verify::{self, Report, VerifyOptions};
use lattice_conform::wasm::{Digest, Limits, WasmCache, WasmError, WasmLogic, WasmModule, WasmOpener};
use proptest::prelude::*;
use uuid::Uuid;

use crate::gen::{author, delete, put, Chains};
use crate::util::{fixtures, run, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dist(name: &str) -> PathBuf {
    root().join("guests/dist").join(format!("{name}.wasm"))
}

/// A committed guest (compiled once per test binary: the module cache is process-wide).
fn module(name: &str) -> Arc<WasmModule> {
    WasmModule::from_file(&dist(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn wasm(name: &str) -> Arc<WasmLogic> {
    WasmOpener::new(module(name), Limits::default()).wasm_logic()
}

fn identity(store_type: &str) -> StoreIdentity {
    StoreIdentity { store_id: Uuid::from_u128(0x6c61_7474), store_type: store_type.to_string(), schema_version: 1 }
}

/// The guest was stopped, not left to run: a bound against hangs (the default fuel takes about a
/// second to burn on a quiet machine; a loaded 2-core CI machine can take several times that), not
/// a speed goal — those are measured in BENCHMARKS.md.
fn elapsed_ok(start: Instant) {
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
}

// ---- the committed guests ------------------------------------------------------------------

#[test]
fn committed_guests_match_their_digest_file_and_declare_their_types() {
    let digests = std::fs::read_to_string(root().join("guests/dist/DIGESTS")).unwrap();
    let mut names = Vec::new();
    for line in digests.lines() {
        let (digest, name) = line.split_once("  ").expect("b3sum format");
        let bytes = std::fs::read(root().join("guests/dist").join(name)).unwrap();
        assert_eq!(Digest::of(&bytes).to_string(), digest, "{name}");
        names.push(name.trim_end_matches(".wasm").to_string());
    }
    let expected = [
        ("core-kvstore", "core:kvstore"),
        ("core-kvstore-small", "core:kvstore"),
        ("core-kvstore-forget-one-head", "core:kvstore"),
        ("core-logstore", "core:logstore"),
    ];
    for (name, ty) in expected {
        assert!(names.iter().any(|n| n == name), "{name} missing from DIGESTS");
        let m = module(name);
        assert_eq!((m.store_type(), m.schema_version()), (ty, 1), "{name}");
    }
    assert_ne!(module("core-kvstore").digest(), module("core-kvstore-small").digest(), "built differently, so different bytes");
}

#[test]
fn native_and_wasm_agree_on_the_example_history() {
    let h = History::load(&root().join("examples/kv-example.json")).unwrap();
    let id = h.identity();
    let native = replay(id.clone(), Arc::new(KvStore), &h.ops);
    for name in ["core-kvstore", "core-kvstore-small"] {
        assert_eq!(replay(id.clone(), wasm(name), &h.ops), native, "{name}");
    }
    assert!(native.counts.applied > 0 && native.stall.is_none());
}

#[test]
fn a_store_on_disk_applied_through_wasm_has_the_native_hash() {
    let h = History::load(&root().join("examples/kv-example.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    for (dir, logic) in [("native", Arc::new(KvStore) as Logic), ("wasm", wasm("core-kvstore"))] {
        let mut s = Store::create(&tmp.path().join(dir), h.store_id, logic).unwrap();
        s.apply_ops(&h.ops, 0).unwrap();
        s.verify().unwrap();
        hashes.push(s.state_hash());
    }
    assert_eq!(hashes[0], hashes[1]);
}

fn verify_report(build: BuildSpec, store_type: &str, registry: &Registry) -> Report {
    let opts =
        VerifyOptions { build, store_type: Some(store_type.to_string()), keep_going: true, jobs: 2, ..VerifyOptions::new(fixtures()) };
    verify::verify(&opts, registry).unwrap()
}

#[test]
fn every_reference_guest_passes_verify_on_the_whole_bundled_corpus() {
    let registry = Registry::with_reference_types();
    for (name, ty) in [("core-kvstore", "core:kvstore"), ("core-kvstore-small", "core:kvstore"), ("core-logstore", "core:logstore")] {
        let report = verify_report(BuildSpec::WasmFile(dist(name)), ty, &registry);
        assert_eq!(report.failed(), 0, "{name}: {:?}", report.results.iter().find(|r| r.failure.is_some()));
        assert!(report.passed() >= 40 && report.not_run.is_empty(), "{name}: {} passed", report.passed());
    }
}

#[test]
fn the_forget_one_head_guest_fails_verify_exactly_where_the_native_fault_does() {
    let registry = Registry::with_reference_types();
    let guest = verify_report(BuildSpec::WasmFile(dist("core-kvstore-forget-one-head")), "core:kvstore", &registry);
    let native = verify_report(BuildSpec::NativeFault("forget-one-head".into()), "core:kvstore", &registry);
    assert!(guest.failed() > 0, "the faulty guest must fail somewhere");
    let failures = |r: &Report| r.results.iter().map(|x| (x.id.clone(), x.failure.clone())).collect::<Vec<_>>();
    assert_eq!(failures(&guest), failures(&native), "same histories fail, at the same first divergent op, with the same diff");
    assert!(guest.results.iter().filter_map(|r| r.failure.as_ref()).all(|f| f.divergence.is_some()));
}

#[test]
fn the_forget_one_head_guest_diverges_at_the_merge_of_two_heads() {
    let (ops, merge) = merge_history();
    let id = identity("core:kvstore");
    let diverges_at = (1..=ops.len())
        .find(|&n| replay(id.clone(), Arc::new(KvStore), &ops[..n]) != replay(id.clone(), wasm("core-kvstore-forget-one-head"), &ops[..n]));
    assert_eq!(diverges_at, Some(merge + 1), "the first differing prefix ends with the merge op");
}

/// Two authors write `k` concurrently, a third supersedes both heads; returns (ops, merge index).
fn merge_history() -> (Vec<Op>, usize) {
    let mut c = Chains::new(identity("core:kvstore").store_id);
    let (a, ida) = c.next(author(1), 10, vec![], put(b"k", b"a"));
    let (b, idb) = c.next(author(2), 10, vec![], put(b"k", b"b"));
    let (other, _) = c.next(author(1), 11, vec![], put(b"j", b"x"));
    let (merge, _) = c.next(author(3), 12, vec![ida, idb], put(b"k", b"c"));
    let (after, _) = c.next(author(2), 13, vec![], delete(b"j"));
    (vec![a, b, other, merge, after], 3)
}

// ---- generated histories ---------------------------------------------------------------------

/// One step: (author, key, kind: 0 put / 1 delete / 2 garbage payload, supersede known heads).
type Step = (u8, u8, u8, bool);

fn kv_history(steps: &[Step], store_id: Uuid) -> Vec<Op> {
    let mut chains = Chains::new(store_id);
    let mut heads: std::collections::BTreeMap<u8, Vec<OpId>> = Default::default();
    let mut ops = Vec::new();
    for (i, &(a, k, kind, supersede)) in steps.iter().enumerate() {
        let key = [b'k', k];
        let payload = match kind {
            0 => put(&key, &[i as u8; 3]),
            1 => delete(&key),
            _ => vec![k, i as u8],
        };
        let deps = if supersede { heads.remove(&k).unwrap_or_default() } else { Vec::new() };
        let (op, id) = chains.next(author(a), (i / 2) as u64, deps, payload);
        heads.entry(k).or_default().push(id);
        ops.push(op);
    }
    ops
}

fn log_history(entries: &[(u8, Vec<u8>)], store_id: Uuid) -> Vec<Op> {
    let mut chains = Chains::new(store_id);
    entries.iter().enumerate().map(|(i, (a, p))| chains.next(author(*a), (i / 3) as u64, vec![], p.clone()).0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn wasm_kvstore_replays_generated_histories_like_native(
        steps in prop::collection::vec((0u8..4, 0u8..5, prop::sample::select(vec![0u8, 0, 0, 1, 1, 2]), any::<bool>()), 1..48)
    ) {
        let id = identity("core:kvstore");
        let ops = kv_history(&steps, id.store_id);
        let native = replay(id.clone(), Arc::new(KvStore), &ops);
        prop_assert_eq!(&replay(id.clone(), wasm("core-kvstore"), &ops), &native);
        prop_assert_eq!(&replay(id, wasm("core-kvstore-small"), &ops), &native);
    }

    #[test]
    fn wasm_logstore_replays_generated_histories_like_native(
        entries in prop::collection::vec((0u8..3, prop::collection::vec(any::<u8>(), 0..40)), 1..40)
    ) {
        let id = identity("core:logstore");
        let ops = log_history(&entries, id.store_id);
        prop_assert_eq!(replay(id.clone(), wasm("core-logstore"), &ops), replay(id, Arc::new(LogStore), &ops));
    }
}

// ---- hostile modules -------------------------------------------------------------------------

/// A WAT guest of type `test:ids` (each op puts its id with an empty value) with `apply` replaced.
fn guest_wat(apply_body: &str, alloc_body: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "lattice_table" "get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "lattice_table" "put" (func $put (param i32 i32 i32 i32)))
  {extra}
  (memory (export "memory") 1)
  (data (i32.const 16) "test:ids")
  (data (i32.const 32) "guest says no")
  (func (export "lattice_abi_version") (result i32) (i32.const 3))
  (func (export "lattice_store_type") (result i64) (i64.const 0x0000000800000010))
  (func (export "lattice_schema_version") (result i64) (i64.const 1))
  (func (export "lattice_alloc") (param $len i32) (result i32) {alloc_body})
  (func (export "lattice_apply") (param $ptr i32) (param $len i32) (result i32) {apply_body})
  (func (export "lattice_observe") (param i32 i32) (result i32) (i32.const 1))
  (func (export "lattice_message") (result i64) (i64.const 0x0000000d00000020)))"#
    );
    wat::parse_str(text).expect("test WAT parses")
}

const PUT_ID: &str = "(call $put (local.get $ptr) (i32.const 32) (local.get $ptr) (i32.const 0)) (i32.const 0)";
const ALLOC: &str = "(i32.const 1024)";

/// The well-behaved `test:ids` guest, except that an op whose payload ends in 0xff traps.
fn ids_guest() -> Vec<u8> {
    let trap_on_ff = "(if (i32.eq (i32.load8_u (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.const 1))) (i32.const 255)) (then unreachable))";
    guest_wat(&format!("{trap_on_ff} {PUT_ID}"), ALLOC, "")
}

fn load(bytes: &[u8]) -> Result<Arc<WasmModule>, WasmError> {
    WasmModule::from_bytes(bytes, "test.wasm")
}

fn load_err(bytes: &[u8]) -> String {
    let start = Instant::now();
    let e = load(bytes).expect_err("the module must be refused");
    elapsed_ok(start);
    e.to_string()
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    assert_eq!(
        load_err(b"hello, not a module"),
        "test.wasm: not a WebAssembly module (it does not start with the `\\0asm` magic and version 1)"
    );
    let msg = load_err(b"\0asm\x01\0\0\0\xff\xff\xff");
    assert!(msg.starts_with("test.wasm: invalid WebAssembly module:"), "{msg}");
}

#[test]
fn a_missing_export_is_refused_naming_it() {
    let no_apply =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "lattice_abi_version") (result i32) (i32.const 3)))"#)
            .unwrap();
    let msg = load_err(&no_apply);
    assert_eq!(msg, "test.wasm: missing export `lattice_store_type` (ABI v3 requires func () -> (i64))");
    let no_memory = wat::parse_str("(module)").unwrap();
    assert_eq!(load_err(&no_memory), "test.wasm: missing export `memory` (ABI v3 requires a 32-bit unshared memory)");
}

#[test]
fn an_export_with_the_wrong_signature_is_refused() {
    let wrong = wat::parse_str(
        r#"(module (memory (export "memory") 1)
  (func (export "lattice_abi_version") (result i32) (i32.const 3))
  (func (export "lattice_store_type") (result i64) (i64.const 0))
  (func (export "lattice_schema_version") (result i64) (i64.const 1))
  (func (export "lattice_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "lattice_apply") (param i32) (result i32) (i32.const 0))
  (func (export "lattice_message") (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(load_err(&wrong), "test.wasm: export `lattice_apply` is func (i32) -> (i32); ABI v3 requires func (i32, i32) -> (i32)");
}

#[test]
fn an_extra_import_is_refused_naming_it() {
    let wasi = guest_wat(PUT_ID, ALLOC, r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#);
    let msg = load_err(&wasi);
    assert!(msg.starts_with("test.wasm: imports `wasi_snapshot_preview1`.`fd_write`; a guest may import only"), "{msg}");
    let memory = guest_wat(PUT_ID, ALLOC, r#"(import "lattice_table" "scratch" (global i32))"#);
    assert!(load_err(&memory).contains("imports `lattice_table`.`scratch`"));
    let bad_sig = wat::parse_str(r#"(module (import "lattice_table" "delete" (func (param i32))))"#).unwrap();
    assert_eq!(
        load_err(&bad_sig),
        "test.wasm: import `lattice_table`.`delete` has type func (i32) -> (); ABI v3 requires func (i32, i32) -> ()"
    );
}

#[test]
fn a_start_function_that_never_ends_is_stopped_by_fuel_at_load() {
    let msg = load_err(&guest_wat(PUT_ID, ALLOC, "(func $spin (loop $l (br $l))) (start $spin)"));
    assert!(msg.contains("instantiation failed: out of fuel: "), "{msg}");
}

#[test]
fn a_module_declaring_another_abi_version_or_a_bad_type_name_is_refused() {
    let text = |abi: &str, ty: &str| {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
  (func (export "lattice_abi_version") (result i32) (i32.const {abi}))
  (func (export "lattice_store_type") (result i64) (i64.const {ty}))
  (func (export "lattice_schema_version") (result i64) (i64.const 1))
  (func (export "lattice_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "lattice_apply") (param i32 i32) (result i32) (i32.const 0))
  (func (export "lattice_observe") (param i32 i32) (result i32) (i32.const 1))
  (func (export "lattice_message") (result i64) (i64.const 0)))"#
        ))
        .unwrap()
    };
    assert_eq!(load_err(&text("2", "0x0000000400000010")), "test.wasm: implements guest ABI version 2; this host supports version 3");
    let msg = load_err(&text("3", "0x00000010fffffff0"));
    assert!(msg.contains("lattice_store_type: bytes 4294967280..4294967296 are outside the guest memory"), "{msg}");
}

/// Applies one genesis op (payload `payload`) through `logic` in memory: the rejection, and
/// whether the store is exactly as before.
fn apply_hostile(logic: Arc<WasmLogic>, payload: Vec<u8>) -> (RejectKind, String) {
    let id = StoreIdentity { store_type: logic.module().store_type().to_string(), ..identity("x") };
    let mut store = MemStore::new(id, logic.clone());
    let before = store.state_hash();
    let (op, _) = Chains::new(store_rows_id()).next(author(1), 1, vec![], payload);
    let start = Instant::now();
    store.deliver(&op);
    elapsed_ok(start);
    let rejection = store.stall().expect("the op must be refused").clone();
    assert_eq!((store.state_hash(), store.rows().len()), (before, 0), "the refused op changed nothing");
    let reason = logic.last_failure().unwrap_or_else(|| rejection.reason.clone());
    (rejection.kind, reason)
}

fn store_rows_id() -> Uuid {
    identity("x").store_id
}

fn hostile(apply_body: &str, alloc_body: &str) -> Arc<WasmLogic> {
    WasmOpener::new(load(&guest_wat(apply_body, alloc_body, "")).unwrap(), Limits::default()).wasm_logic()
}

#[test]
fn an_infinite_loop_in_apply_runs_out_of_fuel() {
    let (kind, reason) = apply_hostile(hostile("(loop $l (br $l)) (i32.const 0)", ALLOC), vec![1]);
    assert_eq!(kind, RejectKind::HostFailure);
    assert!(reason.contains("lattice_apply: out of fuel: the call needed more than the limit of 1000000000 units"), "{reason}");
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let bomb = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 64)) (i32.const -1)))) (i32.const 0)";
    let (kind, reason) = apply_hostile(hostile(bomb, ALLOC), vec![1]);
    assert_eq!(kind, RejectKind::HostFailure);
    assert!(reason.contains("lattice_apply: memory cap: the guest tried to grow its memory from"), "{reason}");
    assert!(reason.contains(&format!("the cap is {} bytes", Limits::DEFAULT_MEMORY_BYTES)), "{reason}");
}

#[test]
fn a_trap_in_apply_is_reported_and_the_next_op_gets_a_fresh_instance() {
    let logic = WasmOpener::new(load(&ids_guest()).unwrap(), Limits::default()).wasm_logic();
    let (kind, reason) = apply_hostile(logic.clone(), vec![0xff]);
    assert_eq!(kind, RejectKind::HostFailure);
    assert!(reason.contains("lattice_apply: trap: wasm `unreachable` instruction executed"), "{reason}");
    // The same logic (and so the same instance slot) serves a second store after the trap.
    let mut store = MemStore::new(identity("test:ids"), logic);
    let (good, id) = Chains::new(store_rows_id()).next(author(1), 1, vec![], vec![1]);
    store.deliver(&good);
    assert!(store.stall().is_none());
    assert_eq!(store.rows().keys().collect::<Vec<_>>(), vec![&id.to_vec()]);
}

#[test]
fn an_allocation_larger_than_the_cap_is_refused() {
    // Payloads stay under Lattice's 1 MiB limit (a larger op is refused on arrival, before any
    // guest runs), so the caps are set below the op size instead.
    let tiny = Limits { memory_bytes: 256 << 10, ..Limits::default() };
    let (_, reason) = apply_hostile(WasmOpener::new(load(&guest_wat(PUT_ID, ALLOC, "")).unwrap(), tiny).wasm_logic(), vec![7; 300 << 10]);
    assert!(
        reason.ends_with("lattice_alloc: memory cap: the op (307317 bytes) is larger than the guest memory cap (262144 bytes)"),
        "{reason}"
    );
    let small = Limits { memory_bytes: 1536 << 10, ..Limits::default() };
    let kv = |limits| WasmOpener::new(module("core-kvstore"), limits).wasm_logic();
    let (_, reason) = apply_hostile(kv(small), put(b"big", &vec![7; 1000 << 10]));
    assert!(reason.contains("lattice_alloc: memory cap: the guest tried to grow"), "{reason}");
    let (_, reason) = apply_hostile(hostile(PUT_ID, "(i32.const 0xfffff000)"), vec![1]);
    assert!(reason.contains("lattice_alloc: bad result: returned an unusable buffer: bytes 4294963200.."), "{reason}");
    let (_, reason) = apply_hostile(hostile(PUT_ID, "(i32.const 0)"), vec![1]);
    assert!(reason.contains("lattice_alloc: bad result: the guest could not allocate"), "{reason}");
}

#[test]
fn out_of_range_pointers_passed_to_the_host_trap_the_op() {
    let put_far = "(call $put (i32.const 0xfffffff0) (i32.const 100) (local.get $ptr) (i32.const 0)) (i32.const 0)";
    let (kind, reason) = apply_hostile(hostile(put_far, ALLOC), vec![1]);
    assert_eq!(kind, RejectKind::HostFailure);
    assert!(reason.contains("the guest passed an out-of-range key to lattice_table.put: bytes 4294967280..4294967380"), "{reason}");
    let get_far = "(drop (call $get (local.get $ptr) (i32.const 32) (i32.const 65000) (i32.const 4096))) (i32.const 0)";
    let (_, reason) = apply_hostile(hostile(get_far, ALLOC), vec![1]);
    assert!(reason.contains("out-of-range destination buffer to lattice_table.get: bytes 65000..69096"), "{reason}");
}

#[test]
fn guest_status_codes_map_to_reject_kinds() {
    let (kind, reason) = apply_hostile(hostile("(i32.const 1)", ALLOC), vec![1]);
    assert_eq!((kind, reason.as_str()), (RejectKind::MalformedPayload, "guest says no"));
    let (kind, _) = apply_hostile(hostile("(i32.const 2)", ALLOC), vec![1]);
    assert_eq!(kind, RejectKind::CorruptState);
    let (kind, reason) = apply_hostile(hostile("(i32.const 5)", ALLOC), vec![1]);
    assert_eq!((kind, reason.as_str()), (RejectKind::Refused, "guest says no"));
    let (kind, reason) = apply_hostile(hostile("(i32.const 7)", ALLOC), vec![1]);
    assert_eq!(kind, RejectKind::HostFailure);
    assert!(reason.ends_with("lattice_apply returned status 7: guest says no"), "{reason}");
}

#[test]
fn a_trapping_op_on_disk_is_rolled_back_and_stalls_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let logic = WasmOpener::new(load(&ids_guest()).unwrap(), Limits::default()).wasm_logic();
    let mut s = Store::create(&tmp.path().join("s"), store_rows_id(), logic.clone()).unwrap();
    let mut c = Chains::new(store_rows_id());
    let (ok, _) = c.next(author(1), 1, vec![], vec![1]);
    s.apply_ops(std::slice::from_ref(&ok), 0).unwrap();
    let hash = s.state_hash();
    let (bad, _) = c.next(author(1), 2, vec![], vec![0xff]);
    let stalled = s.apply_ops(&[bad], 1).unwrap().stalled.expect("the trap stalls projection");
    assert_eq!((stalled.op_index, stalled.kind), (1, RejectKind::HostFailure));
    assert!(matches!(s.paused(), Some(p) if p.op_index == 1));
    assert!(logic.last_failure().unwrap().contains("lattice_apply: trap: wasm `unreachable`"));
    assert!(stalled.reason.contains("lattice_apply: trap: wasm `unreachable`"), "the stall says why: {}", stalled.reason);
    assert_eq!((s.state_hash(), s.log_len()), (hash, 2), "the refused op is logged, its writes rolled back");
    s.verify().unwrap();
}

// ---- content-addressed blobs, registry, open flow ---------------------------------------------

#[test]
fn a_blob_whose_digest_does_not_match_its_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = WasmCache::new(tmp.path());
    // A module of its own (the logstore guest plus a custom section), so that no other test in
    // this process has it compiled: a compiled module is served by digest without reading the blob.
    let mut bytes = std::fs::read(dist("core-logstore")).unwrap();
    bytes.extend_from_slice(&[0, 13, 1, b'x']);
    bytes.extend_from_slice(b"digest-test");
    let log = cache.add(&bytes, "core-logstore+section.wasm").unwrap();
    let digest: Digest = log.entry.digest.parse().unwrap();
    assert!(WasmModule::compiled(&digest).is_some(), "add compiles the module");
    WasmModule::clear_compiled();
    std::fs::write(cache.blob_path(&digest), std::fs::read(dist("core-kvstore")).unwrap()).unwrap();
    let start = Instant::now();
    let err = cache.load(&digest).unwrap_err();
    elapsed_ok(start);
    assert!(matches!(err, WasmError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&format!("but it is stored as {digest}; refusing it")), "{err}");
    let registry = Registry::default().with_wasm_cache(cache);
    let via_registry = registry.resolve(&identity("core:logstore")).err().unwrap();
    assert!(matches!(via_registry, RegistryError::Wasm { source, .. } if matches!(*source, WasmError::DigestMismatch { .. })));
}

#[test]
fn the_cache_stores_blobs_by_digest_and_registers_them_by_type() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = WasmCache::new(tmp.path());
    let kv = std::fs::read(dist("core-kvstore")).unwrap();
    let first = cache.add(&kv, "a").unwrap();
    assert_eq!(first.entry.digest, Digest::of(&kv).to_string());
    assert_eq!(first.replaced, None);
    let small = cache.add(&std::fs::read(dist("core-kvstore-small")).unwrap(), "b").unwrap();
    assert_eq!(small.replaced, Some(first.entry.digest.clone()));
    assert_eq!(cache.entries().unwrap(), vec![small.entry.clone()]);
    assert!(cache.blob_path(&Digest::of(&kv)).exists(), "old blobs stay addressable by digest");
    let registry_file = std::fs::read_to_string(tmp.path().join("registry.json")).unwrap();
    assert!(registry_file.starts_with("{\n  \"format\": \"lattice-conform/wasm-registry\",\n  \"format_version\": 1,"), "{registry_file}");
    let refused = cache.add(b"junk", "junk.wasm").unwrap_err();
    assert!(matches!(refused, WasmError::NotWasm { .. }));
}

#[test]
fn build_specs_load_wasm_files_and_digests_and_refuse_another_store_type() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = WasmCache::new(tmp.path());
    let digest = cache.add(&std::fs::read(dist("core-kvstore")).unwrap(), "kv").unwrap().entry.digest;
    let registry = Registry::with_reference_types().with_wasm_cache(cache);
    let cas: BuildSpec = format!("cas:{digest}").parse().unwrap();
    assert_eq!(cas.logic("core:kvstore", &registry).unwrap().store_type(), "core:kvstore");
    let file: BuildSpec = dist("core-logstore").to_str().unwrap().parse().unwrap();
    assert_eq!(file.logic("core:logstore", &registry).unwrap().store_type(), "core:logstore");
    let err = file.logic("core:kvstore", &registry).err().unwrap();
    assert!(matches!(&err, BuildError::Wasm { source, .. } if matches!(**source, WasmError::WrongStoreType { .. })), "{err:?}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.ends_with("core-logstore.wasm: declares store type `core:logstore`, but it was asked to run `core:kvstore`"), "{chain}");
    let missing: BuildSpec = format!("cas:{}", "0".repeat(64)).parse().unwrap();
    assert!(
        matches!(missing.logic("core:kvstore", &registry), Err(BuildError::Wasm { source, .. }) if matches!(*source, WasmError::MissingBlob { .. }))
    );
}

/// A native-built store of the example history, for opening through Wasm.
fn example_store(tmp: &Path) -> (PathBuf, lattice_conform::hash::StateHash) {
    let h = History::load(&root().join("examples/kv-example.json")).unwrap();
    let dir = tmp.join("store");
    let mut s = Store::create(&dir, h.store_id, Arc::new(KvStore)).unwrap();
    s.apply_ops(&h.ops, 0).unwrap();
    (dir.clone(), s.state_hash())
}

#[test]
fn the_open_flow_uses_a_wasm_opener_when_no_native_one_is_registered() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, hash) = example_store(tmp.path());
    let mut only_wasm = Registry::default();
    only_wasm.register(Arc::new(WasmOpener::new(module("core-kvstore"), Limits::default())));
    assert_eq!(only_wasm.opener("core:kvstore").unwrap().describe(), format!("wasm {}", module("core-kvstore").digest()));
    let s = only_wasm.open(&dir).unwrap();
    assert_eq!(s.state_hash(), hash);
    s.verify().unwrap();
    drop(s);

    let cache = WasmCache::new(tmp.path().join("cache"));
    let via_cache = Registry::default().with_wasm_cache(cache.clone());
    assert!(matches!(via_cache.open(&dir), Err(lattice_conform::registry::OpenError::Resolve { .. })), "nothing registered yet");
    cache.add(&std::fs::read(dist("core-kvstore")).unwrap(), "kv").unwrap();
    assert_eq!(via_cache.open(&dir).unwrap().state_hash(), hash);
}

// ---- the command line -----------------------------------------------------------------------

fn run_env(cache: &Path, args: &[&std::ffi::OsStr]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
        .current_dir(fixtures())
        .env("LATTICE_WASM_CACHE", cache)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Arguments of mixed types (`&str`, `&PathBuf`, `&String`) as one `&[&OsStr]`.
macro_rules! os {
    ($($a:expr),*) => { &[$(std::ffi::OsStr::new($a)),*] };
}

#[test]
fn cli_wasm_add_list_digest_and_open_a_store_of_a_wasm_only_type() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, guest, dir, hist) =
        (tmp.path().join("cache"), tmp.path().join("ids.wasm"), tmp.path().join("s"), tmp.path().join("h.json"));
    std::fs::write(&guest, ids_guest()).unwrap();
    let digest = Digest::of(&ids_guest()).to_string();
    let added = run(os!("wasm", "add", &guest, "--cache", &cache)).expect(0);
    assert_eq!(added.stdout, format!("added test:ids schema 1: {digest}\n"));
    let listed = run_env(&cache, os!("wasm", "list")).expect(0);
    assert_eq!(listed.stdout, format!("test:ids  1  {digest}\n"));
    let digested = run(os!("wasm", "digest", &guest)).expect(0);
    assert_eq!(digested.stdout, format!("{digest}  {}\n", guest.display()));

    let mut c = Chains::new(store_rows_id());
    let ops = (0..3).map(|i| c.next(author(1), i, vec![], vec![i as u8]).0).collect();
    let h = History {
        store_id: store_rows_id(),
        store_type: "test:ids".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    };
    std::fs::write(&hist, h.to_json()).unwrap();
    run_env(&cache, os!("apply", &dir, &hist, "--create")).expect(0);
    let open = run_env(&cache, os!("open", &dir, "--verify")).expect(0);
    assert!(open.stdout.contains("store_type:     test:ids") && open.stdout.contains("ops:            3"), "{}", open.stdout);
    let without = run(os!("open", &dir)).expect(2);
    assert!(without.stderr.contains("no opener for store type `test:ids`"), "{}", without.stderr);
    let no_cache = run(os!("wasm", "list")).expect(2);
    assert!(no_cache.stderr.contains("no Wasm cache directory: pass --cache DIR or set $LATTICE_WASM_CACHE"), "{}", no_cache.stderr);
}

#[test]
fn cli_verify_accepts_wasm_paths_and_digests_for_every_reference_type() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for (name, ty) in [("core-kvstore", "core:kvstore"), ("core-logstore", "core:logstore")] {
        let path = dist(name);
        run_env(&cache, os!("verify", "--type", ty, "--build", &path)).expect(0);
        run_env(&cache, os!("wasm", "add", &path)).expect(0);
        let cas = format!("cas:{}", module(name).digest());
        let out = run_env(&cache, os!("verify", "--type", ty, "--build", &cas)).expect(0);
        assert!(out.stdout.contains(&format!("build {cas}: ")) && out.stdout.contains(" 0 failed"), "{}", out.stdout);
    }
    let faulty = dist("core-kvstore-forget-one-head");
    let out = run_env(&cache, os!("verify", "--type", "core:kvstore", "--build", &faulty)).expect(1);
    assert!(out.stdout.contains("first divergent op: #"), "{}", out.stdout);
    let wrong = run_env(&cache, os!("verify", "--type", "core:kvstore", "--build", &dist("core-logstore"))).expect(2);
    assert!(wrong.stderr.contains("declares store type `core:logstore`, but it was asked to run `core:kvstore`"), "{}", wrong.stderr);
}
