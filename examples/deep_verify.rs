//! Cost of verification of a large store: `open --verify` (recompute the state hash from the
//! tables) and `open --deep` (also read, re-receive and replay the whole log), in release mode.
//!
//! `cargo run --release --example deep_verify -- [OPS] [DIR]` builds DIR (default: a temporary
//! directory) with OPS synthetic `core:kvstore` ops (default 1,000,000; 8 authors, 10,000 keys)
//! unless DIR already holds a store, then times both checks three times each. Peak memory of the
//! command itself: `/usr/bin/time -v target/release/lattice-conform open --deep DIR`.

use std::path::PathBuf;
use std::time::Instant;

use lattice_conform::corpus::synthetic;
use lattice_conform::registry::Registry;
use lattice_conform::store::{Store, StoreReader};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ops: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| tmp.path().join("store"));
    let registry = Registry::with_reference_types();
    if !dir.exists() {
        let id = uuid::Uuid::from_u128(0xdee9);
        let mut store = Store::create(&dir, id, registry.opener("core:kvstore")?.logic())?;
        let all: Vec<_> = synthetic::ops(ops, synthetic::Kind::KvStore, id).collect();
        let t = Instant::now();
        for (i, chunk) in all.chunks(64 * 1024).enumerate() {
            store.apply_ops(chunk, (i * 64 * 1024) as u64)?;
        }
        eprintln!("built {} with {ops} ops in {:.1} s", dir.display(), t.elapsed().as_secs_f64());
    }
    for _ in 0..3 {
        let t = Instant::now();
        StoreReader::open(&dir)?.verify()?;
        let verify = t.elapsed();
        let t = Instant::now();
        let deep = lattice_conform::record::verify_deep(&dir, &registry)?;
        let d = t.elapsed();
        println!(
            "{} log entries: verify {:.3} s, deep {:.3} s ({:.0}k entries/s)",
            deep.log_entries,
            verify.as_secs_f64(),
            d.as_secs_f64(),
            deep.log_entries as f64 / d.as_secs_f64() / 1e3
        );
    }
    Ok(())
}
