//! Property tests over random histories on real store files.

use std::sync::Arc;

use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::op::{Op, OpId};
use lattice_conform::store::Store;
use proptest::prelude::*;
use uuid::Uuid;

use crate::gen::{author, delete, put, Chains};

/// One step of a random history: (author, key, is_delete, supersede the key's known heads).
type Step = (u8, u8, bool, bool);

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0u8..4, 0u8..5, any::<bool>(), any::<bool>()), 1..max)
}

/// Turns steps into a valid multi-author history. Superseding ops name every head the builder
/// has seen for the key, so forks and merges both occur.
fn history(steps: &[Step], store_id: Uuid) -> Vec<Op> {
    let mut chains = Chains::new(store_id);
    let mut heads: std::collections::BTreeMap<u8, Vec<OpId>> = Default::default();
    let mut ops = Vec::new();
    for (i, &(a, k, del, supersede)) in steps.iter().enumerate() {
        let key = [b'k', k];
        let payload = if del { delete(&key) } else { put(&key, &[i as u8; 3]) };
        let deps = if supersede { heads.remove(&k).unwrap_or_default() } else { Vec::new() };
        let (op, id) = chains.next(author(a), (i / 2) as u64, deps, payload);
        heads.entry(k).or_default().push(id);
        ops.push(op);
    }
    ops
}

/// Independent per-author chains (deps only on the author's own earlier ops), merged by `order`.
fn interleave(per_author: &[Vec<Op>], order: &[usize]) -> Vec<Op> {
    let mut next = vec![0usize; per_author.len()];
    let mut out = Vec::new();
    let total: usize = per_author.iter().map(Vec::len).sum();
    let round_robin = (0..per_author.len()).cycle().take(total * per_author.len());
    for pick in order.iter().copied().chain(round_robin) {
        let a = pick % per_author.len();
        if next[a] < per_author[a].len() {
            out.push(per_author[a][next[a]].clone());
            next[a] += 1;
        }
    }
    out
}

fn own_chains(len: usize, store_id: Uuid) -> Vec<Vec<Op>> {
    let mut chains = Chains::new(store_id);
    (0..3u8)
        .map(|a| {
            let mut last: Option<OpId> = None;
            (0..len)
                .map(|i| {
                    let key = [b'k', (i % 3) as u8];
                    let (op, id) = chains.next(author(a), i as u64, last.into_iter().collect(), put(&key, &[a, i as u8]));
                    last = Some(id);
                    op
                })
                .collect()
        })
        .collect()
}

fn apply_fresh(ops: &[Op], store_id: Uuid) -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Store::create(&tmp.path().join("s"), store_id, Arc::new(KvStore)).unwrap();
    s.apply_ops(ops, 0).unwrap();
    (tmp, s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_hash_equals_recompute_and_rebuild(steps in steps(60)) {
        let id = Uuid::from_u128(1);
        let (tmp, s) = apply_fresh(&history(&steps, id), id);
        let incremental = s.state_hash();
        prop_assert_eq!(s.recompute().unwrap(), incremental);
        drop(s);
        let rebuilt = Store::rebuild(&tmp.path().join("s"), Arc::new(KvStore)).unwrap();
        prop_assert_eq!(rebuilt.state_hash(), incremental);
    }

    #[test]
    fn in_memory_replay_matches_the_store_on_disk_including_halts(steps in steps(60), bad_at in prop::option::of(0usize..60)) {
        use lattice_conform::replay::replay;
        use lattice_conform::store::StoreError;
        let id = Uuid::from_u128(3);
        let mut ops = history(&steps, id);
        if let Some(i) = bad_at.filter(|&i| i < ops.len()) {
            ops[i].payload = vec![0xff];
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::create(&tmp.path().join("s"), id, Arc::new(KvStore)).unwrap();
        let disk_halt = match s.apply_ops(&ops, 0) {
            Ok(_) => None,
            Err(StoreError::Rejected { index, kind, .. }) => Some((index, kind)),
            Err(e) => panic!("{e}"),
        };
        let mem = replay(s.identity().clone(), Arc::new(KvStore), &ops);
        prop_assert_eq!(mem.halt.map(|(i, r)| (i, r.kind)), disk_halt);
        prop_assert_eq!(mem.state_hash, s.state_hash());
        prop_assert_eq!(mem.applied, s.log_len());
    }

    #[test]
    fn independent_ops_in_any_order_give_the_same_hash(len in 1usize..12, a in prop::collection::vec(0usize..3, 0..40), b in prop::collection::vec(0usize..3, 0..40)) {
        let id = Uuid::from_u128(2);
        let chains = own_chains(len, id);
        let (x, y) = (interleave(&chains, &a), interleave(&chains, &b));
        prop_assert_eq!(x.len(), 3 * len);
        let (_t1, s1) = apply_fresh(&x, id);
        let (_t2, s2) = apply_fresh(&y, id);
        prop_assert_eq!(s1.state_hash(), s2.state_hash());
    }
}

/// The generator's own strategies, reused: every scenario's histories replay in memory with an
/// incremental hash equal to a recompute, and negative scenarios halt exactly once, at a
/// rejected op of the kind the scenario injects.
mod generator_strategies {
    use lattice_conform::corpus::gen::scenarios;
    use lattice_conform::kernel::RejectKind;
    use lattice_conform::registry::Registry;
    use lattice_conform::replay::replay;
    use lattice_conform::store::StoreIdentity;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;
    use uuid::Uuid;

    #[test]
    fn every_scenario_replays_consistently_and_negative_ones_halt_as_injected() {
        let registry = Registry::with_reference_types();
        for s in scenarios() {
            let mut runner = TestRunner::new(ProptestConfig { cases: 8, ..ProptestConfig::default() });
            let logic = registry.opener(s.store_type).unwrap().logic();
            runner
                .run(&s.strategy(s.op_count(40)), |plan| {
                    let id = Uuid::from_u128(5);
                    let ops = s.build(&plan, id, b"props");
                    let identity = StoreIdentity { store_id: id, store_type: s.store_type.into(), schema_version: 1 };
                    let out = replay(identity.clone(), logic.clone(), &ops);
                    let negative = s.tags.contains(&"negative");
                    prop_assert_eq!(out.halt.is_some(), negative, "scenario {}", s.name);
                    if let Some((_, r)) = &out.halt {
                        let expected = match s.name {
                            "broken-chain" => RejectKind::BrokenChain,
                            "bad-genesis" => RejectKind::BadGenesis,
                            _ => RejectKind::MalformedPayload,
                        };
                        prop_assert_eq!(r.kind, expected, "scenario {}", s.name);
                    }
                    let mut store = lattice_conform::replay::MemStore::new(identity, logic.clone());
                    ops.iter().take_while(|op| store.apply(op).is_ok()).count();
                    prop_assert_eq!(store.recompute(), store.state_hash());
                    Ok(())
                })
                .unwrap();
        }
    }
}
