//! Seeded semantic faults of the reference store types: each [`LogicFault`] breaks exactly one
//! rule of one type's apply or read path, so a corpus can be measured by the faults it catches
//! (`lattice-conform corpus adequacy`).
//!
//! Only compiled with the `faults` feature (the native suite enables it; the Wasm guests do not),
//! so the reference logic and the committed guests never contain this code. The reference modules
//! are not touched either: [`Faulty`] re-walks a payload with the reference's own codecs and row
//! types ([`kvstore`], [`logstore`], [`kvstore_v2`]) and deviates at one rule. Unit tests below show
//! that each fault changes the outcome of a small handcrafted history and that, away from its
//! rule, the walk gives the reference's rows.

use alloc::format;
use alloc::vec::Vec;

use prost::Message;

use crate::kvstore::{self, Entry as KvEntry, Kind, Value};
use crate::kvstore_v2::{self as v2, Row};
use crate::logic::{ApplyError, Dag, StoreLogic};
use crate::logstore;
use crate::op::{Op, OpId};
use crate::table::Table;

mod pb;
use pb::PbRule;

/// One broken rule of a reference store type's logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogicFault {
    // core:kvstore, apply.
    /// The batch is walked first to last, so the first entry of a repeated key wins.
    KvBatchForward,
    /// `causal_deps` are not removed from a key's heads.
    KvDepsIgnored,
    /// The new op is compared with the last head (the latest to arrive) instead of `heads[0]`.
    KvCompareLastHead,
    /// The op wins only when `(hlc, author)` is strictly greater (`>` instead of `>=`).
    KvStrictGreater,
    /// On equal HLCs the smaller author wins.
    KvAuthorTieReversed,
    /// The comparison uses the wall time only and ignores the HLC counter.
    KvCounterIgnored,
    /// A losing op is inserted right after the winner instead of appended (head order).
    KvLoserPrepended,
    /// A winning delete stores an empty value instead of a tombstone.
    KvTombstoneAsEmptyValue,
    /// A batch with an empty key is refused as malformed.
    KvEmptyKeyRefused,
    /// A losing op's kind (value or tombstone) is stored although the winner stays.
    KvLoserKindStored,
    // core:kvstore, payload decoding (prost 0.14's rules, docs/FORMAT.md §5.1).
    /// Groups nest without limit (prost stops at 100 levels).
    KvPbNoDepthLimit,
    /// Switching `op_type` to the other member keeps the fields decoded so far.
    KvPbOneofSwitchMerges,
    /// A repeated `op_type` member replaces the message instead of merging into it.
    KvPbOneofRepeatReplaces,
    /// An end-group tag closes a group whatever its field number.
    KvPbEndGroupAnyNumber,
    /// A varint written in more bytes than needed is refused.
    KvPbNonMinimalVarintRefused,
    /// A 10-byte varint above 2⁶⁴ − 1 wraps instead of being refused.
    KvPbVarintOverflowWraps,
    // core:kvstore, read.
    /// Readers do not see a tombstoned key at all.
    KvReadTombstoneHidden,
    // core:logstore.
    /// The entry key holds the wall time little-endian (entries no longer sort by time).
    LogKeyWallLittleEndian,
    /// A duplicate timestamp overwrites the entry instead of stalling.
    LogDuplicateOverwrites,
    /// An empty payload stores an empty entry.
    LogEmptyPayloadStored,
    /// The stored value's length prefix is a u32 (read back the same way).
    LogLengthPrefixU32,
    /// Readers see the stored value with its length prefix.
    LogReadIncludesPrefix,
    // core:kvstore-v2.
    /// An equal stamp replaces the row (`>=` instead of `>`).
    V2EqualStampWins,
    /// The stamp compares HLCs only; on an HLC tie the stored row stays whatever the author.
    V2AuthorIgnored,
    /// A refused (older) write does not bump the version.
    V2RefusedKeepsVersion,
    /// A remove deletes the row instead of leaving a tombstone.
    V2RemoveDeletesRow,
    /// A set stores a conflict count of 0 whatever the payload says.
    V2ConflictsDropped,
    /// Readers see a removed key as an empty value.
    V2ReadShowsRemoved,
}

impl LogicFault {
    /// Every logic fault, in a fixed order.
    pub const ALL: [LogicFault; 28] = [
        LogicFault::KvBatchForward,
        LogicFault::KvDepsIgnored,
        LogicFault::KvCompareLastHead,
        LogicFault::KvStrictGreater,
        LogicFault::KvAuthorTieReversed,
        LogicFault::KvCounterIgnored,
        LogicFault::KvLoserPrepended,
        LogicFault::KvTombstoneAsEmptyValue,
        LogicFault::KvEmptyKeyRefused,
        LogicFault::KvLoserKindStored,
        LogicFault::KvPbNoDepthLimit,
        LogicFault::KvPbOneofSwitchMerges,
        LogicFault::KvPbOneofRepeatReplaces,
        LogicFault::KvPbEndGroupAnyNumber,
        LogicFault::KvPbNonMinimalVarintRefused,
        LogicFault::KvPbVarintOverflowWraps,
        LogicFault::KvReadTombstoneHidden,
        LogicFault::LogKeyWallLittleEndian,
        LogicFault::LogDuplicateOverwrites,
        LogicFault::LogEmptyPayloadStored,
        LogicFault::LogLengthPrefixU32,
        LogicFault::LogReadIncludesPrefix,
        LogicFault::V2EqualStampWins,
        LogicFault::V2AuthorIgnored,
        LogicFault::V2RefusedKeepsVersion,
        LogicFault::V2RemoveDeletesRow,
        LogicFault::V2ConflictsDropped,
        LogicFault::V2ReadShowsRemoved,
    ];

    /// The store type whose rule this fault breaks.
    pub fn store_type(self) -> &'static str {
        use LogicFault::*;
        match self {
            KvBatchForward
            | KvDepsIgnored
            | KvCompareLastHead
            | KvStrictGreater
            | KvAuthorTieReversed
            | KvCounterIgnored
            | KvLoserPrepended
            | KvTombstoneAsEmptyValue
            | KvEmptyKeyRefused
            | KvLoserKindStored
            | KvPbNoDepthLimit
            | KvPbOneofSwitchMerges
            | KvPbOneofRepeatReplaces
            | KvPbEndGroupAnyNumber
            | KvPbNonMinimalVarintRefused
            | KvPbVarintOverflowWraps
            | KvReadTombstoneHidden => kvstore::STORE_TYPE,
            LogKeyWallLittleEndian | LogDuplicateOverwrites | LogEmptyPayloadStored | LogLengthPrefixU32 | LogReadIncludesPrefix => {
                logstore::STORE_TYPE
            }
            V2EqualStampWins | V2AuthorIgnored | V2RefusedKeepsVersion | V2RemoveDeletesRow | V2ConflictsDropped | V2ReadShowsRemoved => {
                v2::STORE_TYPE
            }
        }
    }

    /// The payload decoding rule this fault breaks, if it is one.
    fn pb_rule(self) -> Option<PbRule> {
        use LogicFault::*;
        Some(match self {
            KvPbNoDepthLimit => PbRule::NoDepthLimit,
            KvPbOneofSwitchMerges => PbRule::OneofSwitchMerges,
            KvPbOneofRepeatReplaces => PbRule::OneofRepeatReplaces,
            KvPbEndGroupAnyNumber => PbRule::EndGroupAnyNumber,
            KvPbNonMinimalVarintRefused => PbRule::NonMinimalVarintRefused,
            KvPbVarintOverflowWraps => PbRule::VarintOverflowWraps,
            _ => return None,
        })
    }
}

/// Decodes a `core:kvstore` payload (docs/FORMAT.md §5.1) with the field-by-field decoder the
/// payload faults use, breaking `fault`'s decoding rule (`None`, or a fault that is not a payload
/// fault: no rule broken — the result must equal [`kvstore::decode_payload`]'s).
pub fn decode_kv_payload(payload: &[u8], fault: Option<LogicFault>) -> Result<Vec<KvEntry>, ApplyError> {
    pb::decode(payload, fault.and_then(LogicFault::pb_rule))
}

/// A reference store type with one [`LogicFault`]; it claims the type and schema of the type it
/// breaks, as a bad hot fix would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faulty(pub LogicFault);

impl StoreLogic for Faulty {
    fn store_type(&self) -> &str {
        self.0.store_type()
    }

    fn schema_version(&self) -> u64 {
        1
    }

    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
        match self.0.store_type() {
            kvstore::STORE_TYPE => kv_apply(self.0, id, op, table, dag),
            logstore::STORE_TYPE => log_apply(self.0, op, table),
            _ => v2_apply(self.0, op, table),
        }
    }

    fn observe(&self, key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        match self.0 {
            LogicFault::KvReadTombstoneHidden => {
                let seen = kvstore::inspect(Some(row))?;
                Ok((!seen.tombstone).then(|| kvstore::view(&seen)))
            }
            LogicFault::LogLengthPrefixU32 => {
                let len = row.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
                match len.and_then(|n| row.get(4..4 + n)) {
                    Some(content) => Ok(Some(content.to_vec())),
                    None => Err(ApplyError::CorruptState(format!("stored entry of {} bytes is shorter than its length prefix", row.len()))),
                }
            }
            LogicFault::LogReadIncludesPrefix => Ok(Some(row.to_vec())),
            LogicFault::V2ReadShowsRemoved => {
                let mut stored = v2::decode_row(row).ok_or_else(|| ApplyError::CorruptState("stored row does not decode".into()))?;
                stored.value.get_or_insert_with(Vec::new);
                v2::KvStoreV2.observe(key, &v2::encode_row(&stored))
            }
            f => match f.store_type() {
                kvstore::STORE_TYPE => kvstore::KvStore.observe(key, row),
                logstore::STORE_TYPE => logstore::LogStore.observe(key, row),
                _ => v2::KvStoreV2.observe(key, row),
            },
        }
    }
}

// ---- core:kvstore: the reference walk (`kvstore::apply_with`), one rule at a time different.

fn kv_apply(f: LogicFault, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
    let entries = match f.pb_rule() {
        Some(rule) => pb::decode(&op.payload, Some(rule))?,
        None => kvstore::decode_payload(&op.payload)?,
    };
    if f == LogicFault::KvEmptyKeyRefused && entries.iter().any(|e| e.key().is_empty()) {
        return Err(ApplyError::MalformedPayload("empty key".into()));
    }
    if f == LogicFault::KvBatchForward {
        entries.into_iter().try_for_each(|e| kv_entry(f, id, op, e, table, dag))
    } else {
        entries.into_iter().rev().try_for_each(|e| kv_entry(f, id, op, e, table, dag))
    }
}

fn kv_entry(f: LogicFault, id: &OpId, op: &Op, entry: KvEntry, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
    let mut row = match table.get(entry.key())? {
        Some(bytes) => kvstore::decode_row(&bytes)?,
        None => Value::default(),
    };
    if row.heads.iter().any(|h| h.as_slice() == id) {
        return Ok(());
    }
    if f != LogicFault::KvDepsIgnored {
        row.heads.retain(|h| op.causal_deps.binary_search_by(|d| d.as_slice().cmp(h)).is_err());
    }
    let (key, kind) = match entry {
        KvEntry::Put { key, value } => (key, Kind::Value(value)),
        KvEntry::Delete { key } if f == LogicFault::KvTombstoneAsEmptyValue => (key, Kind::Value(Vec::new())),
        KvEntry::Delete { key } => (key, Kind::Tombstone(true)),
    };
    if row.heads.is_empty() {
        row.heads.push(id.to_vec());
        row.kind = Some(kind);
    } else if kv_wins(f, op, &row.heads, dag)? {
        row.heads.insert(0, id.to_vec());
        row.kind = Some(kind);
    } else {
        let at = if f == LogicFault::KvLoserPrepended { 1 } else { row.heads.len() };
        row.heads.insert(at, id.to_vec());
        if f == LogicFault::KvLoserKindStored {
            row.kind = Some(kind);
        }
    }
    table.put(&key, &row.encode_to_vec())?;
    Ok(())
}

/// `lww_wins` against `heads[0]` (for [`LogicFault::KvCompareLastHead`], the last head).
fn kv_wins(f: LogicFault, op: &Op, heads: &[Vec<u8>], dag: &mut dyn Dag) -> Result<bool, ApplyError> {
    let compared = if f == LogicFault::KvCompareLastHead { heads.last() } else { heads.first() };
    let head: OpId = compared
        .and_then(|h| h.as_slice().try_into().ok())
        .ok_or_else(|| ApplyError::CorruptState("a row without a 32-byte head".into()))?;
    let (hlc, author) = dag.op_info(&head)?.ok_or_else(|| ApplyError::CorruptState("a head is not an op this store received".into()))?;
    Ok(match f {
        LogicFault::KvStrictGreater => (op.hlc, op.author) > (hlc, author),
        LogicFault::KvAuthorTieReversed => (op.hlc, core::cmp::Reverse(op.author)) >= (hlc, core::cmp::Reverse(author)),
        LogicFault::KvCounterIgnored => (op.hlc.wall_ms, op.author) >= (hlc.wall_ms, author),
        _ => (op.hlc, op.author) >= (hlc, author),
    })
}

// ---- core:logstore: `LogStore::apply`, one rule at a time different.

fn log_apply(f: LogicFault, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
    if op.payload.is_empty() && f != LogicFault::LogEmptyPayloadStored {
        return Ok(());
    }
    let mut key = logstore::entry_key(op.hlc.wall_ms, &op.author);
    if f == LogicFault::LogKeyWallLittleEndian {
        key[..8].copy_from_slice(&op.hlc.wall_ms.to_le_bytes());
    }
    if table.get(&key)?.is_some() && f != LogicFault::LogDuplicateOverwrites {
        return Err(ApplyError::Refused(format!("duplicate timestamp at wall_ms {}", op.hlc.wall_ms)));
    }
    let value = if f == LogicFault::LogLengthPrefixU32 {
        let mut v = (op.payload.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&op.payload);
        v
    } else {
        logstore::encode_entry(&op.payload)
    };
    table.put(&key, &value)?;
    Ok(())
}

// ---- core:kvstore-v2: `KvStoreV2::apply`, one rule at a time different.

fn v2_apply(f: LogicFault, op: &Op, table: &mut dyn Table) -> Result<(), ApplyError> {
    v2::decode_payload(&op.payload)?.into_iter().try_for_each(|e| v2_entry(f, op, e, table))
}

fn v2_entry(f: LogicFault, op: &Op, entry: v2::Entry, table: &mut dyn Table) -> Result<(), ApplyError> {
    let stored = match table.get(entry.key())? {
        Some(bytes) => Some(v2::decode_row(&bytes).ok_or_else(|| ApplyError::CorruptState("stored row does not decode".into()))?),
        None => None,
    };
    let version = stored.as_ref().map_or(0, |r| r.version) + 1;
    let newer = stored.as_ref().is_none_or(|r| match f {
        LogicFault::V2EqualStampWins => (op.hlc, &op.author) >= (r.hlc, &r.author),
        LogicFault::V2AuthorIgnored => op.hlc > r.hlc,
        _ => (op.hlc, &op.author) > (r.hlc, &r.author),
    });
    let (key, row) = match (newer, entry) {
        (true, v2::Entry::Set { key, value, conflicts }) => {
            let conflicts = if f == LogicFault::V2ConflictsDropped { 0 } else { conflicts };
            (key, Row { hlc: op.hlc, author: op.author, version, conflicts, value: Some(value) })
        }
        (true, v2::Entry::Remove { key }) if f == LogicFault::V2RemoveDeletesRow => return Ok(table.delete(&key)?),
        (true, v2::Entry::Remove { key }) => (key, Row { hlc: op.hlc, author: op.author, version, conflicts: 0, value: None }),
        (false, _) if f == LogicFault::V2RefusedKeepsVersion => return Ok(()),
        (false, e) => (e.key().to_vec(), Row { version, ..stored.expect("an older write implies a stored row") }),
    };
    table.put(&key, &v2::encode_row(&row))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each fault against the reference on a small history where they must disagree (the stored
    //! rows, a refusal, or — for read faults — the views).
    use super::*;
    use crate::op::{Hlc, ZERO_HASH};
    use crate::table::MemTable;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use alloc::vec::Vec;

    #[derive(Default)]
    struct Ops(BTreeMap<OpId, (Hlc, [u8; 32])>);

    impl Dag for Ops {
        fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, crate::HostError> {
            Ok(self.0.get(id).copied())
        }
    }

    /// (rows, views, first error) after applying `ops` (id = index + 1) with `logic`.
    type Outcome = (BTreeMap<Vec<u8>, Vec<u8>>, Vec<Option<Vec<u8>>>, Option<ApplyError>);

    fn run(logic: &dyn StoreLogic, ops: &[Op]) -> Outcome {
        let (mut t, mut dag) = (MemTable::default(), Ops::default());
        for (i, o) in ops.iter().enumerate() {
            let id = [i as u8 + 1; 32];
            if let Err(e) = logic.apply(&id, o, &mut t, &mut dag) {
                return (t.rows, vec![], Some(e));
            }
            dag.0.insert(id, (o.hlc, o.author));
        }
        let views = t.rows.iter().map(|(k, v)| logic.observe(k, v).unwrap()).collect();
        (t.rows, views, None)
    }

    fn op(author: u8, wall_ms: u64, counter: u32, deps: &[u8], payload: Vec<u8>) -> Op {
        let causal_deps = deps.iter().map(|d| [*d; 32]).collect();
        Op { author: [author; 32], hlc: Hlc { wall_ms, counter }, prev: ZERO_HASH, causal_deps, payload }
    }

    /// One put of `k` → `v`: `KvPayload { ops: [Operation { put: PutOp { key: "k", value: "v" } }] }`.
    const PUT_K_V: &[u8] = &[0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v'];

    /// A kvstore op whose payload is the concatenation of `parts`.
    fn raw<const N: usize>(parts: [&[u8]; N]) -> Op {
        op(1, 10, 0, &[], parts.concat())
    }

    fn put(k: &str, v: &str) -> KvEntry {
        KvEntry::Put { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() }
    }

    fn del(k: &str) -> KvEntry {
        KvEntry::Delete { key: k.as_bytes().to_vec() }
    }

    fn kv(author: u8, wall_ms: u64, counter: u32, deps: &[u8], entries: &[KvEntry]) -> Op {
        op(author, wall_ms, counter, deps, kvstore::encode_payload(entries))
    }

    fn set(k: &str, v: &str, conflicts: u32) -> v2::Entry {
        v2::Entry::Set { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec(), conflicts }
    }

    fn v2op(author: u8, wall_ms: u64, entries: &[v2::Entry]) -> Op {
        op(author, wall_ms, 0, &[], v2::encode_payload(entries))
    }

    fn reference(store_type: &str) -> &'static dyn StoreLogic {
        match store_type {
            kvstore::STORE_TYPE => &kvstore::KvStore,
            logstore::STORE_TYPE => &logstore::LogStore,
            _ => &v2::KvStoreV2,
        }
    }

    /// The smallest history on which each fault and the reference disagree.
    fn witness(f: LogicFault) -> Vec<Op> {
        use LogicFault::*;
        match f {
            KvBatchForward => vec![kv(1, 10, 0, &[], &[put("k", "first"), put("k", "last")])],
            KvDepsIgnored => vec![kv(1, 10, 0, &[], &[put("k", "a")]), kv(1, 11, 0, &[1], &[put("k", "b")])],
            // x (t=20) wins, u (t=10) loses: heads [x, u]; w (t=15) loses to x but beats u.
            KvCompareLastHead => {
                vec![kv(1, 20, 0, &[], &[put("k", "x")]), kv(2, 10, 0, &[], &[put("k", "u")]), kv(3, 15, 0, &[], &[put("k", "w")])]
            }
            KvStrictGreater => vec![kv(1, 10, 0, &[], &[put("k", "a")]), kv(1, 10, 0, &[], &[put("k", "b")])],
            KvAuthorTieReversed => vec![kv(1, 10, 0, &[], &[put("k", "a")]), kv(2, 10, 0, &[], &[put("k", "b")])],
            KvCounterIgnored => vec![kv(2, 10, 1, &[], &[put("k", "a")]), kv(1, 10, 2, &[], &[put("k", "b")])],
            KvLoserPrepended => {
                vec![kv(9, 10, 0, &[], &[put("k", "a")]), kv(1, 9, 0, &[], &[put("k", "b")]), kv(2, 8, 0, &[], &[put("k", "c")])]
            }
            KvTombstoneAsEmptyValue => vec![kv(1, 10, 0, &[], &[del("k")])],
            KvEmptyKeyRefused => vec![kv(1, 10, 0, &[], &[put("", "e")])],
            KvLoserKindStored => vec![kv(2, 10, 0, &[], &[put("k", "a")]), kv(1, 10, 0, &[], &[put("k", "b")])],
            KvPbNoDepthLimit => vec![raw([&[0x2b; 101][..], &[0x2c; 101], PUT_K_V])],
            // put {a, x} then delete {}: the delete starts empty (key "") unless it merges.
            KvPbOneofSwitchMerges => vec![raw([&[0x0a, 0x0a, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'x', 0x12, 0x00][..]])],
            // put {a, x} then put {b}: merged, the value x stays.
            KvPbOneofRepeatReplaces => {
                vec![raw([&[0x0a, 0x0d, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'x', 0x0a, 0x03, 0x0a, 0x01, b'b'][..]])]
            }
            // A group of field 5 closed by field 6's end-group tag.
            KvPbEndGroupAnyNumber => vec![raw([&[0x2b, 0x34][..], PUT_K_V])],
            // The first field's length written in two bytes (0x88 0x00 = 8).
            KvPbNonMinimalVarintRefused => vec![raw([&[0x0a, 0x88, 0x00][..], &PUT_K_V[2..]])],
            // Unknown field 15 (varint) holding 2^64 + 2^63 - 1 in ten bytes.
            KvPbVarintOverflowWraps => vec![raw([&[0x78][..], &[0xff; 9], &[0x02], PUT_K_V])],
            KvReadTombstoneHidden => vec![kv(1, 10, 0, &[], &[del("k")])],
            LogKeyWallLittleEndian | LogLengthPrefixU32 | LogReadIncludesPrefix => vec![op(1, 10, 0, &[], b"x".to_vec())],
            LogDuplicateOverwrites => vec![op(1, 10, 0, &[], b"x".to_vec()), op(1, 10, 1, &[], b"y".to_vec())],
            LogEmptyPayloadStored => vec![op(1, 10, 0, &[], vec![])],
            V2EqualStampWins => vec![v2op(1, 10, &[set("k", "a", 0)]), v2op(1, 10, &[set("k", "b", 0)])],
            V2AuthorIgnored => vec![v2op(1, 10, &[set("k", "a", 0)]), v2op(2, 10, &[set("k", "b", 0)])],
            V2RefusedKeepsVersion => vec![v2op(1, 10, &[set("k", "a", 0)]), v2op(1, 9, &[set("k", "b", 0)])],
            V2RemoveDeletesRow => vec![v2op(1, 10, &[v2::Entry::Remove { key: b"k".to_vec() }])],
            V2ConflictsDropped => vec![v2op(1, 10, &[set("k", "a", 2)])],
            V2ReadShowsRemoved => vec![v2op(1, 10, &[set("k", "a", 0)]), v2op(1, 11, &[v2::Entry::Remove { key: b"k".to_vec() }])],
        }
    }

    #[test]
    fn every_fault_disagrees_with_the_reference_on_its_witness_history() {
        for f in LogicFault::ALL {
            let ops = witness(f);
            let good = run(reference(f.store_type()), &ops);
            let bad = run(&Faulty(f), &ops);
            assert_ne!(good, bad, "{f:?} behaves like the reference on its witness history");
        }
    }

    #[test]
    fn read_faults_change_only_the_views_and_state_faults_leave_rows_readable() {
        for f in [LogicFault::KvReadTombstoneHidden, LogicFault::LogReadIncludesPrefix, LogicFault::V2ReadShowsRemoved] {
            let ops = witness(f);
            let (good, bad) = (run(reference(f.store_type()), &ops), run(&Faulty(f), &ops));
            assert_eq!(good.0, bad.0, "{f:?} changes stored rows");
            assert_ne!(good.1, bad.1, "{f:?} does not change what readers see");
        }
        // A u32 length prefix changes the rows but reads back as the same content.
        let ops = witness(LogicFault::LogLengthPrefixU32);
        let (good, bad) = (run(&logstore::LogStore, &ops), run(&Faulty(LogicFault::LogLengthPrefixU32), &ops));
        assert_ne!(good.0, bad.0);
        assert_eq!(good.1, bad.1);
    }

    #[test]
    fn away_from_its_rule_each_fault_gives_the_reference_rows() {
        // Concurrent puts and a merge, no ties, no repeated keys, no deletes, no empty keys.
        let kv_ops = vec![
            kv(1, 10, 0, &[], &[put("a", "1"), put("b", "2")]),
            kv(2, 11, 0, &[], &[put("a", "3")]),
            kv(3, 12, 0, &[1, 2], &[put("a", "4"), put("c", "5")]),
        ];
        let log_ops = vec![op(1, 10, 0, &[], b"x".to_vec()), op(2, 10, 0, &[], b"y".to_vec())];
        let v2_ops = vec![v2op(1, 10, &[set("k", "a", 0)]), v2op(2, 11, &[set("k", "b", 0), set("j", "c", 0)])];
        let quiet = [
            (LogicFault::KvBatchForward, &kv_ops),
            (LogicFault::KvStrictGreater, &kv_ops),
            (LogicFault::KvAuthorTieReversed, &kv_ops),
            (LogicFault::KvCounterIgnored, &kv_ops),
            (LogicFault::KvTombstoneAsEmptyValue, &kv_ops),
            (LogicFault::KvEmptyKeyRefused, &kv_ops),
            (LogicFault::KvPbNoDepthLimit, &kv_ops),
            (LogicFault::KvPbOneofSwitchMerges, &kv_ops),
            (LogicFault::KvPbOneofRepeatReplaces, &kv_ops),
            (LogicFault::KvPbEndGroupAnyNumber, &kv_ops),
            (LogicFault::KvPbNonMinimalVarintRefused, &kv_ops),
            (LogicFault::KvPbVarintOverflowWraps, &kv_ops),
            (LogicFault::LogDuplicateOverwrites, &log_ops),
            (LogicFault::LogEmptyPayloadStored, &log_ops),
            (LogicFault::V2EqualStampWins, &v2_ops),
            (LogicFault::V2AuthorIgnored, &v2_ops),
            (LogicFault::V2RefusedKeepsVersion, &v2_ops),
            (LogicFault::V2RemoveDeletesRow, &v2_ops),
        ];
        for (f, ops) in quiet {
            assert_eq!(run(reference(f.store_type()), ops), run(&Faulty(f), ops), "{f:?}");
        }
    }
}
