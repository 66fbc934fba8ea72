//! Errors of the store layer: each names the file (or directory) and, where there is one, the
//! meta key or op at fault.

use std::path::PathBuf;

use crate::hash::StateHash;
use crate::kernel::RejectKind;

use super::StoreIdentity;

/// Everything that can go wrong creating, peeking, opening or applying to a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: no such store directory")]
    DirMissing { path: PathBuf },
    #[error("{path}: not a store (neither state.db nor log.db is present)")]
    NotAStore { path: PathBuf },
    #[error("{path}: already exists; choose a new directory")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: not a redb database or damaged: {detail}")]
    NotRedb { path: PathBuf, detail: String },
    #[error("{path}: was not closed cleanly; open it read-write once (`lattice-conform open`) to let redb repair it")]
    NotClosedCleanly { path: PathBuf },
    #[error("{path}: held by another process in an incompatible mode")]
    Locked { path: PathBuf },
    #[error("{path}: table `{table}` is missing")]
    MissingTable { path: PathBuf, table: String },
    #[error("{path}: meta key `{key}` is missing")]
    MissingMeta { path: PathBuf, key: String },
    #[error("{path}: meta key `{key}` is invalid: {reason}")]
    BadMeta { path: PathBuf, key: String, reason: String },
    #[error("{dir}: state.db and log.db describe different stores (state.db: {state}; log.db: {log})")]
    IdentityMismatch { dir: PathBuf, state: StoreIdentity, log: StoreIdentity },
    #[error("{dir}: store is of type `{found}` schema {found_schema}, but the opener is for `{expected}` schema {expected_schema}")]
    WrongType { dir: PathBuf, found: String, found_schema: u64, expected: String, expected_schema: u64 },
    #[error("{dir}: corrupt: stored state hash {stored} but the tables hash to {computed}")]
    Corrupt { dir: PathBuf, stored: StateHash, computed: StateHash },
    #[error("{dir}: state.db reflects {state_len} log entries but log.db holds only {log_len}: {} ops exist only in state.db (log.db was truncated or replaced by an older copy). Restore the complete log.db from a backup or a replica; `lattice-conform rebuild` would discard those ops (it refuses without --force, and keeps the old state.db as state.db.before-rebuild)", .state_len - .log_len)]
    StateAheadOfLog { dir: PathBuf, state_len: u64, log_len: u64 },
    #[error("{dir}: state.db reflects {state_len} log entries but log.db holds {log_len}, and no writer holds the store: a crash interrupted an apply between its two commits (run `lattice-conform open` once to catch state.db up)")]
    StateLagsLog { dir: PathBuf, state_len: u64, log_len: u64 },
    #[error("{}: {} and {} do not belong together: {reason}. Neither file was written; put back the log.db this state.db was written with (a backup, or the replica it came from), or rebuild state.db from this log.db with `lattice-conform rebuild {} --force` (the old state.db is kept)", .dir.display(), .state.display(), .log.display(), .dir.display())]
    Unpaired { dir: PathBuf, state: PathBuf, log: PathBuf, reason: String },
    #[error("{dir}: rebuild refused: {reason}; pass --force to rebuild from log.db anyway (the replaced state.db is kept as state.db.before-rebuild)")]
    RebuildRefused { dir: PathBuf, reason: String },
    #[error("{}: a symbolic link (to {}); rebuild writes a new state.db and renames it over this name, which would replace the link and leave {} as it was, so it refuses: run it on the directory that holds the file, or put the file in place of the link", .path.display(), .target.display(), .target.display())]
    SymlinkedState { path: PathBuf, target: PathBuf },
    #[error("{path}: the name is {len} bytes long; a file name holds at most 255")]
    NameTooLong { path: PathBuf, len: usize },
    #[error("{path}: not a directory (a store is a directory holding state.db and log.db)")]
    NotADirectory { path: PathBuf },
    #[error("{path}: missing; a store directory holds both state.db and log.db")]
    FileMissing { path: PathBuf },
    #[error("{path}: log entry {index} does not decode: {reason}")]
    BadLogEntry { path: PathBuf, index: u64, reason: String },
    #[error("{path}: log entry {index} cannot be replayed: {reason}; the log was altered after it was written")]
    UnreplayableLogEntry { path: PathBuf, index: u64, reason: String },
    #[error("{dir}: projection is stalled since log entry {} ({}) was refused: {}; as in Lattice, a stalled store applies no further op (a build that applies it must be a new store type)", .pause.op_index, .pause.kind.as_str(), .pause.reason)]
    Paused { dir: PathBuf, pause: PauseRecord },
    #[error("{dir}: log entry {index} (id {op_id}) refused ({}): {reason}; the store is unchanged by it and its projection is now stalled", .kind.as_str())]
    Rejected { dir: PathBuf, index: u64, op_id: String, kind: RejectKind, reason: String },
    #[error("{path}")]
    Redb {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where projection stalled and why. Persisted in state.db's meta under `paused` (JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRecord {
    /// The refused op's index in `log.db` (its arrival order, 0-based).
    pub op_index: u64,
    /// Hex op id of the rejected op.
    pub op_id: String,
    pub kind: RejectKind,
    pub reason: String,
}

impl StoreError {
    /// True for failures of a check on a well-formed store (exit code 1 at the CLI); false for
    /// unusable input (exit code 2).
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::StateAheadOfLog { .. }
                | StoreError::Unpaired { .. }
                | StoreError::Rejected { kind: RejectKind::CorruptState, .. }
        )
    }

    /// True when a read-only open refused the store only because a crash left it needing a
    /// read-write open (redb's repair of a file not closed cleanly, or the catch-up of a
    /// `state.db` lagging its log).
    pub fn needs_repair(&self) -> bool {
        matches!(self, StoreError::NotClosedCleanly { .. } | StoreError::StateLagsLog { .. })
    }
}

/// Attaches a path to redb errors.
pub(crate) trait RedbContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> RedbContext<T> for Result<T, E> {
    fn at(self, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|e| classify(path, e.into()))
    }
}

/// Maps a redb error to the variant a user can act on.
fn classify(path: &std::path::Path, e: redb::Error) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked { path },
        redb::Error::RepairAborted => StoreError::NotClosedCleanly { path },
        redb::Error::Corrupted(detail) => StoreError::NotRedb { path, detail },
        redb::Error::UpgradeRequired(v) => StoreError::NotRedb { path, detail: format!("file format version {v} needs an upgrade") },
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            StoreError::NotRedb { path, detail: format!("file is too short ({source})") }
        }
        redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::NotRedb { path, detail: source.to_string() }
        }
        redb::Error::Io(source) => StoreError::Io { path, source },
        source => StoreError::Redb { path, source },
    }
}

thread_local! {
    /// Set while [`contain`] runs on this thread, so the panic hook stays quiet for a contained panic.
    static CONTAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, which reads the redb file at `path`, turning a panic into
/// [`StoreError::NotRedb`] naming the file. redb returns errors for most damage but panics on
/// some damaged pages (found by the `peek_file` fuzz target: an `unreachable!` in its B-tree
/// lookup); a tool that gates releases must report a damaged file, not crash on it. The panic's
/// default report is suppressed while contained (a panic hook installed once, which defers to
/// the previous hook for every other panic). Whatever redb handle `f` used is dropped with it.
pub(crate) fn contain<T>(path: &std::path::Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let was = CONTAINING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(was));
    result.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(StoreError::NotRedb { path: path.to_path_buf(), detail: format!("the storage engine failed while reading it ({msg})") })
    })
}
