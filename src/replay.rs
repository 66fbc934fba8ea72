//! In-memory replay: the kernel's apply step over an in-memory table and tip map, without redb.
//!
//! It runs exactly the code the store runs ([`kernel::apply_op`]) behind the same table
//! interface, so it reaches the same state hash as a store on disk for the same history (the
//! integration tests check this), at memory speed. A rejected op is undone from a journal, so
//! a replay halts with the state as it was before that op — the store's all-or-nothing rule.

use std::collections::BTreeMap;

use lattice_logic::{HostError, MemTable, Table};

use crate::hash::{LtHash, RowTable, StateHash};
use crate::kernel::{self, ChainState, Rejection, Step};
use crate::op::{Op, OpId};
use crate::store::{Logic, StoreIdentity};

/// A store's state held in memory.
pub struct MemStore {
    identity: StoreIdentity,
    logic: Logic,
    data: MemTable,
    tips: Tips,
    acc: LtHash,
}

/// How a replay of a whole history ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub applied: u64,
    pub duplicates: u64,
    /// The first rejected op (its index in the history) — the replay stops there.
    pub halt: Option<(u64, Rejection)>,
    pub state_hash: StateHash,
}

/// Replays `ops` into a fresh in-memory store.
pub fn replay(identity: StoreIdentity, logic: Logic, ops: &[Op]) -> ReplayOutcome {
    let mut store = MemStore::new(identity, logic);
    let (mut applied, mut duplicates, mut halt) = (0, 0, None);
    for (i, op) in ops.iter().enumerate() {
        match store.apply(op) {
            Ok(Step::Applied(_)) => applied += 1,
            Ok(Step::Duplicate(_)) => duplicates += 1,
            Err(r) => {
                halt = Some((i as u64, r));
                break;
            }
        }
    }
    ReplayOutcome { applied, duplicates, halt, state_hash: store.state_hash() }
}

impl MemStore {
    pub fn new(identity: StoreIdentity, logic: Logic) -> MemStore {
        MemStore { identity, logic, data: MemTable::default(), tips: Tips::default(), acc: LtHash::default() }
    }

    /// Applies one op, all or nothing.
    pub fn apply(&mut self, op: &Op) -> Result<Step, Rejection> {
        let mut journal = Journal { table: &mut self.data, undo: BTreeMap::new() };
        let result = kernel::apply_op(self.logic.as_ref(), &self.identity.store_id, op, &mut journal, &mut self.tips, &mut self.acc);
        if result.is_err() {
            journal.rollback();
        }
        result
    }

    pub fn state_hash(&self) -> StateHash {
        self.acc.state_hash(&self.identity.store_type, self.identity.schema_version)
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

/// Records each key's value before its first write, so a rejected op can be undone. Keyed by a
/// map so a batch of many entries stays O(n log n).
struct Journal<'a> {
    table: &'a mut MemTable,
    undo: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Journal<'_> {
    fn remember(&mut self, key: &[u8]) {
        if !self.undo.contains_key(key) {
            self.undo.insert(key.to_vec(), self.table.rows.get(key).cloned());
        }
    }

    fn rollback(self) {
        for (key, old) in self.undo {
            match old {
                Some(v) => self.table.rows.insert(key, v),
                None => self.table.rows.remove(&key),
            };
        }
    }
}

impl Table for Journal<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.table.get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        self.remember(key);
        self.table.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        self.remember(key);
        self.table.delete(key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lattice_logic::{ApplyError, StoreLogic};
    use uuid::Uuid;

    use super::*;
    use crate::kernel::RejectKind;
    use crate::op::{Hlc, ZERO_HASH};

    /// Writes its payload under two keys, then fails if the payload is `b"fail"`: a logic that
    /// leaves partial writes behind, which the journal must undo.
    struct WritesThenFails;

    impl StoreLogic for WritesThenFails {
        fn store_type(&self) -> &str {
            "test:writes-then-fails"
        }
        fn schema_version(&self) -> u64 {
            1
        }
        fn apply(&self, _: &OpId, op: &Op, t: &mut dyn Table) -> Result<(), ApplyError> {
            t.put(b"a", &op.payload)?;
            t.delete(b"b")?;
            if op.payload == b"fail" {
                return Err(ApplyError::MalformedPayload("asked to fail".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_rejected_op_leaves_rows_tips_and_hash_as_they_were() {
        let identity = StoreIdentity { store_id: Uuid::from_u128(9), store_type: "test:writes-then-fails".into(), schema_version: 1 };
        let mut s = MemStore::new(identity.clone(), Arc::new(WritesThenFails));
        let first = Op { author: [1; 32], hlc: Hlc::default(), prev: ZERO_HASH, causal_deps: vec![], payload: b"ok".to_vec() };
        let Step::Applied(id) = s.apply(&first).unwrap() else { panic!("first op must apply") };
        s.data.rows.insert(b"b".to_vec(), b"kept".to_vec());
        let (rows, hash) = (s.rows().clone(), s.state_hash());
        let bad = Op { prev: id, payload: b"fail".to_vec(), ..first };
        assert_eq!(s.apply(&bad).unwrap_err().kind, RejectKind::MalformedPayload);
        assert_eq!((s.rows(), s.state_hash()), (&rows, hash));
    }
}
