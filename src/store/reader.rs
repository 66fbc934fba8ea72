//! Read-only access to a store: identity, bookkeeping and rows, without ever writing.
//!
//! `StoreReader` opens `state.db` with redb's `ReadOnlyDatabase` (no header write, no lock for
//! writing), so reading a migration's source leaves every file byte-identical.

use std::path::{Path, PathBuf};

use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTableMetadata};

use super::chain::{pair, tail_mismatch, unpaired, LogChain, Pairing};
use super::error::{contain, RedbContext, StoreError};
use super::layout::{is_not_found, open_ro, open_ro_table, read_identity, LOG, LOG_FILE, LOG_META, META, STATE_FILE};
use super::{peek, Bookkeeping, PauseRecord, StoreIdentity};
use crate::hash::{LtHash, StateHash};
use crate::op::OpId;

/// A store opened for reading only, at one consistent snapshot.
///
/// A writer commits `log.db` before `state.db` (see [`super::Store`]), so at every instant the
/// committed log holds at least the entries the committed state reflects. A reader therefore takes
/// its `state.db` read transaction first and its `log.db` read transaction second, keeps both
/// for its whole life, and pairs the state snapshot (which reflects `log_len` entries) with the
/// first `log_len` entries of the log snapshot; any entries past those were committed by a writer
/// after the state snapshot was taken and are not part of what this reader sees. Every read —
/// the stored hash, the recomputed hash, rows, tips, the log — comes from these two transactions,
/// so a concurrent writer can never make a healthy store look corrupt.
pub struct StoreReader {
    dir: PathBuf,
    identity: StoreIdentity,
    // The transactions are declared before the databases so they drop first.
    state_txn: ReadTransaction,
    log_txn: ReadTransaction,
    _state: ReadOnlyDatabase,
    _log: ReadOnlyDatabase,
    /// The stored state hash (equal to the accumulator's, checked at open).
    hash: StateHash,
    log_len: u64,
    /// `state.db`'s log chain (`None` in a store written before it, §19).
    chain: Option<LogChain>,
    paused: Option<PauseRecord>,
    /// Entries a concurrent writer had logged past this snapshot's state when it was taken.
    ahead: u64,
}

/// How many times a reader takes a fresh pair of snapshots when it sees the log ahead of the state
/// and no writer, before it concludes that a crash left the store that way.
const LAG_RECHECKS: u32 = 3;

impl StoreReader {
    /// Opens `dir` read-only; both files must agree on the identity. Takes the two snapshots
    /// described on [`StoreReader`]; the stored hash is checked against the accumulator. A log
    /// shorter than the state reflects is refused ([`StoreError::StateAheadOfLog`]); a log
    /// longer than the state is normal while a writer runs, and is refused as a crash left it
    /// ([`StoreError::StateLagsLog`]) only when no writer holds the store.
    pub fn open(dir: &Path) -> Result<StoreReader, StoreError> {
        contain(dir, || StoreReader::open_uncontained(dir))
    }

    fn open_uncontained(dir: &Path) -> Result<StoreReader, StoreError> {
        let mut attempt = 0;
        loop {
            let reader = StoreReader::snapshot(dir)?;
            if reader.ahead == 0 || super::layout::writer_active(dir) {
                return Ok(reader);
            }
            // No writer now, but one may have committed its state and let go between the
            // snapshots and the probe: look again before calling it a crash.
            attempt += 1;
            if attempt >= LAG_RECHECKS {
                return Err(StoreError::StateLagsLog {
                    dir: dir.to_path_buf(),
                    state_len: reader.log_len,
                    log_len: reader.log_len + reader.ahead,
                });
            }
        }
    }

    fn snapshot(dir: &Path) -> Result<StoreReader, StoreError> {
        let (state_path, log_path) = (dir.join(STATE_FILE), dir.join(LOG_FILE));
        let state = open_ro(&state_path).map_err(|e| {
            if !is_not_found(&e) {
                return e;
            }
            match peek::check_dir(dir) {
                Err(missing) => missing,
                Ok(()) if !log_path.exists() => StoreError::NotAStore { path: dir.to_path_buf() },
                Ok(()) => e,
            }
        })?;
        let state_txn = state.begin_read().at(&state_path)?;
        let (identity, Bookkeeping { hash, log_len, paused, chain, .. }) = {
            let meta = open_ro_table(&state_txn, META, &state_path)?;
            let identity = read_identity(&meta, &state_path)?;
            let bookkeeping = super::bookkeeping(&meta, &state_path, &identity)?;
            (identity, bookkeeping)
        };
        // A log.db that cannot be read while state.db reflects entries of it is a broken pair.
        let unreadable = |e: StoreError| match e {
            StoreError::NotRedb { .. } if log_len > 0 => {
                unpaired(dir, format!("state.db reflects {log_len} log entries, but log.db cannot give them back: {e}"))
            }
            e => e,
        };
        let log = open_ro(&log_path).map_err(unreadable)?;
        let log_txn = log.begin_read().at(&log_path).map_err(unreadable)?;
        let (log_identity, log_chain, logged) = contain(&log_path, || {
            let log_meta = open_ro_table(&log_txn, LOG_META, &log_path)?;
            let log_identity = read_identity(&log_meta, &log_path)?;
            let logged = open_ro_table(&log_txn, LOG, &log_path)?.len().at(&log_path)?;
            Ok((log_identity, LogChain::read(&log_meta, &log_path)?, logged))
        })
        .map_err(unreadable)?;
        if identity != log_identity {
            return Err(StoreError::IdentityMismatch { dir: dir.to_path_buf(), state: identity, log: log_identity });
        }
        if logged < log_len {
            return Err(StoreError::StateAheadOfLog { dir: dir.to_path_buf(), state_len: log_len, log_len: logged });
        }
        if let Pairing::LogAhead { state, log } = pair(dir, chain, log_len, log_chain, logged)? {
            let tail = chain_over(&log_txn, dir, state, logged).map_err(unreadable)?;
            if tail != log {
                return Err(tail_mismatch(dir, state, log));
            }
        }
        Ok(StoreReader {
            dir: dir.to_path_buf(),
            identity,
            state_txn,
            log_txn,
            _state: state,
            _log: log,
            hash,
            log_len,
            chain,
            paused,
            ahead: logged - log_len,
        })
    }

    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// The stored state hash.
    pub fn state_hash(&self) -> StateHash {
        self.hash
    }

    /// The log entries this snapshot's state reflects.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Entries a concurrent writer had logged beyond [`StoreReader::log_len`] when the snapshot
    /// was taken (0 when no writer was at work); they are not part of this snapshot.
    pub fn logged_ahead(&self) -> u64 {
        self.ahead
    }

    pub fn paused(&self) -> Option<&PauseRecord> {
        self.paused.as_ref()
    }

    /// Recomputes the state hash from the tables and compares it with the stored one, then reads
    /// the `log_len` log entries this state reflects and chains them (§9.11): they must give back
    /// `state.db`'s log chain, so a `log.db` cut short, damaged or replaced is found here even
    /// where its own bookkeeping is intact.
    pub fn verify(&self) -> Result<StateHash, StoreError> {
        let computed = super::recompute(&self.state_txn, &self.dir.join(STATE_FILE), &self.identity)?;
        if computed != self.state_hash() {
            return Err(StoreError::Corrupt { dir: self.dir.clone(), stored: self.state_hash(), computed });
        }
        if let Some(expected) = self.chain {
            let walked = chain_over(&self.log_txn, &self.dir, LogChain::GENESIS, self.log_len).map_err(|e| match e {
                StoreError::NotRedb { .. } | StoreError::Redb { .. } | StoreError::Io { .. } => {
                    unpaired(&self.dir, format!("state.db reflects {} log entries, but log.db cannot give them back: {e}", self.log_len))
                }
                e => e,
            })?;
            if walked != expected {
                return Err(unpaired(
                    &self.dir,
                    format!(
                        "state.db reflects {} log entries chaining to {}, but log.db's first {} entries chain to {}",
                        self.log_len,
                        expected.short(),
                        self.log_len,
                        walked.short()
                    ),
                ));
            }
        }
        Ok(computed)
    }

    /// Calls `f` on every `data` row in key order.
    pub fn for_each_row(&self, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        super::for_each_row(&self.state_txn, &self.dir.join(STATE_FILE), f)
    }

    /// The logged ops this snapshot's state reflects, in arrival order.
    pub fn log_ops(&self) -> Result<Vec<crate::op::Op>, StoreError> {
        super::read_log(&self.log_txn, &self.dir.join(LOG_FILE), 0, self.log_len)
    }

    /// [`StoreReader::log_ops`] one at a time, holding none of them.
    pub fn log_stream(&self) -> Result<super::LogOps, StoreError> {
        super::LogOps::new(&self.log_txn, &self.dir.join(LOG_FILE), 0, self.log_len)
    }

    /// Every author's chain tip, ordered by author.
    pub fn tips(&self) -> Result<Vec<([u8; 32], OpId)>, StoreError> {
        super::read_tips(&self.state_txn, &self.dir.join(STATE_FILE))
    }

    /// Number of received ops still floating in this snapshot.
    pub fn floating_count(&self) -> Result<u64, StoreError> {
        let path = self.dir.join(STATE_FILE);
        open_ro_table(&self.state_txn, super::layout::FLOATING, &path)?.len().at(&path)
    }
}

/// Chains the raw `log` entries at positions `from.len .. to` of a `log.db` snapshot onto `from`,
/// each checked to decode (§2). A missing position means the files do not belong together; an
/// entry that does not decode is named by its position.
fn chain_over(txn: &ReadTransaction, dir: &Path, from: LogChain, to: u64) -> Result<LogChain, StoreError> {
    let path = dir.join(LOG_FILE);
    contain(&path, || {
        let mut chain = from;
        let table = open_ro_table(txn, LOG, &path)?;
        for row in table.range(from.len..to).at(&path)? {
            let (k, v) = row.at(&path)?;
            if k.value() != chain.len {
                break;
            }
            crate::op::Op::decode(v.value()).map_err(|e| StoreError::BadLogEntry {
                path: path.clone(),
                index: chain.len,
                reason: e.to_string(),
            })?;
            chain.push(v.value());
        }
        if chain.len != to {
            return Err(unpaired(dir, format!("state.db reflects {to} log entries, but log.db has no entry {}", chain.len)));
        }
        Ok(chain)
    })
}

/// What `audit` needs to know about a store, read without writing and without stopping at the
/// first inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFacts {
    pub state: StoreIdentity,
    pub log: StoreIdentity,
    /// The (type, schema) log.db records the store was created as, if present.
    pub created_as: Option<(String, u64)>,
    /// Whether the stored state hash is the accumulator's hash under the live type and schema
    /// (the hash binds the type it was computed for, so an in-place type swap breaks this).
    pub hash_matches_type: bool,
}

/// Reads the facts `audit` judges. Fails only when a file cannot be read at all.
pub fn audit_facts(dir: &Path) -> Result<AuditFacts, StoreError> {
    contain(dir, || audit_facts_uncontained(dir))
}

fn audit_facts_uncontained(dir: &Path) -> Result<AuditFacts, StoreError> {
    use super::layout::{read_bytes, read_hash, read_opt, K_ACC, K_CREATED_AS, K_HASH};
    peek::check_dir(dir)?;
    let (state_path, log_path) = (dir.join(STATE_FILE), dir.join(LOG_FILE));
    match (state_path.exists(), log_path.exists()) {
        (false, false) => return Err(StoreError::NotAStore { path: dir.to_path_buf() }),
        (false, true) => return Err(StoreError::FileMissing { path: state_path }),
        (true, false) => return Err(StoreError::FileMissing { path: log_path }),
        (true, true) => {}
    }
    let state_db = open_ro(&state_path)?;
    let txn = state_db.begin_read().at(&state_path)?;
    let meta = open_ro_table(&txn, META, &state_path)?;
    let state = read_identity(&meta, &state_path)?;
    let acc = LtHash::from_bytes(&read_bytes(&meta, K_ACC, &state_path)?);
    let stored = StateHash(read_hash(&meta, K_HASH, &state_path)?);
    let hash_matches_type = acc.is_some_and(|a| a.state_hash(&state.store_type, state.schema_version) == stored);
    let log_db = open_ro(&log_path)?;
    let txn = log_db.begin_read().at(&log_path)?;
    let log_meta = open_ro_table(&txn, LOG_META, &log_path)?;
    let log = read_identity(&log_meta, &log_path)?;
    let created_as = read_opt(&log_meta, K_CREATED_AS, &log_path)?.and_then(|raw| {
        let schema = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
        Some((String::from_utf8(raw[8..].to_vec()).ok()?, schema))
    });
    Ok(AuditFacts { state, log, created_as, hash_matches_type })
}
