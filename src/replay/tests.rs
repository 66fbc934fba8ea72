//! Unit tests of `replay`.

use std::sync::Arc;

use lattice_logic::{ApplyError, Dag, StoreLogic, Table};
use uuid::Uuid;

use super::*;
use crate::op::{op_id, Hlc, ZERO_HASH};

/// Writes its payload under two keys, then fails if the payload is `b"fail"`: a logic that
/// leaves partial writes behind, which the kernel's journal must undo.
struct WritesThenFails;

impl StoreLogic for WritesThenFails {
    fn store_type(&self) -> &str {
        "test:writes-then-fails"
    }
    fn schema_version(&self) -> u64 {
        1
    }
    fn apply(&self, _: &OpId, op: &Op, t: &mut dyn Table, _: &mut dyn Dag) -> Result<(), ApplyError> {
        t.put(b"a", &op.payload)?;
        t.delete(b"b")?;
        if op.payload == b"fail" {
            return Err(ApplyError::MalformedPayload("asked to fail".into()));
        }
        Ok(())
    }
    fn observe(&self, _: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        Ok(Some(row.to_vec()))
    }
}

fn store() -> MemStore {
    let identity = StoreIdentity { store_id: Uuid::from_u128(9), store_type: "test:writes-then-fails".into(), schema_version: 1 };
    MemStore::new(identity, Arc::new(WritesThenFails))
}

fn op(author: u8, prev: OpId, deps: Vec<OpId>, payload: &[u8]) -> Op {
    Op { author: [author; 32], hlc: Hlc::default(), prev, causal_deps: deps, payload: payload.to_vec() }
}

#[test]
fn a_refused_op_leaves_rows_and_hash_as_they_were_and_stalls_every_author() {
    let mut s = store();
    let first = op(1, ZERO_HASH, vec![], b"ok");
    assert_eq!(s.deliver(&first), Delivered::Received { witnessed: 1, applied: 1, stalled: false });
    s.data.rows.insert(b"b".to_vec(), b"kept".to_vec());
    let (rows, hash) = (s.rows().clone(), s.state_hash());
    let bad = op(1, op_id(&s.identity.store_id, &first), vec![], b"fail");
    assert_eq!(s.deliver(&bad), Delivered::Received { witnessed: 1, applied: 0, stalled: true });
    assert_eq!((s.rows(), s.state_hash()), (&rows, hash));
    assert_eq!(s.stall().map(|st| (st.op_index, st.kind)), Some((1, RejectKind::MalformedPayload)));
    assert_eq!(s.deliver(&op(2, ZERO_HASH, vec![], b"ok")), Delivered::Received { witnessed: 1, applied: 0, stalled: false });
}

#[test]
fn an_all_zero_causal_dep_counts_as_witnessed() {
    let mut s = store();
    assert_eq!(s.deliver(&op(1, ZERO_HASH, vec![ZERO_HASH], b"ok")), Delivered::Received { witnessed: 1, applied: 1, stalled: false });
    assert!(s.floating().is_empty());
}

#[test]
fn an_op_before_its_parent_floats_and_is_applied_when_the_parent_arrives() {
    let mut s = store();
    let (a1, id) = {
        let o = op(1, ZERO_HASH, vec![], b"1");
        let id = op_id(&s.identity.store_id, &o);
        (o, id)
    };
    let a2 = op(1, id, vec![], b"2");
    let b1 = op(2, ZERO_HASH, vec![id], b"3");
    assert_eq!(s.deliver(&a2), Delivered::Received { witnessed: 0, applied: 0, stalled: false });
    assert_eq!(s.deliver(&b1), Delivered::Received { witnessed: 0, applied: 0, stalled: false });
    assert_eq!(s.floating(), vec![0, 1]);
    assert_eq!(s.deliver(&a1), Delivered::Received { witnessed: 3, applied: 3, stalled: false });
    assert_eq!(s.deliver(&a1), Delivered::Redelivered);
    assert!(s.floating().is_empty());
    assert_eq!(s.counts().applied, 3);
}

/// Lattice's batch ingest (FORMAT §4.5): two ops naming the same witness tip are both
/// witnessed in one batch (the second then breaks its author's chain), while one by one the
/// first moves the tip and the second floats for good; an invalid op aborts the rest of a
/// batch and leaves what came before it floating.
#[test]
fn a_batch_witnesses_what_one_by_one_delivery_leaves_floating_and_an_invalid_op_aborts_it() {
    let mut one_by_one = store();
    let a1 = op(1, ZERO_HASH, vec![], b"1");
    let id1 = op_id(&one_by_one.identity.store_id, &a1);
    let (a2, fork) = (op(1, id1, vec![], b"2"), op(1, id1, vec![], b"fork"));
    for o in [&a1, &a2, &fork] {
        one_by_one.deliver(o);
    }
    assert_eq!(one_by_one.floating(), vec![2]);
    assert!(one_by_one.stall().is_none());
    let mut batched = store();
    batched.deliver(&a1);
    let (each, whole) = batched.deliver_batch(&[a2.clone(), fork.clone()]);
    assert_eq!(each, vec![Delivered::Received { witnessed: 0, applied: 0, stalled: false }; 2]);
    assert_eq!(whole, Delivered::Received { witnessed: 2, applied: 1, stalled: true });
    assert!(batched.floating().is_empty());
    assert_eq!(batched.stall().map(|s| s.kind), Some(RejectKind::BrokenChain));
    let mut aborted = store();
    let mut bad = op(2, ZERO_HASH, vec![[2; 32], [1; 32]], b"x");
    bad.causal_deps = vec![[2; 32], [1; 32]];
    let (each, whole) = aborted.deliver_batch(&[a1.clone(), bad, a2.clone()]);
    assert!(matches!(each[1], Delivered::Refused(_)) && each[2] == Delivered::Skipped && whole == Delivered::Skipped);
    assert_eq!(aborted.floating(), vec![0], "a1 was received and stays floating, ready or not");
    assert_eq!(aborted.counts().delivered, 3);
    assert_eq!(aborted.deliver(&a2), Delivered::Received { witnessed: 2, applied: 2, stalled: false });
}

/// Each delivery and kernel fault against the reference on a small handcrafted kvstore
/// history where they must disagree (counts, stall, floating ops or state hash).
#[test]
fn every_host_fault_disagrees_with_the_reference_on_its_witness_history() {
    use lattice_logic::kvstore::{encode_payload, Entry, KvStore};
    let sid = Uuid::from_u128(5);
    let kv = |author: u8, wall_ms: u64, prev: OpId, deps: Vec<OpId>, key: &str| Op {
        author: [author; 32],
        hlc: Hlc { wall_ms, counter: 0 },
        prev,
        causal_deps: deps,
        payload: encode_payload(&[Entry::Put { key: key.as_bytes().to_vec(), value: vec![author] }]),
    };
    let id = |o: &Op| op_id(&sid, o);
    let a1 = kv(1, 10, ZERO_HASH, vec![], "k");
    let a2 = kv(1, 11, id(&a1), vec![], "k");
    let a3 = kv(1, 12, id(&a2), vec![], "k");
    let b1 = kv(2, 10, ZERO_HASH, vec![], "j");
    let fork = kv(1, 12, id(&a1), vec![], "fork");
    let mut bad = a2.clone();
    bad.payload = vec![0x0a, 0x05, 0x01];
    let foreign = kv(1, 11, id(&b1), vec![], "k");
    let b_after_a = kv(2, 11, id(&a1), vec![], "k");
    let b_deps_a = kv(2, 11, ZERO_HASH, vec![id(&a1)], "k");
    let mut bad_first = a1.clone();
    bad_first.payload = vec![0x0a, 0x05, 0x01];
    let cases: Vec<(HostFaults, Vec<&Op>)> = vec![
        (HostFaults { delivery: Some(DeliveryFault::RedeliveryReprojected), ..Default::default() }, vec![&a1, &a1]),
        (HostFaults { delivery: Some(DeliveryFault::DepsIgnored), ..Default::default() }, vec![&b_deps_a]),
        (HostFaults { delivery: Some(DeliveryFault::PrevMustBeOwnTip), ..Default::default() }, vec![&a1, &b_after_a]),
        (HostFaults { delivery: Some(DeliveryFault::FloatingDropped), ..Default::default() }, vec![&a2, &a1]),
        (HostFaults { delivery: Some(DeliveryFault::NoCascade), ..Default::default() }, vec![&a3, &a2, &a1]),
        (HostFaults { delivery: Some(DeliveryFault::PrevAnyWitnessed), ..Default::default() }, vec![&a1, &a2, &fork]),
        (HostFaults { kernel: Some(KernelFault::ChainAcceptsAnyPrev), ..Default::default() }, vec![&a1, &b1, &foreign]),
        (HostFaults { kernel: Some(KernelFault::GenesisAcceptsAnyPrev), ..Default::default() }, vec![&a1, &b_after_a]),
        (HostFaults { kernel: Some(KernelFault::RefusedOpAdvancesTip), ..Default::default() }, vec![&a1, &bad]),
        (HostFaults { kernel: Some(KernelFault::StallSkipsOp), ..Default::default() }, vec![&bad_first, &b1]),
    ];
    let identity = StoreIdentity { store_id: sid, store_type: "core:kvstore".into(), schema_version: 1 };
    let outcome = |faults: HostFaults, ops: &[&Op]| {
        let s = MemStore::new(identity.clone(), Arc::new(KvStore)).with_faults(faults);
        let s = ops.iter().fold(s, |mut s, op| {
            s.deliver(op);
            s
        });
        (s.outcome(), s.rows().clone())
    };
    for (faults, ops) in cases {
        assert_ne!(outcome(faults, &ops), outcome(HostFaults::default(), &ops), "{faults:?}");
    }

    // The witness order (§4.2): several ops readied by one delivery, told apart by which of
    // them projection reaches before a stall.
    let mut bad_a2 = kv(1, 11, id(&a1), vec![], "k");
    bad_a2.payload = vec![0x0a, 0x05, 0x01];
    let gate = kv(3, 10, ZERO_HASH, vec![], "g");
    let mut bad_a2_gated = bad_a2.clone();
    bad_a2_gated.causal_deps = vec![id(&gate)];
    let b2_gated = kv(2, 11, id(&b1), vec![id(&gate)], "k");
    let genesis = kv(4, 10, ZERO_HASH, vec![], "k");
    let forks = [kv(1, 11, id(&a1), vec![id(&gate)], "x"), kv(1, 11, id(&a1), vec![id(&gate)], "y")];
    let (lo, hi) = if id(&forks[0]) < id(&forks[1]) { (&forks[0], &forks[1]) } else { (&forks[1], &forks[0]) };
    let delivery = |f: DeliveryFault| HostFaults { delivery: Some(f), ..Default::default() };
    let staged: Vec<(DeliveryFault, Vec<&Op>, Vec<&Op>)> = vec![
        (DeliveryFault::ArrivalCountsReceived, vec![&a1, &a1, &bad], vec![]),
        (DeliveryFault::WitnessAuthorsDescending, vec![&a1, &b1, &bad_a2_gated, &b2_gated, &gate], vec![]),
        (DeliveryFault::WitnessGenesisFirst, vec![&a1], vec![&bad_a2, &genesis]),
        (DeliveryFault::WitnessSharedPrevByArrival, vec![&a1, hi, lo, &gate], vec![]),
        (DeliveryFault::WitnessPrevRechecked, vec![&a1, hi, lo, &gate], vec![]),
    ];
    let outcome = |faults: HostFaults, ops: &[&Op], batch: &[&Op]| {
        let mut s = MemStore::new(identity.clone(), Arc::new(KvStore)).with_faults(faults);
        for op in ops {
            s.deliver(op);
        }
        let batch: Vec<Op> = batch.iter().map(|op| (*op).clone()).collect();
        s.deliver_batch(&batch);
        (s.outcome(), s.rows().clone())
    };
    for (f, ops, batch) in staged {
        assert_ne!(outcome(delivery(f), &ops, &batch), outcome(HostFaults::default(), &ops, &batch), "{f:?}");
    }
}
