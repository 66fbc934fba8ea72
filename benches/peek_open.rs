//! Peek and open latency against store size, beside the bare redb lower bound and the
//! Lattice-style read-write peek. Stores are built once and cached under `target/bench-stores`.
//!
//! Run: `cargo bench --bench peek_open`. Figures are reported in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry, KvStore};
use lattice_conform::op::{op_id, Hlc, Op, ZERO_HASH};
use lattice_conform::registry::Registry;
use lattice_conform::store::{peek_info, Store};
use redb::{ReadableDatabase, TableDefinition};
use uuid::Uuid;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SIZES: [u64; 2] = [1_000, 100_000];

/// A kvstore with `entries` keys: one author, 100 puts per op. Built once per size.
fn store_with(entries: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-stores/kv-{entries}"));
    if dir.join("state.db").exists() {
        return dir;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let store_id = Uuid::from_u128(entries as u128);
    let mut store = Store::create(&dir, store_id, Arc::new(KvStore)).unwrap();
    let mut prev = ZERO_HASH;
    let ops: Vec<Op> = (0..entries / 100)
        .map(|n| {
            let entries: Vec<Entry> =
                (0..100).map(|i| Entry::Put { key: format!("key-{:09}", n * 100 + i).into_bytes(), value: vec![7; 32] }).collect();
            let op =
                Op { author: [1; 32], hlc: Hlc { wall_ms: n, counter: 0 }, prev, causal_deps: vec![], payload: encode_payload(&entries) };
            prev = op_id(&store_id, &op);
            op
        })
        .collect();
    store.apply_ops(&ops, 0).unwrap();
    dir
}

fn peek(c: &mut Criterion) {
    let mut g = c.benchmark_group("peek");
    for entries in SIZES {
        let dir = store_with(entries);
        let state = dir.join("state.db");
        g.bench_with_input(BenchmarkId::new("peek_info", entries), &dir, |b, d| b.iter(|| peek_info(d).unwrap()));
        g.bench_with_input(BenchmarkId::new("bare_read_only", entries), &state, |b, p| {
            b.iter(|| {
                let db = redb::Builder::new().set_concurrency_mode(redb::ConcurrencyMode::SingleWriter).open_read_only(p).unwrap();
                let txn = db.begin_read().unwrap();
                txn.open_table(META).unwrap().get("store_type").unwrap().map(|v| v.value().len())
            })
        });
        g.bench_with_input(BenchmarkId::new("read_write_lattice_style", entries), &state, |b, p| {
            b.iter(|| {
                let db = redb::Builder::new().set_concurrency_mode(redb::ConcurrencyMode::SingleWriter).open(p).unwrap();
                let txn = db.begin_read().unwrap();
                txn.open_table(META).unwrap().get("store_type").unwrap().map(|v| v.value().len())
            })
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let registry = Registry::with_reference_types();
    let mut g = c.benchmark_group("open");
    g.sample_size(20);
    for entries in SIZES {
        let dir = store_with(entries);
        g.bench_with_input(BenchmarkId::new("trusting_stored_hash", entries), &dir, |b, d| {
            b.iter(|| registry.open(d).unwrap().state_hash())
        });
        g.bench_with_input(BenchmarkId::new("verify", entries), &dir, |b, d| b.iter(|| registry.open(d).unwrap().verify().unwrap()));
    }
    g.finish();
}

criterion_group!(benches, peek, open);
criterion_main!(benches);
