//! Peek and open latency against store size, beside the bare redb lower bound and the
//! Lattice-style read-write peek, warm and cold page cache; open trusting the stored hash, open
//! with a full recompute, and open through a Wasm opener with and without its compiled module.
//! Stores are built once and cached under `target/bench-stores` (closed cleanly).
//!
//! Run: `cargo bench --bench peek_open`. Figures are reported in BENCHMARKS.md.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry, KvStore};
use lattice_conform::op::{op_id, Hlc, Op, ZERO_HASH};
use lattice_conform::registry::Registry;
use lattice_conform::store::{peek_info, Store};
use lattice_conform::wasm::{WasmCache, WasmModule};
use redb::{ReadableDatabase, TableDefinition};
use uuid::Uuid;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A kvstore with `entries` keys: one author, 100 puts per op, 32-byte values. Built once per
/// size, in a temporary directory renamed into place so an interrupted build is never reused.
fn store_with(entries: u64) -> PathBuf {
    let dir = root().join(format!("target/bench-stores/kv-{entries}"));
    if dir.join("state.db").exists() {
        return dir;
    }
    let building = root().join(format!("target/bench-stores/.kv-{entries}.building"));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let store_id = Uuid::from_u128(entries as u128);
    let mut store = Store::create(&building, store_id, Arc::new(KvStore)).unwrap();
    let mut prev = ZERO_HASH;
    for chunk in 0..entries / 100_000 + 1 {
        let ops: Vec<Op> = (chunk * 1000..((chunk + 1) * 1000).min(entries / 100))
            .map(|n| {
                let entries: Vec<Entry> =
                    (0..100).map(|i| Entry::Put { key: format!("key-{:09}", n * 100 + i).into_bytes(), value: vec![7; 32] }).collect();
                let op = Op {
                    author: [1; 32],
                    hlc: Hlc { wall_ms: n, counter: 0 },
                    prev,
                    causal_deps: vec![],
                    payload: encode_payload(&entries),
                };
                prev = op_id(&store_id, &op);
                op
            })
            .collect();
        let first = store.log_len();
        store.apply_ops(&ops, first).unwrap();
    }
    drop(store);
    std::fs::rename(&building, &dir).unwrap();
    dir
}

/// Asks the kernel to drop `path`'s pages from the page cache (they are clean: the store was
/// closed and fsynced), so the next read comes from the device.
fn drop_from_page_cache(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: a plain syscall on a file descriptor that `f` keeps open for the call's duration.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED) failed on {}", path.display());
}

fn bare_read_only(p: &Path) -> Option<usize> {
    let db = redb::Builder::new().set_concurrency_mode(redb::ConcurrencyMode::SingleWriter).open_read_only(p).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(META).unwrap().get("store_type").unwrap().map(|v| v.value().len())
}

fn read_write_lattice_style(p: &Path) -> Option<usize> {
    let db = redb::Builder::new().set_concurrency_mode(redb::ConcurrencyMode::SingleWriter).open(p).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(META).unwrap().get("store_type").unwrap().map(|v| v.value().len())
}

fn peek(c: &mut Criterion) {
    let mut g = c.benchmark_group("peek");
    for entries in SIZES {
        let dir = store_with(entries);
        let state = dir.join("state.db");
        g.bench_with_input(BenchmarkId::new("peek_info", entries), &dir, |b, d| b.iter(|| peek_info(d).unwrap()));
        g.bench_with_input(BenchmarkId::new("bare_read_only", entries), &state, |b, p| b.iter(|| bare_read_only(p)));
        g.bench_with_input(BenchmarkId::new("read_write_lattice_style", entries), &state, |b, p| b.iter(|| read_write_lattice_style(p)));
    }
    g.finish();
}

fn peek_cold(c: &mut Criterion) {
    let mut g = c.benchmark_group("peek_cold");
    g.sample_size(30);
    for entries in SIZES {
        let dir = store_with(entries);
        let state = dir.join("state.db");
        g.bench_with_input(BenchmarkId::new("peek_info", entries), &dir, |b, d| {
            b.iter_batched(|| drop_from_page_cache(&d.join("state.db")), |()| peek_info(d).unwrap(), BatchSize::PerIteration)
        });
        g.bench_with_input(BenchmarkId::new("bare_read_only", entries), &state, |b, p| {
            b.iter_batched(|| drop_from_page_cache(p), |()| bare_read_only(p), BatchSize::PerIteration)
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let registry = Registry::with_reference_types();
    let mut g = c.benchmark_group("open");
    for entries in SIZES {
        let dir = store_with(entries);
        g.bench_with_input(BenchmarkId::new("peek_info", entries), &dir, |b, d| b.iter(|| peek_info(d).unwrap()));
        g.bench_with_input(BenchmarkId::new("read_only_trusting_stored_hash", entries), &dir, |b, d| {
            b.iter(|| registry.open_read_only(d).unwrap().reader.state_hash())
        });
        g.bench_with_input(BenchmarkId::new("read_write", entries), &dir, |b, d| b.iter(|| registry.open(d).unwrap().state_hash()));
    }
    g.finish();

    let mut g = c.benchmark_group("open_verify");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    for entries in SIZES {
        let dir = store_with(entries);
        g.throughput(Throughput::Elements(entries));
        g.bench_with_input(BenchmarkId::new("read_only_recompute", entries), &dir, |b, d| {
            b.iter(|| registry.open_read_only(d).unwrap().reader.verify().unwrap())
        });
    }
    g.finish();
}

/// Opens through a registry that knows `core:kvstore` only as a module in a Wasm cache: with the
/// module already compiled in this process, and with the compiled-module cache emptied first.
fn open_wasm(c: &mut Criterion) {
    let dir = store_with(SIZES[0]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = WasmCache::new(tmp.path());
    cache.add(&std::fs::read(root().join("guests/dist/core-kvstore.wasm")).unwrap(), "core-kvstore.wasm").unwrap();
    let wasm = Registry::default().with_wasm_cache(cache);
    let native = Registry::with_reference_types();
    let mut g = c.benchmark_group("open_wasm");
    g.bench_function("native", |b| b.iter(|| native.open_read_only(&dir).unwrap().reader.state_hash()));
    g.bench_function("wasm_module_compiled", |b| b.iter(|| wasm.open_read_only(&dir).unwrap().reader.state_hash()));
    g.sample_size(10);
    g.bench_function("wasm_module_not_compiled", |b| {
        b.iter_batched(WasmModule::clear_compiled, |()| wasm.open_read_only(&dir).unwrap().reader.state_hash(), BatchSize::PerIteration)
    });
    g.finish();
}

criterion_group!(benches, peek, peek_cold, open, open_wasm);
criterion_main!(benches);
