//! `core:logstore` (schema 1), as Lattice implements it (`lattice-logstore`).
//!
//! The payload is the entry's content, raw. An entry is stored under `wall_ms (u64 BE) ‖ author`
//! — the HLC counter is not in the key — with the value `content length (u64 LE) ‖ content`.
//! A second entry with the same key is refused (`DuplicateTimestamp`), which stalls projection;
//! an empty payload is accepted and stores nothing. Reads return contents in key order.
//! Normative: docs/FORMAT.md, "core:logstore".

use alloc::format;
use alloc::vec::Vec;

use crate::logic::{ApplyError, Dag, StoreLogic};
use crate::op::{Op, OpId};
use crate::table::Table;

pub const STORE_TYPE: &str = "core:logstore";
pub const SCHEMA_VERSION: u64 = 1;
/// Length of an entry key: 8 + 32.
pub const KEY_LEN: usize = 40;

/// The table key of an entry.
pub fn entry_key(wall_ms: u64, author: &[u8; 32]) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..8].copy_from_slice(&wall_ms.to_be_bytes());
    key[8..].copy_from_slice(author);
    key
}

/// Splits an entry key back into (wall_ms, author); `None` if it is not [`KEY_LEN`] bytes.
pub fn parse_entry_key(key: &[u8]) -> Option<(u64, [u8; 32])> {
    let key: &[u8; KEY_LEN] = key.try_into().ok()?;
    let wall_ms = u64::from_be_bytes(key[..8].try_into().ok()?);
    Some((wall_ms, key[8..].try_into().ok()?))
}

/// The stored value of an entry: `u64 LE length ‖ content`.
pub fn encode_entry(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + content.len());
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    out.extend_from_slice(content);
    out
}

/// The content of a stored value. Like Lattice's reader, bytes after the stated length are
/// ignored; a value shorter than its length (or than 8 bytes) does not decode.
pub fn decode_entry(value: &[u8]) -> Option<&[u8]> {
    let len = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    value.get(8..end)
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

    fn apply(&self, _id: &OpId, op: &Op, table: &mut dyn Table, _dag: &mut dyn Dag) -> Result<(), ApplyError> {
        if op.payload.is_empty() {
            return Ok(());
        }
        let key = entry_key(op.hlc.wall_ms, &op.author);
        if table.get(&key)?.is_some() {
            return Err(ApplyError::Refused(format!(
                "duplicate timestamp: author {:02x?}… already has an entry at wall_ms {}",
                &op.author[..4],
                op.hlc.wall_ms
            )));
        }
        table.put(&key, &encode_entry(&op.payload))?;
        Ok(())
    }

    /// The view of an entry is its content: entries are read in key order (wall time, then
    /// author), which the key already gives.
    fn observe(&self, _key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        match decode_entry(row) {
            Some(content) => Ok(Some(content.to_vec())),
            None => Err(ApplyError::CorruptState(format!("stored entry of {} bytes is shorter than its length prefix", row.len()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::NoDag;
    use crate::op::{Hlc, ZERO_HASH};
    use crate::table::MemTable;
    use alloc::vec;

    fn mk(a: u8, ms: u64, counter: u32, p: &[u8]) -> Op {
        Op { author: [a; 32], hlc: Hlc { wall_ms: ms, counter }, prev: ZERO_HASH, causal_deps: vec![], payload: p.to_vec() }
    }

    #[test]
    fn entries_order_by_wall_time_then_author_and_empty_payloads_store_nothing() {
        let mut t = MemTable::default();
        for (i, o) in [mk(2, 5, 0, b"b"), mk(1, 5, 7, b"a"), mk(9, 4, 0, b"first"), mk(3, 6, 0, b"")].iter().enumerate() {
            LogStore.apply(&[i as u8; 32], o, &mut t, &mut NoDag).unwrap();
        }
        let order: Vec<&[u8]> = t.rows.values().map(|v| decode_entry(v).unwrap()).collect();
        assert_eq!(order, vec![&b"first"[..], b"a", b"b"]);
        assert_eq!(parse_entry_key(t.rows.keys().next().unwrap()), Some((4, [9; 32])));
    }

    #[test]
    fn same_millisecond_from_one_author_is_a_duplicate_timestamp_whatever_the_counter() {
        let mut t = MemTable::default();
        LogStore.apply(&[1; 32], &mk(1, 5, 0, b"x"), &mut t, &mut NoDag).unwrap();
        let again = LogStore.apply(&[2; 32], &mk(1, 5, 1, b"y"), &mut t, &mut NoDag);
        assert!(matches!(again, Err(ApplyError::Refused(m)) if m.contains("duplicate timestamp")));
    }
}
