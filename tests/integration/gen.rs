//! Building valid op histories in tests: per-author chains with correct `prev` links.

use std::collections::BTreeMap;

use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry};
use lattice_conform::op::{op_id, Hlc, Op, OpId, ZERO_HASH};
use uuid::Uuid;

pub fn author(n: u8) -> [u8; 32] {
    *blake3::hash(&[b'a', n]).as_bytes()
}

/// Appends ops to per-author chains of one store.
pub struct Chains {
    pub store_id: Uuid,
    tips: BTreeMap<[u8; 32], OpId>,
}

impl Chains {
    pub fn new(store_id: Uuid) -> Chains {
        Chains { store_id, tips: BTreeMap::new() }
    }

    /// The next op of `author`, linked to its tip. Returns the op and its id.
    pub fn next(&mut self, author: [u8; 32], wall_ms: u64, mut deps: Vec<OpId>, payload: Vec<u8>) -> (Op, OpId) {
        deps.sort();
        deps.dedup();
        let prev = self.tips.get(&author).copied().unwrap_or(ZERO_HASH);
        let op = Op { author, hlc: Hlc { wall_ms, counter: 0 }, prev, causal_deps: deps, payload };
        let id = op_id(&self.store_id, &op);
        self.tips.insert(author, id);
        (op, id)
    }
}

pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
    encode_payload(&[Entry::Put { key: key.to_vec(), value: value.to_vec() }])
}

pub fn delete(key: &[u8]) -> Vec<u8> {
    encode_payload(&[Entry::Delete { key: key.to_vec() }])
}
