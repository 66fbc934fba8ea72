//! Writes `examples/kv-example.json`, the small kvstore history the README's main command uses:
//! three authors, a concurrent fork on one key and its merge through `causal_deps`, a delete and a
//! re-put, a batch, an HLC tie broken by author, and one op delivered twice.
//!
//! Run: `cargo run --example make_example > examples/kv-example.json`

use lattice_conform::history::History;
use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry};
use lattice_conform::op::{op_id, Hlc, Op, OpId, ZERO_HASH};
use uuid::Uuid;

struct Builder {
    store_id: Uuid,
    ops: Vec<Op>,
    tips: [OpId; 3],
}

impl Builder {
    fn push(&mut self, author: usize, wall_ms: u64, mut deps: Vec<OpId>, entries: &[Entry]) -> OpId {
        deps.sort();
        let op = Op {
            author: author_key(author),
            hlc: Hlc { wall_ms, counter: 0 },
            prev: self.tips[author],
            causal_deps: deps,
            payload: encode_payload(entries),
        };
        let id = op_id(&self.store_id, &op);
        self.tips[author] = id;
        self.ops.push(op);
        id
    }
}

fn author_key(n: usize) -> [u8; 32] {
    *blake3::hash(format!("example author {n}").as_bytes()).as_bytes()
}

fn put(k: &str, v: &str) -> Entry {
    Entry::Put { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() }
}

fn main() {
    let store_id = Uuid::parse_str("6c617474-6963-4500-8000-000000000001").unwrap();
    let mut b = Builder { store_id, ops: vec![], tips: [ZERO_HASH; 3] };
    let a = b.push(0, 1000, vec![], &[put("greeting", "hello")]);
    let x = b.push(1, 1001, vec![a], &[put("greeting", "hi")]);
    let y = b.push(2, 1001, vec![a], &[put("greeting", "hey")]);
    b.push(0, 1002, vec![x, y], &[put("greeting", "hello, all"), put("count", "1")]);
    let d = b.push(1, 1003, vec![], &[Entry::Delete { key: b"colour".to_vec() }, put("color", "blue")]);
    let dup = b.ops.last().unwrap().clone();
    b.ops.push(dup);
    b.push(2, 1004, vec![d], &[put("colour", "green"), put("color-scheme", "dark")]);
    let history = History {
        store_id,
        store_type: "core:kvstore".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: b.ops,
    };
    print!("{}", history.to_json());
}
