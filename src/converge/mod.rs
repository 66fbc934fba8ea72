//! The convergence check: replicas that receive the same ops in different orders must end up
//! showing readers the same state.
//!
//! Each history is replayed in its own order and in `n` further delivery orders drawn from a
//! seeded RNG (blake3 of the seed and the history id): half of them *causal* (every op after its
//! `prev` and its `causal_deps`, picked at random among the ready ops), half arbitrary
//! permutations (ops before their parents, which the replica holds until they are ready). Every
//! order must reach the own order's observed hash. A history whose own replay stalls is skipped:
//! what a stalled replica shows depends on which ops arrived before the stall.
//!
//! A divergence is shrunk — ops are removed, in halves, then quarters, … then one at a time,
//! while the two orders still disagree — and written as two history files (the same ops in the
//! two orders), ready to become fixtures. Divergences that are real behaviour of the system
//! under test are listed in a committed known-divergences file (like a strict xfail): they are
//! reported as known, and each entry's counterexample must still diverge.
//! Normative: docs/FORMAT.md, "Convergence".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde::{Deserialize, Serialize};

use crate::diff::{diff_views, KeyDiff};
use crate::hash::StateHash;
use crate::history::History;
use crate::op::{op_id, Op, OpId, ZERO_HASH};
use crate::replica::{Replica, ReplicaError, ReplicaFactory};

/// The known-divergences file's format tag and version.
pub const KNOWN_TAG: &str = "lattice-conform/known-divergences";
pub const KNOWN_VERSION: u32 = 2;

/// What the check found for one history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Convergence {
    /// Every order reached the own order's observed hash (and, for a type whose rows are
    /// order-independent, its state hash; `state_hash_agrees` says whether they all did).
    Converges { orders: u32, state_hash_agrees: bool },
    /// Skipped: the own order stalls.
    Skipped { reason: String },
    /// Two orders disagree; shrunk.
    Diverges(Box<Counterexample>),
}

/// Two delivery orders of the same ops that leave different reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counterexample {
    /// Which drawn order (0-based) first disagreed with the history's own order.
    pub order: u32,
    /// The shrunk ops, in the first order and in the second, as indices into the history.
    pub order_a: Vec<usize>,
    pub order_b: Vec<usize>,
    /// The keys whose reads differ after the two orders: A's read → B's read.
    pub reads: Vec<KeyDiff>,
    /// The observed hashes of the whole history delivered in its own order and in order `order`
    /// (before shrinking): with the history and the seed, the divergence's signature.
    pub observed_own: String,
    pub observed_order: String,
    /// A known divergence this one is listed under, if any.
    pub known: Option<String>,
    /// For a divergence that is not known: the occurrences recorded for the history under this
    /// seed, which it fails to match (what changed).
    pub unmatched: Option<String>,
}

/// The committed list of divergences that are real behaviour of the system under test.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnownDivergences {
    pub format: String,
    pub format_version: u32,
    pub divergences: Vec<Known>,
}

/// One known divergence: the divergences listed in `occurrences` are reported under it, and its
/// counterexample (`history_a`, `history_b`: the same ops in two orders, relative to the file)
/// must still diverge.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    pub id: String,
    pub store_type: String,
    pub reason: String,
    pub history_a: String,
    pub history_b: String,
    /// Exactly where and how it shows in the corpus: a divergence is known only if it matches one.
    pub occurrences: Vec<Occurrence>,
}

/// One recorded divergence of a corpus history (docs/FORMAT.md §13.8): with `order_seed`, order
/// `order` is the first that diverges, and the two observed hashes are these.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Occurrence {
    pub history: String,
    pub order_seed: u64,
    pub order: u32,
    pub observed_own: String,
    pub observed_order: String,
}

impl Occurrence {
    /// The occurrence of divergence `c` of history `id` under `seed`.
    pub fn of(id: &str, seed: u64, c: &Counterexample) -> Occurrence {
        Occurrence {
            history: id.to_string(),
            order_seed: seed,
            order: c.order,
            observed_own: c.observed_own.clone(),
            observed_order: c.observed_order.clone(),
        }
    }
}

/// Errors of the known-divergences file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvergeError {
    #[error("{0}: cannot read")]
    Io(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error(
        "{0}: a known-divergences file of format_version {1}, which matched divergences by store type only; format_version 2 \
         lists each known divergence's occurrences (docs/FORMAT.md §13.8): set format_version to 2, add \
         \"occurrences\": [] to every entry, then record them with `verify --orders N --record-known ID`"
    )]
    V1(PathBuf, u32),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

impl KnownDivergences {
    pub fn load(path: &Path) -> Result<KnownDivergences, ConvergeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConvergeError::Io(path.to_path_buf(), e))?;
        match crate::versioned::check(&text, path, KNOWN_TAG, KNOWN_VERSION) {
            Err(crate::versioned::VersionError::TooOld { found, .. }) => return Err(ConvergeError::V1(path.to_path_buf(), found)),
            other => other?,
        }
        let file: KnownDivergences = serde_json::from_str(&text).map_err(|e| crate::versioned::json_error(path, &e))?;
        for k in &file.divergences {
            if let Some(o) = k.occurrences.iter().find(|o| !o.history.starts_with(&format!("{}/", k.store_type))) {
                return Err(ConvergeError::Invalid(
                    path.to_path_buf(),
                    format!("known divergence `{}` is of {} but lists history `{}`", k.id, k.store_type, o.history),
                ));
            }
        }
        Ok(file)
    }

    /// The entry that lists divergence `c` of history `id` under `seed`: one of its occurrences
    /// has the same history, seed, order and both observed hashes.
    pub fn matching(&self, id: &str, seed: u64, c: &Counterexample) -> Option<&Known> {
        let o = Occurrence::of(id, seed, c);
        self.divergences.iter().find(|k| k.occurrences.contains(&o))
    }

    /// The recorded occurrences of history `id` under `seed`, with their entry.
    pub fn occurrences_of<'a>(&'a self, id: &'a str, seed: u64) -> impl Iterator<Item = (&'a Known, &'a Occurrence)> + 'a {
        self.divergences
            .iter()
            .flat_map(move |k| k.occurrences.iter().filter(move |o| o.history == id && o.order_seed == seed).map(move |o| (k, o)))
    }

    /// Records `run`'s divergences of entry `id`'s store type as its occurrences under `run.seed`:
    /// for every history the run checked, the entry's occurrences of that seed are replaced by
    /// what the run found (none if the history no longer diverges). Returns how many it lists
    /// now for the run's histories.
    pub fn record(&mut self, id: &str, run: &Run) -> Option<usize> {
        let entry = self.divergences.iter_mut().find(|k| k.id == id)?;
        let checked: BTreeSet<&str> =
            run.histories.iter().map(|(h, _)| h.as_str()).filter(|h| h.starts_with(&format!("{}/", entry.store_type))).collect();
        entry.occurrences.retain(|o| o.order_seed != run.seed || !checked.contains(o.history.as_str()));
        let mut added = 0;
        for (h, c) in &run.histories {
            if let (true, Convergence::Diverges(x)) = (checked.contains(h.as_str()), c) {
                entry.occurrences.push(Occurrence::of(h, run.seed, x));
                added += 1;
            }
        }
        entry.occurrences.sort_by(|a, b| (&a.history, a.order_seed).cmp(&(&b.history, b.order_seed)));
        Some(added)
    }

    /// The file's canonical text (§10.3's pretty style and a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a known-divergences file serializes");
        s.push('\n');
        s
    }
}

/// Checks one history in `n` further orders drawn from `seed`.
/// Each order is delivered to a fresh replica of `f` (a fresh store of an outside build too);
/// an error is a replica that could not go on.
pub fn check(
    h: &History,
    id: &str,
    f: &dyn ReplicaFactory,
    n: u32,
    seed: u64,
    known: Option<&KnownDivergences>,
) -> Result<Convergence, ReplicaError> {
    let own: Vec<usize> = (0..h.ops.len()).collect();
    let mut base = replayed(h, f, h.ops.iter())?;
    if let Some(s) = base.stall() {
        let why = if s.kind == crate::kernel::RejectKind::HostFailure { format!(": {}", s.reason) } else { String::new() };
        return Ok(Convergence::Skipped { reason: format!("projection stalls at op {} ({}){why}", s.op_index, s.kind.as_str()) });
    }
    let own_outcome = hashes(base.as_mut())?;
    let mut state_hash_agrees = true;
    for (k, order) in (0u32..).zip(orders(h, id, n, seed)) {
        let outcome = hashes(replayed(h, f, order.iter().map(|&i| &h.ops[i]))?.as_mut())?;
        state_hash_agrees &= outcome.1 == own_outcome.1;
        if disagree(&h.store_type, outcome, own_outcome) {
            let (a, b) = shrink(h, f, own.clone(), order)?;
            let reads = reads_after(h, f, &a, &b)?;
            let mut c = Counterexample {
                order: k,
                order_a: a,
                order_b: b,
                reads,
                observed_own: own_outcome.0.to_string(),
                observed_order: outcome.0.to_string(),
                known: None,
                unmatched: None,
            };
            c.known = known.and_then(|file| file.matching(id, seed, &c)).map(|k| k.id.clone());
            if let (None, Some(file)) = (&c.known, known) {
                c.unmatched = unmatched(file, id, seed);
            }
            return Ok(Convergence::Diverges(Box::new(c)));
        }
    }
    Ok(Convergence::Converges { orders: n, state_hash_agrees })
}

/// A fresh replica of `f` with `ops` delivered each on its own, in order.
fn replayed<'o>(h: &History, f: &dyn ReplicaFactory, ops: impl Iterator<Item = &'o Op>) -> Result<Box<dyn Replica>, ReplicaError> {
    let mut r = f.open(&h.identity())?;
    crate::replica::deliver_all(r.as_mut(), ops.cloned())?;
    Ok(r)
}

/// Whether every delivery order must also leave the same stored rows (the same state hash), not
/// only the same reads: true for `core:logstore`, whose rows are keyed by wall time and author
/// and hold only the content. Not for `core:kvstore` (a row's heads after `heads[0]` are in
/// arrival order) nor, unproven, `core:kvstore-v2`.
pub fn rows_order_independent(store_type: &str) -> bool {
    store_type == lattice_logic::logstore::STORE_TYPE
}

/// The `n` further delivery orders of `h` (history id `id`) that `check` replays, in order.
pub fn orders(h: &History, id: &str, n: u32, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rng(seed, id);
    (0..n).map(|k| if k % 2 == 0 { causal_order(h, &mut rng) } else { shuffled(h.ops.len(), &mut rng) }).collect()
}

/// Whether the two orders of `h`'s ops (indices) leave different observed hashes (or, for a type
/// whose rows are order-independent, different state hashes).
pub fn diverges(h: &History, f: &dyn ReplicaFactory, a: &[usize], b: &[usize]) -> Result<bool, ReplicaError> {
    let all: BTreeSet<usize> = a.iter().copied().collect();
    let ops = rebuilt(h, &all);
    Ok(disagree(&h.store_type, hashes(after(h, f, &ops, a)?.as_mut())?, hashes(after(h, f, &ops, b)?.as_mut())?))
}

/// The observed hash and the state hash of `s`.
fn hashes(s: &mut dyn Replica) -> Result<(StateHash, StateHash), ReplicaError> {
    Ok((s.observed_hash()?, s.state_hash()?))
}

/// Whether two replicas' (observed, state) hashes count as a divergence: the reads differ, or,
/// for a type whose rows are order-independent, the rows do.
pub(crate) fn disagree(store_type: &str, (oa, sa): (StateHash, StateHash), (ob, sb): (StateHash, StateHash)) -> bool {
    oa != ob || (rows_order_independent(store_type) && sa != sb)
}

/// A store with the (re-linked) ops `ops` delivered in `order`.
fn after(h: &History, f: &dyn ReplicaFactory, ops: &BTreeMap<usize, Op>, order: &[usize]) -> Result<Box<dyn Replica>, ReplicaError> {
    replayed(h, f, order.iter().map(|i| &ops[i]))
}

fn reads_after(h: &History, f: &dyn ReplicaFactory, a: &[usize], b: &[usize]) -> Result<Vec<KeyDiff>, ReplicaError> {
    let all: BTreeSet<usize> = a.iter().copied().collect();
    let ops = rebuilt(h, &all);
    let views = |order: &[usize]| after(h, f, &ops, order)?.views();
    Ok(diff_views(&h.store_type, &views(a)?, &views(b)?))
}

/// The ops of `h` at the indices `keep`, with `prev` and `causal_deps` repaired as if the other
/// ops had never existed (each author's kept ops chained in causal order; deps on removed ops
/// dropped), so removing an op does not leave its author's later ops floating for good.
fn rebuilt(h: &History, keep: &BTreeSet<usize>) -> BTreeMap<usize, Op> {
    let ids: Vec<OpId> = h.ops.iter().map(|op| op_id(&h.store_id, op)).collect();
    let kept: BTreeSet<OpId> = keep.iter().map(|&i| ids[i]).collect();
    let needs = |op: &Op| needs(op, &kept);
    // A causal order of the kept ops: the first ready one by index, repeatedly.
    let mut waiting: BTreeMap<usize, Vec<OpId>> = keep.iter().map(|&i| (i, needs(&h.ops[i]))).collect();
    let mut done: BTreeSet<OpId> = BTreeSet::new();
    let mut topo = Vec::with_capacity(keep.len());
    while !waiting.is_empty() {
        let next = waiting.iter().find(|(_, n)| n.iter().all(|d| done.contains(d))).map(|(i, _)| *i);
        let i = next.unwrap_or_else(|| *waiting.keys().next().expect("not empty"));
        waiting.remove(&i);
        done.insert(ids[i]);
        topo.push(i);
    }
    let pairs: Vec<(OpId, Op)> = topo.iter().map(|&i| (ids[i], h.ops[i].clone())).collect();
    topo.into_iter().zip(crate::lockstep::rechain(h, &pairs)).collect()
}

/// Removes ops (from both orders at once, re-linking the rest) while the orders still disagree:
/// chunks of half the ops, then a quarter, … then single ops, until nothing more can go.
pub fn shrink(h: &History, f: &dyn ReplicaFactory, a: Vec<usize>, b: Vec<usize>) -> Result<(Vec<usize>, Vec<usize>), ReplicaError> {
    let mut keep: Vec<usize> = {
        let mut k = a.clone();
        k.sort_unstable();
        k.dedup();
        k
    };
    let restrict = |order: &[usize], keep: &BTreeSet<usize>| order.iter().copied().filter(|i| keep.contains(i)).collect::<Vec<_>>();
    let mut chunk = keep.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < keep.len() {
            let end = (start + chunk).min(keep.len());
            let trial: BTreeSet<usize> = keep[..start].iter().chain(&keep[end..]).copied().collect();
            if !trial.is_empty() && diverges(h, f, &restrict(&a, &trial), &restrict(&b, &trial))? {
                keep = trial.into_iter().collect();
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    let keep: BTreeSet<usize> = keep.into_iter().collect();
    Ok((restrict(&a, &keep), restrict(&b, &keep)))
}

/// The RNG of one history's orders: ChaCha seeded with blake3("lattice-conform orders v1\0" ‖
/// seed LE ‖ history id).
fn rng(seed: u64, id: &str) -> TestRng {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform orders v1\0");
    h.update(&seed.to_le_bytes());
    h.update(id.as_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, h.finalize().as_bytes())
}

/// The ops `op` waits for among `among`: its `prev` and its `causal_deps`.
fn needs(op: &Op, among: &BTreeSet<OpId>) -> Vec<OpId> {
    std::iter::once(op.prev).chain(op.causal_deps.iter().copied()).filter(|d| *d != ZERO_HASH && among.contains(d)).collect()
}

/// A uniform index in `0..n` (n > 0), by rejection so it has no modulo bias.
fn below(rng: &mut TestRng, n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let x = rng.next_u64();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

/// A Fisher–Yates shuffle of `0..n`.
fn shuffled(n: usize, rng: &mut TestRng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, below(rng, i + 1));
    }
    v
}

/// A random causal order: repeatedly a uniformly chosen ready op, where an op is ready once its
/// `prev` and every `causal_dep` that is in the history have been delivered (redelivered copies
/// are ready once their first copy is).
fn causal_order(h: &History, rng: &mut TestRng) -> Vec<usize> {
    let ids: Vec<OpId> = h.ops.iter().map(|op| op_id(&h.store_id, op)).collect();
    let present: BTreeSet<OpId> = ids.iter().copied().collect();
    let needs = |op: &Op| needs(op, &present);
    let mut delivered: BTreeSet<OpId> = BTreeSet::new();
    let mut waiting: BTreeMap<usize, Vec<OpId>> = h.ops.iter().enumerate().map(|(i, op)| (i, needs(op))).collect();
    let mut order = Vec::with_capacity(h.ops.len());
    while !waiting.is_empty() {
        let ready: Vec<usize> = waiting.iter().filter(|(_, n)| n.iter().all(|d| delivered.contains(d))).map(|(i, _)| *i).collect();
        // An op whose parent is itself (impossible) or a cycle would leave nothing ready: deliver
        // the rest in history order.
        let Some(&pick) = (!ready.is_empty()).then(|| &ready[below(rng, ready.len())]) else {
            order.extend(waiting.keys().copied());
            break;
        };
        waiting.remove(&pick);
        delivered.insert(ids[pick]);
        order.push(pick);
    }
    order
}

/// The counterexample's two histories: the shrunk (re-linked) ops of `h` in order A and in
/// order B.
pub fn counterexample_histories(h: &History, c: &Counterexample) -> (History, History) {
    let ops = rebuilt(h, &c.order_a.iter().copied().collect());
    let make = |order: &[usize]| History {
        store_id: h.store_id,
        store_type: h.store_type.clone(),
        schema_version: h.schema_version,
        provenance: None,
        // Orders deliver every op on its own: a batch or restart plan names positions of the
        // history's own order.
        delivery: Default::default(),
        expect: Vec::new(),
        ops: order.iter().map(|i| ops[i].clone()).collect(),
    };
    (make(&c.order_a), make(&c.order_b))
}

/// Re-checks a known divergence: its two histories (same ops, two orders) must still diverge
/// with `logic`, by the rule `check` applies. Returns whether they do.
pub fn known_still_diverges(dir: &Path, k: &Known, f: &dyn ReplicaFactory) -> Result<bool, anyhow::Error> {
    let a = History::load(&dir.join(&k.history_a)).map_err(ConvergeError::from)?;
    let b = History::load(&dir.join(&k.history_b)).map_err(ConvergeError::from)?;
    let replay = |h: &History| hashes(replayed(h, f, h.ops.iter())?.as_mut());
    Ok(disagree(&k.store_type, replay(&a)?, replay(&b)?))
}

/// The convergence part of a verify report (`--format json`): one verdict per history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub orders: u32,
    pub seed: u64,
    pub histories: Vec<Verdict>,
    /// Known divergences whose counterexample no longer diverges.
    pub stale_known: Vec<String>,
}

/// One history's convergence verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub id: String,
    /// `converges`, `skipped`, `known` or `diverges`.
    pub verdict: String,
    /// Why it was skipped, or the known divergence's id.
    pub detail: Option<String>,
    /// For a divergence: the first order that diverged and the observed hashes of the whole
    /// history in its own order and in that one (the occurrence `--record-known` records).
    pub order: Option<u32>,
    pub observed_own: Option<String>,
    pub observed_order: Option<String>,
    /// For a divergence: the shrunk ops (history indices) in the two orders, and the reads
    /// that differ (A's read → B's read).
    pub order_a: Vec<usize>,
    pub order_b: Vec<usize>,
    pub reads: Vec<KeyDiff>,
}

impl Summary {
    /// Divergences not listed as known.
    pub fn unknown(&self) -> usize {
        self.histories.iter().filter(|v| v.verdict == "diverges").count()
    }
}

/// The outcome of `verify --orders` over a selection.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub orders: u32,
    pub seed: u64,
    /// Per history, in selection order.
    pub histories: Vec<(String, Convergence)>,
    /// Known divergences (of the selected types) whose counterexample no longer diverges.
    pub stale_known: Vec<String>,
}

impl Run {
    /// The report form of this run.
    pub fn summary(&self) -> Summary {
        let histories = self
            .histories
            .iter()
            .map(|(id, c)| {
                let v = |verdict: &str, detail: Option<String>| Verdict {
                    id: id.clone(),
                    verdict: verdict.into(),
                    detail,
                    order: None,
                    observed_own: None,
                    observed_order: None,
                    order_a: vec![],
                    order_b: vec![],
                    reads: vec![],
                };
                match c {
                    Convergence::Converges { .. } => v("converges", None),
                    Convergence::Skipped { reason } => v("skipped", Some(reason.clone())),
                    Convergence::Diverges(x) => Verdict {
                        order: Some(x.order),
                        observed_own: Some(x.observed_own.clone()),
                        observed_order: Some(x.observed_order.clone()),
                        order_a: x.order_a.clone(),
                        order_b: x.order_b.clone(),
                        reads: x.reads.clone(),
                        ..v(if x.known.is_some() { "known" } else { "diverges" }, x.known.clone().or_else(|| x.unmatched.clone()))
                    },
                }
            })
            .collect();
        Summary { orders: self.orders, seed: self.seed, histories, stale_known: self.stale_known.clone() }
    }

    /// Divergences not listed as known.
    pub fn unknown(&self) -> impl Iterator<Item = &(String, Convergence)> {
        self.histories.iter().filter(|(_, c)| matches!(c, Convergence::Diverges(x) if x.known.is_none()))
    }
}

/// What `file` records for history `id` under `seed`, if anything: `known divergence ID records
/// order K (observed own …, order …)`, for each occurrence.
fn unmatched(file: &KnownDivergences, id: &str, seed: u64) -> Option<String> {
    let listed: Vec<String> = file
        .occurrences_of(id, seed)
        .map(|(k, o)| {
            format!(
                "known divergence `{}` records order {} (observed {} own, {} in that order)",
                k.id, o.order, o.observed_own, o.observed_order
            )
        })
        .collect();
    (!listed.is_empty()).then(|| listed.join("; "))
}

/// The recorded occurrences `run` should have met and did not: of a history it checked, under its
/// seed, at an order it replayed, where the history now converges or is skipped (a history that
/// diverges differently is already an unknown divergence). As `ID (HISTORY, order K, seed S)`.
pub fn stale_occurrences(file: &KnownDivergences, run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for (h, c) in &run.histories {
        if matches!(c, Convergence::Diverges(_)) {
            continue;
        }
        for (k, o) in file.occurrences_of(h, run.seed).filter(|(_, o)| o.order < run.orders) {
            out.push(format!("{} ({}, order {}, seed {})", k.id, o.history, o.order, o.order_seed));
        }
    }
    out
}

impl Run {
    /// Re-matches the run's divergences against `file` (after `KnownDivergences::record`) and
    /// recomputes the stale occurrences; stale entries found before stay.
    pub fn rematch(&mut self, file: &KnownDivergences) {
        let seed = self.seed;
        for (h, c) in &mut self.histories {
            if let Convergence::Diverges(x) = c {
                x.known = file.matching(h, seed, x).map(|k| k.id.clone());
                x.unmatched = if x.known.is_some() { None } else { unmatched(file, h, seed) };
            }
        }
        let entries: BTreeSet<&str> = file.divergences.iter().map(|k| k.id.as_str()).collect();
        self.stale_known.retain(|s| entries.contains(s.as_str()));
        let stale = stale_occurrences(file, self);
        self.stale_known.extend(stale);
    }
}

#[cfg(test)]
mod tests;
