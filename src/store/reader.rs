//! Read-only access to a store: identity, bookkeeping and rows, without ever writing.
//!
//! `StoreReader` opens `state.db` with redb's `ReadOnlyDatabase` (no header write, no lock for
//! writing), so reading a migration's source leaves every file byte-identical.

use std::path::{Path, PathBuf};

use redb::{ReadOnlyDatabase, ReadableDatabase, ReadableTableMetadata};

use super::error::{contain, RedbContext, StoreError};
use super::layout::{is_not_found, open_ro, open_ro_table, read_identity, LOG_FILE, LOG_META, META, STATE_FILE};
use super::{peek, PauseRecord, StoreIdentity};
use crate::hash::{LtHash, StateHash};
use crate::op::OpId;

/// A store opened for reading only.
pub struct StoreReader {
    dir: PathBuf,
    identity: StoreIdentity,
    state: ReadOnlyDatabase,
    /// The stored state hash (equal to the accumulator's, checked at open).
    hash: StateHash,
    log_len: u64,
    paused: Option<PauseRecord>,
}

impl StoreReader {
    /// Opens `dir` read-only; both files must agree on the identity. Each file is opened once and
    /// read in one transaction: `state.db` for identity and bookkeeping (the stored hash is
    /// checked against the accumulator), `log.db` for identity and entry count. A state that does
    /// not reflect exactly the logged ops is refused — a reader cannot replay or judge the gap.
    pub fn open(dir: &Path) -> Result<StoreReader, StoreError> {
        contain(dir, || StoreReader::open_uncontained(dir))
    }

    fn open_uncontained(dir: &Path) -> Result<StoreReader, StoreError> {
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
        let (identity, (_, hash, log_len, paused)) = {
            let txn = state.begin_read().at(&state_path)?;
            let meta = open_ro_table(&txn, META, &state_path)?;
            let identity = read_identity(&meta, &state_path)?;
            let bookkeeping = super::bookkeeping(&meta, &state_path, &identity)?;
            (identity, bookkeeping)
        };
        let log_db = open_ro(&log_path)?;
        let txn = log_db.begin_read().at(&log_path)?;
        let log_identity = read_identity(&open_ro_table(&txn, LOG_META, &log_path)?, &log_path)?;
        if identity != log_identity {
            return Err(StoreError::IdentityMismatch { dir: dir.to_path_buf(), state: identity, log: log_identity });
        }
        let logged = open_ro_table(&txn, super::layout::LOG, &log_path)?.len().at(&log_path)?;
        if logged < log_len {
            return Err(StoreError::StateAheadOfLog { dir: dir.to_path_buf(), state_len: log_len, log_len: logged });
        }
        if logged > log_len {
            return Err(StoreError::StateLagsLog { dir: dir.to_path_buf(), state_len: log_len, log_len: logged });
        }
        Ok(StoreReader { dir: dir.to_path_buf(), identity, state, hash, log_len, paused })
    }

    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// The stored state hash.
    pub fn state_hash(&self) -> StateHash {
        self.hash
    }

    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    pub fn paused(&self) -> Option<&PauseRecord> {
        self.paused.as_ref()
    }

    /// Recomputes the state hash from the tables and compares it with the stored one.
    pub fn verify(&self) -> Result<StateHash, StoreError> {
        let computed = super::recompute(&self.state, &self.dir.join(STATE_FILE), &self.identity)?;
        if computed != self.state_hash() {
            return Err(StoreError::Corrupt { dir: self.dir.clone(), stored: self.state_hash(), computed });
        }
        Ok(computed)
    }

    /// Calls `f` on every `data` row in key order.
    pub fn for_each_row(&self, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        super::for_each_row(&self.state, &self.dir.join(STATE_FILE), f)
    }

    /// The logged ops in apply order, read from `log.db` read-only.
    pub fn log_ops(&self) -> Result<Vec<crate::op::Op>, StoreError> {
        let path = self.dir.join(LOG_FILE);
        super::read_log(&open_ro(&path)?, &path, 0)
    }

    /// Every author's chain tip, ordered by author.
    pub fn tips(&self) -> Result<Vec<([u8; 32], OpId)>, StoreError> {
        super::read_tips(&self.state, &self.dir.join(STATE_FILE))
    }
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
