//! Release-mode measurement of migration throughput and of the five checks, on a kvstore with
//! 100,000 keys (built once under `target/bench-stores/`).
//!
//! Run: `cargo run --release --example migrate_throughput -- [KEYS]`

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry, KvStore};
use lattice_conform::migrate::{self, MigrateOptions};
use lattice_conform::op::{op_id, Hlc, Op, ZERO_HASH};
use lattice_conform::registry::Registry;
use lattice_conform::store::Store;
use uuid::Uuid;

fn source(keys: usize) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-stores/migrate-src-{keys}"));
    if dir.join("state.db").exists() {
        return dir;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let id = Uuid::from_u128(keys as u128);
    let mut prev = ZERO_HASH;
    let ops: Vec<Op> = (0..keys.div_ceil(100))
        .map(|n| {
            let entries: Vec<Entry> = (n * 100..((n + 1) * 100).min(keys))
                .map(|i| Entry::Put { key: format!("key-{i:08}").into_bytes(), value: vec![7; 32] })
                .collect();
            let op = Op {
                author: [1; 32],
                hlc: Hlc { wall_ms: n as u64, counter: 0 },
                prev,
                causal_deps: vec![],
                payload: encode_payload(&entries),
            };
            prev = op_id(&id, &op);
            op
        })
        .collect();
    Store::create(&dir, id, Arc::new(KvStore)).unwrap().apply_ops(&ops, 0).unwrap();
    dir
}

fn main() {
    let keys: usize = std::env::args().nth(1).map_or(100_000, |s| s.parse().expect("KEYS is a number"));
    let src = source(keys);
    let registry = Registry::with_reference_types();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = MigrateOptions::new("core:kvstore-v2");
    opts.target_id = Some(Uuid::from_u128(2));
    let t = Instant::now();
    let o = migrate::migrate(&src, &tmp.path().join("plain"), &opts, None, &registry).unwrap();
    let plain = t.elapsed().as_secs_f64();
    println!("migrate: {} keys, {} ops in {plain:.2} s = {:.0} source keys/s", o.source_keys, o.ops, o.source_keys as f64 / plain);
    let t = Instant::now();
    let (_, checks) = migrate::migrate_checked(&src, &tmp.path().join("checked"), &opts, None, &registry).unwrap();
    let checked = t.elapsed().as_secs_f64();
    assert!(checks.iter().all(|c| c.ok));
    println!("migrate --check (migration + five checks): {checked:.2} s; the checks alone ≈ {:.2} s", checked - plain);
}
