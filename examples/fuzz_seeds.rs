//! Writes the fuzz seeds under `fuzz/seeds/<target>/` from real inputs: the example history, its
//! ops' encodings and payloads, a golden, a certificate made by certifying the native build
//! against its guest, both files of a small store, and two committed guests.
//! Deterministic; rerun after a format change: `cargo run --example fuzz_seeds`.

use std::path::Path;
use std::sync::Arc;

use lattice_conform::certify::{self, CertifyOptions, Verdict};
use lattice_conform::history::History;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::lattice_logic::kvstore_v2::{encode_payload, Entry};
use lattice_conform::registry::Registry;
use lattice_conform::store::Store;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&dir).expect("the seeds directory can be made");
    std::fs::write(dir.join(name), bytes).expect("a seed can be written");
}

fn main() {
    let example = root().join("examples/kv-example.json");
    write("history_json", "kv-example.json", &std::fs::read(&example).unwrap());
    let history = History::load(&example).expect("the example loads");
    for (i, op) in history.ops.iter().enumerate().take(4) {
        write("op_decode", &format!("example-op-{i}"), &op.encode());
        write("payload_kvstore", &format!("example-op-{i}"), &op.payload);
    }
    write("payload_logstore", "empty", b"");
    write("payload_logstore", "text", b"an entry");
    let v2 = [Entry::Set { key: b"k".to_vec(), value: b"v".to_vec(), conflicts: 2 }, Entry::Remove { key: b"gone".to_vec() }];
    write("payload_kvstore_v2", "set-remove", &encode_payload(&v2));

    let golden = root().join("golden/core__kvstore/bad-genesis-s1-015.json");
    write("golden_json", "bad-genesis-s1-015.json", &std::fs::read(golden).unwrap());

    let opts = CertifyOptions {
        store_type: "core:kvstore".into(),
        baseline: "native".parse().unwrap(),
        candidate: root().join("guests/dist/core-kvstore.wasm").display().to_string().parse().unwrap(),
        corpora: vec![root().join("corpus")],
        cases: 4,
        seed: 1,
        max_ops: 8,
        orders: 2,
    };
    match certify::certify(&opts, &Registry::with_reference_types()).expect("certify runs") {
        Verdict::Equivalent(c) => write("certificate_json", "native-vs-guest.json", certify::to_text(&c).as_bytes()),
        Verdict::Diverged { .. } => panic!("the committed guest diverges from native"),
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut store = Store::create(&dir, history.store_id, Arc::new(KvStore)).unwrap();
    store.apply_ops(&history.ops, 0).unwrap();
    drop(store);
    for (tag, file) in [(0u8, "state.db"), (1, "log.db")] {
        let mut bytes = vec![tag];
        bytes.extend(std::fs::read(dir.join(file)).unwrap());
        write("peek_file", file, &bytes);
    }

    for guest in ["core-kvstore-small", "core-logstore"] {
        write("wasm_module", &format!("{guest}.wasm"), &std::fs::read(root().join(format!("guests/dist/{guest}.wasm"))).unwrap());
    }
}
