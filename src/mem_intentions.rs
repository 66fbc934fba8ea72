//! The received ops of an in-memory replay ([`crate::replay::MemStore`]), and witnessing in time
//! proportional to what an arrival unblocks.
//!
//! [`crate::delivery`] states the witness rules (docs/FORMAT.md §4.2) over the [`Intentions`]
//! trait: each pass lists every floating op's `prev` and re-checks every candidate, which costs
//! O(floating) per arrival and per pass — quadratic when many ops float (a late genesis, a deep
//! chain delivered backwards). [`MemIntentions::witness_ready`] produces exactly the same witness
//! order from indexes kept up to date as ops float and are witnessed:
//!
//! * `missing` / `dep_waiters`: each floating op's count of unwitnessed `causal_deps`, and from an
//!   unwitnessed dep to the ops waiting on it — an op is **deps-ready** when its count is 0;
//! * `ready`: the deps-ready floating ops by (`prev`, id);
//! * `candidates`: (author, tip) for every witness tip with deps-ready floating ops — the pass
//!   visits these in author order, then the deps-ready genesis ops.
//!
//! A pass's candidate list is fixed at its start (§4.2): a tip that an op witnessed during the
//! pass replaces stays a candidate until the pass ends (`pass_start_tips`, `superseded`), and a
//! tip made during the pass waits for the next one. Within a prev, ops are taken by id with a
//! cursor, so one that becomes deps-ready during the pass is taken if its turn has not come yet,
//! as the rule says. A unit test and a property test compare this with the trait's walk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use lattice_logic::op::Hlc;
use lattice_logic::HostError;
use uuid::Uuid;

use crate::delivery::{Arrival, Intentions, Status, Witnessed};
use crate::op::{Op, OpId, ZERO_HASH};

/// The received ops, in memory. `known`, `witness_tips` and the waiter maps are only ever looked
/// up, never iterated, so hash maps keep replay fast without touching determinism; `floating`,
/// `ready` and `candidates` are walked in order and stay ordered.
#[derive(Default)]
pub(crate) struct MemIntentions {
    known: crate::op_index::OpIndex,
    witness_tips: HashMap<[u8; 32], OpId>,
    /// (prev, id) → (arrival, op).
    pub(crate) floating: BTreeMap<(OpId, OpId), (u64, Op)>,
    /// Floating op → (its unwitnessed deps, its prev).
    missing: HashMap<OpId, (u32, OpId)>,
    /// Unwitnessed dep → the floating ops waiting on it.
    dep_waiters: HashMap<OpId, Vec<OpId>>,
    /// Deps-ready floating ops, by (prev, id).
    ready: BTreeSet<(OpId, OpId)>,
    /// (author, tip) of witness tips with deps-ready floating ops (and, during a pass, of the
    /// pass's start tips that an op witnessed in it replaced).
    candidates: BTreeSet<([u8; 32], OpId)>,
    /// During a pass: the start tip (none for a new author) of each author whose tip it moved.
    pass_start_tips: HashMap<[u8; 32], Option<OpId>>,
    /// During a pass: start tips replaced in it, dropped from `candidates` when it ends.
    superseded: Vec<([u8; 32], OpId)>,
    in_pass: bool,
}

impl MemIntentions {
    /// The author's tip when the current pass started (its tip now, outside a pass).
    fn start_tip(&self, author: &[u8; 32]) -> Option<OpId> {
        match self.pass_start_tips.get(author) {
            Some(start) => *start,
            None => self.witness_tips.get(author).copied(),
        }
    }

    /// The author of `prev` if it is a candidate tip now: its author's current tip, or the
    /// author's tip at the start of the running pass.
    fn candidate_author(&mut self, prev: &OpId) -> Result<Option<[u8; 32]>, HostError> {
        let Some((Status::Witnessed, _, author)) = self.known.get(prev)? else { return Ok(None) };
        let current = self.witness_tips.get(&author) == Some(prev);
        Ok((current || self.start_tip(&author) == Some(*prev)).then_some(author))
    }

    /// `id` (with `prev`) is deps-ready: index it under its prev, and its prev as a candidate.
    fn make_ready(&mut self, prev: OpId, id: OpId) -> Result<(), HostError> {
        self.ready.insert((prev, id));
        if prev != ZERO_HASH {
            if let Some(author) = self.candidate_author(&prev)? {
                self.candidates.insert((author, prev));
            }
        }
        Ok(())
    }

    fn has_ready(&self, prev: &OpId) -> bool {
        self.ready.range((*prev, [0u8; 32])..=(*prev, [0xff; 32])).next().is_some()
    }

    /// Receives `op` as `receive` does with no fault: refused, redelivered, or kept and then
    /// witnessed with what became ready.
    pub(crate) fn receive(&mut self, store_id: &Uuid, op: &Op, arrival: u64) -> Result<Arrival, HostError> {
        let id = match crate::delivery::admit(self, store_id, op)? {
            Ok(id) => id,
            Err(arrival) => return Ok(arrival),
        };
        self.add_floating(&id, arrival, op)?;
        Ok(Arrival::Received { id, witnessed: self.witness_ready()? })
    }

    /// Witnesses every deps-ready candidate, in passes, in §4.2's order.
    pub(crate) fn witness_ready(&mut self) -> Result<Vec<Witnessed>, HostError> {
        let mut out = Vec::new();
        loop {
            let before = out.len();
            self.in_pass = true;
            let mut cursor: Option<([u8; 32], OpId)> = None;
            loop {
                let lower = cursor.map_or(Bound::Unbounded, Bound::Excluded);
                let Some(&(author, prev)) = self.candidates.range((lower, Bound::Unbounded)).next() else { break };
                cursor = Some((author, prev));
                if self.start_tip(&author) == Some(prev) {
                    self.witness_under(prev, &mut out)?;
                }
            }
            self.witness_under(ZERO_HASH, &mut out)?;
            self.in_pass = false;
            self.pass_start_tips.clear();
            for (author, tip) in std::mem::take(&mut self.superseded) {
                self.candidates.remove(&(author, tip));
            }
            if out.len() == before {
                return Ok(out);
            }
        }
    }

    /// Witnesses the deps-ready ops naming `prev`, by id, including those that become deps-ready
    /// before their turn.
    fn witness_under(&mut self, prev: OpId, out: &mut Vec<Witnessed>) -> Result<(), HostError> {
        let mut after: Option<OpId> = None;
        loop {
            let lower = after.map_or(Bound::Included((prev, [0u8; 32])), |id| Bound::Excluded((prev, id)));
            let Some(&(_, id)) = self.ready.range((lower, Bound::Included((prev, [0xff; 32])))).next() else { return Ok(()) };
            after = Some(id);
            let (arrival, op) = self.floating.get(&(prev, id)).cloned().expect("a ready op floats");
            self.witness(&id, &op)?;
            out.push(Witnessed { id, arrival, op });
        }
    }
}

impl Intentions for MemIntentions {
    fn get(&mut self, id: &OpId) -> Result<Option<(Status, Hlc, [u8; 32])>, HostError> {
        self.known.get(id)
    }

    fn witness_tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        Ok(self.witness_tips.get(author).copied())
    }

    fn any_floating(&mut self) -> Result<bool, HostError> {
        Ok(!self.floating.is_empty())
    }

    fn floating_prevs(&mut self) -> Result<Vec<OpId>, HostError> {
        let mut prevs: Vec<OpId> = self.floating.keys().map(|(prev, _)| *prev).collect();
        prevs.dedup();
        Ok(prevs)
    }

    fn floating_by_prev(&mut self, prev: &OpId) -> Result<Vec<(OpId, u64, Op)>, HostError> {
        let range = self.floating.range((*prev, [0u8; 32])..=(*prev, [0xff; 32]));
        Ok(range.map(|((_, id), (arrival, op))| (*id, *arrival, op.clone())).collect())
    }

    fn add_floating(&mut self, id: &OpId, arrival: u64, op: &Op) -> Result<(), HostError> {
        self.known.insert(*id, (Status::Floating, op.hlc, op.author));
        self.floating.insert((op.prev, *id), (arrival, op.clone()));
        let mut missing = 0;
        for dep in &op.causal_deps {
            if *dep != ZERO_HASH && !matches!(self.known.get(dep)?, Some((Status::Witnessed, ..))) {
                missing += 1;
                self.dep_waiters.entry(*dep).or_default().push(*id);
            }
        }
        if missing == 0 {
            self.make_ready(op.prev, *id)?;
        } else {
            self.missing.insert(*id, (missing, op.prev));
        }
        Ok(())
    }

    fn witness(&mut self, id: &OpId, op: &Op) -> Result<(), HostError> {
        self.floating.remove(&(op.prev, *id));
        if self.ready.remove(&(op.prev, *id)) && op.prev != ZERO_HASH && !self.has_ready(&op.prev) {
            if let Some((_, _, author)) = self.known.get(&op.prev)? {
                // Safe during a pass: the pass's cursor has reached this entry already.
                self.candidates.remove(&(author, op.prev));
            }
        }
        // An op witnessed in spite of missing deps (a seeded fault) stops waiting.
        self.missing.remove(id);
        self.known.insert(*id, (Status::Witnessed, op.hlc, op.author));
        let old = self.witness_tips.insert(op.author, *id);
        if self.in_pass {
            self.pass_start_tips.entry(op.author).or_insert(old);
        }
        if let Some(old) = old {
            if self.in_pass {
                self.superseded.push((op.author, old));
            } else {
                self.candidates.remove(&(op.author, old));
            }
        }
        if self.has_ready(id) {
            self.candidates.insert((op.author, *id));
        }
        for waiter in self.dep_waiters.remove(id).unwrap_or_default() {
            let Some((count, prev)) = self.missing.get_mut(&waiter) else { continue };
            *count -= 1;
            if *count == 0 {
                let prev = *prev;
                self.missing.remove(&waiter);
                self.make_ready(prev, waiter)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery;
    use crate::history::{History, Step};

    /// What each delivery of `h` (by its plan, or one op at a time in `order`) witnessed, in
    /// order, with the indexed walk and with the trait's walk (the rule as §4.2 words it).
    fn both_ways(h: &History, order: Option<&[usize]>) -> (Vec<Vec<OpId>>, Vec<Vec<OpId>>) {
        let (mut fast, mut slow) = (MemIntentions::default(), MemIntentions::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ids = |w: Vec<Witnessed>| w.into_iter().map(|w| w.id).collect::<Vec<_>>();
        let got = |x: Arrival| match x {
            Arrival::Received { witnessed, .. } => ids(witnessed),
            _ => vec![],
        };
        match order {
            Some(order) => {
                for (k, &i) in order.iter().enumerate() {
                    a.push(got(fast.receive(&h.store_id, &h.ops[i], k as u64).unwrap()));
                    b.push(got(delivery::receive(&mut slow, &h.store_id, &h.ops[i], k as u64).unwrap()));
                }
            }
            None => {
                let (mut walk, n, mut at) = (h.delivery.walk(), h.ops.len() as u64, 0u64);
                while at < n {
                    match walk.next(at) {
                        Step::Restart => {}
                        Step::Batch { len } => {
                            for i in at..at + len {
                                delivery::receive_floating(&mut fast, &h.store_id, &h.ops[i as usize], i).unwrap();
                                delivery::receive_floating(&mut slow, &h.store_id, &h.ops[i as usize], i).unwrap();
                            }
                            a.push(ids(fast.witness_ready().unwrap()));
                            b.push(ids(delivery::witness_pending(&mut slow, None).unwrap()));
                            at += len;
                        }
                        Step::Each { until } => {
                            for i in at..until.unwrap_or(n).min(n) {
                                a.push(got(fast.receive(&h.store_id, &h.ops[i as usize], i).unwrap()));
                                b.push(got(delivery::receive(&mut slow, &h.store_id, &h.ops[i as usize], i).unwrap()));
                            }
                            at = until.unwrap_or(n).min(n);
                        }
                    }
                }
            }
        }
        (a, b)
    }

    #[test]
    fn the_indexed_walk_witnesses_what_the_rule_does_on_every_corpus_history_and_reordering() {
        let copy = crate::corpus::repository_corpus_copy();
        let dir = copy.path().join("corpus");
        let manifest = crate::corpus::Manifest::load(&dir, false).unwrap();
        let mut cascades = 0;
        for e in &manifest.files {
            let h = crate::corpus::load_checked(&dir, e).unwrap();
            let (a, b) = both_ways(&h, None);
            assert_eq!(a, b, "{}: own order", e.path);
            cascades += a.iter().filter(|w| w.len() > 1).count();
            for (k, order) in crate::converge::orders(&h, &e.id(), 2, 0).iter().enumerate() {
                let (a, b) = both_ways(&h, Some(order));
                assert_eq!(a, b, "{}: order {k}", e.path);
                cascades += a.iter().filter(|w| w.len() > 1).count();
            }
        }
        assert!(cascades > 1000, "the corpus should ready several ops at once often: {cascades}");
    }
}
