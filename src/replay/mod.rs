//! In-memory replay: delivery and projection over in-memory tables, without redb.
//!
//! It runs exactly the code the store runs ([`delivery::receive`] and [`kernel::apply_op`])
//! behind the same interfaces, so it reaches the same state hash as a store on disk for the same
//! history (the integration tests check this), at memory speed.

use std::collections::{BTreeMap, BTreeSet};

use lattice_logic::{HostError, MemTable, Table};
use serde::{Deserialize, Serialize};

use crate::delivery::{self, Arrival, DagView, DeliveryFault};
use crate::hash::{HashFault, LtHash, RowTable, StateHash};
use crate::kernel::{self, ChainState, KernelFault, RejectKind, Rejection};
use crate::mem_intentions::MemIntentions;
use crate::op::{Op, OpId};
use crate::store::{Logic, StoreIdentity};

/// Where projection stalled: the op (by the index at which it arrived), why, and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    pub op_index: u64,
    #[serde(with = "hex::serde")]
    pub op_id: OpId,
    pub kind: RejectKind,
    pub reason: String,
}

/// What one delivered op did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Refused on arrival (encoding limits); nothing kept.
    Refused(Rejection),
    /// Already received; ignored.
    Redelivered,
    /// Kept; `witnessed` ops became ready, `applied` of them were projected, and projection
    /// stalled during this delivery if `stalled`.
    Received { witnessed: u64, applied: u64, stalled: bool },
    /// Not delivered: an earlier op of its batch was refused, which aborts the rest (§4.5).
    Skipped,
}

/// Seeded host faults a replay runs with (`lattice-conform faults`): one rule of delivery, of the
/// projection step or of the state-hash encoding broken. The default is none: the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostFaults {
    pub delivery: Option<DeliveryFault>,
    pub kernel: Option<KernelFault>,
    pub hash: Option<HashFault>,
}

/// A store's state held in memory.
pub struct MemStore {
    identity: StoreIdentity,
    logic: Logic,
    faults: HostFaults,
    data: MemTable,
    tips: Tips,
    ints: MemIntentions,
    acc: LtHash,
    stall: Option<Stall>,
    counts: Counts,
    observed: Observed,
    journal: Option<Journal>,
}

/// What deliveries changed since [`MemStore::take_journal`] last looked: kept only for a store
/// made [`MemStore::with_journal`] (the reference adapter reports it over the build protocol).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// Ops witnessed, in witness order.
    pub witnessed: Vec<OpId>,
    /// Ops applied, in projection order.
    pub applied: Vec<OpId>,
    /// `data` keys written (put or deleted).
    pub keys: BTreeSet<Vec<u8>>,
    /// Authors whose tip projection may have moved.
    pub authors: BTreeSet<[u8; 32]>,
}

/// The observed state, kept up to date lazily: keys written since the last look are re-viewed.
#[derive(Default)]
struct Observed {
    /// Each key's current view (keys readers do not see, and unviewable rows, are absent).
    views: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys whose row the logic could not view.
    unviewable: BTreeSet<Vec<u8>>,
    acc: LtHash,
    /// Keys written since the views were last brought up to date.
    dirty: BTreeSet<Vec<u8>>,
    /// Why the logic could not view a row, the first time it failed.
    failure: Option<String>,
}

/// The `data` table as the kernel writes it, noting which keys were written.
struct Tracked<'a> {
    rows: &'a mut MemTable,
    dirty: &'a mut BTreeSet<Vec<u8>>,
    journal: Option<&'a mut BTreeSet<Vec<u8>>>,
}

impl Table for Tracked<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.rows.get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        self.note(key);
        self.rows.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        self.note(key);
        self.rows.delete(key)
    }
}

impl Tracked<'_> {
    fn note(&mut self, key: &[u8]) {
        self.dirty.insert(key.to_vec());
        if let Some(j) = self.journal.as_deref_mut() {
            j.insert(key.to_vec());
        }
    }
}

/// Running totals over all deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub delivered: u64,
    pub refused: u64,
    pub redelivered: u64,
    pub witnessed: u64,
    pub applied: u64,
}

/// How a replay of a whole history ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub counts: Counts,
    pub stall: Option<Stall>,
    /// Arrival indices of the ops still floating, ascending.
    pub floating: Vec<u64>,
    pub state_hash: StateHash,
}

/// Replays `ops` into a fresh in-memory store.
pub fn replay(identity: StoreIdentity, logic: Logic, ops: &[Op]) -> ReplayOutcome {
    MemStore::replayed(identity, logic, ops).outcome()
}

/// `logic` for a new store: a new instance of the same module under the same limits if `logic` is
/// a Wasm build, else `logic` itself (native logics keep no state).
fn fresh_instance(logic: Logic) -> Logic {
    match crate::wasm::fresh_instance_of(&*logic as &dyn std::any::Any) {
        Some(wasm) => wasm,
        None => logic,
    }
}

impl MemStore {
    /// An empty store. A Wasm `logic` gets a fresh instance for this store (the ABI's promise:
    /// one instance per store), so no replay sees state an earlier one left in a guest.
    pub fn new(identity: StoreIdentity, logic: Logic) -> MemStore {
        MemStore {
            identity,
            logic: fresh_instance(logic),
            faults: HostFaults::default(),
            data: MemTable::default(),
            tips: Tips::default(),
            ints: MemIntentions::default(),
            acc: LtHash::default(),
            stall: None,
            counts: Counts::default(),
            observed: Observed::default(),
            journal: None,
        }
    }

    /// This (fresh) store, keeping a [`Journal`] of what each delivery changes.
    pub fn with_journal(mut self) -> MemStore {
        self.journal = Some(Journal::default());
        self
    }

    /// What changed since the last call (empty without [`MemStore::with_journal`]).
    pub fn take_journal(&mut self) -> Journal {
        self.journal.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Counts a delivery whose bytes did not decode as an op (an outside adapter's input): refused
    /// on arrival as `malformed_op`, like an invalid op.
    pub fn refuse_undecodable(&mut self, reason: String) -> Delivered {
        self.counts.delivered += 1;
        self.counts.refused += 1;
        Delivered::Refused(Rejection { op_id: [0; 32], kind: RejectKind::MalformedOp, reason })
    }

    /// Whether the logic could not view `key`'s row (as of the last look at the views).
    pub fn is_unviewable(&self, key: &[u8]) -> bool {
        self.observed.unviewable.contains(key)
    }

    /// The author's projected tip.
    pub fn tip(&self, author: &[u8; 32]) -> Option<OpId> {
        self.tips.0.get(author).copied()
    }

    /// The author tips in author order.
    pub fn tips(&self) -> &BTreeMap<[u8; 32], OpId> {
        &self.tips.0
    }

    /// The ids of the ops still floating, ascending by arrival.
    pub fn floating_ids(&self) -> Vec<OpId> {
        let mut out: Vec<(u64, OpId)> = self.ints.floating.iter().map(|((_, id), (arrival, _))| (*arrival, *id)).collect();
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// This (fresh) store, replaying with seeded host faults from now on.
    pub fn with_faults(mut self, faults: HostFaults) -> MemStore {
        self.faults = faults;
        self
    }

    /// A fresh store with `ops` delivered to it, in order.
    pub fn replayed<O: std::borrow::Borrow<Op>>(identity: StoreIdentity, logic: Logic, ops: impl IntoIterator<Item = O>) -> MemStore {
        let mut store = MemStore::new(identity, logic);
        for op in ops {
            store.deliver(op.borrow());
        }
        store
    }

    /// Delivers the next op: receive, witness what became ready, project it unless stalled.
    pub fn deliver(&mut self, op: &Op) -> Delivered {
        let index = self.arrival_index();
        self.counts.delivered += 1;
        let arrival = match self.faults.delivery {
            None => self.ints.receive(&self.identity.store_id, op, index),
            f => delivery::receive_with(f, &mut self.ints, &self.identity.store_id, op, index),
        }
        .expect("memory never fails");
        let witnessed = match arrival {
            Arrival::Refused(r) => {
                self.counts.refused += 1;
                return Delivered::Refused(r);
            }
            Arrival::Redelivered(_) => {
                self.counts.redelivered += 1;
                return Delivered::Redelivered;
            }
            Arrival::Received { witnessed, .. } => witnessed,
        };
        self.project(witnessed)
    }

    /// Delivers `ops` as one batch, as Lattice ingests a peer's batch (docs/FORMAT.md §4.5):
    /// every op is received first, floating; an op refused on arrival aborts the rest of the
    /// batch (those ops are [`Delivered::Skipped`], and what was received before it stays
    /// floating until a later delivery witnesses); otherwise witnessing runs once over
    /// everything floating, then projection. Each received op's own result is
    /// `Received { witnessed: 0, applied: 0, stalled: false }`; what the batch as a whole
    /// witnessed and applied is the second value.
    pub fn deliver_batch(&mut self, ops: &[Op]) -> (Vec<Delivered>, Delivered) {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let index = self.arrival_index();
            self.counts.delivered += 1;
            let arrival = delivery::receive_floating(&mut self.ints, &self.identity.store_id, op, index).expect("memory never fails");
            match arrival {
                Arrival::Refused(r) => {
                    self.counts.refused += 1;
                    out.push(Delivered::Refused(r));
                    self.counts.delivered += (ops.len() - out.len()) as u64;
                    out.resize(ops.len(), Delivered::Skipped);
                    return (out, Delivered::Skipped);
                }
                Arrival::Redelivered(_) => {
                    self.counts.redelivered += 1;
                    out.push(Delivered::Redelivered);
                }
                Arrival::Received { .. } => out.push(Delivered::Received { witnessed: 0, applied: 0, stalled: false }),
            }
        }
        let witnessed = match self.faults.delivery {
            None => self.ints.witness_ready(),
            f => delivery::witness_pending(&mut self.ints, f),
        }
        .expect("memory never fails");
        let effect = self.project(witnessed);
        (out, effect)
    }

    /// The arrival index of the next delivery: the number of deliveries so far (§4), or of
    /// received ops under [`DeliveryFault::ArrivalCountsReceived`].
    fn arrival_index(&self) -> u64 {
        let c = &self.counts;
        match self.faults.delivery {
            Some(DeliveryFault::ArrivalCountsReceived) => c.delivered - c.refused - c.redelivered,
            _ => c.delivered,
        }
    }

    /// Projects the ops a delivery witnessed, in witness order, unless stalled.
    fn project(&mut self, witnessed: Vec<delivery::Witnessed>) -> Delivered {
        self.counts.witnessed += witnessed.len() as u64;
        if let Some(j) = &mut self.journal {
            j.witnessed.extend(witnessed.iter().map(|w| w.id));
        }
        let (mut applied, mut stalled) = (0, false);
        for w in &witnessed {
            if self.stall.is_some() {
                break;
            }
            let mut dag = DagView(&mut self.ints);
            let journal = self.journal.as_mut().map(|j| {
                j.authors.insert(w.op.author);
                &mut j.keys
            });
            let mut data = Tracked { rows: &mut self.data, dirty: &mut self.observed.dirty, journal };
            let f = self.faults.kernel;
            match kernel::apply_op_with(f, self.logic.as_ref(), &w.id, &w.op, &mut data, &mut self.tips, &mut dag, &mut self.acc) {
                Ok(_) => {
                    applied += 1;
                    if let Some(j) = &mut self.journal {
                        j.applied.push(w.id);
                    }
                }
                Err(_) if f == Some(KernelFault::StallSkipsOp) => {}
                Err(r) => {
                    self.stall = Some(Stall { op_index: w.arrival, op_id: r.op_id, kind: r.kind, reason: r.reason });
                    stalled = true;
                }
            }
        }
        self.counts.applied += applied;
        Delivered::Received { witnessed: witnessed.len() as u64, applied, stalled }
    }

    pub fn state_hash(&self) -> StateHash {
        match self.faults.hash {
            Some(f) => self.recompute_faulty(f),
            None => self.acc.state_hash(&self.identity.store_type, self.identity.schema_version),
        }
    }

    /// The state hash a host encoding rows under `fault` reports.
    fn recompute_faulty(&self, fault: HashFault) -> StateHash {
        let mut acc = LtHash::default();
        for (k, v) in &self.data.rows {
            acc.insert_faulty(fault, RowTable::Data, k, v);
        }
        for (author, tip) in &self.tips.0 {
            acc.insert_faulty(fault, RowTable::Tip, author, tip);
        }
        acc.state_hash(&self.identity.store_type, self.identity.schema_version)
    }

    /// The observed hash: what a reader of this store type sees, by the logic's views of the
    /// rows (docs/FORMAT.md, "Observed state"). Views are computed for the keys written since the
    /// last call only.
    pub fn observed_hash(&mut self) -> StateHash {
        self.refresh_views();
        self.observed.acc.observed_hash(&self.identity.store_type, self.identity.schema_version)
    }

    /// Every key's view, in key order (after bringing them up to date); a row the logic could
    /// not view is absent here (see [`MemStore::view_failure`]).
    pub fn views(&mut self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        self.refresh_views();
        &self.observed.views
    }

    /// Why the logic could not view a row, if it ever failed to (that row then counts in the
    /// observed hash as an element of its own tag, which no view can equal).
    pub fn view_failure(&self) -> Option<&str> {
        self.observed.failure.as_deref()
    }

    fn refresh_views(&mut self) {
        let o = &mut self.observed;
        for key in std::mem::take(&mut o.dirty) {
            if let Some(old) = o.views.remove(&key) {
                o.acc.remove(RowTable::Observed, &key, &old);
            }
            if o.unviewable.remove(&key) {
                o.acc.remove(RowTable::Unviewable, &key, &[]);
            }
            let Some(row) = self.data.rows.get(&key) else { continue };
            match self.logic.observe(&key, row) {
                Ok(None) => {}
                Ok(Some(view)) => {
                    o.acc.insert(RowTable::Observed, &key, &view);
                    o.views.insert(key, view);
                }
                Err(e) => {
                    let why = match e {
                        lattice_logic::ApplyError::Host(_) => {
                            crate::wasm::failure_of(self.logic.as_ref() as &dyn std::any::Any).unwrap_or_else(|| format!("{e:?}"))
                        }
                        e => format!("{e:?}"),
                    };
                    o.failure.get_or_insert_with(|| format!("key {}: {why}", hex::encode(&key)));
                    o.acc.insert(RowTable::Unviewable, &key, &[]);
                    o.unviewable.insert(key);
                }
            }
        }
    }

    pub fn stall(&self) -> Option<&Stall> {
        self.stall.as_ref()
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Arrival indices of the ops still floating, ascending.
    pub fn floating(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.ints.floating.values().map(|(arrival, _)| *arrival).collect();
        out.sort_unstable();
        out
    }

    /// The replay so far, as an outcome.
    pub fn outcome(&self) -> ReplayOutcome {
        ReplayOutcome { counts: self.counts, stall: self.stall.clone(), floating: self.floating(), state_hash: self.state_hash() }
    }

    /// The state hash recomputed from the rows and tips.
    pub fn recompute(&self) -> StateHash {
        let mut acc = LtHash::default();
        for (k, v) in &self.data.rows {
            acc.insert(RowTable::Data, k, v);
        }
        for (author, tip) in &self.tips.0 {
            acc.insert(RowTable::Tip, author, tip);
        }
        acc.state_hash(&self.identity.store_type, self.identity.schema_version)
    }

    /// The `data` rows in key order.
    pub fn rows(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.data.rows
    }
}

#[derive(Default)]
struct Tips(BTreeMap<[u8; 32], OpId>);

impl ChainState for Tips {
    fn tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        Ok(self.0.get(author).copied())
    }

    fn set_tip(&mut self, author: &[u8; 32], id: &OpId) -> Result<(), HostError> {
        self.0.insert(*author, *id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
