//! Delivery: how ops that reach a replica become applied, as Lattice's kernel does it
//! (`lattice-kernel/src/store/actor.rs`: ingest → witness → project).
//!
//! An arriving op is first **received**: an op that breaks the encoding's limits is refused and
//! nothing is kept; an op the replica already has (floating or witnessed) is ignored. A received
//! op **floats** until it is ready — its `prev` is a current witness tip (any author's, as in
//! Lattice) or all-zero, and every one of its `causal_deps` is witnessed (an all-zero dep counts as
//! witnessed, as in Lattice) — and is then
//! **witnessed**. One arrival can make several floating ops ready; they are witnessed in passes,
//! each pass taking the ready candidates in a fixed order (by the author of the tip their `prev`
//! names, genesis candidates last; candidates sharing a `prev` by op id). Lattice walks its tips
//! in hash-map order; this order is the one we fix (docs/LATTICE.md).
//!
//! The host then **projects** the witnessed ops in witness order through [`crate::kernel::apply_op`];
//! the first apply error stalls projection for good (nothing later is applied, for any author)
//! while receiving and witnessing go on.
//!
//! This module owns the rules; [`Intentions`] abstracts where the replica keeps what it received,
//! so the in-memory replay and the store on disk run the same code.

use lattice_logic::op::Hlc;
use lattice_logic::HostError;

use crate::kernel::{RejectKind, Rejection};
use crate::op::{op_id, Op, OpId, ZERO_HASH};
use uuid::Uuid;

/// Whether a received op is still floating or already witnessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Floating,
    Witnessed,
}

/// What a replica keeps of the ops it received (Lattice's intention store).
pub trait Intentions {
    /// The status, HLC and author of a received op.
    fn get(&mut self, id: &OpId) -> Result<Option<(Status, Hlc, [u8; 32])>, HostError>;
    /// The author's witness tip.
    fn witness_tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError>;
    /// Whether any op floats.
    fn any_floating(&mut self) -> Result<bool, HostError>;
    /// The distinct `prev`s of the floating ops, ascending.
    fn floating_prevs(&mut self) -> Result<Vec<OpId>, HostError>;
    /// The floating ops naming `prev`, by op id ascending, each with its arrival index.
    fn floating_by_prev(&mut self, prev: &OpId) -> Result<Vec<(OpId, u64, Op)>, HostError>;
    /// Keeps `op` as floating.
    fn add_floating(&mut self, id: &OpId, arrival: u64, op: &Op) -> Result<(), HostError>;
    /// Marks `op` witnessed: no longer floating (if it was), its author's witness tip.
    fn witness(&mut self, id: &OpId, op: &Op) -> Result<(), HostError>;
}

/// A witnessed op waiting to be projected, with the index at which it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub id: OpId,
    pub arrival: u64,
    pub op: Op,
}

/// What became of one arriving op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Broke the encoding's limits: not kept.
    Refused(Rejection),
    /// Already received (floating or witnessed): ignored.
    Redelivered(OpId),
    /// Kept; the ops this arrival made ready, in witness order (empty if it floats).
    Received { id: OpId, witnessed: Vec<Witnessed> },
}

/// A seeded fault of the delivery rules (`lattice-conform faults`), for measuring what a corpus
/// catches. The reference path passes `None`; each variant changes one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DeliveryFault {
    /// A redelivered op that is already witnessed is handed to projection again.
    RedeliveryReprojected,
    /// An op is witnessed without waiting for its `causal_deps`.
    DepsIgnored,
    /// An op is witnessed only when its `prev` is its own author's tip (not any author's).
    PrevMustBeOwnTip,
    /// An op that is not ready on arrival is dropped instead of held.
    FloatingDropped,
    /// Witnessing makes one pass: ops readied by ops witnessed in it wait for the next arrival.
    NoCascade,
    /// An op whose `prev` is any witnessed op (not only a witness tip) is ready, so forks of an
    /// older op are witnessed instead of floating.
    PrevAnyWitnessed,
    /// A pass visits genesis (all-zero `prev`) candidates first instead of last.
    WitnessGenesisFirst,
    /// A pass visits the witness-tip candidates by their author descending instead of ascending.
    WitnessAuthorsDescending,
    /// Candidates sharing a `prev` are taken in arrival order instead of by op id.
    WitnessSharedPrevByArrival,
    /// A candidate's `prev` is checked again when its turn comes, so the second of two ops naming
    /// the same tip floats instead of being witnessed in the same pass.
    WitnessPrevRechecked,
    /// Arrival indices count received ops only (as a store's log does), not every delivery:
    /// redeliveries before an op shift its stall and floating indices.
    ArrivalCountsReceived,
}

/// Receives `op`, arriving as the `arrival`-th op, into `ints` and witnesses what became ready.
pub fn receive(ints: &mut dyn Intentions, store_id: &Uuid, op: &Op, arrival: u64) -> Result<Arrival, HostError> {
    receive_with(None, ints, store_id, op, arrival)
}

/// [`receive`] with a seeded [`DeliveryFault`] (`None` is `receive`).
pub fn receive_with(
    f: Option<DeliveryFault>,
    ints: &mut dyn Intentions,
    store_id: &Uuid,
    op: &Op,
    arrival: u64,
) -> Result<Arrival, HostError> {
    let id = op_id(store_id, op);
    if let Err(e) = op.validate() {
        return Ok(Arrival::Refused(Rejection { op_id: id, kind: RejectKind::MalformedOp, reason: e.to_string() }));
    }
    if let Some((status, ..)) = ints.get(&id)? {
        if f == Some(DeliveryFault::RedeliveryReprojected) && status == Status::Witnessed {
            return Ok(Arrival::Received { id, witnessed: vec![Witnessed { id, arrival, op: op.clone() }] });
        }
        return Ok(Arrival::Redelivered(id));
    }
    if f == Some(DeliveryFault::FloatingDropped) && !(is_chain_ready(ints, op, f)? && deps_witnessed(ints, op, f)?) {
        return Ok(Arrival::Received { id, witnessed: vec![] });
    }
    // With nothing floating, the arriving op is the only candidate: witness it directly.
    if !ints.any_floating()? {
        if is_chain_ready(ints, op, f)? && deps_witnessed(ints, op, f)? {
            ints.witness(&id, op)?;
            return Ok(Arrival::Received { id, witnessed: vec![Witnessed { id, arrival, op: op.clone() }] });
        }
        ints.add_floating(&id, arrival, op)?;
        return Ok(Arrival::Received { id, witnessed: vec![] });
    }
    ints.add_floating(&id, arrival, op)?;
    Ok(Arrival::Received { id, witnessed: witness_ready(ints, f)? })
}

/// Receives `op` into a batch (docs/FORMAT.md §4.5): refused, redelivered, or kept floating
/// whether or not it is ready — witnessing runs once the whole batch is in
/// ([`witness_pending`]).
pub fn receive_floating(ints: &mut dyn Intentions, store_id: &Uuid, op: &Op, arrival: u64) -> Result<Arrival, HostError> {
    let id = match admit(ints, store_id, op)? {
        Ok(id) => id,
        Err(arrival) => return Ok(arrival),
    };
    ints.add_floating(&id, arrival, op)?;
    Ok(Arrival::Received { id, witnessed: vec![] })
}

/// The first two steps of receiving (§4.1): `op`'s id if it is to be received, else how its
/// arrival ends — refused (not valid) or a redelivery.
pub(crate) fn admit(ints: &mut dyn Intentions, store_id: &Uuid, op: &Op) -> Result<Result<OpId, Arrival>, HostError> {
    let id = op_id(store_id, op);
    if let Err(e) = op.validate() {
        return Ok(Err(Arrival::Refused(Rejection { op_id: id, kind: RejectKind::MalformedOp, reason: e.to_string() })));
    }
    if ints.get(&id)?.is_some() {
        return Ok(Err(Arrival::Redelivered(id)));
    }
    Ok(Ok(id))
}

/// Witnesses every ready floating op, in passes (§4.2): what a batch runs once after receiving.
pub fn witness_pending(ints: &mut dyn Intentions, f: Option<DeliveryFault>) -> Result<Vec<Witnessed>, HostError> {
    if !ints.any_floating()? {
        return Ok(vec![]);
    }
    witness_ready(ints, f)
}

/// Lattice's `witness_ready`: passes over the ready candidates until a pass witnesses nothing.
fn witness_ready(ints: &mut dyn Intentions, f: Option<DeliveryFault>) -> Result<Vec<Witnessed>, HostError> {
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for prev in candidate_prevs(ints, f)? {
            let mut candidates = ints.floating_by_prev(&prev)?;
            if f == Some(DeliveryFault::WitnessSharedPrevByArrival) {
                candidates.sort_by_key(|(_, arrival, _)| *arrival);
            }
            for (id, arrival, op) in candidates {
                let recheck = matches!(f, Some(DeliveryFault::PrevMustBeOwnTip | DeliveryFault::WitnessPrevRechecked));
                if (!recheck || is_chain_ready(ints, &op, f)?) && deps_witnessed(ints, &op, f)? {
                    ints.witness(&id, &op)?;
                    out.push(Witnessed { id, arrival, op });
                }
            }
        }
        if out.len() == before || f == Some(DeliveryFault::NoCascade) {
            return Ok(out);
        }
    }
}

/// The `prev`s this pass visits: witness tips ordered by their author, then all-zero — only
/// those some floating op names (the others have no candidates).
fn candidate_prevs(ints: &mut dyn Intentions, f: Option<DeliveryFault>) -> Result<Vec<OpId>, HostError> {
    let mut tips = Vec::new();
    let mut genesis = false;
    for prev in ints.floating_prevs()? {
        if prev == ZERO_HASH {
            genesis = true;
        } else if let Some(author) = ready_author(ints, &prev, f)? {
            tips.push((author, prev));
        }
    }
    tips.sort();
    if f == Some(DeliveryFault::WitnessAuthorsDescending) {
        tips.reverse();
    }
    let mut prevs: Vec<OpId> = tips.into_iter().map(|(_, p)| p).collect();
    if genesis {
        let at = if f == Some(DeliveryFault::WitnessGenesisFirst) { 0 } else { prevs.len() };
        prevs.insert(at, ZERO_HASH);
    }
    Ok(prevs)
}

/// The author whose witness tip `id` is, if it is one.
fn tip_author(ints: &mut dyn Intentions, id: &OpId) -> Result<Option<[u8; 32]>, HostError> {
    let Some((Status::Witnessed, _, author)) = ints.get(id)? else { return Ok(None) };
    Ok((ints.witness_tip(&author)? == Some(*id)).then_some(author))
}

/// The op's `prev` is all-zero or a witness tip (any author's; its own author's under
/// [`DeliveryFault::PrevMustBeOwnTip`]).
fn is_chain_ready(ints: &mut dyn Intentions, op: &Op, f: Option<DeliveryFault>) -> Result<bool, HostError> {
    if op.prev == ZERO_HASH {
        return Ok(true);
    }
    let author = ready_author(ints, &op.prev, f)?;
    Ok(author.is_some() && (f != Some(DeliveryFault::PrevMustBeOwnTip) || author == Some(op.author)))
}

/// The author of `prev` if an op naming it as `prev` may be witnessed: `prev` is a witness tip
/// (any witnessed op under [`DeliveryFault::PrevAnyWitnessed`]).
fn ready_author(ints: &mut dyn Intentions, prev: &OpId, f: Option<DeliveryFault>) -> Result<Option<[u8; 32]>, HostError> {
    if f == Some(DeliveryFault::PrevAnyWitnessed) {
        return Ok(match ints.get(prev)? {
            Some((Status::Witnessed, _, author)) => Some(author),
            _ => None,
        });
    }
    tip_author(ints, prev)
}

/// Every dep is witnessed; the all-zero hash counts as witnessed, as in Lattice.
fn deps_witnessed(ints: &mut dyn Intentions, op: &Op, f: Option<DeliveryFault>) -> Result<bool, HostError> {
    if f == Some(DeliveryFault::DepsIgnored) {
        return Ok(true);
    }
    for dep in &op.causal_deps {
        if *dep != ZERO_HASH && !matches!(ints.get(dep)?, Some((Status::Witnessed, ..))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`Intentions`] as a [`lattice_logic::Dag`]: the logic may look up any received op.
pub struct DagView<'a>(pub &'a mut dyn Intentions);

impl lattice_logic::Dag for DagView<'_> {
    fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError> {
        Ok(self.0.get(id)?.map(|(_, hlc, author)| (hlc, author)))
    }
}
