//! Release-mode measurement, side by side in one run: replay throughput of the native logic and
//! of its Wasm guest on the bundled corpus, and open latency through a native opener and through
//! a Wasm opener whose module is already compiled.
//!
//! Run: `cargo run --release --example wasm_speed` (from the repository root).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lattice_conform::corpus::{load_checked, Manifest};
use lattice_conform::history::History;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::lattice_logic::logstore::LogStore;
use lattice_conform::registry::Registry;
use lattice_conform::replay::replay;
use lattice_conform::store::{Logic, Store};
use lattice_conform::wasm::{Limits, WasmModule, WasmOpener};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn opener(guest: &str) -> WasmOpener {
    let module = WasmModule::from_file(&root().join(format!("guests/dist/{guest}.wasm"))).expect("the committed guest loads");
    WasmOpener::new(module, Limits::default())
}

fn replay_speed() {
    let m = Manifest::load(&root().join("corpus"), false).expect("the bundled corpus");
    for (ty, guest, native) in
        [("core:kvstore", "core-kvstore", Arc::new(KvStore) as Logic), ("core:logstore", "core-logstore", Arc::new(LogStore) as Logic)]
    {
        let histories: Vec<History> =
            m.files.iter().filter(|e| e.store_type == ty).map(|e| load_checked(&root().join("corpus"), e).expect("listed")).collect();
        let ops: usize = histories.iter().map(|h| h.ops.len()).sum();
        let wasm: Logic = opener(guest).wasm_logic();
        for round in 0..3 {
            let rate = |logic: &Logic| {
                let start = Instant::now();
                for h in &histories {
                    let id = h.identity();
                    replay(id, logic.clone(), &h.ops);
                }
                ops as f64 / start.elapsed().as_secs_f64()
            };
            let (n, w) = (rate(&native), rate(&wasm));
            println!("{ty} round {round}: {ops} ops; native {n:.0} ops/s, wasm {w:.0} ops/s, wasm/native {:.2}", w / n);
        }
    }
}

fn open_latency() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().join("store");
    let history = History::load(&root().join("examples/kv-example.json")).expect("the example");
    Store::create(&dir, history.store_id, Arc::new(KvStore)).and_then(|mut s| s.apply_ops(&history.ops, 0)).expect("the example applies");
    let mut only_wasm = Registry::default();
    only_wasm.register(Arc::new(opener("core-kvstore")));
    for (name, registry) in [("native", Registry::with_reference_types()), ("wasm (module compiled)", only_wasm)] {
        drop(registry.open(&dir).expect("opens"));
        let start = Instant::now();
        for _ in 0..50 {
            drop(registry.open(&dir).expect("opens"));
        }
        println!("open via {name}: {:?} per open", start.elapsed() / 50);
    }
}

fn main() {
    replay_speed();
    open_latency();
}
