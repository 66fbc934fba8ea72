//! Reads from one read transaction of a store file, shared by the writer and the readers:
//! `state.db`'s bookkeeping, the log (whole, or streamed by `LogOps`), the recomputed state
//! hash, the `data` rows and the tips.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::chain::LogChain;
use super::error::{self, RedbContext};
use super::layout::{self, *};
use super::{PauseRecord, StoreError, StoreIdentity};
use crate::hash::{LtHash, RowTable, StateHash};
use crate::op::{Op, OpId};

/// What `state.db`'s `meta` says besides the identity (§9.2), read and checked.
pub(crate) struct Bookkeeping {
    pub acc: LtHash,
    /// The stored state hash, equal to the accumulator's.
    pub hash: StateHash,
    pub log_len: u64,
    pub paused: Option<PauseRecord>,
    /// `None` in a store written before the log chain (§19).
    pub chain: Option<LogChain>,
}

/// Reads the accumulator, checks the stored hash against it, and reads `log_len`, `paused` and
/// the log chain.
pub(super) fn read_bookkeeping(db: &impl ReadableDatabase, path: &Path, id: &StoreIdentity) -> Result<Bookkeeping, StoreError> {
    let txn = db.begin_read().at(path)?;
    bookkeeping(&layout::open_ro_table(&txn, META, path)?, path, id)
}

/// [`read_bookkeeping`] on an already open `meta` table.
pub(super) fn bookkeeping(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
    id: &StoreIdentity,
) -> Result<Bookkeeping, StoreError> {
    let raw = read_bytes(meta, K_ACC, path)?;
    let acc = LtHash::from_bytes(&raw)
        .ok_or_else(|| bad(path, K_ACC, format!("expected {} bytes, found {}", crate::hash::ACC_BYTES, raw.len())))?;
    let hash = StateHash(read_hash(meta, K_HASH, path)?);
    let from_acc = acc.state_hash(&id.store_type, id.schema_version);
    if hash != from_acc {
        return Err(StoreError::Corrupt { dir: path.parent().unwrap_or(path).to_path_buf(), stored: hash, computed: from_acc });
    }
    let log_len = read_u64(meta, K_LOG_LEN, path)?;
    let paused = match read_opt(meta, K_PAUSED, path)? {
        Some(json) => Some(serde_json::from_slice(&json).map_err(|e| bad(path, K_PAUSED, e.to_string()))?),
        None => None,
    };
    Ok(Bookkeeping { acc, hash, log_len, paused, chain: LogChain::read(meta, path)? })
}

/// `log_meta`'s log chain (if the file has one) and the number of `log` entries, from one read
/// transaction.
pub(super) fn read_log_chain(db: &impl ReadableDatabase, path: &Path) -> Result<(Option<LogChain>, u64), StoreError> {
    let txn = db.begin_read().at(path)?;
    let chain = LogChain::read(&layout::open_ro_table(&txn, LOG_META, path)?, path)?;
    Ok((chain, layout::open_ro_table(&txn, LOG, path)?.len().at(path)?))
}

pub(crate) fn log_count(db: &impl ReadableDatabase, path: &Path) -> Result<u64, StoreError> {
    let txn = db.begin_read().at(path)?;
    layout::open_ro_table(&txn, LOG, path)?.len().at(path)
}

// `read_log`, `recompute`, `for_each_row` and `read_tips` run inside `error::contain`: redb panics
// on some damaged pages, and every reader of a store file goes through these. Each reads one read
// transaction the caller took, so a reader can make every read of a file from one snapshot.

/// The log entries at positions `from..to` (to the end when `to` is past it), decoded.
pub(crate) fn read_log(txn: &redb::ReadTransaction, path: &Path, from: u64, to: u64) -> Result<Vec<Op>, StoreError> {
    LogOps::new(txn, path, from, to)?.collect()
}

/// The logged ops at positions `from..to` of a `log.db` snapshot, read one at a time: each is
/// decoded, and a missing position or an entry that does not decode ends the iteration with an
/// error naming the position.
pub struct LogOps {
    range: redb::Range<'static, u64, &'static [u8]>,
    path: PathBuf,
    next: u64,
    failed: bool,
}

impl LogOps {
    pub(crate) fn new(txn: &redb::ReadTransaction, path: &Path, from: u64, to: u64) -> Result<LogOps, StoreError> {
        error::contain(path, || {
            let log = layout::open_ro_table(txn, LOG, path)?;
            let range = log.range(from..to).at(path)?;
            Ok(LogOps { range, path: path.to_path_buf(), next: from, failed: false })
        })
    }
}

impl Iterator for LogOps {
    type Item = Result<Op, StoreError>;

    fn next(&mut self) -> Option<Result<Op, StoreError>> {
        if self.failed {
            return None;
        }
        let (path, expected) = (self.path.clone(), self.next);
        let range = &mut self.range;
        let item = error::contain(&path, || {
            let Some(row) = range.next() else { return Ok(None) };
            let (k, v) = row.at(&path)?;
            if k.value() != expected {
                return Err(StoreError::BadLogEntry {
                    path: path.clone(),
                    index: expected,
                    reason: format!("entry missing (next present is {})", k.value()),
                });
            }
            Op::decode(v.value()).map(Some).map_err(|e| StoreError::BadLogEntry {
                path: path.clone(),
                index: expected,
                reason: e.to_string(),
            })
        });
        match item {
            Ok(Some(op)) => {
                self.next += 1;
                Some(Ok(op))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The state hash recomputed from `data` and the tips of a `state.db`.
pub(super) fn recompute(txn: &redb::ReadTransaction, path: &Path, id: &StoreIdentity) -> Result<StateHash, StoreError> {
    error::contain(path, || {
        // Below a few thousand rows, starting threads costs more than it saves.
        let rows = layout::open_ro_table(txn, DATA, path)?.len().at(path)?;
        let threads = if rows < 4096 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let mut acc = LtHash::sum_rows(RowTable::Data, threads, |emit| for_each_row(txn, path, emit))?;
        for (author, tip) in read_tips(txn, path)? {
            acc.insert(RowTable::Tip, &author, &tip);
        }
        Ok(acc.state_hash(&id.store_type, id.schema_version))
    })
}

pub(super) fn for_each_row(txn: &redb::ReadTransaction, path: &Path, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
    error::contain(path, || {
        let table = layout::open_ro_table(txn, DATA, path)?;
        for row in table.iter().at(path)? {
            let (k, v) = row.at(path)?;
            f(k.value(), v.value());
        }
        Ok(())
    })
}

pub(super) fn read_tips(txn: &redb::ReadTransaction, path: &Path) -> Result<Vec<([u8; 32], OpId)>, StoreError> {
    error::contain(path, || {
        let meta = layout::open_ro_table(txn, META, path)?;
        let mut out = Vec::new();
        for row in meta.range(TIP_PREFIX.."tip0").at(path)? {
            let (k, v) = row.at(path)?;
            out.push(parse_tip(k.value(), v.value(), path)?);
        }
        Ok(out)
    })
}

fn parse_tip(key: &str, value: &[u8], path: &Path) -> Result<([u8; 32], OpId), StoreError> {
    let author = hex::decode(&key[TIP_PREFIX.len()..]).ok().and_then(|a| <[u8; 32]>::try_from(a).ok());
    let author = author.ok_or_else(|| bad(path, key, "tip key must be `tip/` + 64 hex digits".into()))?;
    let tip = value.try_into().map_err(|_| bad(path, key, format!("expected 32 bytes, found {}", value.len())))?;
    Ok((author, tip))
}
