//! Long synthetic histories for throughput measurements (benchmarks and release-mode examples),
//! made one op at a time so a caller can stream them: 8 authors round-robin over a space of
//! 10,000 keys. A `core:kvstore` op puts one key and names that key's current head as its causal
//! dependency, so it supersedes it; a `core:logstore` op appends its index. Deterministic: the
//! same arguments give the same ops.

use std::collections::BTreeMap;

use lattice_logic::kvstore::{encode_payload, Entry};
use uuid::Uuid;

use crate::op::{op_id, Hlc, Op, OpId, ZERO_HASH};

/// Number of distinct keys a kvstore history writes.
pub const KEYS: u64 = 10_000;
/// Number of authors.
pub const AUTHORS: u64 = 8;

/// Which reference type's payloads to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    KvStore,
    LogStore,
}

impl Kind {
    /// The kind for a store type, if it has one.
    pub fn of(store_type: &str) -> Option<Kind> {
        match store_type {
            "core:kvstore" => Some(Kind::KvStore),
            "core:logstore" => Some(Kind::LogStore),
            _ => None,
        }
    }

    pub fn store_type(self) -> &'static str {
        match self {
            Kind::KvStore => "core:kvstore",
            Kind::LogStore => "core:logstore",
        }
    }
}

/// The `provenance.generator` of a `gen --synthetic` history.
pub const GENERATOR: &str = "lattice-conform-synthetic/1";
/// Its `provenance.scenario` (and the stem of its file names).
pub const SCENARIO: &str = "synthetic";

/// The store id of the `index`-th synthetic history of `seed`: a UUID v8 from
/// blake3("lattice-conform synthetic v1\0" ‖ type ‖ 0 ‖ seed LE ‖ index LE).
pub fn store_id(kind: Kind, seed: u64, index: u32) -> Uuid {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform synthetic v1\0");
    h.update(kind.store_type().as_bytes());
    h.update(&[0]);
    h.update(&seed.to_le_bytes());
    h.update(&index.to_le_bytes());
    Uuid::new_v8(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"))
}

/// Writes the `index`-th synthetic history of `seed` (`ops` ops of `kind`) to `path` in `form`,
/// one op at a time: memory does not grow with `ops` beyond the generator's key and author maps.
pub fn write_history(
    path: &std::path::Path,
    form: crate::history::Form,
    kind: Kind,
    seed: u64,
    index: u32,
    n: u32,
) -> Result<crate::history::Written, crate::history::HistoryError> {
    let id = store_id(kind, seed, index);
    let header = crate::history::Header {
        store_id: id,
        store_type: kind.store_type().to_string(),
        schema_version: 1,
        provenance: Some(crate::history::Provenance {
            generator: GENERATOR.to_string(),
            seed,
            scenario: SCENARIO.to_string(),
            index,
            ops: n,
            tags: vec!["synthetic".to_string()],
        }),
        delivery: Default::default(),
        expect: Vec::new(),
    };
    let mut w = crate::history::HistoryWriter::create(path, form, &header, u64::from(n))?;
    for op in ops(u64::from(n), kind, id) {
        w.push(&op)?;
    }
    w.finish()
}

/// Yields `n` chained ops for the store `store_id`.
pub fn ops(n: u64, kind: Kind, store_id: Uuid) -> impl Iterator<Item = Op> {
    let mut tips: BTreeMap<u64, OpId> = BTreeMap::new();
    let mut heads: BTreeMap<u64, OpId> = BTreeMap::new();
    let kv = kind == Kind::KvStore;
    (0..n).map(move |i| {
        let a = i % AUTHORS;
        let key = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) % KEYS;
        let deps: Vec<OpId> = if kv { heads.get(&key).copied().into_iter().collect() } else { vec![] };
        let payload = if kv {
            encode_payload(&[Entry::Put { key: format!("key-{key:05}").into_bytes(), value: i.to_le_bytes().to_vec() }])
        } else {
            i.to_le_bytes().to_vec()
        };
        let author = *blake3::hash(&a.to_le_bytes()).as_bytes();
        let op = Op {
            author,
            hlc: Hlc { wall_ms: i / 4, counter: 0 },
            prev: tips.get(&a).copied().unwrap_or(ZERO_HASH),
            causal_deps: deps,
            payload,
        };
        let id = op_id(&store_id, &op);
        tips.insert(a, id);
        heads.insert(key, id);
        op
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lattice_logic::kvstore::KvStore;
    use lattice_logic::logstore::LogStore;

    use super::*;
    use crate::replay::replay;
    use crate::store::{Logic, StoreIdentity};

    #[test]
    fn synthetic_histories_replay_without_a_stall_and_are_deterministic() {
        let id = Uuid::from_u128(9);
        for (kind, ty, logic) in
            [(Kind::KvStore, "core:kvstore", Arc::new(KvStore) as Logic), (Kind::LogStore, "core:logstore", Arc::new(LogStore) as Logic)]
        {
            let ops: Vec<Op> = ops(500, kind, id).collect();
            assert_eq!(ops, super::ops(500, kind, id).collect::<Vec<_>>());
            let identity = StoreIdentity { store_id: id, store_type: ty.into(), schema_version: 1 };
            let out = replay(identity, logic, &ops);
            assert!(out.stall.is_none(), "{ty}: {:?}", out.stall);
            assert_eq!(out.counts.applied, 500, "{ty}");
        }
    }
}
