//! The apply step shared by every host: chain check, store logic, state-hash update, tip update.
//!
//! It is written against two small interfaces — the logic's [`Table`] for `data` and
//! [`ChainState`] for author tips — so the redb-backed store and in-memory replays run the same
//! code and therefore reach the same state hash. Atomicity is the caller's job: on a rejection the
//! caller discards whatever was written to `data` (the redb transaction is dropped); the
//! accumulator passed in is only changed on success.

use lattice_logic::{ApplyError, HostError, StoreLogic, Table};
use serde::Serialize;
use uuid::Uuid;

use crate::hash::{LtHash, RowTable};
use crate::op::{op_id, Op, OpId};

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
    /// The op violates the canonical encoding's rules (e.g. unsorted `causal_deps`).
    MalformedOp,
    /// The store logic could not decode the payload.
    MalformedPayload,
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
            RejectKind::CorruptState => "corrupt_state",
            RejectKind::HostFailure => "host_failure",
        }
    }
}

/// A refused op: its id, the kind of failure and a human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub op_id: OpId,
    pub kind: RejectKind,
    pub reason: String,
}

/// Applies `op` to a store whose id is `store_id`. On success `acc` holds the new accumulator.
pub fn apply_op(
    logic: &dyn StoreLogic,
    store_id: &Uuid,
    op: &Op,
    data: &mut dyn Table,
    chain: &mut dyn ChainState,
    acc: &mut LtHash,
) -> Result<Step, Rejection> {
    let id = op_id(store_id, op);
    let reject = |kind, reason: String| Rejection { op_id: id, kind, reason };
    if let Err(e) = op.validate() {
        return Err(reject(RejectKind::MalformedOp, e.to_string()));
    }
    let host = |_| reject(RejectKind::HostFailure, "storage failed while reading the author's tip".into());
    let tip = chain.tip(&op.author).map_err(host)?;
    if let Some(step) = check_chain(op, &id, tip).map_err(|(k, r)| reject(k, r))? {
        return Ok(step);
    }
    let mut next = acc.clone();
    let mut hashing = HashingTable { inner: data, acc: &mut next };
    logic.apply(&id, op, &mut hashing).map_err(|e| match e {
        ApplyError::MalformedPayload(m) => reject(RejectKind::MalformedPayload, m),
        ApplyError::CorruptState(m) => reject(RejectKind::CorruptState, m),
        ApplyError::Host(_) => reject(RejectKind::HostFailure, "storage failed under the store logic".into()),
    })?;
    if let Some(old) = tip {
        next.remove(RowTable::Tip, &op.author, &old);
    }
    next.insert(RowTable::Tip, &op.author, &id);
    chain.set_tip(&op.author, &id).map_err(|_| reject(RejectKind::HostFailure, "storage failed while writing the tip".into()))?;
    *acc = next;
    Ok(Step::Applied(id))
}

/// The chain rule. `Ok(Some(Duplicate))` for a redelivered tip, `Ok(None)` to go on applying.
fn check_chain(op: &Op, id: &OpId, tip: Option<OpId>) -> Result<Option<Step>, (RejectKind, String)> {
    match tip {
        None if op.is_genesis() => Ok(None),
        None => Err((
            RejectKind::BadGenesis,
            format!("first op of author {} must have an all-zero prev, has {}", short(&op.author), short(&op.prev)),
        )),
        Some(tip) if tip == *id => Ok(Some(Step::Duplicate(*id))),
        Some(tip) if op.prev == tip => Ok(None),
        Some(tip) => {
            Err((RejectKind::BrokenChain, format!("prev {} is not author {}'s tip {}", short(&op.prev), short(&op.author), short(&tip))))
        }
    }
}

/// First 8 bytes of a hash as hex, for messages.
pub fn short(h: &[u8; 32]) -> String {
    hex::encode(&h[..8])
}

/// A `data` table that keeps the accumulator in step with every write.
struct HashingTable<'a> {
    inner: &'a mut dyn Table,
    acc: &'a mut LtHash,
}

impl Table for HashingTable<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.inner.get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        if let Some(old) = self.inner.get(key)? {
            self.acc.remove(RowTable::Data, key, &old);
        }
        self.acc.insert(RowTable::Data, key, value);
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        if let Some(old) = self.inner.get(key)? {
            self.acc.remove(RowTable::Data, key, &old);
        }
        self.inner.delete(key)
    }
}
