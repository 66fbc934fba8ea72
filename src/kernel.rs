//! The projection step shared by every host: chain check, store logic, state-hash update, tip
//! update — Lattice's `verify_and_update_tip → apply` in one transaction.
//!
//! It is written against small interfaces — the logic's [`Table`] for `data`, [`ChainState`] for
//! the projected author tips and the logic's [`Dag`] for looking up received ops — so the
//! redb-backed store and in-memory replays run the same code and therefore reach the same state
//! hash. Each op is all or nothing: the logic's writes are staged in memory and reach the table
//! only when the op is applied (a refused op never touches storage, so it cannot grow a file),
//! and the accumulator passed in is only changed on success. A refusal here is an apply error: the
//! caller stalls projection at this op (see [`crate::delivery`]).

use std::any::Any;
use std::collections::BTreeMap;

use crate::hash::{LtHash, RowTable};
use crate::op::{Op, OpId};
use lattice_logic::{ApplyError, Dag, HostError, StoreLogic, Table};
use serde::Serialize;

/// A store logic as the host holds it: shareable between threads, and `Any` so the host can tell
/// a Wasm build (whose instance is per store, and whose failures carry a reason) from a native
/// one. Every `StoreLogic + Send + Sync` is one.
pub trait HostLogic: StoreLogic + Send + Sync + Any {}

impl<T: StoreLogic + Send + Sync + Any> HostLogic for T {}

/// Per-author chain tips.
pub trait ChainState {
    fn tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError>;
    fn set_tip(&mut self, author: &[u8; 32], id: &OpId) -> Result<(), HostError>;
}

/// What applying one op did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The op was applied; the state changed.
    Applied(OpId),
    /// The op equals its author's current tip: an idempotent redelivery, nothing changed.
    Duplicate(OpId),
}

/// Why an op was refused. Stable snake_case names; they appear in JSON output and goldens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// An author's first op has a non-zero `prev`.
    BadGenesis,
    /// A later op does not name its author's current tip as `prev`.
    BrokenChain,
    /// The op violates the canonical encoding's rules or limits (e.g. unsorted `causal_deps`):
    /// refused on arrival, never kept.
    MalformedOp,
    /// The store logic could not decode the payload.
    MalformedPayload,
    /// The store logic's rules refuse the op (e.g. the logstore's duplicate timestamp).
    Refused,
    /// A row already stored does not decode: the store's state is damaged, not the op.
    CorruptState,
    /// The host failed underneath (storage, limits).
    HostFailure,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::BadGenesis => "bad_genesis",
            RejectKind::BrokenChain => "broken_chain",
            RejectKind::MalformedOp => "malformed_op",
            RejectKind::MalformedPayload => "malformed_payload",
            RejectKind::Refused => "refused",
            RejectKind::CorruptState => "corrupt_state",
            RejectKind::HostFailure => "host_failure",
        }
    }
}

/// A seeded fault of the projection step (`lattice-conform faults`), for measuring what a corpus
/// catches. The reference path passes `None`; each variant changes one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KernelFault {
    /// A later op whose `prev` is not its author's tip is applied (the chain rule is skipped).
    ChainAcceptsAnyPrev,
    /// An author's first op is applied whatever its `prev`.
    GenesisAcceptsAnyPrev,
    /// A refused op still becomes its author's tip (the stall rolls back the rows only).
    RefusedOpAdvancesTip,
    /// An apply error skips the op instead of stalling projection (applied by the host's
    /// projection loop, [`crate::replay::MemStore`]; `apply_op` itself is unchanged by it).
    StallSkipsOp,
}

/// A refused op: its id, the kind of failure and a human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub op_id: OpId,
    pub kind: RejectKind,
    pub reason: String,
}

/// Applies the witnessed op `op`, whose id is `id`: [`crate::delivery::receive`] has already
/// checked it against the encoding's rules and computed the id, so neither is redone here. On
/// success `acc` holds the new accumulator; on a rejection `data` is as it was (unless the host
/// itself failed, reported as `host_failure`).
pub fn apply_op(
    logic: &dyn HostLogic,
    id: &OpId,
    op: &Op,
    data: &mut dyn Table,
    chain: &mut dyn ChainState,
    dag: &mut dyn Dag,
    acc: &mut LtHash,
) -> Result<Step, Rejection> {
    apply_op_with(None, logic, id, op, data, chain, dag, acc)
}

/// [`apply_op`] with a seeded [`KernelFault`] (`None` is `apply_op`).
#[allow(clippy::too_many_arguments)]
pub fn apply_op_with(
    fault: Option<KernelFault>,
    logic: &dyn HostLogic,
    id: &OpId,
    op: &Op,
    data: &mut dyn Table,
    chain: &mut dyn ChainState,
    dag: &mut dyn Dag,
    acc: &mut LtHash,
) -> Result<Step, Rejection> {
    let id = *id;
    let reject = |kind, reason: String| Rejection { op_id: id, kind, reason };
    let host = |_| reject(RejectKind::HostFailure, "storage failed while reading the author's tip".into());
    let tip = chain.tip(&op.author).map_err(host)?;
    if let Some(step) = check_chain(op, &id, tip, fault).map_err(|(k, r)| reject(k, r))? {
        return Ok(step);
    }
    let mut next = acc.clone();
    let mut staged = Staged { table: data, acc: &mut next, writes: BTreeMap::new() };
    let applied = logic.apply(&id, op, &mut staged, dag);
    if let Err(e) = applied {
        // The staged writes are dropped: the table never saw them.
        drop(staged);
        let rejection = match e {
            ApplyError::MalformedPayload(m) => reject(RejectKind::MalformedPayload, m),
            ApplyError::CorruptState(m) => reject(RejectKind::CorruptState, m),
            ApplyError::Refused(m) => reject(RejectKind::Refused, m),
            ApplyError::Host(_) => {
                let reason = crate::wasm::failure_of(logic as &dyn Any).unwrap_or_else(|| "storage failed under the store logic".into());
                reject(RejectKind::HostFailure, reason)
            }
        };
        if fault == Some(KernelFault::RefusedOpAdvancesTip) {
            advance_tip(acc, chain, op, &id, tip).map_err(|_| reject(RejectKind::HostFailure, "storage failed".into()))?;
        }
        return Err(rejection);
    }
    staged.commit().map_err(|_| reject(RejectKind::HostFailure, "storage failed while writing the op's rows".into()))?;
    advance_tip(&mut next, chain, op, &id, tip)
        .map_err(|_| reject(RejectKind::HostFailure, "storage failed while writing the tip".into()))?;
    *acc = next;
    Ok(Step::Applied(id))
}

/// Makes `id` its author's tip, in the chain state and in the accumulator.
fn advance_tip(acc: &mut LtHash, chain: &mut dyn ChainState, op: &Op, id: &OpId, old: Option<OpId>) -> Result<(), HostError> {
    if let Some(old) = old {
        acc.remove(RowTable::Tip, &op.author, &old);
    }
    acc.insert(RowTable::Tip, &op.author, id);
    chain.set_tip(&op.author, id)
}

/// The chain rule. `Ok(Some(Duplicate))` for a redelivered tip, `Ok(None)` to go on applying.
fn check_chain(op: &Op, id: &OpId, tip: Option<OpId>, fault: Option<KernelFault>) -> Result<Option<Step>, (RejectKind, String)> {
    match tip {
        None if op.is_genesis() => Ok(None),
        None if fault == Some(KernelFault::GenesisAcceptsAnyPrev) => Ok(None),
        None => Err((
            RejectKind::BadGenesis,
            format!("first op of author {} must have an all-zero prev, has {}", short(&op.author), short(&op.prev)),
        )),
        Some(tip) if tip == *id => Ok(Some(Step::Duplicate(*id))),
        Some(tip) if op.prev == tip => Ok(None),
        Some(_) if fault == Some(KernelFault::ChainAcceptsAnyPrev) => Ok(None),
        Some(tip) => {
            Err((RejectKind::BrokenChain, format!("prev {} is not author {}'s tip {}", short(&op.prev), short(&op.author), short(&tip))))
        }
    }
}

/// First 8 bytes of a hash as hex, for messages.
pub fn short(h: &[u8; 32]) -> String {
    hex::encode(&h[..8])
}

/// The `data` table as the logic sees it during one op: reads see the op's own earlier writes;
/// writes are staged here (a map, so a batch of many entries stays O(n log n)) and keep the
/// accumulator in step, and reach the table only through [`Staged::commit`], in key order, once
/// the logic has succeeded. A refused op is undone by dropping its staged writes.
struct Staged<'a> {
    table: &'a mut dyn Table,
    acc: &'a mut LtHash,
    /// Key → the op's last write to it (`None`: deleted).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Staged<'_> {
    /// Takes the key's current value (staged, else stored) out of the accumulator.
    fn unhash(&mut self, key: &[u8]) -> Result<(), HostError> {
        if let Some(old) = self.get(key)? {
            self.acc.remove(RowTable::Data, key, &old);
        }
        Ok(())
    }

    fn commit(self) -> Result<(), HostError> {
        for (key, value) in self.writes {
            match value {
                Some(v) => self.table.put(&key, &v)?,
                None => self.table.delete(&key)?,
            }
        }
        Ok(())
    }
}

impl Table for Staged<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        match self.writes.get(key) {
            Some(staged) => Ok(staged.clone()),
            None => self.table.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        self.unhash(key)?;
        self.acc.insert(RowTable::Data, key, value);
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        self.unhash(key)?;
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }
}
