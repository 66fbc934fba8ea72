//! Replay throughput (ops/s) of the native reference logics and of their committed Wasm guests
//! on the same synthetic 10k- and 1M-op histories, side by side in one run. In-memory replay
//! (`replay::replay`): the kernel step, the logic and the LtHash, no redb.
//!
//! Run: `cargo bench --bench replay`. Figures are reported in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lattice_conform::corpus::synthetic::{ops, Kind};
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::lattice_logic::logstore::LogStore;
use lattice_conform::op::Op;
use lattice_conform::replay::replay;
use lattice_conform::store::{Logic, StoreIdentity};
use lattice_conform::wasm::{Limits, WasmModule, WasmOpener};
use uuid::Uuid;

fn guest(name: &str) -> Logic {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("guests/dist/{name}.wasm"));
    WasmOpener::new(WasmModule::from_file(&path).expect("the committed guest loads"), Limits::default()).wasm_logic()
}

fn bench_replay(c: &mut Criterion) {
    let store_id = Uuid::from_u128(0x5eed);
    for (kind, store_type, native, wasm) in [
        (Kind::KvStore, "core:kvstore", Arc::new(KvStore) as Logic, guest("core-kvstore")),
        (Kind::LogStore, "core:logstore", Arc::new(LogStore) as Logic, guest("core-logstore")),
    ] {
        let identity = StoreIdentity { store_id, store_type: store_type.into(), schema_version: 1 };
        let mut g = c.benchmark_group(format!("replay/{store_type}"));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
        for n in [10_000u64, 1_000_000] {
            let history: Vec<Op> = ops(n, kind, store_id).collect();
            g.throughput(Throughput::Elements(n));
            for (build, logic) in [("native", &native), ("wasm", &wasm)] {
                g.bench_with_input(BenchmarkId::new(build, n), &history, |b, h| {
                    b.iter(|| {
                        let out = replay(identity.clone(), logic.clone(), h);
                        assert!(out.stall.is_none());
                        out.state_hash
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
