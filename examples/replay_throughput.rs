//! Release-mode measurement of in-memory replay throughput and peak memory on a long history.
//!
//! The history is streamed: ops are made one at a time by `corpus::synthetic` (8 authors
//! round-robin, 10,000 keys, every op superseding the heads it names) and applied at once, so
//! memory holds the store state, never the whole history. The builder's own cost is measured in a
//! separate pass and subtracted.
//!
//! Run: `cargo run --release --example replay_throughput -- [OPS] [kvstore|logstore]`

use std::sync::Arc;
use std::time::Instant;

use lattice_conform::corpus::synthetic::{ops, Kind};
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::lattice_logic::logstore::LogStore;
use lattice_conform::replay::MemStore;
use lattice_conform::store::{Logic, StoreIdentity};
use uuid::Uuid;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok());
    kb.map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |s| s.parse().expect("OPS is a number"));
    let kind = if args.next().as_deref() == Some("logstore") { Kind::LogStore } else { Kind::KvStore };
    let store_id = Uuid::from_u128(1);
    let (logic, store_type): (Logic, &str) =
        if kind == Kind::KvStore { (Arc::new(KvStore), "core:kvstore") } else { (Arc::new(LogStore), "core:logstore") };
    let t = Instant::now();
    let made = ops(n, kind, store_id).count();
    let gen_s = t.elapsed().as_secs_f64();
    let identity = StoreIdentity { store_id, store_type: store_type.into(), schema_version: 1 };
    let mut store = MemStore::new(identity, logic);
    let t = Instant::now();
    for op in ops(n, kind, store_id) {
        store.deliver(&op);
        assert!(store.stall().is_none(), "the synthetic history is valid");
    }
    let total_s = t.elapsed().as_secs_f64();
    let replay_s = (total_s - gen_s).max(f64::EPSILON);
    println!("{store_type}: {made} ops, {} rows; build {gen_s:.2} s, build+replay {total_s:.2} s", store.rows().len());
    println!("replay: {:.0} ops/s (build excluded), {:.0} ops/s (build included)", n as f64 / replay_s, n as f64 / total_s);
    println!("peak RSS: {:.1} MiB; final state hash {}", peak_rss_mib(), store.state_hash());
}
