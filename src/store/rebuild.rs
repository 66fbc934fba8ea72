//! `rebuild`: a new `state.db` filled from `log.db` alone beside the old one and renamed over
//! it, with its refusals (another store's state, a state ahead of the log, a symbolic link) and
//! the replaced file kept as `state.db.before-rebuild`.

use std::path::{Path, PathBuf};

use redb::ReadableDatabase;

use super::error::{self, RedbContext};
use super::layout::{self, *};
use super::open::{check_logic, init_state, log_facts};
use super::peek;
use super::{Logic, Store, StoreError, StoreIdentity, StoreReader};

/// What a rebuild replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildNote {
    /// Where the `state.db` that was replaced is kept (`None` when there was none).
    pub kept: Option<PathBuf>,
    /// A `state.db.rebuild` an interrupted rebuild left, removed before this one began.
    pub removed_stale: Option<PathBuf>,
}

impl Store {
    /// Recreates `state.db` from `log.db` alone, replaying every logged op with `logic`. The new
    /// file is built and filled beside the old one and renamed over it only once the whole log
    /// has replayed into it; if a log entry does not decode, the new file is removed and
    /// `state.db` is left as it was. A stall is derived again from the log, like everything else.
    ///
    /// A `state.db` that belongs to another store, or that reflects more ops than `log.db` holds
    /// (ops that exist nowhere else), is refused unless `force`. Whatever `state.db` is replaced
    /// is kept beside it (a hard link, or a copy, made before the rename) as
    /// `state.db.before-rebuild` (or `.before-rebuild.N` when earlier ones are there).
    pub fn rebuild(dir: &Path, logic: Logic, force: bool) -> Result<(Store, RebuildNote), StoreError> {
        peek::check_dir(dir)?;
        let lock = lock_writer(dir)?;
        let (identity, logged) = log_facts(dir, Some(&lock))?;
        check_logic(dir, &identity, logic.as_ref())?;
        let state_path = dir.join(STATE_FILE);
        refuse_symlink(&state_path)?;
        if !force && state_path.exists() {
            refuse_lossy_rebuild(dir, &identity, logged)?;
        }
        let tmp_path = dir.join(REBUILD_FILE);
        // Under the writer lock, a `state.db.rebuild` is what an interrupted rebuild left.
        let removed_stale = match std::fs::remove_file(&tmp_path) {
            Ok(()) => Some(tmp_path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StoreError::Io { path: tmp_path, source }),
        };
        init_state(&tmp_path, &identity)?;
        let built = Store::open_files(dir, tmp_path.clone(), logic.clone(), lock)
            .and_then(|built| Ok((built.lock, if state_path.exists() { Some(keep_aside(&state_path)?) } else { None })));
        let (lock, kept) = match built {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        if let Err(source) = std::fs::rename(&tmp_path, &state_path) {
            // `state.db` is as it was (an immutable file, say): take back what this run made.
            let _ = std::fs::remove_file(&tmp_path);
            if let Some(kept) = &kept {
                let _ = std::fs::remove_file(kept);
            }
            return Err(StoreError::Io { path: state_path, source });
        }
        Ok((Store::open_files(dir, state_path, logic, lock)?, RebuildNote { kept, removed_stale }))
    }
}

/// The rebuild guard: refuses to replace a `state.db` of another store, or one that reflects ops
/// `log.db` no longer holds. A `state.db` that cannot be read at all is what rebuild is for.
fn refuse_lossy_rebuild(dir: &Path, log_identity: &StoreIdentity, logged: u64) -> Result<(), StoreError> {
    let state_path = dir.join(STATE_FILE);
    let read = error::contain(&state_path, || {
        let db = open_ro(&state_path)?;
        let txn = db.begin_read().at(&state_path)?;
        let meta = layout::open_ro_table(&txn, META, &state_path)?;
        Ok((read_identity(&meta, &state_path)?, read_u64(&meta, K_LOG_LEN, &state_path)?))
    });
    let Ok((state_identity, state_len)) = read else { return Ok(()) };
    if state_identity != *log_identity {
        return Err(StoreError::RebuildRefused {
            dir: dir.to_path_buf(),
            reason: format!(
                "state.db belongs to another store ({state_identity}) than log.db ({log_identity}); rebuilding would throw that \
                 store's state away. Put each file back with its own store"
            ),
        });
    }
    // The pairing check of §9.11, with the tail of a log ahead of the state read (the reader's).
    if let Err(StoreError::Unpaired { reason, .. }) = StoreReader::open(dir) {
        return Err(StoreError::RebuildRefused {
            dir: dir.to_path_buf(),
            reason: format!(
                "state.db is not the state of this log.db ({reason}); rebuilding would throw that state away. Put back the log.db \
                 this state.db was written with"
            ),
        });
    }
    if state_len > logged {
        return Err(StoreError::RebuildRefused {
            dir: dir.to_path_buf(),
            reason: format!(
                "state.db reflects {state_len} ops but log.db holds only {logged}: {} ops exist only in state.db and a rebuild \
                 from log.db would discard them. Restore the complete log.db (a backup, or the replica it came from)",
                state_len - logged
            ),
        });
    }
    Ok(())
}

/// Rebuild replaces `state.db` by a rename, which would replace a symbolic link and leave the
/// file it points to as it was: refused (§9.7).
fn refuse_symlink(state_path: &Path) -> Result<(), StoreError> {
    match state_path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(state_path).unwrap_or_default();
            Err(StoreError::SymlinkedState { path: state_path.to_path_buf(), target })
        }
        _ => Ok(()),
    }
}

/// Keeps `state.db` beside itself before a rebuild replaces it: a hard link (or, where the file
/// system has none, a copy) named `state.db.before-rebuild`, or `.before-rebuild.N` (N = 2, 3, …)
/// when earlier ones are there. Returns the name used.
fn keep_aside(state_path: &Path) -> Result<PathBuf, StoreError> {
    let base = state_path.with_file_name(format!("{STATE_FILE}.before-rebuild"));
    let mut target = base.clone();
    for n in 2.. {
        if target.symlink_metadata().is_err() {
            break;
        }
        target = PathBuf::from(format!("{}.{n}", base.display()));
    }
    std::fs::hard_link(state_path, &target)
        .or_else(|_| std::fs::copy(state_path, &target).map(drop))
        .map_err(|source| StoreError::Io { path: target.clone(), source })?;
    Ok(target)
}
