//! A store on disk: a directory with `state.db` (identity, tips, state hash, `data`) and `log.db`
//! (identity again, and the op log in apply order). Both are redb files.
//!
//! Guarantees:
//! - Each op is all-or-nothing. Ops are applied inside one `state.db` write transaction and one
//!   `log.db` write transaction; the log commits first, then the state. A rejected op aborts both
//!   transactions, the ops before it are committed again without it, and the store records a pause.
//! - `log.db` is the source of truth. If a crash lands between the two commits, the next
//!   read-write open replays the missing log tail into `state.db`; `rebuild` recreates `state.db`
//!   from `log.db` alone and reaches the identical state hash.
//! - The stored state hash always equals a from-scratch recompute over `data` and the tips
//!   (`verify` checks this and reports a mismatch as corrupt).

mod apply;
mod chain;
mod error;
mod layout;
mod open;
mod peek;
mod query;
mod reader;
mod rebuild;
mod snapshot;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;
use serde::Serialize;
use uuid::Uuid;

pub use apply::{ApplySummary, RefusedOp};
pub use error::{PauseRecord, StoreError};
pub use layout::LAYOUT_VERSION;
pub use peek::{peek_both, peek_for_open, peek_info, peek_with_source, PeekSource};
pub use reader::{audit_facts, AuditFacts, StoreReader};
pub use rebuild::RebuildNote;
pub use snapshot::LogOps;
use snapshot::{bookkeeping, for_each_row, read_tips, recompute};
pub(crate) use snapshot::{read_log, Bookkeeping};

use crate::hash::LtHash;
use chain::LogChain;
use layout::*;

/// A store logic shared between threads and openers.
pub type Logic = Arc<dyn crate::kernel::HostLogic>;

/// Ops per redb transaction when applying many ops.
const BATCH: usize = 1024;

/// Who a store is: the three identity keys of its meta tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoreIdentity {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
}

impl std::fmt::Display for StoreIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "id {} type `{}` schema {}", self.store_id, self.store_type, self.schema_version)
    }
}

/// An open store, holding the writer role on both files.
pub struct Store {
    dir: PathBuf,
    /// `dir/state.db`, or the file a rebuild fills before renaming it into place.
    state_path: PathBuf,
    identity: StoreIdentity,
    state: Database,
    log: Database,
    logic: Logic,
    acc: LtHash,
    log_len: u64,
    /// The log chain over the `log_len` entries `state.db` reflects (`chain`).
    chain: LogChain,
    paused: Option<PauseRecord>,
    /// The writer lock on `dir`, held for the life of the store (see [`layout::DirLock`]).
    lock: DirLock,
}

/// Whether another process (or another handle of this one) holds the store in `dir` open for
/// writing right now (a probe of the writer lock, §9.6 of docs/FORMAT.md).
pub fn writer_active(dir: &Path) -> bool {
    layout::writer_active(dir)
}

/// Checks that `dir` can become a new store directory: nothing is there (not even a dangling
/// symbolic link), its name fits a file name (255 bytes), and its parent is a directory.
pub fn check_new_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.symlink_metadata().is_ok() {
        return Err(StoreError::AlreadyExists { path: dir.to_path_buf() });
    }
    if let Some(name) = dir.file_name().filter(|n| n.len() > 255) {
        return Err(StoreError::NameTooLong { path: dir.to_path_buf(), len: name.len() });
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::NotADirectory { path: parent.to_path_buf() }),
        Err(source) => Err(StoreError::Io { path: parent.to_path_buf(), source }),
    }
}
