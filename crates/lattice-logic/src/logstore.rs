//! `core:logstore` (schema 1): an append-only log of opaque entries.
//!
//! Each op appends its payload under the key `wall_ms (u64 BE) ‖ counter (u32 BE) ‖ author ‖ op id`,
//! so the table's byte order is (HLC, author, op id) order and two entries never collide. An
//! empty payload is malformed.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::logic::{ApplyError, StoreLogic};
use crate::op::{Hlc, Op, OpId};
use crate::table::Table;

pub const STORE_TYPE: &str = "core:logstore";
pub const SCHEMA_VERSION: u64 = 1;
/// Length of an entry key: 8 + 4 + 32 + 32.
pub const KEY_LEN: usize = 76;

/// The table key of an entry.
pub fn entry_key(hlc: Hlc, author: &[u8; 32], id: &OpId) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_LEN);
    key.extend_from_slice(&hlc.wall_ms.to_be_bytes());
    key.extend_from_slice(&hlc.counter.to_be_bytes());
    key.extend_from_slice(author);
    key.extend_from_slice(id);
    key
}

/// Splits an entry key back into (HLC, author, op id); `None` if it is not [`KEY_LEN`] bytes.
pub fn parse_entry_key(key: &[u8]) -> Option<(Hlc, [u8; 32], OpId)> {
    if key.len() != KEY_LEN {
        return None;
    }
    let wall_ms = u64::from_be_bytes(key[0..8].try_into().ok()?);
    let counter = u32::from_be_bytes(key[8..12].try_into().ok()?);
    Some((Hlc { wall_ms, counter }, key[12..44].try_into().ok()?, key[44..76].try_into().ok()?))
}

/// The `core:logstore` logic.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogStore;

impl StoreLogic for LogStore {
    fn store_type(&self) -> &str {
        STORE_TYPE
    }

    fn schema_version(&self) -> u64 {
        SCHEMA_VERSION
    }

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
        if op.payload.is_empty() {
            return Err(ApplyError::MalformedPayload("empty payload (a logstore entry must carry at least one byte)".to_string()));
        }
        table.put(&entry_key(op.hlc, &op.author, id), &op.payload)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ZERO_HASH;
    use crate::table::MemTable;
    use alloc::vec;

    #[test]
    fn entries_order_by_hlc_then_author_and_empty_is_malformed() {
        let mut t = MemTable::default();
        let mk = |a: u8, ms: u64, p: Vec<u8>| Op {
            author: [a; 32],
            hlc: Hlc { wall_ms: ms, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload: p,
        };
        LogStore.apply(&[1; 32], &mk(2, 5, vec![1]), &mut t).unwrap();
        LogStore.apply(&[2; 32], &mk(1, 5, vec![2]), &mut t).unwrap();
        LogStore.apply(&[3; 32], &mk(9, 4, vec![3]), &mut t).unwrap();
        let order: Vec<u8> = t.rows.values().map(|v| v[0]).collect();
        assert_eq!(order, vec![3, 2, 1]);
        assert!(matches!(LogStore.apply(&[4; 32], &mk(1, 6, vec![]), &mut t), Err(ApplyError::MalformedPayload(_))));
        let (hlc, author, id) = parse_entry_key(t.rows.keys().next().unwrap()).unwrap();
        assert_eq!((hlc.wall_ms, author, id), (4, [9; 32], [3; 32]));
    }
}
