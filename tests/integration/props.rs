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

/// Independent per-author chains (deps only on the author's own earlier ops, keys of its own),
/// merged by `order`. Lattice's kvstore is not order-independent when authors share a key (the
/// winner is picked at write time), so the keys are disjoint here.
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
                    let key = [b'k', a, (i % 3) as u8];
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
        let (rebuilt, _) = Store::rebuild(&tmp.path().join("s"), Arc::new(KvStore), false).unwrap();
        prop_assert_eq!(rebuilt.state_hash(), incremental);
    }

    #[test]
    fn in_memory_replay_matches_the_store_on_disk_including_stalls_and_floating_ops(
        steps in steps(60),
        bad_at in prop::option::of(0usize..60),
        late in prop::collection::vec(0usize..4, 60),
        split in 0usize..60,
    ) {
        use lattice_conform::replay::MemStore;
        let id = Uuid::from_u128(3);
        let mut ops = history(&steps, id);
        if let Some(i) = bad_at.filter(|&i| i < ops.len()) {
            ops[i].payload = vec![0xff];
        }
        // Deliver some ops late, so they arrive before their parents and float.
        let mut order: Vec<(usize, usize)> = (0..ops.len()).map(|i| (i + late[i], i)).collect();
        order.sort();
        let ops: Vec<Op> = order.into_iter().map(|(_, i)| ops[i].clone()).collect();
        // On disk in two halves, closing and reopening the store in between: floating ops must
        // survive the restart.
        let split = split.min(ops.len());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let first = Store::create(&dir, id, Arc::new(KvStore)).unwrap().apply_ops(&ops[..split], 0).unwrap();
        let mut s = Store::open(&dir, Arc::new(KvStore)).unwrap();
        let second = s.apply_ops(&ops[split..], split as u64).unwrap();
        let mut mem = MemStore::new(s.identity().clone(), Arc::new(KvStore));
        for op in &ops {
            mem.deliver(op);
        }
        let disk_stall = s.paused().map(|p| (p.op_index, p.kind));
        prop_assert_eq!(mem.stall().map(|st| (st.op_index, st.kind)), disk_stall);
        prop_assert_eq!(first.stalled.as_ref().or(second.stalled.as_ref()).map(|p| (p.op_index, p.kind)), disk_stall);
        prop_assert_eq!(mem.state_hash(), s.state_hash());
        prop_assert_eq!(mem.counts().applied, first.applied + second.applied);
        prop_assert_eq!(s.log_len(), ops.len() as u64);
        prop_assert_eq!(s.verify().unwrap(), s.state_hash());
        // A store whose projection did not stall has applied every op: nothing is left floating.
        if disk_stall.is_none() {
            prop_assert!(mem.floating().is_empty());
            prop_assert_eq!(mem.counts().applied, ops.len() as u64);
        }
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
/// incremental hash equal to a recompute; negative scenarios do what their fault does in Lattice
/// (a broken chain or bad genesis floats forever, a malformed payload stalls projection there),
/// and every other op is applied unless a logstore author wrote twice in one millisecond.
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
    fn every_scenario_replays_consistently_and_negative_ones_float_or_stall_as_injected() {
        let registry = Registry::with_reference_types();
        // Crafted families are built to a shape, not from the strategy's actions (their own test:
        // tests/integration/gen.rs).
        for s in scenarios().into_iter().filter(|s| !s.is_crafted()) {
            let mut runner = TestRunner::new(ProptestConfig { cases: 8, ..ProptestConfig::default() });
            let logic = registry.opener(s.store_type).unwrap().logic();
            runner
                .run(&s.strategy(s.op_count(40)), |plan| {
                    let id = Uuid::from_u128(5);
                    let ops = s.build(&plan, id, b"props");
                    let identity = StoreIdentity { store_id: id, store_type: s.store_type.into(), schema_version: 1 };
                    let out = replay(identity.clone(), logic.clone(), &ops);
                    let stall = out.stall.as_ref().map(|st| st.kind);
                    match s.name {
                        "broken-chain" | "bad-genesis" => {
                            prop_assert_eq!(stall, None, "scenario {}", s.name);
                            prop_assert_eq!(out.floating.len(), 1, "scenario {}", s.name);
                        }
                        "malformed-payload" => {
                            prop_assert_eq!(stall, Some(RejectKind::MalformedPayload), "scenario {}", s.name);
                            prop_assert!(out.floating.is_empty(), "scenario {}: later ops chain through the bad one", s.name);
                        }
                        "log-same-ms" => prop_assert!(matches!(stall, None | Some(RejectKind::Refused)), "scenario {}", s.name),
                        // Witnessed (another author's tip is a witness tip), then refused at projection.
                        "foreign-prev" => prop_assert!(
                            matches!(stall, Some(RejectKind::BrokenChain | RejectKind::BadGenesis)),
                            "scenario {}: {:?}",
                            s.name,
                            stall
                        ),
                        "foreign-genesis" => prop_assert_eq!(stall, Some(RejectKind::BadGenesis), "scenario {}", s.name),
                        _ => {
                            prop_assert_eq!(stall, None, "scenario {}", s.name);
                            prop_assert!(out.floating.is_empty(), "scenario {}", s.name);
                            prop_assert_eq!(out.counts.applied + out.counts.redelivered, ops.len() as u64, "scenario {}", s.name);
                        }
                    }
                    let mut store = lattice_conform::replay::MemStore::new(identity, logic.clone());
                    for op in &ops {
                        store.deliver(op);
                    }
                    prop_assert_eq!(store.recompute(), store.state_hash());
                    Ok(())
                })
                .unwrap();
        }
    }
}

/// The field-by-field `KvPayload` decoder the payload faults are built on
/// (`lattice_logic::faults::decode_kv_payload`) decodes exactly as prost does when no rule is
/// broken: the same entries, or an error for both — on random bytes, and on valid payloads with
/// bytes flipped, inserted or cut (the inputs closest to the edges of §5.1).
mod pb_walk_matches_prost {
    use lattice_conform::lattice_logic::faults::decode_kv_payload;
    use lattice_conform::lattice_logic::kvstore::{decode_payload, encode_payload, Entry};
    use proptest::prelude::*;

    fn same(payload: &[u8]) -> Result<(), TestCaseError> {
        let (walk, prost) = (decode_kv_payload(payload, None), decode_payload(payload));
        prop_assert_eq!(walk.is_ok(), prost.is_ok(), "payload {:02x?}", payload);
        prop_assert_eq!(walk.ok(), prost.ok(), "payload {:02x?}", payload);
        Ok(())
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..6);
        prop_oneof![(bytes(), bytes()).prop_map(|(key, value)| Entry::Put { key, value }), bytes().prop_map(|key| Entry::Delete { key })]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn on_random_bytes(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            same(&payload)?;
        }

        #[test]
        fn on_mutated_payloads(
            entries in proptest::collection::vec(entry(), 0..4),
            edits in proptest::collection::vec((any::<u8>(), any::<prop::sample::Index>(), 0u8..3), 1..4),
            groups in 0usize..3,
        ) {
            // Optionally wrapped in nested groups of field 5 (0x2b … 0x2c), up to prost's limit.
            let depth = [0, 100, 101][groups];
            let mut payload = [vec![0x2b; depth], vec![0x2c; depth], encode_payload(&entries)].concat();
            for (byte, at, kind) in edits {
                if payload.is_empty() {
                    payload.push(byte);
                    continue;
                }
                let i = at.index(payload.len());
                match kind {
                    0 => payload[i] = byte,
                    1 => payload.insert(i, byte),
                    _ => payload.truncate(i),
                }
            }
            same(&payload)?;
        }
    }
}
