//! The fuel a reference guest needs per op, host calls included (docs/WASM_ABI.md §6):
//! `cargo run --release --example wasm_fuel`. For each op, the smallest `fuel_per_op` under which
//! the committed `core:kvstore` guest applies it, found by bisection (fuel is deterministic), and
//! the wall time of one apply at the default limits.

use std::sync::Arc;
use std::time::Instant;

use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry};
use lattice_conform::op::{Hlc, Op, ZERO_HASH};
use lattice_conform::replay::MemStore;
use lattice_conform::store::StoreIdentity;
use lattice_conform::wasm::{Limits, WasmModule, WasmOpener};

fn applies(module: &Arc<WasmModule>, limits: Limits, op: &Op) -> bool {
    let id = StoreIdentity { store_id: uuid::Uuid::from_u128(1), store_type: "core:kvstore".into(), schema_version: 1 };
    let mut store = MemStore::new(id, WasmOpener::new(module.clone(), limits).wasm_logic());
    store.deliver(op);
    store.stall().is_none()
}

fn main() {
    let module = WasmModule::from_file(std::path::Path::new("guests/dist/core-kvstore.wasm")).expect("the committed guest loads");
    let entries = |n: usize, value: usize| -> Vec<Entry> {
        (0..n).map(|i| Entry::Put { key: format!("key-{i:08}").into_bytes(), value: vec![b'v'; value] }).collect()
    };
    let cases = [
        ("one-entry put, 230-byte value", entries(1, 230)),
        ("one-entry put, 1,000,000-byte value", entries(1, 1_000_000)),
        ("1,024-entry batch of 230-byte values", entries(1024, 230)),
        ("4,000-entry batch of 230-byte values (≈ 0.97 MiB)", entries(4000, 230)),
    ];
    println!("| op | payload bytes | fuel needed | of which host calls (est.) | apply at default limits |");
    println!("|---|---|---|---|---|");
    for (name, e) in cases {
        let payload = encode_payload(&e);
        let op = Op { author: [1; 32], hlc: Hlc { wall_ms: 1, counter: 0 }, prev: ZERO_HASH, causal_deps: vec![], payload };
        let (mut lo, mut hi) = (1u64, Limits::DEFAULT_FUEL_PER_OP * 4);
        assert!(applies(&module, Limits { fuel_per_op: hi, ..Limits::default() }, &op), "{name}: does not apply at all");
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if applies(&module, Limits { fuel_per_op: mid, ..Limits::default() }, &op) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let host: u64 = e
            .iter()
            .map(|e| match e {
                Entry::Put { key, value } => 10_000 + 8 * (key.len() + value.len()) as u64 + 2_000 + 2 * key.len() as u64,
                Entry::Delete { key } => 10_000 + 10 * key.len() as u64 + 2_000,
            })
            .sum();
        let start = Instant::now();
        let ok = applies(&module, Limits::default(), &op);
        let t = start.elapsed();
        println!(
            "| {name} | {} | {lo} | ≈ {host} | {} in {:.1} ms |",
            op.payload.len(),
            if ok { "applied" } else { "REJECTED" },
            t.as_secs_f64() * 1e3
        );
    }
}
