//! `core:kvstore-v2` (schema 1): one resolved value per key with a version and conflict record.
//!
//! Unlike `core:kvstore`, concurrent writes are not kept side by side: each key holds one row,
//! replaced when an op's stamp (HLC, author) is greater than the stored one. Every accepted or
//! refused write bumps the key's `version`; a `Set` may carry a `conflicts` count (how many
//! concurrent values the writer saw — migrations from `core:kvstore` fill it in). A `Remove`
//! leaves a tombstone row so a late, older write cannot resurrect the key. Layouts: docs/FORMAT.md.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use crate::logic::{ApplyError, Dag, StoreLogic};
use crate::op::{Hlc, Op, OpId};
use crate::table::Table;
use crate::wire::{put_bytes32, put_u32, put_u64, Reader, Truncated};

pub const STORE_TYPE: &str = "core:kvstore-v2";
pub const SCHEMA_VERSION: u64 = 1;

/// Most entries one batch payload may carry.
pub const MAX_BATCH: usize = 65_536;
/// Longest key, in bytes (1 MiB).
pub const MAX_KEY: usize = 1 << 20;

const TAG_SET: u8 = 0x01;
const TAG_REMOVE: u8 = 0x02;

/// One entry of a v2 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Set { key: Vec<u8>, value: Vec<u8>, conflicts: u32 },
    Remove { key: Vec<u8> },
}

impl Entry {
    pub fn key(&self) -> &[u8] {
        match self {
            Entry::Set { key, .. } | Entry::Remove { key } => key,
        }
    }
}

/// A stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub hlc: Hlc,
    pub author: [u8; 32],
    /// Writes seen for this key, including refused older ones.
    pub version: u64,
    pub conflicts: u32,
    /// `None` for a removed key.
    pub value: Option<Vec<u8>>,
}

/// Encodes a payload: `u32 count ‖ entries`; Set = `0x01 ‖ bytes32 key ‖ bytes32 value ‖ u32
/// conflicts`, Remove = `0x02 ‖ bytes32 key`.
pub fn encode_payload(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, entries.len() as u32);
    for e in entries {
        match e {
            Entry::Set { key, value, conflicts } => {
                out.push(TAG_SET);
                put_bytes32(&mut out, key);
                put_bytes32(&mut out, value);
                put_u32(&mut out, *conflicts);
            }
            Entry::Remove { key } => {
                out.push(TAG_REMOVE);
                put_bytes32(&mut out, key);
            }
        }
    }
    out
}

/// Decodes a payload: 1..=65536 entries, keys 0..=1 MiB bytes (empty allowed, as Lattice's
/// kvstore allows them, so a migration carries every key) and distinct.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Entry>, ApplyError> {
    let bad = ApplyError::MalformedPayload;
    let trunc = |t: Truncated| bad(format!("truncated while reading {} at byte {}", t.what, t.at));
    let mut r = Reader::new(payload);
    let n = r.u32("entry count").map_err(trunc)? as usize;
    if n == 0 || n > MAX_BATCH {
        return Err(bad(format!("entry count {n} is outside 1..={}", MAX_BATCH)));
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let at = r.pos();
        let tag = r.u8("entry tag").map_err(trunc)?;
        let key = r.bytes32("key").map_err(trunc)?.to_vec();
        if key.len() > MAX_KEY {
            return Err(bad(format!("entry {i} (byte {at}): key length {} is outside 0..={}", key.len(), MAX_KEY)));
        }
        let entry = match tag {
            TAG_SET => {
                Entry::Set { key, value: r.bytes32("value").map_err(trunc)?.to_vec(), conflicts: r.u32("conflicts").map_err(trunc)? }
            }
            TAG_REMOVE => Entry::Remove { key },
            other => return Err(bad(format!("entry {i} (byte {at}): unknown entry tag 0x{other:02x}"))),
        };
        if !seen.insert(entry.key().to_vec()) {
            return Err(bad(format!("entry {i} (byte {at}): key repeated within one batch")));
        }
        entries.push(entry);
    }
    if !r.is_empty() {
        return Err(bad(format!("trailing bytes after {n} entries at byte {}", r.pos())));
    }
    Ok(entries)
}

/// Encodes a row: `wall_ms u64 ‖ counter u32 ‖ author ‖ version u64 ‖ conflicts u32 ‖ tag ‖ [bytes32 value]`.
pub fn encode_row(row: &Row) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, row.hlc.wall_ms);
    put_u32(&mut out, row.hlc.counter);
    out.extend_from_slice(&row.author);
    put_u64(&mut out, row.version);
    put_u32(&mut out, row.conflicts);
    match &row.value {
        Some(v) => {
            out.push(TAG_SET);
            put_bytes32(&mut out, v);
        }
        None => out.push(TAG_REMOVE),
    }
    out
}

/// Decodes a stored row; `None` if the bytes are not a row this version writes.
pub fn decode_row(bytes: &[u8]) -> Option<Row> {
    let mut r = Reader::new(bytes);
    let hlc = Hlc { wall_ms: r.u64("wall_ms").ok()?, counter: r.u32("counter").ok()? };
    let author = r.hash("author").ok()?;
    let version = r.u64("version").ok()?;
    let conflicts = r.u32("conflicts").ok()?;
    let value = match r.u8("tag").ok()? {
        TAG_SET => Some(r.bytes32("value").ok()?.to_vec()),
        TAG_REMOVE => None,
        _ => return None,
    };
    r.is_empty().then_some(Row { hlc, author, version, conflicts, value })
}

/// The `core:kvstore-v2` logic.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvStoreV2;

impl StoreLogic for KvStoreV2 {
    fn store_type(&self) -> &str {
        STORE_TYPE
    }

    fn schema_version(&self) -> u64 {
        SCHEMA_VERSION
    }

    fn apply(&self, _id: &OpId, op: &Op, table: &mut dyn Table, _dag: &mut dyn Dag) -> Result<(), ApplyError> {
        for entry in decode_payload(&op.payload)? {
            apply_entry(op, entry, table)?;
        }
        Ok(())
    }

    /// A reader sees a key's value and its conflict count; a removed key is not seen.
    /// View: u32 LE value length ‖ value ‖ u32 LE conflicts.
    fn observe(&self, _key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        let row = decode_row(row).ok_or_else(|| ApplyError::CorruptState("stored row does not decode as a kvstore-v2 row".into()))?;
        Ok(row.value.map(|v| {
            let mut out = Vec::with_capacity(8 + v.len());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(&v);
            out.extend_from_slice(&row.conflicts.to_le_bytes());
            out
        }))
    }
}

fn apply_entry(op: &Op, entry: Entry, table: &mut dyn Table) -> Result<(), ApplyError> {
    let stored = match table.get(entry.key())? {
        Some(bytes) => Some(
            decode_row(&bytes)
                .ok_or_else(|| ApplyError::CorruptState(format!("stored row of key {:02x?} does not decode", entry.key())))?,
        ),
        None => None,
    };
    let version = stored.as_ref().map_or(0, |r| r.version) + 1;
    let newer = stored.as_ref().is_none_or(|r| (op.hlc, &op.author) > (r.hlc, &r.author));
    let row = match (newer, entry) {
        (true, Entry::Set { key, value, conflicts }) => {
            (key, Row { hlc: op.hlc, author: op.author, version, conflicts, value: Some(value) })
        }
        (true, Entry::Remove { key }) => (key, Row { hlc: op.hlc, author: op.author, version, conflicts: 0, value: None }),
        (false, e) => (e.key().to_vec(), Row { version, ..stored.expect("an older write implies a stored row") }),
    };
    table.put(&row.0, &encode_row(&row.1))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ZERO_HASH;
    use crate::table::MemTable;
    use alloc::vec;

    fn op(author: u8, wall_ms: u64, entries: &[Entry]) -> Op {
        Op {
            author: [author; 32],
            hlc: Hlc { wall_ms, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload: encode_payload(entries),
        }
    }

    fn set(k: &[u8], v: &[u8]) -> Entry {
        Entry::Set { key: k.to_vec(), value: v.to_vec(), conflicts: 0 }
    }

    #[test]
    fn newest_stamp_wins_and_every_write_bumps_the_version() {
        let mut t = MemTable::default();
        KvStoreV2.apply(&[1; 32], &op(1, 10, &[set(b"k", b"new")]), &mut t, &mut crate::NoDag).unwrap();
        KvStoreV2.apply(&[2; 32], &op(2, 5, &[set(b"k", b"old")]), &mut t, &mut crate::NoDag).unwrap();
        let row = decode_row(t.rows.get(&b"k"[..]).unwrap()).unwrap();
        assert_eq!((row.value.as_deref(), row.version), (Some(&b"new"[..]), 2));
        KvStoreV2.apply(&[3; 32], &op(1, 11, &[Entry::Remove { key: b"k".to_vec() }]), &mut t, &mut crate::NoDag).unwrap();
        assert_eq!(decode_row(t.rows.get(&b"k"[..]).unwrap()).unwrap().value, None);
        assert!(decode_payload(&[0, 0, 0, 0]).is_err());
    }
}
