//! Reads through an open [`Store`]: its identity, hashes (stored and recomputed, `verify`),
//! rows, tips, floating count and log.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::error::{self, RedbContext};
use super::layout::{self, *};
use super::snapshot::{for_each_row, read_log, read_tips, recompute};
use super::{PauseRecord, Store, StoreError, StoreIdentity};
use crate::hash::StateHash;
use crate::op::{Op, OpId};

impl Store {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// The stored (incrementally maintained) state hash.
    pub fn state_hash(&self) -> StateHash {
        self.acc.state_hash(&self.identity.store_type, self.identity.schema_version)
    }

    /// Number of ops in the log (= ops received; redeliveries and refused ops excluded).
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    pub fn paused(&self) -> Option<&PauseRecord> {
        self.paused.as_ref()
    }

    /// Recomputes the state hash from `data` and the tips and compares it with the stored one.
    pub fn verify(&self) -> Result<StateHash, StoreError> {
        let computed = self.recompute()?;
        let stored = self.stored_hash()?;
        if computed != stored || computed != self.state_hash() {
            return Err(StoreError::Corrupt { dir: self.dir.clone(), stored, computed });
        }
        Ok(computed)
    }

    /// The state hash recomputed from scratch over the tables.
    pub fn recompute(&self) -> Result<StateHash, StoreError> {
        let path = self.state_path();
        recompute(&self.state.begin_read().at(&path)?, &path, &self.identity)
    }

    /// Calls `f` on every `data` row in key order.
    pub fn for_each_row(&self, f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let path = self.state_path();
        for_each_row(&self.state.begin_read().at(&path)?, &path, f)
    }

    /// Every author's chain tip, ordered by author.
    pub fn tips(&self) -> Result<Vec<([u8; 32], OpId)>, StoreError> {
        let path = self.state_path();
        read_tips(&self.state.begin_read().at(&path)?, &path)
    }

    /// Number of received ops still floating (waiting for their `prev` or `causal_deps`).
    pub fn floating_count(&self) -> Result<u64, StoreError> {
        let path = self.state_path();
        error::contain(&path, || {
            let txn = self.state.begin_read().at(&path)?;
            layout::open_ro_table(&txn, FLOATING, &path)?.len().at(&path)
        })
    }

    /// The logged ops in arrival order.
    pub fn log_ops(&self) -> Result<Vec<Op>, StoreError> {
        let path = self.log_path();
        read_log(&self.log.begin_read().at(&path)?, &path, 0, u64::MAX)
    }

    pub(super) fn state_path(&self) -> PathBuf {
        self.state_path.clone()
    }

    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn stored_hash(&self) -> Result<StateHash, StoreError> {
        let path = self.state_path();
        error::contain(&path, || {
            let txn = self.state.begin_read().at(&path)?;
            let meta = layout::open_ro_table(&txn, META, &path)?;
            Ok(StateHash(read_hash(&meta, K_HASH, &path)?))
        })
    }
}
