//! The seeded op-history generator.
//!
//! Each scenario is a proptest [`Strategy`] over abstract actions (who writes which keys, whether
//! the op merges the heads it has seen, whether its HLC ties the previous one, whether it is
//! delivered twice or late, whether its payload carries unknown protobuf fields), turned into
//! real, correctly chained ops by [`Builder`] and then put in delivery order. `gen` draws one value
//! per history from a ChaCha RNG seeded by blake3(seed, scenario, index), so the same arguments
//! give byte-identical files on every machine; the property tests reuse the same strategies.
//! Negative scenarios inject one bad op: a broken chain or bad genesis (the op floats forever, as
//! in Lattice) or a malformed payload (projection stalls there).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use lattice_logic::kvstore::{self, encode_payload, Entry};
use lattice_logic::{kvstore_v2 as v2, logstore};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use uuid::Uuid;

use crate::corpus::crafted::{self, Crafted};
use crate::history::{History, Provenance};
use crate::op::{op_id, Hlc, Op, OpId, ZERO_HASH};

/// Name and version of this generator, recorded in every generated history.
pub const GENERATOR: &str = "lattice-conform-gen/2";
/// Wall clock of the first generated op (2023-11-14T22:13:20Z), so HLCs look real.
const BASE_WALL_MS: u64 = 1_700_000_000_000;

/// The bad op a negative scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    BrokenChain,
    BadGenesis,
    MalformedPayload,
    /// The op's `prev` is another author's current tip: it is witnessed (Lattice takes any
    /// author's witness tip) and projection stalls on it as a broken chain.
    ForeignPrev,
    /// A new author's first op names another author's tip as `prev`: witnessed, then a bad
    /// genesis stall.
    ForeignGenesis,
}

/// A named way of generating histories for one store type.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub store_type: &'static str,
    pub tags: &'static [&'static str],
    params: Params,
}

#[derive(Clone, Debug)]
struct Params {
    authors: RangeInclusive<u8>,
    keys: &'static [&'static str],
    entries: RangeInclusive<usize>,
    value_len: RangeInclusive<usize>,
    /// Percentages (0–100).
    delete: u8,
    merge: u8,
    tie: u8,
    redeliver: u8,
    max_ops: Option<u32>,
    large_key: bool,
    fault: Option<Fault>,
    /// Author `n`'s clock runs `n * skew_ms` behind (clock skew between replicas).
    skew_ms: u64,
    /// A tie may reuse the wall time an author already wrote at (its HLC counter goes up). When
    /// false, such an op moves to the next millisecond instead.
    same_author_tie: bool,
    /// The same key may appear more than once in a batch.
    dup_keys: bool,
    /// Percentage of ops delivered late (after up to [`MAX_DELAY`] later ops).
    late: u8,
    /// Percentage of kvstore payloads that carry unknown protobuf fields.
    unknown_fields: u8,
    /// A logstore payload may be empty.
    empty_log: bool,
    /// An op that does not merge supersedes a random subset of the other authors' heads of its
    /// keys too (a replica that saw only some of them), not only its own author's.
    partial_merge: bool,
    /// A tie repeats the previous op's HLC exactly (same counter) instead of counting up.
    exact_tie: bool,
    /// An op that does not merge supersedes its own author's earlier heads (false: a writer that
    /// does not read its own writes, so its ops stay side by side).
    self_merge: bool,
    /// Keys are `k0000`, `k0001`, … up to this many, instead of the `keys` pool.
    key_space: Option<usize>,
    /// A crafted family ([`crate::corpus::crafted`]) instead of random actions.
    crafted: Option<Crafted>,
}

/// Most positions an op delivered late moves back.
const MAX_DELAY: usize = 4;

const KEYS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
const FEW_KEYS: &[&str] = &["alpha", "beta"];
const PREFIX_KEYS: &[&str] = &["a", "ab", "abc", "abcd", "b", "ba"];
const EMPTY_KEYS: &[&str] = &["", "alpha", "beta"];

const BASE: Params = Params {
    authors: 1..=1,
    keys: KEYS,
    entries: 1..=1,
    value_len: 1..=12,
    delete: 15,
    merge: 100,
    tie: 0,
    redeliver: 0,
    max_ops: None,
    large_key: false,
    fault: None,
    skew_ms: 0,
    same_author_tie: true,
    dup_keys: false,
    late: 0,
    unknown_fields: 0,
    empty_log: false,
    partial_merge: false,
    exact_tie: false,
    self_merge: true,
    key_space: None,
    crafted: None,
};
const CONCURRENT: Params = Params { authors: 2..=5, merge: 30, tie: 10, ..BASE };

/// Every scenario, in a fixed order.
pub fn scenarios() -> Vec<Scenario> {
    let kv = |name, tags, params| Scenario { name, store_type: kvstore::STORE_TYPE, tags, params };
    let log = |name, tags, params| Scenario { name, store_type: logstore::STORE_TYPE, tags, params };
    let v2s = |name, tags, params| Scenario { name, store_type: v2::STORE_TYPE, tags, params };
    vec![
        kv("single-author", &["one-author"], BASE),
        kv("concurrent-writers", &["many-authors", "forks", "merges"], CONCURRENT),
        kv("delete-reput", &["delete", "re-put"], Params { authors: 1..=2, keys: FEW_KEYS, delete: 50, merge: 80, ..BASE }),
        kv("batches", &["batch"], Params { authors: 1..=3, entries: 2..=6, merge: 60, ..BASE }),
        kv("duplicate-delivery", &["duplicate"], Params { authors: 1..=3, redeliver: 20, merge: 60, ..BASE }),
        kv("large-values", &["large-key", "large-value"], Params { value_len: 65_536..=66_560, max_ops: Some(3), large_key: true, ..BASE }),
        kv("empty-value", &["empty-value"], Params { value_len: 0..=1, authors: 1..=2, ..BASE }),
        kv("prefix-keys", &["prefix-keys"], Params { keys: PREFIX_KEYS, authors: 1..=3, merge: 60, ..BASE }),
        kv("hlc-ties", &["hlc-tie", "forks"], Params { authors: 2..=4, tie: 80, merge: 20, ..BASE }),
        kv("clock-skew", &["clock-skew", "forks"], Params { authors: 2..=4, skew_ms: 3, merge: 40, keys: FEW_KEYS, ..BASE }),
        kv("same-ms", &["hlc-tie", "one-author"], Params { authors: 1..=2, tie: 70, keys: FEW_KEYS, merge: 60, ..BASE }),
        kv("out-of-order", &["out-of-order", "floating", "forks"], Params { late: 40, ..CONCURRENT }),
        kv(
            "batch-dup-keys",
            &["batch", "duplicate-key", "empty-key"],
            Params { keys: EMPTY_KEYS, entries: 0..=5, dup_keys: true, authors: 1..=3, merge: 60, ..BASE },
        ),
        kv("unknown-fields", &["unknown-fields"], Params { unknown_fields: 60, entries: 1..=3, ..CONCURRENT }),
        kv(
            "convergence",
            &["convergence", "clock-skew", "forks", "delete"],
            Params { authors: 3..=5, keys: FEW_KEYS, skew_ms: 4, merge: 15, partial_merge: true, delete: 25, tie: 10, ..BASE },
        ),
        kv("broken-chain", &["negative", "floating"], Params { fault: Some(Fault::BrokenChain), ..CONCURRENT }),
        kv("bad-genesis", &["negative", "floating"], Params { fault: Some(Fault::BadGenesis), ..CONCURRENT }),
        kv("malformed-payload", &["negative", "stall"], Params { fault: Some(Fault::MalformedPayload), ..CONCURRENT }),
        kv("foreign-prev", &["negative", "stall", "chain"], Params { fault: Some(Fault::ForeignPrev), ..CONCURRENT }),
        kv("foreign-genesis", &["negative", "stall", "chain"], Params { fault: Some(Fault::ForeignGenesis), ..CONCURRENT }),
        kv(
            "exact-ties",
            &["hlc-tie", "exact-tie", "forks"],
            Params { authors: 1..=3, keys: FEW_KEYS, tie: 60, exact_tie: true, self_merge: false, merge: 10, ..BASE },
        ),
        kv(
            "wide-keys",
            &["many-keys", "batch", "delete", "forks"],
            Params { authors: 2..=3, key_space: Some(700), entries: 24..=40, value_len: 1..=6, delete: 10, merge: 20, ..BASE },
        ),
        kv(
            "witness-races",
            &["witness-order", "batch", "floating", "forks", "stall", "duplicate"],
            Params { crafted: Some(Crafted::WitnessRaces), ..BASE },
        ),
        kv("payload-edges", &["payload-edges", "unknown-fields", "stall"], Params { crafted: Some(Crafted::PayloadEdges), ..BASE }),
        v2s(
            "v2-writers",
            &["many-authors", "clock-skew", "delete"],
            Params { authors: 2..=4, keys: FEW_KEYS, entries: 1..=2, skew_ms: 2, delete: 25, tie: 20, ..BASE },
        ),
        v2s(
            "v2-exact-ties",
            &["hlc-tie", "exact-tie", "delete"],
            Params { authors: 2..=4, keys: FEW_KEYS, tie: 60, exact_tie: true, delete: 20, ..BASE },
        ),
        log("log-ties", &["hlc-tie", "many-authors"], Params { authors: 2..=5, tie: 70, same_author_tie: false, ..BASE }),
        log("log-many-authors", &["many-authors"], Params { authors: 8..=16, tie: 10, same_author_tie: false, ..BASE }),
        log("log-same-ms", &["hlc-tie", "stall"], Params { authors: 1..=3, tie: 4, ..BASE }),
        log("log-empty-payload", &["empty-payload"], Params { authors: 1..=3, value_len: 0..=2, empty_log: true, ..BASE }),
        log(
            "log-out-of-order",
            &["out-of-order", "floating"],
            Params { authors: 2..=5, late: 40, same_author_tie: false, tie: 20, ..BASE },
        ),
    ]
}

/// The scenarios of one store type.
pub fn scenarios_for(store_type: &str) -> Vec<Scenario> {
    scenarios().into_iter().filter(|s| s.store_type == store_type).collect()
}

/// One abstract step of a history.
#[derive(Clone, Debug)]
pub struct Action {
    author: u8,
    /// (key index into the scenario's pool, `None` = delete / value bytes).
    entries: Vec<(usize, Option<Vec<u8>>)>,
    merge: bool,
    tie: bool,
    redeliver: bool,
    /// Delivered this many positions late (0 = in order).
    delay: usize,
    unknown: bool,
    /// With `partial_merge`: bit `j % 64` says whether the op supersedes the `j`-th head of its
    /// keys (counting every head, its own author's included, which it supersedes anyway).
    pick: u64,
}

/// A generated plan: the actions and, for negative scenarios, where the fault goes.
#[derive(Clone, Debug)]
pub struct Plan {
    actions: Vec<Action>,
    fault_at: usize,
}

impl Scenario {
    /// Whether this scenario is a crafted family (built to a shape, not from [`Scenario::strategy`]'s
    /// actions).
    pub fn is_crafted(&self) -> bool {
        self.params.crafted.is_some()
    }

    /// The number of actions a request for `ops` ops gives (some scenarios cap it).
    pub fn op_count(&self, ops: u32) -> usize {
        let n = self.params.max_ops.map_or(ops, |m| ops.min(m)) as usize;
        if self.params.fault.is_some() {
            n.max(2)
        } else {
            n.max(1)
        }
    }

    /// The proptest strategy for a plan of `n` actions.
    pub fn strategy(&self, n: usize) -> impl Strategy<Value = Plan> {
        let p = self.params.clone();
        let fault_range = 1..n.max(2);
        p.authors
            .clone()
            .prop_flat_map(move |authors| (vec(action(p.clone(), authors), n), fault_range.clone()))
            .prop_map(|(actions, fault_at)| Plan { actions, fault_at })
    }

    /// Turns a plan into a history of this scenario's store type.
    pub fn build(&self, plan: &Plan, store_id: Uuid, salt: &[u8]) -> Vec<Op> {
        let mut b = Builder {
            store_id,
            salt: salt.to_vec(),
            tips: BTreeMap::new(),
            heads: BTreeMap::new(),
            clock: BASE_WALL_MS,
            counter: 0,
            written: BTreeMap::new(),
            ops: vec![],
        };
        for (i, a) in plan.actions.iter().enumerate() {
            let fault = self.params.fault.filter(|_| i == plan.fault_at);
            b.step(self, a, fault);
        }
        // Delivery order: an op delayed by d goes after the d ops created after it.
        let mut order: Vec<(usize, usize, Op)> = b.ops.into_iter().enumerate().map(|(i, (delay, op))| (i + delay, i, op)).collect();
        order.sort_by_key(|(at, i, _)| (*at, *i));
        order.into_iter().map(|(_, _, op)| op).collect()
    }

    fn key(&self, index: usize) -> Vec<u8> {
        if self.params.key_space.is_some() {
            return format!("k{index:04}").into_bytes();
        }
        let k = self.params.keys[index % self.params.keys.len()].as_bytes().to_vec();
        if self.params.large_key && index == 0 {
            return k.iter().copied().cycle().take(65_536).collect();
        }
        k
    }
}

fn action(p: Params, authors: u8) -> impl Strategy<Value = Action> {
    let entry = (0..p.key_space.unwrap_or(p.keys.len()), 0..100u8, vec(b'a'..=b'z', p.value_len.clone()));
    let delete = p.delete;
    let dup_keys = p.dup_keys;
    let entries = vec(entry, p.entries.clone()).prop_map(move |es| {
        let mut seen = std::collections::BTreeSet::new();
        es.into_iter().filter(|(k, _, _)| dup_keys || seen.insert(*k)).map(|(k, roll, v)| (k, (roll >= delete).then_some(v))).collect()
    });
    let pct = |x: u8| (0..100u8).prop_map(move |r| r < x);
    let late = (pct(p.late), 1..=MAX_DELAY).prop_map(|(late, d)| if late { d } else { 0 });
    // Only a partially merging scenario draws `pick`, so the other scenarios' random streams (and
    // so their histories) are what they were before it existed.
    let pick = if p.partial_merge { any::<u64>().boxed() } else { Just(0u64).boxed() };
    (0..authors, entries, pct(p.merge), pct(p.tie), pct(p.redeliver), late, pct(p.unknown_fields), pick).prop_map(
        |(author, entries, merge, tie, redeliver, delay, unknown, pick)| Action {
            author,
            entries,
            merge,
            tie,
            redeliver,
            delay,
            unknown,
            pick,
        },
    )
}

/// Chains abstract actions into real ops, tracking tips and the heads of each key.
struct Builder {
    store_id: Uuid,
    salt: Vec<u8>,
    tips: BTreeMap<[u8; 32], OpId>,
    heads: BTreeMap<Vec<u8>, Vec<(OpId, [u8; 32])>>,
    clock: u64,
    /// HLC counter of the last op (an op tying the wall time counts up).
    counter: u32,
    /// Each author's last wall time.
    written: BTreeMap<[u8; 32], u64>,
    /// (delay, op) in creation order.
    ops: Vec<(usize, Op)>,
}

impl Builder {
    fn author(&self, n: u8) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"lattice-conform gen author\0");
        h.update(&self.salt);
        h.update(&[n]);
        *h.finalize().as_bytes()
    }

    fn step(&mut self, s: &Scenario, a: &Action, fault: Option<Fault>) {
        let mut author = self.author(a.author);
        let wall = |b: &Builder| b.clock.saturating_sub(u64::from(a.author) * s.params.skew_ms);
        let tie_refused = !s.params.same_author_tie && self.written.get(&author) == Some(&wall(self));
        if a.tie && !tie_refused {
            self.counter += u32::from(!s.params.exact_tie);
        } else {
            self.clock += 1;
            self.counter = 0;
        }
        let keys: Vec<Vec<u8>> = a.entries.iter().map(|(k, _)| s.key(*k)).collect();
        let deps =
            if s.store_type == kvstore::STORE_TYPE { self.deps(&keys, &author, a.merge, a.pick, s.params.self_merge) } else { vec![] };
        let mut payload = self.payload(s, a, &keys);
        if a.unknown && s.store_type == kvstore::STORE_TYPE {
            payload.extend_from_slice(UNKNOWN_FIELDS);
        }
        let mut prev = self.tips.get(&author).copied().unwrap_or(ZERO_HASH);
        match fault {
            Some(Fault::BrokenChain) => {
                if prev == ZERO_HASH {
                    author = *self.tips.keys().next().expect("an earlier op exists: faults start at index 1");
                }
                prev = *blake3::hash(b"lattice-conform gen: not the tip").as_bytes();
            }
            Some(Fault::BadGenesis) => {
                author = self.author(255);
                prev = *blake3::hash(b"lattice-conform gen: not zero").as_bytes();
            }
            Some(Fault::MalformedPayload) if s.store_type == kvstore::STORE_TYPE => payload.truncate(payload.len() - 1),
            Some(Fault::MalformedPayload) => payload.clear(),
            Some(Fault::ForeignPrev | Fault::ForeignGenesis) => {
                // A broken chain needs an author with a tip and another author's tip to name;
                // without two authors yet (or for a foreign genesis) a new author names one.
                if !self.tips.contains_key(&author) {
                    author = *self.tips.keys().next().expect("an earlier op exists: faults start at index 1");
                }
                let foreign = self.tips.iter().find(|(a, _)| **a != author).map(|(_, tip)| *tip);
                if s.params.fault == Some(Fault::ForeignGenesis) || foreign.is_none() {
                    author = self.author(254);
                }
                prev = foreign.or_else(|| self.tips.values().next().copied()).expect("an earlier op exists");
            }
            None => {}
        }
        let op = Op { author, hlc: Hlc { wall_ms: wall(self), counter: self.counter }, prev, causal_deps: deps.clone(), payload };
        let id = op_id(&self.store_id, &op);
        match fault {
            None => self.record(id, &op, &keys, &deps),
            // The author's chain goes on through the bad op (as in Lattice's kernel test): later
            // ops of every author are witnessed but, behind the stall, never applied.
            Some(Fault::MalformedPayload) => {
                self.tips.insert(op.author, id);
            }
            Some(_) => {}
        }
        self.ops.push((a.delay, op.clone()));
        if a.redeliver {
            self.ops.push((a.delay, op));
        }
    }

    /// Heads this op supersedes: every head of its keys when merging, else its author's own and
    /// the other heads `pick` selects (none unless the scenario merges partially).
    fn deps(&self, keys: &[Vec<u8>], author: &[u8; 32], merge: bool, pick: u64, self_merge: bool) -> Vec<OpId> {
        let mut deps: Vec<OpId> = keys
            .iter()
            .flat_map(|k| self.heads.get(k).into_iter().flatten())
            .enumerate()
            .filter(|(j, (_, a))| merge || (self_merge && a == author) || (pick >> (j % 64)) & 1 == 1)
            .map(|(_, (id, _))| *id)
            .collect();
        deps.sort();
        deps.dedup();
        deps
    }

    fn payload(&self, s: &Scenario, a: &Action, keys: &[Vec<u8>]) -> Vec<u8> {
        if s.store_type == logstore::STORE_TYPE {
            let mut p = a.entries.first().and_then(|(_, v)| v.clone()).unwrap_or_default();
            if p.is_empty() && !s.params.empty_log {
                p.push(b'.');
            }
            return p;
        }
        if s.store_type == v2::STORE_TYPE {
            // The conflict count a writer reports comes from the value, so no new random draw.
            let entries: Vec<v2::Entry> = a
                .entries
                .iter()
                .zip(keys)
                .map(|((_, v), key)| match v {
                    Some(value) => {
                        v2::Entry::Set { key: key.clone(), value: value.clone(), conflicts: value.first().map_or(0, |b| u32::from(b % 3)) }
                    }
                    None => v2::Entry::Remove { key: key.clone() },
                })
                .collect();
            return v2::encode_payload(&entries);
        }
        let entries: Vec<Entry> = a
            .entries
            .iter()
            .zip(keys)
            .map(|((_, v), key)| match v {
                Some(value) => Entry::Put { key: key.clone(), value: value.clone() },
                None => Entry::Delete { key: key.clone() },
            })
            .collect();
        encode_payload(&entries)
    }

    fn record(&mut self, id: OpId, op: &Op, keys: &[Vec<u8>], deps: &[OpId]) {
        self.tips.insert(op.author, id);
        self.written.insert(op.author, op.hlc.wall_ms);
        for k in keys {
            let heads = self.heads.entry(k.clone()).or_default();
            heads.retain(|(h, _)| deps.binary_search(h).is_err());
            heads.push((id, op.author));
        }
    }
}

/// Fields no `KvPayload` defines, appended to a payload: field 15 as a varint (1) and field 9 as
/// two length-delimited bytes. A protobuf decoder skips them.
const UNKNOWN_FIELDS: &[u8] = &[0x78, 0x01, 0x4a, 0x02, b'x', b'y'];

/// Generates history `index` of `scenario` for `seed` with about `ops` ops.
pub fn generate(scenario: &Scenario, seed: u64, index: u32, ops: u32) -> History {
    let salt = salt(scenario, seed, index);
    let store_id = Uuid::new_v8(salt[..16].try_into().expect("16 bytes"));
    let provenance = Provenance {
        generator: GENERATOR.to_string(),
        seed,
        scenario: scenario.name.to_string(),
        index,
        ops,
        tags: scenario.tags.iter().map(|t| t.to_string()).collect(),
    };
    if let Some(kind) = scenario.params.crafted {
        let (ops, delivery) = crafted::build(kind, index, store_id, &salt, ops);
        return History {
            store_id,
            store_type: scenario.store_type.to_string(),
            schema_version: 1,
            provenance: Some(provenance),
            delivery,
            expect: Vec::new(),
            ops,
        };
    }
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &salt));
    let plan = scenario.strategy(scenario.op_count(ops)).new_tree(&mut runner).expect("generator strategies never reject").current();
    let ops = scenario.build(&plan, store_id, &salt);
    History {
        store_id,
        store_type: scenario.store_type.to_string(),
        schema_version: 1,
        provenance: Some(provenance),
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    }
}

/// The history's file stem: `<scenario>-s<seed>-<index>`.
pub fn history_name(scenario: &str, seed: u64, index: u32) -> String {
    format!("{scenario}-s{seed}-{index:03}")
}

/// blake3(domain ‖ scenario ‖ 0 ‖ seed LE ‖ index LE): seeds the RNG, the store id and the authors.
fn salt(scenario: &Scenario, seed: u64, index: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform gen salt v1\0");
    h.update(scenario.name.as_bytes());
    h.update(&[0]);
    h.update(&seed.to_le_bytes());
    h.update(&index.to_le_bytes());
    *h.finalize().as_bytes()
}
