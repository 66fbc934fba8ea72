//! `core:kvstore` (schema 1), as Lattice implements it (`lattice-kvstore`, `lattice-kvtable`).
//!
//! A payload is Lattice's `KvPayload` protobuf: a batch of put/delete operations. A key's row is
//! Lattice's `Value { kind: value | tombstone, heads }`: only the winner's value is kept, the
//! winner's op id is `heads[0]`, the other heads follow in arrival order. The winner is decided
//! at write time, against `heads[0]` only, by `(hlc, author)` with `>=` — so the stored value can
//! depend on arrival order (a real Lattice behaviour the convergence check must be able to show).
//! Apply walks the batch in reverse and skips a key this op already heads, so the last entry of a
//! repeated key wins. Empty keys are allowed; a batch with no operations changes nothing.
//! Normative: docs/FORMAT.md, "core:kvstore".

use alloc::format;
use alloc::vec::Vec;

use prost::Message;

use crate::logic::{ApplyError, Dag, StoreLogic};
use crate::op::{Hlc, Op, OpId};
use crate::table::Table;

pub const STORE_TYPE: &str = "core:kvstore";
pub const SCHEMA_VERSION: u64 = 1;

/// Lattice's `lattice.kv.KvPayload`: the op payload of a kvstore.
#[derive(Clone, PartialEq, Message)]
pub struct KvPayload {
    #[prost(message, repeated, tag = "1")]
    pub ops: Vec<Operation>,
}

/// Lattice's `lattice.kv.Operation`; an operation with neither field set is skipped.
#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(oneof = "OpType", tags = "1, 2")]
    pub op_type: Option<OpType>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OpType {
    #[prost(message, tag = "1")]
    Put(PutOp),
    #[prost(message, tag = "2")]
    Delete(DeleteOp),
}

#[derive(Clone, PartialEq, Message)]
pub struct PutOp {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeleteOp {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// Lattice's `lattice.kvtable.Value`: the stored row of one key.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    /// `heads[0]` is the winner; the others follow in arrival order.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub heads: Vec<Vec<u8>>,
    #[prost(oneof = "Kind", tags = "1, 2")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// The winner's value (may be empty).
    #[prost(bytes = "vec", tag = "1")]
    Value(Vec<u8>),
    /// The winner is a delete (always `true` when set).
    #[prost(bool, tag = "2")]
    Tombstone(bool),
}

/// One entry of a batch, in this crate's terms (for building payloads).
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

/// Encodes entries as a `KvPayload`, in the order given (Lattice's own encoder).
pub fn encode_payload(entries: &[Entry]) -> Vec<u8> {
    let ops = entries
        .iter()
        .map(|e| Operation {
            op_type: Some(match e {
                Entry::Put { key, value } => OpType::Put(PutOp { key: key.clone(), value: value.clone() }),
                Entry::Delete { key } => OpType::Delete(DeleteOp { key: key.clone() }),
            }),
        })
        .collect();
    KvPayload { ops }.encode_to_vec()
}

/// Decodes a payload into its entries, in batch order; operations with no field set are dropped
/// (Lattice skips them). Unknown fields are ignored, as protobuf decoding does.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Entry>, ApplyError> {
    let batch = KvPayload::decode(payload).map_err(|e| ApplyError::MalformedPayload(format!("not a KvPayload: {e}")))?;
    Ok(batch
        .ops
        .into_iter()
        .filter_map(|o| match o.op_type? {
            OpType::Put(p) => Some(Entry::Put { key: p.key, value: p.value }),
            OpType::Delete(d) => Some(Entry::Delete { key: d.key }),
        })
        .collect())
}

/// What a Lattice reader sees of one key (`KvState::inspect`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspect {
    /// The key has a row (value or tombstone).
    pub exists: bool,
    /// The winner's value; `None` for a tombstone, a missing key or a row without a kind.
    pub value: Option<Vec<u8>>,
    pub tombstone: bool,
    /// More than one head.
    pub conflicted: bool,
    /// The heads as stored: winner first, then arrival order.
    pub heads: Vec<OpId>,
}

/// Decodes a stored row; the error says what is wrong with it.
pub fn decode_row(bytes: &[u8]) -> Result<Value, ApplyError> {
    let row = Value::decode(bytes).map_err(|e| ApplyError::CorruptState(format!("stored row is not a Value: {e}")))?;
    if let Some(h) = row.heads.iter().find(|h| h.len() != 32) {
        return Err(ApplyError::CorruptState(format!("stored row has a head of {} bytes, expected 32", h.len())));
    }
    Ok(row)
}

/// What a reader sees of a row (`None` = the key has no row).
pub fn inspect(row: Option<&[u8]>) -> Result<Inspect, ApplyError> {
    let Some(bytes) = row else { return Ok(Inspect::default()) };
    let v = decode_row(bytes)?;
    let heads: Vec<OpId> = v.heads.iter().map(|h| h.as_slice().try_into().expect("checked by decode_row")).collect();
    let (value, tombstone) = match v.kind {
        Some(Kind::Value(data)) => (Some(data), false),
        Some(Kind::Tombstone(_)) => (None, true),
        None => (None, false),
    };
    Ok(Inspect { exists: true, value, tombstone, conflicted: heads.len() > 1, heads })
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

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
        apply_with(Fault::None, id, op, table, dag)
    }

    fn observe(&self, _key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        Ok(Some(view(&inspect(Some(row))?)))
    }
}

/// The view of a key (docs/FORMAT.md, "Observed state"): what `inspect` returns, with the heads
/// as a set — `kind` (0 none, 1 value, 2 tombstone) ‖ (for a value: u32 LE length ‖ value) ‖
/// `conflicted` (0 or 1) ‖ u32 LE head count ‖ the heads in ascending byte order.
pub fn view(seen: &Inspect) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + seen.value.as_ref().map_or(0, Vec::len) + 32 * seen.heads.len());
    match (&seen.value, seen.tombstone) {
        (Some(v), _) => {
            out.push(1);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        (None, true) => out.push(2),
        (None, false) => out.push(0),
    }
    out.push(u8::from(seen.conflicted));
    let mut heads = seen.heads.clone();
    heads.sort_unstable();
    out.extend_from_slice(&(heads.len() as u32).to_le_bytes());
    for h in &heads {
        out.extend_from_slice(h);
    }
    out
}

/// A deliberate fault, injected to prove that verification catches a logic change. Only
/// [`Fault::None`] is `core:kvstore`; the others exist for tests and hot-fix fixtures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// When an op supersedes two or more heads of a key, the last one it names survives.
    ForgetOneHead,
    /// Reads report `conflicted` the wrong way round; what is stored is unchanged (a fault only
    /// the observed state can show).
    ReadFlipsConflicted,
}

impl Fault {
    /// The name used on the command line (`--build native-fault:NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::ForgetOneHead => "forget-one-head",
            Fault::ReadFlipsConflicted => "read-flips-conflicted",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        [Fault::None, Fault::ForgetOneHead, Fault::ReadFlipsConflicted].into_iter().find(|f| f.name() == name)
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

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
        apply_with(self.0, id, op, table, dag)
    }

    fn observe(&self, _key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        let mut seen = inspect(Some(row))?;
        if self.0 == Fault::ReadFlipsConflicted {
            seen.conflicted = !seen.conflicted;
        }
        Ok(Some(view(&seen)))
    }
}

fn apply_with(fault: Fault, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
    // Reverse walk: a key this op already heads is skipped, so the last entry of a key wins.
    for entry in decode_payload(&op.payload)?.into_iter().rev() {
        apply_entry(fault, id, op, entry, table, dag)?;
    }
    Ok(())
}

fn apply_entry(fault: Fault, id: &OpId, op: &Op, entry: Entry, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
    let mut row = match table.get(entry.key())? {
        Some(bytes) => decode_row(&bytes).map_err(|e| in_key(e, entry.key()))?,
        None => Value::default(),
    };
    if row.heads.iter().any(|h| h.as_slice() == id) {
        return Ok(());
    }
    let superseded = |h: &Vec<u8>| op.causal_deps.binary_search_by(|d| d.as_slice().cmp(h)).is_ok();
    let spare = match fault {
        Fault::ForgetOneHead if row.heads.iter().filter(|h| superseded(h)).count() >= 2 => {
            row.heads.iter().rev().find(|h| superseded(h)).cloned()
        }
        _ => None,
    };
    row.heads.retain(|h| !superseded(h) || Some(h) == spare.as_ref());
    let (key, kind) = match entry {
        Entry::Put { key, value } => (key, Kind::Value(value)),
        Entry::Delete { key } => (key, Kind::Tombstone(true)),
    };
    if row.heads.is_empty() {
        row.heads.push(id.to_vec());
        row.kind = Some(kind);
    } else if wins(op, &row.heads[0], dag).map_err(|e| in_key(e, &key))? {
        row.heads.insert(0, id.to_vec());
        row.kind = Some(kind);
    } else {
        row.heads.push(id.to_vec());
    }
    table.put(&key, &row.encode_to_vec())?;
    Ok(())
}

/// Lattice's `lww_wins`: the op wins against the current winner when `(hlc, author)` is `>=`.
fn wins(op: &Op, winner: &[u8], dag: &mut dyn Dag) -> Result<bool, ApplyError> {
    let winner: OpId = winner.try_into().expect("heads are checked to be 32 bytes");
    let (hlc, author): (Hlc, [u8; 32]) = dag
        .op_info(&winner)?
        .ok_or_else(|| ApplyError::CorruptState(format!("winner head {:02x?} is not an op this store received", &winner[..8])))?;
    Ok((op.hlc, op.author) >= (hlc, author))
}

/// Prefixes a corrupt-state message with the key it concerns.
fn in_key(e: ApplyError, key: &[u8]) -> ApplyError {
    match e {
        ApplyError::CorruptState(m) => ApplyError::CorruptState(format!("key {key:02x?}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ZERO_HASH;
    use crate::table::MemTable;
    use alloc::collections::BTreeMap;
    use alloc::vec;

    /// Remembers every op applied, as the host's DAG does.
    #[derive(Default)]
    struct Ops(BTreeMap<OpId, (Hlc, [u8; 32])>);

    impl Dag for Ops {
        fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, crate::HostError> {
            Ok(self.0.get(id).copied())
        }
    }

    fn op(author: u8, wall_ms: u64, deps: Vec<OpId>, entries: &[Entry]) -> Op {
        Op { author: [author; 32], hlc: Hlc { wall_ms, counter: 0 }, prev: ZERO_HASH, causal_deps: deps, payload: encode_payload(entries) }
    }

    fn put(k: &[u8], v: &[u8]) -> Entry {
        Entry::Put { key: k.to_vec(), value: v.to_vec() }
    }

    fn apply(logic: &dyn StoreLogic, t: &mut MemTable, dag: &mut Ops, id: u8, o: &Op) {
        logic.apply(&[id; 32], o, t, dag).unwrap();
        dag.0.insert([id; 32], (o.hlc, o.author));
    }

    fn read(t: &mut MemTable, k: &[u8]) -> Inspect {
        inspect(t.get(k).unwrap().as_deref()).unwrap()
    }

    #[test]
    fn concurrent_puts_keep_both_heads_and_the_greater_author_wins_a_tie() {
        let (mut t, mut dag) = (MemTable::default(), Ops::default());
        apply(&KvStore, &mut t, &mut dag, 1, &op(2, 10, vec![], &[put(b"k", b"a")]));
        apply(&KvStore, &mut t, &mut dag, 2, &op(1, 10, vec![], &[put(b"k", b"b")]));
        let r = read(&mut t, b"k");
        assert_eq!((r.value.as_deref(), r.conflicted, r.heads), (Some(&b"a"[..]), true, vec![[1; 32], [2; 32]]));
    }

    #[test]
    fn a_lower_hlc_op_superseding_the_winner_leaves_the_other_head_winning_with_a_stale_value() {
        // Heads [x (t=20, winner), y (t=10)]; z (t=5) supersedes x only. Lattice keeps x's value.
        let (mut t, mut dag) = (MemTable::default(), Ops::default());
        apply(&KvStore, &mut t, &mut dag, 1, &op(1, 20, vec![], &[put(b"k", b"x")]));
        apply(&KvStore, &mut t, &mut dag, 2, &op(2, 10, vec![], &[put(b"k", b"y")]));
        apply(&KvStore, &mut t, &mut dag, 3, &op(3, 5, vec![[1; 32]], &[put(b"k", b"z")]));
        let r = read(&mut t, b"k");
        assert_eq!(r.heads, vec![[2; 32], [3; 32]], "y became heads[0] only by position");
        assert_eq!(r.value.as_deref(), Some(&b"x"[..]), "the superseded winner's value stays stored");
    }

    #[test]
    fn the_last_entry_of_a_repeated_key_wins_and_empty_keys_are_allowed() {
        let (mut t, mut dag) = (MemTable::default(), Ops::default());
        let batch = [put(b"k", b"1"), Entry::Delete { key: b"k".to_vec() }, put(b"", b"e")];
        apply(&KvStore, &mut t, &mut dag, 1, &op(1, 10, vec![], &batch));
        let r = read(&mut t, b"k");
        assert_eq!((r.tombstone, r.heads.len()), (true, 1));
        assert_eq!(read(&mut t, b"").value.as_deref(), Some(&b"e"[..]));
    }

    #[test]
    fn forget_one_head_fault_keeps_one_superseded_head() {
        let (mut good, mut bad, mut dag) = (MemTable::default(), MemTable::default(), Ops::default());
        for t in [&mut good, &mut bad] {
            apply(&KvStore, t, &mut dag, 1, &op(1, 10, vec![], &[put(b"k", b"a")]));
            apply(&KvStore, t, &mut dag, 2, &op(2, 10, vec![], &[put(b"k", b"b")]));
        }
        let merge = op(3, 11, vec![[1; 32], [2; 32]], &[put(b"k", b"c")]);
        apply(&KvStore, &mut good, &mut dag, 3, &merge);
        apply(&FaultyKvStore(Fault::ForgetOneHead), &mut bad, &mut dag, 3, &merge);
        assert_eq!(read(&mut good, b"k").heads.len(), 1);
        assert_eq!(read(&mut bad, b"k").heads.len(), 2);
        assert_eq!(Fault::from_name("forget-one-head"), Some(Fault::ForgetOneHead));
    }

    #[test]
    fn payloads_round_trip_unknown_fields_are_ignored_and_garbage_is_malformed() {
        let entries = vec![put(b"a", b""), Entry::Delete { key: b"ab".to_vec() }];
        assert_eq!(decode_payload(&encode_payload(&entries)).unwrap(), entries);
        let mut unknown = encode_payload(&entries);
        unknown.extend_from_slice(&[0x78, 0x05]); // field 15, varint 5
        assert_eq!(decode_payload(&unknown).unwrap(), entries);
        assert_eq!(decode_payload(&[]).unwrap(), vec![]);
        assert!(matches!(decode_payload(&[0x0a, 0x05, 0x01]), Err(ApplyError::MalformedPayload(_))));
    }
}
