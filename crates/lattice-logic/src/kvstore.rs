//! `core:kvstore` (schema 1): a multi-value register per key.
//!
//! A put or delete adds a head to its key and removes the heads whose op ids the op names in
//! `causal_deps`; heads not named stay, so concurrent writes are kept side by side. Reads resolve
//! last-writer-wins by (HLC, author, op id). A delete is a tombstone head. One payload may carry a
//! batch of entries for distinct keys, applied atomically. Layouts: docs/FORMAT.md.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use crate::logic::{ApplyError, StoreLogic};
use crate::op::{Hlc, Op, OpId};
use crate::table::Table;
use crate::wire::{put_bytes32, put_u32, put_u64, Reader};

pub const STORE_TYPE: &str = "core:kvstore";
pub const SCHEMA_VERSION: u64 = 1;
/// Most entries one batch payload may carry.
pub const MAX_BATCH: usize = 65_536;
/// Longest key, in bytes (1 MiB).
pub const MAX_KEY: usize = 1 << 20;

const TAG_PUT: u8 = 0x01;
const TAG_DELETE: u8 = 0x02;

/// One entry of a kvstore payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl Entry {
    pub fn key(&self) -> &[u8] {
        match self {
            Entry::Put { key, .. } | Entry::Delete { key } => key,
        }
    }
}

/// One head of a key's multi-value register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub op_id: OpId,
    pub hlc: Hlc,
    pub author: [u8; 32],
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl Head {
    /// Resolution order: (HLC, author, op id); the greatest head wins.
    fn order_key(&self) -> (Hlc, &[u8; 32], &OpId) {
        (self.hlc, &self.author, &self.op_id)
    }
}

/// Encodes a payload. Entries are written in the order given.
pub fn encode_payload(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, entries.len() as u32);
    for e in entries {
        match e {
            Entry::Put { key, value } => {
                out.push(TAG_PUT);
                put_bytes32(&mut out, key);
                put_bytes32(&mut out, value);
            }
            Entry::Delete { key } => {
                out.push(TAG_DELETE);
                put_bytes32(&mut out, key);
            }
        }
    }
    out
}

/// Decodes a payload; the error message names the entry and byte offset at fault.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Entry>, ApplyError> {
    let bad = |msg: alloc::string::String| ApplyError::MalformedPayload(msg);
    let trunc = |t: crate::wire::Truncated| bad(format!("truncated while reading {} at byte {}", t.what, t.at));
    let mut r = Reader::new(payload);
    let n = r.u32("entry count").map_err(trunc)? as usize;
    if n == 0 || n > MAX_BATCH {
        return Err(bad(format!("entry count {n} is outside 1..={MAX_BATCH}")));
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let at = r.pos();
        let tag = r.u8("entry tag").map_err(trunc)?;
        let key = r.bytes32("key").map_err(trunc)?.to_vec();
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(bad(format!("entry {i} (byte {at}): key length {} is outside 1..={MAX_KEY}", key.len())));
        }
        let entry = match tag {
            TAG_PUT => Entry::Put { key, value: r.bytes32("value").map_err(trunc)?.to_vec() },
            TAG_DELETE => Entry::Delete { key },
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

/// Encodes a head set; heads must already be in resolution order.
pub fn encode_heads(heads: &[Head]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, heads.len() as u32);
    for h in heads {
        out.extend_from_slice(&h.op_id);
        put_u64(&mut out, h.hlc.wall_ms);
        put_u32(&mut out, h.hlc.counter);
        out.extend_from_slice(&h.author);
        match &h.value {
            Some(v) => {
                out.push(TAG_PUT);
                put_bytes32(&mut out, v);
            }
            None => out.push(TAG_DELETE),
        }
    }
    out
}

/// Decodes a stored head set. `None` means the bytes are not a head set this version writes
/// (truncated, trailing bytes, empty, or heads out of resolution order).
pub fn decode_heads(bytes: &[u8]) -> Option<Vec<Head>> {
    let mut r = Reader::new(bytes);
    let n = r.u32("head count").ok()? as usize;
    let mut heads = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let op_id = r.hash("op id").ok()?;
        let hlc = Hlc { wall_ms: r.u64("wall_ms").ok()?, counter: r.u32("counter").ok()? };
        let author = r.hash("author").ok()?;
        let value = match r.u8("tag").ok()? {
            TAG_PUT => Some(r.bytes32("value").ok()?.to_vec()),
            TAG_DELETE => None,
            _ => return None,
        };
        heads.push(Head { op_id, hlc, author, value });
    }
    let ordered = heads.windows(2).all(|w| w[0].order_key() < w[1].order_key());
    (r.is_empty() && !heads.is_empty() && ordered).then_some(heads)
}

/// The winning head (last-writer-wins by HLC, then author, then op id), tombstone or not.
pub fn winner(heads: &[Head]) -> Option<&Head> {
    heads.iter().max_by(|a, b| a.order_key().cmp(&b.order_key()))
}

/// The resolved value of a key: the winner's value, `None` if the winner is a tombstone.
pub fn resolve(heads: &[Head]) -> Option<&[u8]> {
    winner(heads).and_then(|h| h.value.as_deref())
}

/// The `core:kvstore` logic.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvStore;

impl StoreLogic for KvStore {
    fn store_type(&self) -> &str {
        STORE_TYPE
    }

    fn schema_version(&self) -> u64 {
        SCHEMA_VERSION
    }

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
        apply_with(Fault::None, id, op, table)
    }
}

/// A deliberate fault, injected to prove that verification catches a logic change. Only
/// [`Fault::None`] is `core:kvstore`; the others exist for tests and hot-fix fixtures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// When an op supersedes two or more heads of a key, the last one it names survives.
    ForgetOneHead,
}

impl Fault {
    /// The name used on the command line (`--build native-fault:NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::ForgetOneHead => "forget-one-head",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        [Fault::None, Fault::ForgetOneHead].into_iter().find(|f| f.name() == name)
    }
}

/// `core:kvstore` with a [`Fault`] injected. Claims the same type and schema, as a bad hot fix would.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultyKvStore(pub Fault);

impl StoreLogic for FaultyKvStore {
    fn store_type(&self) -> &str {
        STORE_TYPE
    }

    fn schema_version(&self) -> u64 {
        SCHEMA_VERSION
    }

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
        apply_with(self.0, id, op, table)
    }
}

fn apply_with(fault: Fault, id: &OpId, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
    for entry in decode_payload(&op.payload)? {
        apply_entry(fault, id, op, entry, table)?;
    }
    Ok(())
}

fn apply_entry(fault: Fault, id: &OpId, op: &Op, entry: Entry, table: &mut dyn Table) -> Result<(), ApplyError> {
    let mut heads = match table.get(entry.key())? {
        Some(bytes) => decode_heads(&bytes)
            .ok_or_else(|| ApplyError::CorruptState(format!("stored heads of key {:02x?} do not decode", entry.key())))?,
        None => Vec::new(),
    };
    let superseded = heads.iter().filter(|h| op.causal_deps.binary_search(&h.op_id).is_ok()).count();
    let spare = match fault {
        Fault::ForgetOneHead if superseded >= 2 => {
            heads.iter().rev().find(|h| op.causal_deps.binary_search(&h.op_id).is_ok()).map(|h| h.op_id)
        }
        _ => None,
    };
    heads.retain(|h| op.causal_deps.binary_search(&h.op_id).is_err() || Some(h.op_id) == spare);
    let (key, value) = match entry {
        Entry::Put { key, value } => (key, Some(value)),
        Entry::Delete { key } => (key, None),
    };
    heads.push(Head { op_id: *id, hlc: op.hlc, author: op.author, value });
    heads.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    table.put(&key, &encode_heads(&heads))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ZERO_HASH;
    use crate::table::MemTable;
    use alloc::vec;

    fn op(author: u8, wall_ms: u64, deps: Vec<OpId>, entries: &[Entry]) -> Op {
        Op { author: [author; 32], hlc: Hlc { wall_ms, counter: 0 }, prev: ZERO_HASH, causal_deps: deps, payload: encode_payload(entries) }
    }

    fn put(k: &[u8], v: &[u8]) -> Entry {
        Entry::Put { key: k.to_vec(), value: v.to_vec() }
    }

    fn heads(t: &mut MemTable, k: &[u8]) -> Vec<Head> {
        decode_heads(&t.get(k).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn concurrent_puts_keep_both_heads_and_resolve_by_hlc_then_author() {
        let mut t = MemTable::default();
        KvStore.apply(&[1; 32], &op(2, 10, vec![], &[put(b"k", b"a")]), &mut t).unwrap();
        KvStore.apply(&[2; 32], &op(1, 10, vec![], &[put(b"k", b"b")]), &mut t).unwrap();
        let hs = heads(&mut t, b"k");
        assert_eq!(hs.len(), 2);
        assert_eq!(resolve(&hs), Some(&b"a"[..]), "equal HLC: the greater author wins");
    }

    #[test]
    fn causal_deps_remove_superseded_heads_and_delete_is_a_tombstone() {
        let mut t = MemTable::default();
        KvStore.apply(&[1; 32], &op(1, 10, vec![], &[put(b"k", b"a")]), &mut t).unwrap();
        KvStore.apply(&[2; 32], &op(1, 11, vec![[1; 32]], &[Entry::Delete { key: b"k".to_vec() }]), &mut t).unwrap();
        let hs = heads(&mut t, b"k");
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].value, None);
        assert_eq!(resolve(&hs), None);
    }

    #[test]
    fn forget_one_head_fault_keeps_one_superseded_head() {
        let mut good = MemTable::default();
        let mut bad = MemTable::default();
        for t in [&mut good as &mut dyn Table, &mut bad] {
            KvStore.apply(&[1; 32], &op(1, 10, vec![], &[put(b"k", b"a")]), t).unwrap();
            KvStore.apply(&[2; 32], &op(2, 10, vec![], &[put(b"k", b"b")]), t).unwrap();
        }
        let merge = op(3, 11, vec![[1; 32], [2; 32]], &[put(b"k", b"c")]);
        KvStore.apply(&[3; 32], &merge, &mut good).unwrap();
        FaultyKvStore(Fault::ForgetOneHead).apply(&[3; 32], &merge, &mut bad).unwrap();
        assert_eq!(heads(&mut good, b"k").len(), 1);
        assert_eq!(heads(&mut bad, b"k").len(), 2);
        assert_eq!(Fault::from_name("forget-one-head"), Some(Fault::ForgetOneHead));
    }

    #[test]
    fn payload_round_trips_and_bad_payloads_are_malformed() {
        let entries = vec![put(b"a", b""), Entry::Delete { key: b"ab".to_vec() }];
        assert_eq!(decode_payload(&encode_payload(&entries)).unwrap(), entries);
        for bad in [vec![], encode_payload(&[]), encode_payload(&[put(b"", b"x")]), encode_payload(&[put(b"a", b"1"), put(b"a", b"2")])] {
            assert!(matches!(decode_payload(&bad), Err(ApplyError::MalformedPayload(_))), "{bad:?}");
        }
        let mut trailing = encode_payload(&entries);
        trailing.push(0);
        assert!(decode_payload(&trailing).is_err());
    }
}
