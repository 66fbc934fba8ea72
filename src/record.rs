//! `record` and `open --verify-history`: real stores as test input, and a node refusing a build
//! that changed the meaning of its history.
//!
//! `record` exports a store's log (the applied ops, in apply order) as a history, checked to
//! reproduce the store's current state hash, so a maintainer can certify a hot fix against
//! production histories. `verify_history` replays a store's log with a given build and refuses
//! the store as corrupt if the result differs from the stored state hash.

use std::path::Path;

use crate::build::{BuildError, BuildSpec};
use crate::history::History;
use crate::registry::Registry;
use crate::replay::replay;
use crate::store::{StoreError, StoreReader};
use crate::verify::{first_divergence, Divergence};

/// Failures of `record` and `verify_history`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(
        "{dir}: replaying its log stalls {replayed}, but the store records {stored}: the store is corrupt or was built by another logic"
    )]
    StallMismatch { dir: std::path::PathBuf, replayed: String, stored: String },
    #[error("{dir}: replaying its log gives state hash {replayed}, but the store says {stored}: the store is corrupt or was built by another logic")]
    LogMismatch { dir: std::path::PathBuf, replayed: String, stored: String },
}

impl RecordError {
    /// Whether this is a failed check on a readable store (exit 1) rather than bad input (exit 2).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, RecordError::LogMismatch { .. } | RecordError::StallMismatch { .. })
            || matches!(self, RecordError::Store(s) if s.is_check_failure())
    }
}

/// Reads a store (read-only) and returns its log as a history, after checking that the native
/// logic replays it to the stored state hash and, for a stalled store, to the same stall. The
/// log holds every received op, so a stalled store's log is a complete history that reproduces
/// its stall.
pub fn record(dir: &Path, registry: &Registry) -> Result<History, RecordError> {
    let reader = StoreReader::open(dir)?;
    reader.verify()?;
    let id = reader.identity().clone();
    let history = History::new(&id, reader.log_ops()?);
    let logic = registry.resolve(&id).map_err(BuildError::from)?;
    let outcome = replay(id, logic, &history.ops);
    let stall_text = |s: Option<(u64, &str)>| s.map_or("nowhere".to_string(), |(i, k)| format!("at log entry {i} ({k})"));
    let replayed_stall = outcome.stall.as_ref().map(|s| (s.op_index, s.kind.as_str()));
    let stored_stall = reader.paused().map(|p| (p.op_index, p.kind.as_str()));
    if replayed_stall != stored_stall {
        return Err(RecordError::StallMismatch {
            dir: dir.to_path_buf(),
            replayed: stall_text(replayed_stall),
            stored: stall_text(stored_stall),
        });
    }
    let replayed = outcome.state_hash;
    if replayed != reader.state_hash() {
        return Err(RecordError::LogMismatch {
            dir: dir.to_path_buf(),
            replayed: replayed.to_string(),
            stored: reader.state_hash().to_string(),
        });
    }
    Ok(history)
}

/// What `verify_history` found when the build does not reproduce the store.
#[derive(Debug)]
pub struct HistoryRefusal {
    pub replayed: String,
    pub stored: String,
    /// The first op at which the build departs from the registered native logic, if it does.
    pub divergence: Option<Divergence>,
}

/// Replays the store's log with `build`; `Ok(None)` if it reproduces the stored state hash.
pub fn verify_history(dir: &Path, build: &BuildSpec, registry: &Registry) -> Result<Option<HistoryRefusal>, RecordError> {
    let reader = StoreReader::open(dir)?;
    reader.verify()?;
    let id = reader.identity().clone();
    let logic = build.logic(&id.store_type, registry)?;
    let ops = reader.log_ops()?;
    let replayed = replay(id.clone(), logic.clone(), &ops).state_hash;
    if replayed == reader.state_hash() {
        return Ok(None);
    }
    let history = History::new(&id, ops);
    let reference = registry.resolve(&id).map_err(BuildError::from)?;
    let divergence = first_divergence(&history, reference, logic, 0);
    Ok(Some(HistoryRefusal { replayed: replayed.to_string(), stored: reader.state_hash().to_string(), divergence }))
}
