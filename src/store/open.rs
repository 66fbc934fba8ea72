//! Creating and opening a store read-write: the new directory built aside and renamed into
//! place, the identity and logic checks, the pairing of the two files and the crash catch-up,
//! and the writes that set up fresh `state.db` and `log.db` files.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use uuid::Uuid;

use super::chain::{self, LogChain, Pairing};
use super::error::{self, RedbContext};
use super::layout::{self, *};
use super::peek;
use super::snapshot::{read_bookkeeping, read_log_chain, Bookkeeping, LogOps};
use super::{check_new_dir, Logic, Store, StoreError, StoreIdentity};
use crate::hash::LtHash;

impl Store {
    /// Creates a new, empty store at `dir` (which must not exist). The directory is built under a
    /// temporary name beside it and renamed into place, so a crash leaves no half-made store.
    pub fn create(dir: &Path, store_id: Uuid, logic: Logic) -> Result<Store, StoreError> {
        check_new_dir(dir)?;
        let identity = StoreIdentity { store_id, store_type: logic.store_type().to_string(), schema_version: logic.schema_version() };
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".lattice-creating-")
            .tempdir_in(parent)
            .map_err(|source| StoreError::Io { path: parent.to_path_buf(), source })?;
        init_log(&tmp.path().join(LOG_FILE), &identity)?;
        init_state(&tmp.path().join(STATE_FILE), &identity)?;
        // `tmp` removes the half-made directory on every early return; it is kept only once it
        // has its final name. A directory that appeared at `dir` meanwhile (another create) makes
        // the rename fail (ENOTEMPTY), and that is reported as the store already existing.
        if let Err(source) = std::fs::rename(tmp.path(), dir) {
            return Err(if dir.symlink_metadata().is_ok() {
                StoreError::AlreadyExists { path: dir.to_path_buf() }
            } else {
                StoreError::Io { path: dir.to_path_buf(), source }
            });
        }
        let _ = tmp.keep();
        Store::open(dir, logic)
    }

    /// Opens the store at `dir` read-write with `logic`, which must match the stored type and
    /// schema. Catches `state.db` up with `log.db` if a crash left it behind.
    pub fn open(dir: &Path, logic: Logic) -> Result<Store, StoreError> {
        // Refuse a mismatched store read-only first: a read-write redb open rewrites the header.
        // Then that the two files belong together (§9.11), still read-only.
        match peek::peek_both(dir)
            .and_then(|(identity, _)| check_logic(dir, &identity, logic.as_ref()))
            .and_then(|()| peek::check_pair(dir))
        {
            Ok(()) | Err(StoreError::NotClosedCleanly { .. }) => {}
            Err(e) => return Err(e),
        }
        let lock = lock_writer(dir)?;
        Store::open_files(dir, dir.join(STATE_FILE), logic, lock)
    }

    /// The read-write open of §9.6 steps 2–6 with the state in `state_path` (`state.db`, or the
    /// file a rebuild is filling) and the log in `dir`'s `log.db`.
    pub(super) fn open_files(dir: &Path, state_path: PathBuf, logic: Logic, lock: DirLock) -> Result<Store, StoreError> {
        error::contain(dir, || Store::open_files_uncontained(dir, state_path, logic, lock))
    }

    fn open_files_uncontained(dir: &Path, state_path: PathBuf, logic: Logic, lock: DirLock) -> Result<Store, StoreError> {
        let log_path = dir.join(LOG_FILE);
        let state = open_rw(&state_path)?;
        let log = open_rw(&log_path)?;
        let identity = read_db_identity(&state, META, &state_path)?;
        let log_identity = read_db_identity(&log, LOG_META, &log_path)?;
        if identity != log_identity {
            return Err(StoreError::IdentityMismatch { dir: dir.to_path_buf(), state: identity, log: log_identity });
        }
        check_logic(dir, &identity, logic.as_ref())?;
        let Bookkeeping { acc, log_len, paused, chain: state_chain, .. } = read_bookkeeping(&state, &state_path, &identity)?;
        let (log_chain, logged) = read_log_chain(&log, &log_path)?;
        let pairing = chain::pair(dir, state_chain, log_len, log_chain, logged)?;
        let chain = LogChain { len: log_len, digest: [0; 32] };
        let mut store = Store { dir: dir.to_path_buf(), state_path, identity, state, log, logic, acc, log_len, chain, paused, lock };
        store.chain = match state_chain {
            Some(c) => c,
            None => store.chain_from_log()?,
        };
        // A rebuild's new state file reflects nothing yet: nothing in it can be mixed up, and the
        // replay names a bad entry best, so its whole-log tail is checked after the replay
        // (`rebuild` removes the file on any error) instead of before.
        let rebuilding = store.state_path != dir.join(STATE_FILE);
        store.catch_up(if rebuilding { Pairing::Paired } else { pairing })?;
        if let (true, Some(log)) = (rebuilding, log_chain) {
            if store.chain != log {
                return Err(chain::unpaired(
                    dir,
                    format!(
                        "log.db's {} entries chain to {}, but its own log_chain says {}: the log was altered after it was written",
                        log.len,
                        store.chain.short(),
                        log.short()
                    ),
                ));
            }
        }
        if state_chain.is_none() || log_chain.is_none() {
            store.write_chains()?;
        }
        Ok(store)
    }

    /// The identity recorded in `log.db` alone (opened read-write, so a crashed file is repaired).
    pub fn log_identity(dir: &Path) -> Result<StoreIdentity, StoreError> {
        peek::check_dir(dir)?;
        log_facts(dir, None).map(|(identity, _)| identity)
    }

    /// The log chain over the first `log_len` entries of `log.db`, computed from the entries: the
    /// slow path for a `state.db` written before the chain existed (§19).
    fn chain_from_log(&self) -> Result<LogChain, StoreError> {
        let log_path = self.log_path();
        let txn = self.log.begin_read().at(&log_path)?;
        let mut chain = LogChain::GENESIS;
        for op in LogOps::new(&txn, &log_path, 0, self.log_len)? {
            chain.push(&op?.encode());
        }
        Ok(chain)
    }

    /// Writes the log chain into both files (`log.db` first), for a store written before it
    /// existed; called after the catch-up, when both files reflect the same entries.
    fn write_chains(&mut self) -> Result<(), StoreError> {
        let (state_path, log_path) = (self.state_path(), self.log_path());
        let bytes = self.chain.to_bytes();
        let txn = self.log.begin_write().at(&log_path)?;
        txn.open_table(LOG_META).at(&log_path)?.insert(K_LOG_CHAIN, bytes.as_slice()).at(&log_path)?;
        txn.commit().at(&log_path)?;
        let txn = self.state.begin_write().at(&state_path)?;
        txn.open_table(META).at(&state_path)?.insert(K_LOG_CHAIN, bytes.as_slice()).at(&state_path)?;
        txn.commit().at(&state_path)
    }
}

/// `log.db`'s identity and entry count, read-only; a file a crash left unclean is opened
/// read-write once so redb repairs it, under the writer lock (`held`, or taken here).
pub(super) fn log_facts(dir: &Path, held: Option<&DirLock>) -> Result<(StoreIdentity, u64), StoreError> {
    let log_path = dir.join(LOG_FILE);
    match error::contain(&log_path, || log_identity_and_count(&open_ro(&log_path)?, &log_path)) {
        // Said in words, not as the OS error of a missing file.
        Err(e) if layout::is_not_found(&e) => Err(if dir.join(STATE_FILE).exists() {
            StoreError::FileMissing { path: log_path }
        } else {
            StoreError::NotAStore { path: dir.to_path_buf() }
        }),
        Err(StoreError::NotClosedCleanly { .. }) => {
            let _lock = if held.is_none() { Some(lock_writer(dir)?) } else { None };
            error::contain(&log_path, || log_identity_and_count(&open_rw(&log_path)?, &log_path))
        }
        other => other,
    }
}

/// `log_meta`'s identity and the number of `log` entries, from one read transaction.
fn log_identity_and_count(db: &impl ReadableDatabase, path: &Path) -> Result<(StoreIdentity, u64), StoreError> {
    let txn = db.begin_read().at(path)?;
    let identity = read_identity(&layout::open_ro_table(&txn, LOG_META, path)?, path)?;
    Ok((identity, layout::open_ro_table(&txn, LOG, path)?.len().at(path)?))
}

pub(super) fn check_logic(dir: &Path, id: &StoreIdentity, logic: &dyn crate::kernel::HostLogic) -> Result<(), StoreError> {
    if id.store_type != logic.store_type() || id.schema_version != logic.schema_version() {
        return Err(StoreError::WrongType {
            dir: dir.to_path_buf(),
            found: id.store_type.clone(),
            found_schema: id.schema_version,
            expected: logic.store_type().to_string(),
            expected_schema: logic.schema_version(),
        });
    }
    Ok(())
}

fn init_log(path: &Path, identity: &StoreIdentity) -> Result<(), StoreError> {
    let db = layout::create(path)?;
    let txn = db.begin_write().at(path)?;
    {
        let mut meta = txn.open_table(LOG_META).at(path)?;
        write_identity(&mut meta, identity, path)?;
        let mut created_as = identity.schema_version.to_le_bytes().to_vec();
        created_as.extend_from_slice(identity.store_type.as_bytes());
        meta.insert(K_CREATED_AS, created_as.as_slice()).at(path)?;
        meta.insert(K_LOG_CHAIN, LogChain::GENESIS.to_bytes().as_slice()).at(path)?;
    }
    txn.open_table(LOG).at(path)?;
    txn.commit().at(path)
}

pub(super) fn init_state(path: &Path, identity: &StoreIdentity) -> Result<(), StoreError> {
    let db = layout::create(path)?;
    let txn = db.begin_write().at(path)?;
    {
        let mut meta = txn.open_table(META).at(path)?;
        write_identity(&mut meta, identity, path)?;
        let acc = LtHash::default();
        meta.insert(K_ACC, acc.to_bytes().as_slice()).at(path)?;
        meta.insert(K_HASH, acc.state_hash(&identity.store_type, identity.schema_version).0.as_slice()).at(path)?;
        meta.insert(K_LOG_LEN, 0u64.to_le_bytes().as_slice()).at(path)?;
        meta.insert(K_LOG_CHAIN, LogChain::GENESIS.to_bytes().as_slice()).at(path)?;
        txn.open_table(DATA).at(path)?;
        txn.open_table(SYSTEM).at(path)?;
        txn.open_table(OPS).at(path)?;
        txn.open_table(FLOATING).at(path)?;
        txn.open_table(WITNESS_TIPS).at(path)?;
    }
    txn.commit().at(path)
}

fn read_db_identity(
    db: &Database,
    table: redb::TableDefinition<&'static str, &'static [u8]>,
    path: &Path,
) -> Result<StoreIdentity, StoreError> {
    let txn = db.begin_read().at(path)?;
    read_identity(&layout::open_ro_table(&txn, table, path)?, path)
}
