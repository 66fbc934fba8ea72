//! Unit tests of `converge`.

use std::sync::Arc;

use lattice_logic::kvstore::{encode_payload, Entry, KvStore};
use uuid::Uuid;

use super::*;
use crate::op::Hlc;

fn put(author: u8, wall_ms: u64, prev: OpId, deps: Vec<OpId>, v: &[u8]) -> Op {
    let payload = encode_payload(&[Entry::Put { key: b"k".to_vec(), value: v.to_vec() }]);
    Op { author: [author; 32], hlc: Hlc { wall_ms, counter: 0 }, prev, causal_deps: deps, payload }
}

/// In-memory `core:kvstore` replicas of the reference logic.
fn kv_replicas() -> crate::replica::MemFactory {
    crate::replica::MemFactory { logic: Arc::new(KvStore), faults: Default::default() }
}

#[test]
fn lattices_write_time_winner_is_found_and_shrunk_to_three_ops() {
    // A writes at 10, B at 20; C, its clock behind, writes at 5 and supersedes B only.
    // Delivered A, B, C: B wins over A; C removes B and loses to A, so the stored value
    // stays B's (stale). Delivered B, C, A: C replaces B; A (10 ≥ 5) then wins: value A.
    let id = Uuid::from_u128(77);
    let a = put(1, 10, ZERO_HASH, vec![], b"a");
    let b = put(2, 20, ZERO_HASH, vec![], b"b");
    let b_id = op_id(&id, &b);
    let c = put(3, 5, ZERO_HASH, vec![b_id], b"c");
    let filler = put(4, 1, ZERO_HASH, vec![], b"x");
    let h = History {
        store_id: id,
        store_type: "core:kvstore".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: vec![filler, a, b, c],
    };
    let logic = kv_replicas();
    assert!(diverges(&h, &logic, &[0, 1, 2, 3], &[0, 2, 3, 1]).unwrap());
    let (sa, sb) = shrink(&h, &logic, vec![0, 1, 2, 3], vec![0, 2, 3, 1]).unwrap();
    assert_eq!((sa.len(), sb.len()), (3, 3), "the filler op goes, A, B and C stay: {sa:?} {sb:?}");
    assert!(diverges(&h, &logic, &sa, &sb).unwrap());
    let reads = reads_after(&h, &logic, &sa, &sb).unwrap();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].key.utf8.as_deref(), Some("k"));
    match check(&h, "t", &logic, 16, 0, None).unwrap() {
        Convergence::Diverges(c) => assert_eq!(c.order_a.len(), 3),
        other => panic!("the check must find the divergence: {other:?}"),
    }
}

#[test]
fn only_the_logstores_rows_must_not_depend_on_order() {
    assert!(rows_order_independent("core:logstore"));
    assert!(!rows_order_independent("core:kvstore"));
    // Three concurrent kvstore puts in two orders: the same reads, heads stored in another
    // order — converges, with differing state hashes allowed.
    let id = Uuid::from_u128(79);
    let ops: Vec<Op> = (1..=3).map(|a| put(a, u64::from(a) * 10, ZERO_HASH, vec![], &[a])).collect();
    let h = History {
        store_id: id,
        store_type: "core:kvstore".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    };
    let logic = kv_replicas();
    let all: BTreeSet<usize> = (0..3).collect();
    let rows = rebuilt(&h, &all);
    let (o1, s1) = hashes(after(&h, &logic, &rows, &[2, 0, 1]).unwrap().as_mut()).unwrap();
    let (o2, s2) = hashes(after(&h, &logic, &rows, &[2, 1, 0]).unwrap().as_mut()).unwrap();
    assert_eq!(o1, o2);
    assert_ne!(s1, s2);
    assert!(!diverges(&h, &logic, &[2, 0, 1], &[2, 1, 0]).unwrap());
}

#[test]
fn orders_are_permutations_and_causal_orders_respect_parents() {
    let id = Uuid::from_u128(78);
    let a1 = put(1, 1, ZERO_HASH, vec![], b"1");
    let a2 = put(1, 2, op_id(&id, &a1), vec![], b"2");
    let b1 = put(2, 3, ZERO_HASH, vec![op_id(&id, &a2)], b"3");
    let h = History {
        store_id: id,
        store_type: "core:kvstore".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: vec![a1, a2, b1],
    };
    let mut r = rng(5, "x");
    for _ in 0..20 {
        assert_eq!(causal_order(&h, &mut r), vec![0, 1, 2]);
        let mut s = shuffled(3, &mut r);
        s.sort_unstable();
        assert_eq!(s, vec![0, 1, 2]);
    }
    assert_eq!(shuffled(10, &mut rng(5, "y")), shuffled(10, &mut rng(5, "y")), "seeded");
}
