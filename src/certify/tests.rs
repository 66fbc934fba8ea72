//! Unit tests of `certify`.

use super::*;
use crate::op::{op_id, Hlc, ZERO_HASH};
use uuid::Uuid;

fn history() -> History {
    let id = Uuid::from_u128(3);
    let a = Op { author: [1; 32], hlc: Hlc::default(), prev: ZERO_HASH, causal_deps: vec![], payload: vec![1] };
    let b = Op { prev: op_id(&id, &a), payload: vec![2], ..a.clone() };
    let c = Op { author: [2; 32], prev: ZERO_HASH, causal_deps: vec![op_id(&id, &b)], ..a.clone() };
    History {
        store_id: id,
        store_type: "core:logstore".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: vec![a, b.clone(), b, c],
    }
}

#[test]
fn rechain_of_unchanged_ops_is_the_identity_and_keeps_redeliveries() {
    let h = history();
    assert_eq!(rechain(&h, &with_ids(&h)), h.ops);
}

#[test]
fn rechain_after_an_edit_relinks_prev_deps_and_the_redelivery() {
    let h = history();
    let mut ops = with_ids(&h);
    ops[0].1.payload = vec![9];
    let out = rechain(&h, &ops);
    let a = op_id(&h.store_id, &out[0]);
    let b = op_id(&h.store_id, &out[1]);
    assert_eq!((out[1].prev, &out[2], &out[3].causal_deps), (a, &out[1], &vec![b]));
    let empty = History { ops: vec![], ..h };
    assert!(mutate(&empty, 7, 10).ops.is_empty(), "an empty history is left alone, not a division by zero");
}
