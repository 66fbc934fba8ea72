//! The redb tables of a write transaction behind the interfaces delivery and the kernel use:
//! `data` as the logic's `Table`, the tips as `ChainState`, the received ops as `Intentions`.

use lattice_logic::{HostError, Table};
use redb::ReadableTable;

use super::layout::*;
use crate::delivery::{Intentions, Status};
use crate::kernel::ChainState;
use crate::op::{Op, OpId};

/// The `data` table inside a write transaction, seen through the logic's table interface.
pub(super) struct RedbData<'t> {
    pub(super) table: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) err: Option<redb::Error>,
}

/// Keeps a storage error for the host and hands the logic the opaque [`HostError`].
fn stash<T>(slot: &mut Option<redb::Error>, r: Result<T, redb::StorageError>) -> Result<T, HostError> {
    r.map_err(|e| {
        *slot = Some(e.into());
        HostError
    })
}

impl Table for RedbData<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let r = self.table.get(key).map(|v| v.map(|g| g.value().to_vec()));
        stash(&mut self.err, r)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        let r = self.table.insert(key, value).map(drop);
        stash(&mut self.err, r)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        let r = self.table.remove(key).map(drop);
        stash(&mut self.err, r)
    }
}

/// Author tips as `tip/<hex>` keys of the meta table inside a write transaction.
pub(super) struct RedbChain<'t> {
    pub(super) meta: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) err: Option<redb::Error>,
}

impl ChainState for RedbChain<'_> {
    fn tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        let key = tip_key(author);
        let raw = self.meta.get(key.as_str()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(v) => v.as_slice().try_into().map(Some).map_err(|_| {
                self.err = Some(redb::Error::Corrupted(format!("meta key `{key}` holds {} bytes, expected 32", v.len())));
                HostError
            }),
        }
    }

    fn set_tip(&mut self, author: &[u8; 32], id: &OpId) -> Result<(), HostError> {
        let r = self.meta.insert(tip_key(author).as_str(), id.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}

/// Takes the storage error a table adapter stashed (there is one whenever it returned
/// [`HostError`]).
pub(super) fn stashed(slot: &mut Option<redb::Error>) -> redb::Error {
    slot.take().unwrap_or_else(|| redb::Error::Corrupted("storage failed without a recorded cause".into()))
}

/// The received ops in `state.db` (tables `ops`, `floating`, `witness_tips`) inside a write
/// transaction.
pub(super) struct RedbIntentions<'t> {
    pub(super) ops: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) floating: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) tips: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) err: Option<redb::Error>,
}

impl RedbIntentions<'_> {
    fn corrupt<T>(&mut self, what: String) -> Result<T, HostError> {
        self.err = Some(redb::Error::Corrupted(what));
        Err(HostError)
    }

    fn record(&mut self, id: &OpId, status: Status, op: &Op) -> Result<(), HostError> {
        let row = encode_op_row(status, op.hlc, &op.author);
        let r = self.ops.insert(id.as_slice(), row.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}

/// A row copied out of a table: key and value.
type RawRow = (Vec<u8>, Vec<u8>);

/// The `floating` rows in `range`, copied out.
fn floating_rows<'a>(
    table: &redb::Table<'_, &'static [u8], &'static [u8]>,
    range: impl std::ops::RangeBounds<&'a [u8]> + 'a,
) -> Result<Vec<RawRow>, redb::StorageError> {
    let mut out = Vec::new();
    for row in table.range::<&[u8]>(range)? {
        let (k, v) = row?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// An `ops` row: status (0 floating, 1 witnessed) ‖ wall_ms u64 LE ‖ counter u32 LE ‖ author.
fn encode_op_row(status: Status, hlc: crate::op::Hlc, author: &[u8; 32]) -> [u8; 45] {
    let mut row = [0u8; 45];
    row[0] = u8::from(status == Status::Witnessed);
    row[1..9].copy_from_slice(&hlc.wall_ms.to_le_bytes());
    row[9..13].copy_from_slice(&hlc.counter.to_le_bytes());
    row[13..].copy_from_slice(author);
    row
}

fn decode_op_row(row: &[u8]) -> Option<(Status, crate::op::Hlc, [u8; 32])> {
    let row: &[u8; 45] = row.try_into().ok()?;
    let status = match row[0] {
        0 => Status::Floating,
        1 => Status::Witnessed,
        _ => return None,
    };
    let hlc = crate::op::Hlc {
        wall_ms: u64::from_le_bytes(row[1..9].try_into().ok()?),
        counter: u32::from_le_bytes(row[9..13].try_into().ok()?),
    };
    Some((status, hlc, row[13..].try_into().ok()?))
}

impl Intentions for RedbIntentions<'_> {
    fn get(&mut self, id: &OpId) -> Result<Option<(Status, crate::op::Hlc, [u8; 32])>, HostError> {
        let raw = self.ops.get(id.as_slice()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(row) => match decode_op_row(&row) {
                Some(r) => Ok(Some(r)),
                None => self.corrupt(format!("`ops` row of {} is not a 45-byte op record", hex::encode(id))),
            },
        }
    }

    fn witness_tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        let raw = self.tips.get(author.as_slice()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(v) => match <OpId>::try_from(v.as_slice()) {
                Ok(id) => Ok(Some(id)),
                Err(_) => self.corrupt(format!("`witness_tips` row of {} is not 32 bytes", hex::encode(author))),
            },
        }
    }

    fn any_floating(&mut self) -> Result<bool, HostError> {
        let r = self.floating.first().map(|f| f.is_some());
        stash(&mut self.err, r)
    }

    fn floating_prevs(&mut self) -> Result<Vec<OpId>, HostError> {
        let rows = floating_rows(&self.floating, ..);
        let mut prevs: Vec<OpId> = Vec::new();
        for (k, _) in stash(&mut self.err, rows)? {
            match <OpId>::try_from(&k[..32.min(k.len())]) {
                Ok(p) if prevs.last() != Some(&p) => prevs.push(p),
                Ok(_) => {}
                Err(_) => return self.corrupt("a `floating` key is shorter than 64 bytes".into()),
            }
        }
        Ok(prevs)
    }

    fn floating_by_prev(&mut self, prev: &OpId) -> Result<Vec<(OpId, u64, Op)>, HostError> {
        let (lo, hi) = ([prev.as_slice(), &[0u8; 32]].concat(), [prev.as_slice(), &[0xffu8; 32]].concat());
        let rows = floating_rows(&self.floating, lo.as_slice()..=hi.as_slice());
        let mut out = Vec::new();
        for (k, v) in stash(&mut self.err, rows)? {
            let parsed = (k.len() == 64 && v.len() >= 8)
                .then(|| Some((<OpId>::try_from(&k[32..]).ok()?, u64::from_le_bytes(v[..8].try_into().ok()?), Op::decode(&v[8..]).ok()?)))
                .flatten();
            match parsed {
                Some(entry) => out.push(entry),
                None => return self.corrupt(format!("`floating` row {} does not decode", hex::encode(&k))),
            }
        }
        Ok(out)
    }

    fn add_floating(&mut self, id: &OpId, arrival: u64, op: &Op) -> Result<(), HostError> {
        self.record(id, Status::Floating, op)?;
        let mut value = arrival.to_le_bytes().to_vec();
        value.extend_from_slice(&op.encode());
        let r = self.floating.insert([op.prev.as_slice(), id.as_slice()].concat().as_slice(), value.as_slice()).map(drop);
        stash(&mut self.err, r)
    }

    fn witness(&mut self, id: &OpId, op: &Op) -> Result<(), HostError> {
        let r = self.floating.remove([op.prev.as_slice(), id.as_slice()].concat().as_slice()).map(drop);
        stash(&mut self.err, r)?;
        self.record(id, Status::Witnessed, op)?;
        let r = self.tips.insert(op.author.as_slice(), id.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}
