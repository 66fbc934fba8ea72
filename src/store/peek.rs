//! Peek: read a store's identity without opening its logic and without writing anything.
//!
//! `peek_info` opens `state.db` read-only (redb's `ReadOnlyDatabase`: no lock for writing, no
//! header write, no fsync) and reads three meta keys; when `state.db` is missing it reads
//! `log.db`'s `log_meta` instead. Because every process opens our files in redb's `SingleWriter`
//! mode, a peek works while another process holds the store open for writing.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::chain::LogChain;
use super::error::{contain, RedbContext, StoreError};
use super::layout::{is_not_found, open_ro, open_ro_table, read_identity, LOG_FILE, LOG_META, META, STATE_FILE};
use super::StoreIdentity;

/// Which file a peek read its answer from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeekSource {
    StateDb,
    LogDb,
}

/// Reads the identity of the store in `dir` from `state.db`, or from `log.db` if `state.db` is
/// missing. Never writes.
pub fn peek_info(dir: &Path) -> Result<StoreIdentity, StoreError> {
    peek_with_source(dir).map(|(id, _)| id)
}

/// As [`peek_info`], also saying which file answered.
pub fn peek_with_source(dir: &Path) -> Result<(StoreIdentity, PeekSource), StoreError> {
    // Straight to the file; the directory and the fallback to log.db are looked at only when
    // state.db is not there.
    match read_meta_ro(&dir.join(STATE_FILE), META) {
        Err(e) if is_not_found(&e) => check_dir(dir)?,
        other => return other.map(|id| (id, PeekSource::StateDb)),
    }
    let log = dir.join(LOG_FILE);
    if log.exists() {
        return Ok((read_meta_ro(&log, LOG_META)?, PeekSource::LogDb));
    }
    Err(StoreError::NotAStore { path: dir.to_path_buf() })
}

/// The identity for a read-write open. Like [`peek_info`], except that a file that was not closed
/// cleanly is opened read-write once — letting redb repair it — and its identity read then. Only
/// for callers about to open the store for writing anyway; a plain peek never writes.
pub fn peek_for_open(dir: &Path) -> Result<StoreIdentity, StoreError> {
    match peek_info(dir) {
        Err(StoreError::NotClosedCleanly { path }) => {
            let table = if path.ends_with(STATE_FILE) { META } else { LOG_META };
            let _lock = super::layout::lock_writer(dir)?;
            contain(&path, || {
                let db = super::layout::open_rw(&path)?;
                let txn = db.begin_read().at(&path)?;
                read_identity(&open_ro_table(&txn, table, &path)?, &path)
            })
        }
        other => other,
    }
}

/// Peeks both files and requires them to agree. Still read-only.
pub fn peek_both(dir: &Path) -> Result<(StoreIdentity, StoreIdentity), StoreError> {
    check_dir(dir)?;
    let state = read_meta_ro(&dir.join(STATE_FILE), META)?;
    let log = read_meta_ro(&dir.join(LOG_FILE), LOG_META)?;
    if state != log {
        return Err(StoreError::IdentityMismatch { dir: dir.to_path_buf(), state, log });
    }
    Ok((state, log))
}

/// The constant-time pairing check of §9.11 on the two files, read-only: their log chains
/// against each other and their lengths. A log ahead of the state (a writer at work, or a crash
/// the read-write open catches up from) passes here; the catch-up checks that tail.
pub(crate) fn check_pair(dir: &Path) -> Result<(), StoreError> {
    let state_path = dir.join(STATE_FILE);
    let (state, log_len) = contain(&state_path, || {
        let db = open_ro(&state_path)?;
        let txn = db.begin_read().at(&state_path)?;
        let meta = open_ro_table(&txn, META, &state_path)?;
        Ok((LogChain::read(&meta, &state_path)?, super::layout::read_u64(&meta, super::layout::K_LOG_LEN, &state_path)?))
    })?;
    let log_path = dir.join(LOG_FILE);
    let (log, logged) = contain(&log_path, || {
        let db = open_ro(&log_path)?;
        let txn = db.begin_read().at(&log_path)?;
        let chain = LogChain::read(&open_ro_table(&txn, LOG_META, &log_path)?, &log_path)?;
        Ok((chain, open_ro_table(&txn, super::layout::LOG, &log_path)?.len().at(&log_path)?))
    })?;
    super::chain::pair(dir, state, log_len, log, logged).map(drop)
}

pub(crate) fn check_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::NotADirectory { path: dir.to_path_buf() }),
        Err(_) => Err(StoreError::DirMissing { path: dir.to_path_buf() }),
    }
}

fn read_meta_ro(path: &Path, table: redb::TableDefinition<&'static str, &'static [u8]>) -> Result<StoreIdentity, StoreError> {
    contain(path, || {
        let db = open_ro(path)?;
        let txn = db.begin_read().at(path)?;
        let t = open_ro_table(&txn, table, path)?;
        read_identity(&t, path)
    })
}
