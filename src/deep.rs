//! Deep verification of a store directory (`open --deep`, `record`, `audit`): its log replayed
//! from genesis with the registered logic must reach what `state.db` stores — the state hash, the
//! stall and the number of floating ops — with every log entry accepted as it was the first time.

use std::path::Path;

use crate::op::Op;
use crate::registry::{Registry, RegistryError};
use crate::replay::{Delivered, MemStore};
use crate::store::{StoreError, StoreReader};

/// Why a store failed its deep verification, or could not be read for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "{dir}: replaying its log stalls {replayed}, but the store records {stored}: the store is corrupt or was built by another logic"
    )]
    StallMismatch { dir: std::path::PathBuf, replayed: String, stored: String },
    #[error("{dir}: replaying its log gives state hash {replayed}, but the store says {stored}: the store is corrupt or was built by another logic")]
    LogMismatch { dir: std::path::PathBuf, replayed: String, stored: String },
    #[error("{dir}: replaying its log leaves {replayed} ops floating, but state.db holds {stored}: the store is corrupt")]
    FloatingMismatch { dir: std::path::PathBuf, replayed: u64, stored: u64 },
}

impl DeepError {
    /// Whether this is a failed check on a readable store (exit 1) rather than bad input (exit 2).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, DeepError::LogMismatch { .. } | DeepError::StallMismatch { .. } | DeepError::FloatingMismatch { .. })
            || matches!(self, DeepError::Store(s) if s.is_check_failure())
    }
}

/// What a deep verification ([`verify_deep`]) checked, for a store that passed it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeepCheck {
    /// Log entries read, decoded and replayed (positions `0..log_entries`, contiguous).
    pub log_entries: u64,
    /// The state hash: stored, recomputed from the tables, and reached by the replay.
    pub state_hash: String,
    /// Received ops still floating, in `state.db` and in the replay.
    pub floating: u64,
    /// The log entry projection stalled at, in both, if it did.
    pub stall: Option<u64>,
    /// Entries a concurrent writer had logged past the snapshot checked (not part of it).
    pub logged_ahead: u64,
}

/// Deep verification of the store in `dir`, from one consistent snapshot (see [`StoreReader`]):
/// the stored state hash equals the hash recomputed from the tables; `log.db` holds every entry
/// the state reflects at contiguous positions from 0, each decodes and is accepted on arrival as
/// it was the first time (no entry over the limits, no second copy); and replaying those entries
/// from genesis with the registered logic reaches the stored state hash, the stored stall and
/// the same number of floating ops. It catches a `state.db` from another replica of the same
/// store and a truncated or damaged `log.db`, which the plain `verify` (tables against the stored
/// hash) cannot see.
pub fn verify_deep(dir: &Path, registry: &Registry) -> Result<DeepCheck, DeepError> {
    let reader = StoreReader::open(dir)?;
    deep_check(dir, &reader, registry, &mut |_| Ok(()))
}

/// The deep check, handing each log entry to `sink` as it is replayed (`record` writes them out).
pub fn deep_check<E: From<DeepError>>(
    dir: &Path,
    reader: &StoreReader,
    registry: &Registry,
    sink: &mut dyn FnMut(&Op) -> Result<(), E>,
) -> Result<DeepCheck, E> {
    let stored = reader.verify().map_err(DeepError::from)?;
    let id = reader.identity().clone();
    let logic = registry.resolve(&id).map_err(DeepError::from)?;
    let log_path = dir.join("log.db");
    let mut mem = MemStore::new(id, logic);
    let mut entries = 0u64;
    for (index, op) in (0u64..).zip(reader.log_stream().map_err(DeepError::from)?) {
        let op = op.map_err(DeepError::from)?;
        let reason = match mem.deliver(&op) {
            Delivered::Refused(r) => r.reason,
            Delivered::Redelivered => "a second copy of an op already logged earlier".to_string(),
            Delivered::Skipped => "not delivered (its batch aborted)".to_string(),
            Delivered::Received { .. } => {
                sink(&op)?;
                entries += 1;
                continue;
            }
        };
        return Err(DeepError::from(StoreError::UnreplayableLogEntry { path: log_path, index, reason }).into());
    }
    let outcome = mem.outcome();
    let stall_text = |s: Option<(u64, &str)>| s.map_or("nowhere".to_string(), |(i, k)| format!("at log entry {i} ({k})"));
    let replayed_stall = outcome.stall.as_ref().map(|s| (s.op_index, s.kind.as_str()));
    let stored_stall = reader.paused().map(|p| (p.op_index, p.kind.as_str()));
    if replayed_stall != stored_stall {
        return Err(DeepError::StallMismatch {
            dir: dir.to_path_buf(),
            replayed: stall_text(replayed_stall),
            stored: stall_text(stored_stall),
        }
        .into());
    }
    if outcome.state_hash != stored {
        return Err(DeepError::LogMismatch {
            dir: dir.to_path_buf(),
            replayed: outcome.state_hash.to_string(),
            stored: stored.to_string(),
        }
        .into());
    }
    let floating = reader.floating_count().map_err(DeepError::from)?;
    if outcome.floating.len() as u64 != floating {
        return Err(
            DeepError::FloatingMismatch { dir: dir.to_path_buf(), replayed: outcome.floating.len() as u64, stored: floating }.into()
        );
    }
    let check = DeepCheck {
        log_entries: entries,
        state_hash: stored.to_string(),
        floating,
        stall: replayed_stall.map(|(i, _)| i),
        logged_ahead: reader.logged_ahead(),
    };
    Ok(check)
}
