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

mod chain;
mod error;
mod layout;
mod peek;
mod reader;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lattice_logic::{HostError, Table};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use uuid::Uuid;

pub use error::{PauseRecord, StoreError};
pub use layout::LAYOUT_VERSION;
pub use peek::{peek_both, peek_for_open, peek_info, peek_with_source, PeekSource};
pub use reader::{audit_facts, AuditFacts, StoreReader};

use crate::delivery::{self, Arrival, DagView, Intentions, Status};
use crate::hash::{LtHash, RowTable, StateHash};
use crate::kernel::{self, ChainState};
use crate::op::{Op, OpId};
use chain::{LogChain, Pairing};
use error::RedbContext;
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

/// What one `apply_ops` call did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplySummary {
    /// Ops received and logged (floating or witnessed).
    pub received: u64,
    /// Ops projected into the state.
    pub applied: u64,
    /// Redeliveries of ops already received, ignored.
    pub duplicates: u64,
    /// Ops refused on arrival (encoding limits), not kept.
    pub refused: Vec<RefusedOp>,
    /// Set when projection stalled during this call.
    pub stalled: Option<PauseRecord>,
}

/// An op refused on arrival: its position in the caller's input, id and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedOp {
    pub index: u64,
    pub op_id: String,
    pub reason: String,
}

impl ApplySummary {
    fn add(&mut self, s: ApplySummary) {
        self.received += s.received;
        self.applied += s.applied;
        self.duplicates += s.duplicates;
        self.refused.extend(s.refused);
        self.stalled = self.stalled.take().or(s.stalled);
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

/// What a rebuild replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildNote {
    /// Where the `state.db` that was replaced is kept (`None` when there was none).
    pub kept: Option<PathBuf>,
    /// A `state.db.rebuild` an interrupted rebuild left, removed before this one began.
    pub removed_stale: Option<PathBuf>,
}

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
    fn open_files(dir: &Path, state_path: PathBuf, logic: Logic, lock: DirLock) -> Result<Store, StoreError> {
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

    /// Delivers `ops` in order (receive, witness, project; see [`crate::delivery`]). Every op
    /// that is not refused or a redelivery is logged. `first_index` is the position of `ops[0]`
    /// in its source, used to name refused ops. A projection error stalls the store (recorded
    /// in the summary and in `paused()`); ops keep being received and witnessed after a stall.
    pub fn apply_ops(&mut self, ops: &[Op], first_index: u64) -> Result<ApplySummary, StoreError> {
        self.apply_stream(ops.iter().cloned(), first_index)
    }

    /// [`Store::apply_ops`] over ops as they come (a history being read), one batch in memory at
    /// a time; each batch is committed before the next is read.
    pub fn apply_stream(&mut self, ops: impl Iterator<Item = Op>, first_index: u64) -> Result<ApplySummary, StoreError> {
        let mut total = ApplySummary::default();
        let mut ops = ops.peekable();
        let mut base = first_index;
        while ops.peek().is_some() {
            let chunk: Vec<Op> = ops.by_ref().take(BATCH).collect();
            self.apply_batch(&chunk, base, true, &mut total)?;
            base += chunk.len() as u64;
        }
        Ok(total)
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

    fn state_path(&self) -> PathBuf {
        self.state_path.clone()
    }

    fn log_path(&self) -> PathBuf {
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

    /// Delivers log entries the state has not seen yet (after a crash between the two commits,
    /// or into the empty `state.db` of a rebuild).
    ///
    /// The tail is checked against `log.db`'s chain before anything is delivered (`pairing`).
    fn catch_up(&mut self, pairing: Pairing) -> Result<(), StoreError> {
        let logged = log_count(&self.log, &self.log_path())?;
        if self.log_len > logged {
            return Err(StoreError::StateAheadOfLog { dir: self.dir.clone(), state_len: self.log_len, log_len: logged });
        }
        let log_path = self.log_path();
        let missing = read_log(&self.log.begin_read().at(&log_path)?, &log_path, self.log_len, u64::MAX)?;
        if let Pairing::LogAhead { state, log } = pairing {
            let encoded: Vec<Vec<u8>> = missing.iter().map(Op::encode).collect();
            chain::check_tail(&self.dir, state, log, encoded.iter().map(Vec::as_slice))?;
        }
        let mut summary = ApplySummary::default();
        for (n, chunk) in missing.chunks(BATCH).enumerate() {
            let base = self.log_len + (n * BATCH) as u64;
            self.apply_batch(chunk, base, false, &mut summary)?;
        }
        Ok(())
    }

    /// Delivers `ops` in one transaction per file; `append` logs the ops received (false when
    /// they come from the log, where a refused or repeated entry is an error). On an error
    /// nothing of the batch is committed.
    fn apply_batch(&mut self, ops: &[Op], base: u64, append: bool, summary: &mut ApplySummary) -> Result<(), StoreError> {
        let (state_path, log_path) = (self.state_path(), self.log_path());
        let state_txn = self.state.begin_write().at(&state_path)?;
        let log_txn = self.log.begin_write().at(&log_path)?;
        let mut acc = self.acc.clone();
        let mut log_len = self.log_len;
        let mut log_chain = self.chain;
        let mut paused = self.paused.clone();
        let mut batch = ApplySummary::default();
        {
            let mut data = RedbData { table: state_txn.open_table(DATA).at(&state_path)?, err: None };
            let mut chain = RedbChain { meta: state_txn.open_table(META).at(&state_path)?, err: None };
            let mut ints = RedbIntentions {
                ops: state_txn.open_table(OPS).at(&state_path)?,
                floating: state_txn.open_table(FLOATING).at(&state_path)?,
                tips: state_txn.open_table(WITNESS_TIPS).at(&state_path)?,
                err: None,
            };
            let mut log = log_txn.open_table(LOG).at(&log_path)?;
            for (i, op) in ops.iter().enumerate() {
                let host = |ints: &mut RedbIntentions| StoreError::Redb { path: state_path.clone(), source: stashed(&mut ints.err) };
                let witnessed = match delivery::receive(&mut ints, &self.identity.store_id, op, log_len) {
                    Err(HostError) => return Err(host(&mut ints)),
                    // Replaying the log (`append` false): every entry was received once, so a
                    // refusal or a second copy means the log was altered; nothing is committed.
                    Ok(Arrival::Refused(r)) if !append => {
                        return Err(StoreError::UnreplayableLogEntry { path: log_path, index: log_len, reason: r.reason });
                    }
                    Ok(Arrival::Redelivered(_)) if !append => {
                        let reason = "a second copy of an op already logged earlier".to_string();
                        return Err(StoreError::UnreplayableLogEntry { path: log_path, index: log_len, reason });
                    }
                    Ok(Arrival::Refused(r)) => {
                        batch.refused.push(RefusedOp { index: base + i as u64, op_id: hex::encode(r.op_id), reason: r.reason });
                        continue;
                    }
                    Ok(Arrival::Redelivered(_)) => {
                        batch.duplicates += 1;
                        continue;
                    }
                    Ok(Arrival::Received { witnessed, .. }) => witnessed,
                };
                let encoding = op.encode();
                if append {
                    log.insert(log_len, encoding.as_slice()).at(&log_path)?;
                }
                log_chain.push(&encoding);
                log_len += 1;
                batch.received += 1;
                for w in &witnessed {
                    if paused.is_some() {
                        break;
                    }
                    let mut dag = DagView(&mut ints);
                    match kernel::apply_op(self.logic.as_ref(), &w.id, &w.op, &mut data, &mut chain, &mut dag, &mut acc) {
                        Ok(_) => batch.applied += 1,
                        Err(r) => {
                            if let Some(e) = data.err.take().or(chain.err.take()).or(ints.err.take()) {
                                return Err(StoreError::Redb { path: state_path, source: e });
                            }
                            let pause = PauseRecord { op_index: w.arrival, op_id: hex::encode(r.op_id), kind: r.kind, reason: r.reason };
                            let json = serde_json::to_vec(&pause).expect("a pause record always serializes");
                            chain.meta.insert(K_PAUSED, json.as_slice()).at(&state_path)?;
                            batch.stalled = Some(pause.clone());
                            paused = Some(pause);
                        }
                    }
                }
            }
            let hash = acc.state_hash(&self.identity.store_type, self.identity.schema_version);
            chain.meta.insert(K_ACC, acc.to_bytes().as_slice()).at(&state_path)?;
            chain.meta.insert(K_HASH, hash.0.as_slice()).at(&state_path)?;
            chain.meta.insert(K_LOG_LEN, log_len.to_le_bytes().as_slice()).at(&state_path)?;
            chain.meta.insert(K_LOG_CHAIN, log_chain.to_bytes().as_slice()).at(&state_path)?;
            if append {
                log_txn.open_table(LOG_META).at(&log_path)?.insert(K_LOG_CHAIN, log_chain.to_bytes().as_slice()).at(&log_path)?;
            }
        }
        log_txn.commit().at(&log_path)?;
        state_txn.commit().at(&state_path)?;
        self.acc = acc;
        self.log_len = log_len;
        self.chain = log_chain;
        self.paused = paused;
        summary.add(batch);
        Ok(())
    }
}

/// `log.db`'s identity and entry count, read-only; a file a crash left unclean is opened
/// read-write once so redb repairs it, under the writer lock (`held`, or taken here).
fn log_facts(dir: &Path, held: Option<&DirLock>) -> Result<(StoreIdentity, u64), StoreError> {
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

fn check_logic(dir: &Path, id: &StoreIdentity, logic: &dyn crate::kernel::HostLogic) -> Result<(), StoreError> {
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

fn init_state(path: &Path, identity: &StoreIdentity) -> Result<(), StoreError> {
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

/// What `state.db`'s `meta` says besides the identity (§9.2), read and checked.
pub(crate) struct Bookkeeping {
    pub acc: LtHash,
    /// The stored state hash, equal to the accumulator's.
    pub hash: StateHash,
    pub log_len: u64,
    pub paused: Option<PauseRecord>,
    /// `None` in a store written before the log chain (§19).
    pub chain: Option<LogChain>,
}

/// Reads the accumulator, checks the stored hash against it, and reads `log_len`, `paused` and
/// the log chain.
fn read_bookkeeping(db: &impl ReadableDatabase, path: &Path, id: &StoreIdentity) -> Result<Bookkeeping, StoreError> {
    let txn = db.begin_read().at(path)?;
    bookkeeping(&layout::open_ro_table(&txn, META, path)?, path, id)
}

/// [`read_bookkeeping`] on an already open `meta` table.
fn bookkeeping(meta: &impl ReadableTable<&'static str, &'static [u8]>, path: &Path, id: &StoreIdentity) -> Result<Bookkeeping, StoreError> {
    let raw = read_bytes(meta, K_ACC, path)?;
    let acc = LtHash::from_bytes(&raw)
        .ok_or_else(|| bad(path, K_ACC, format!("expected {} bytes, found {}", crate::hash::ACC_BYTES, raw.len())))?;
    let hash = StateHash(read_hash(meta, K_HASH, path)?);
    let from_acc = acc.state_hash(&id.store_type, id.schema_version);
    if hash != from_acc {
        return Err(StoreError::Corrupt { dir: path.parent().unwrap_or(path).to_path_buf(), stored: hash, computed: from_acc });
    }
    let log_len = read_u64(meta, K_LOG_LEN, path)?;
    let paused = match read_opt(meta, K_PAUSED, path)? {
        Some(json) => Some(serde_json::from_slice(&json).map_err(|e| bad(path, K_PAUSED, e.to_string()))?),
        None => None,
    };
    Ok(Bookkeeping { acc, hash, log_len, paused, chain: LogChain::read(meta, path)? })
}

/// `log_meta`'s log chain (if the file has one) and the number of `log` entries, from one read
/// transaction.
fn read_log_chain(db: &impl ReadableDatabase, path: &Path) -> Result<(Option<LogChain>, u64), StoreError> {
    let txn = db.begin_read().at(path)?;
    let chain = LogChain::read(&layout::open_ro_table(&txn, LOG_META, path)?, path)?;
    Ok((chain, layout::open_ro_table(&txn, LOG, path)?.len().at(path)?))
}

pub(crate) fn log_count(db: &impl ReadableDatabase, path: &Path) -> Result<u64, StoreError> {
    let txn = db.begin_read().at(path)?;
    layout::open_ro_table(&txn, LOG, path)?.len().at(path)
}

// `read_log`, `recompute`, `for_each_row` and `read_tips` run inside `error::contain`: redb panics
// on some damaged pages, and every reader of a store file goes through these. Each reads one read
// transaction the caller took, so a reader can make every read of a file from one snapshot.

/// The log entries at positions `from..to` (to the end when `to` is past it), decoded.
pub(crate) fn read_log(txn: &redb::ReadTransaction, path: &Path, from: u64, to: u64) -> Result<Vec<Op>, StoreError> {
    LogOps::new(txn, path, from, to)?.collect()
}

/// The logged ops at positions `from..to` of a `log.db` snapshot, read one at a time: each is
/// decoded, and a missing position or an entry that does not decode ends the iteration with an
/// error naming the position.
pub struct LogOps {
    range: redb::Range<'static, u64, &'static [u8]>,
    path: PathBuf,
    next: u64,
    failed: bool,
}

impl LogOps {
    pub(crate) fn new(txn: &redb::ReadTransaction, path: &Path, from: u64, to: u64) -> Result<LogOps, StoreError> {
        error::contain(path, || {
            let log = layout::open_ro_table(txn, LOG, path)?;
            let range = log.range(from..to).at(path)?;
            Ok(LogOps { range, path: path.to_path_buf(), next: from, failed: false })
        })
    }
}

impl Iterator for LogOps {
    type Item = Result<Op, StoreError>;

    fn next(&mut self) -> Option<Result<Op, StoreError>> {
        if self.failed {
            return None;
        }
        let (path, expected) = (self.path.clone(), self.next);
        let range = &mut self.range;
        let item = error::contain(&path, || {
            let Some(row) = range.next() else { return Ok(None) };
            let (k, v) = row.at(&path)?;
            if k.value() != expected {
                return Err(StoreError::BadLogEntry {
                    path: path.clone(),
                    index: expected,
                    reason: format!("entry missing (next present is {})", k.value()),
                });
            }
            Op::decode(v.value()).map(Some).map_err(|e| StoreError::BadLogEntry {
                path: path.clone(),
                index: expected,
                reason: e.to_string(),
            })
        });
        match item {
            Ok(Some(op)) => {
                self.next += 1;
                Some(Ok(op))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The state hash recomputed from `data` and the tips of a `state.db`.
fn recompute(txn: &redb::ReadTransaction, path: &Path, id: &StoreIdentity) -> Result<StateHash, StoreError> {
    error::contain(path, || {
        // Below a few thousand rows, starting threads costs more than it saves.
        let rows = layout::open_ro_table(txn, DATA, path)?.len().at(path)?;
        let threads = if rows < 4096 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let mut acc = LtHash::sum_rows(RowTable::Data, threads, |emit| for_each_row(txn, path, emit))?;
        for (author, tip) in read_tips(txn, path)? {
            acc.insert(RowTable::Tip, &author, &tip);
        }
        Ok(acc.state_hash(&id.store_type, id.schema_version))
    })
}

fn for_each_row(txn: &redb::ReadTransaction, path: &Path, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
    error::contain(path, || {
        let table = layout::open_ro_table(txn, DATA, path)?;
        for row in table.iter().at(path)? {
            let (k, v) = row.at(path)?;
            f(k.value(), v.value());
        }
        Ok(())
    })
}

fn read_tips(txn: &redb::ReadTransaction, path: &Path) -> Result<Vec<([u8; 32], OpId)>, StoreError> {
    error::contain(path, || {
        let meta = layout::open_ro_table(txn, META, path)?;
        let mut out = Vec::new();
        for row in meta.range(TIP_PREFIX.."tip0").at(path)? {
            let (k, v) = row.at(path)?;
            out.push(parse_tip(k.value(), v.value(), path)?);
        }
        Ok(out)
    })
}

fn parse_tip(key: &str, value: &[u8], path: &Path) -> Result<([u8; 32], OpId), StoreError> {
    let author = hex::decode(&key[TIP_PREFIX.len()..]).ok().and_then(|a| <[u8; 32]>::try_from(a).ok());
    let author = author.ok_or_else(|| bad(path, key, "tip key must be `tip/` + 64 hex digits".into()))?;
    let tip = value.try_into().map_err(|_| bad(path, key, format!("expected 32 bytes, found {}", value.len())))?;
    Ok((author, tip))
}

/// The `data` table inside a write transaction, seen through the logic's table interface.
struct RedbData<'t> {
    table: redb::Table<'t, &'static [u8], &'static [u8]>,
    err: Option<redb::Error>,
}

/// Keeps a storage error for the host and hands the logic the opaque [`HostError`].
fn stash<T>(slot: &mut Option<redb::Error>, r: Result<T, redb::StorageError>) -> Result<T, HostError> {
    r.map_err(|e| {
        *slot = Some(e.into());
        HostError
    })
}

impl Table for RedbData<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let r = self.table.get(key).map(|v| v.map(|g| g.value().to_vec()));
        stash(&mut self.err, r)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        let r = self.table.insert(key, value).map(drop);
        stash(&mut self.err, r)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        let r = self.table.remove(key).map(drop);
        stash(&mut self.err, r)
    }
}

/// Author tips as `tip/<hex>` keys of the meta table inside a write transaction.
struct RedbChain<'t> {
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    err: Option<redb::Error>,
}

impl ChainState for RedbChain<'_> {
    fn tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        let key = tip_key(author);
        let raw = self.meta.get(key.as_str()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(v) => v.as_slice().try_into().map(Some).map_err(|_| {
                self.err = Some(redb::Error::Corrupted(format!("meta key `{key}` holds {} bytes, expected 32", v.len())));
                HostError
            }),
        }
    }

    fn set_tip(&mut self, author: &[u8; 32], id: &OpId) -> Result<(), HostError> {
        let r = self.meta.insert(tip_key(author).as_str(), id.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}

/// Takes the storage error a table adapter stashed (there is one whenever it returned
/// [`HostError`]).
fn stashed(slot: &mut Option<redb::Error>) -> redb::Error {
    slot.take().unwrap_or_else(|| redb::Error::Corrupted("storage failed without a recorded cause".into()))
}

/// The received ops in `state.db` (tables `ops`, `floating`, `witness_tips`) inside a write
/// transaction.
struct RedbIntentions<'t> {
    ops: redb::Table<'t, &'static [u8], &'static [u8]>,
    floating: redb::Table<'t, &'static [u8], &'static [u8]>,
    tips: redb::Table<'t, &'static [u8], &'static [u8]>,
    err: Option<redb::Error>,
}

impl RedbIntentions<'_> {
    fn corrupt<T>(&mut self, what: String) -> Result<T, HostError> {
        self.err = Some(redb::Error::Corrupted(what));
        Err(HostError)
    }

    fn record(&mut self, id: &OpId, status: Status, op: &Op) -> Result<(), HostError> {
        let row = encode_op_row(status, op.hlc, &op.author);
        let r = self.ops.insert(id.as_slice(), row.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}

/// A row copied out of a table: key and value.
type RawRow = (Vec<u8>, Vec<u8>);

/// The `floating` rows in `range`, copied out.
fn floating_rows<'a>(
    table: &redb::Table<'_, &'static [u8], &'static [u8]>,
    range: impl std::ops::RangeBounds<&'a [u8]> + 'a,
) -> Result<Vec<RawRow>, redb::StorageError> {
    let mut out = Vec::new();
    for row in table.range::<&[u8]>(range)? {
        let (k, v) = row?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// An `ops` row: status (0 floating, 1 witnessed) ‖ wall_ms u64 LE ‖ counter u32 LE ‖ author.
fn encode_op_row(status: Status, hlc: crate::op::Hlc, author: &[u8; 32]) -> [u8; 45] {
    let mut row = [0u8; 45];
    row[0] = u8::from(status == Status::Witnessed);
    row[1..9].copy_from_slice(&hlc.wall_ms.to_le_bytes());
    row[9..13].copy_from_slice(&hlc.counter.to_le_bytes());
    row[13..].copy_from_slice(author);
    row
}

fn decode_op_row(row: &[u8]) -> Option<(Status, crate::op::Hlc, [u8; 32])> {
    let row: &[u8; 45] = row.try_into().ok()?;
    let status = match row[0] {
        0 => Status::Floating,
        1 => Status::Witnessed,
        _ => return None,
    };
    let hlc = crate::op::Hlc {
        wall_ms: u64::from_le_bytes(row[1..9].try_into().ok()?),
        counter: u32::from_le_bytes(row[9..13].try_into().ok()?),
    };
    Some((status, hlc, row[13..].try_into().ok()?))
}

impl Intentions for RedbIntentions<'_> {
    fn get(&mut self, id: &OpId) -> Result<Option<(Status, crate::op::Hlc, [u8; 32])>, HostError> {
        let raw = self.ops.get(id.as_slice()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(row) => match decode_op_row(&row) {
                Some(r) => Ok(Some(r)),
                None => self.corrupt(format!("`ops` row of {} is not a 45-byte op record", hex::encode(id))),
            },
        }
    }

    fn witness_tip(&mut self, author: &[u8; 32]) -> Result<Option<OpId>, HostError> {
        let raw = self.tips.get(author.as_slice()).map(|v| v.map(|g| g.value().to_vec()));
        match stash(&mut self.err, raw)? {
            None => Ok(None),
            Some(v) => match <OpId>::try_from(v.as_slice()) {
                Ok(id) => Ok(Some(id)),
                Err(_) => self.corrupt(format!("`witness_tips` row of {} is not 32 bytes", hex::encode(author))),
            },
        }
    }

    fn any_floating(&mut self) -> Result<bool, HostError> {
        let r = self.floating.first().map(|f| f.is_some());
        stash(&mut self.err, r)
    }

    fn floating_prevs(&mut self) -> Result<Vec<OpId>, HostError> {
        let rows = floating_rows(&self.floating, ..);
        let mut prevs: Vec<OpId> = Vec::new();
        for (k, _) in stash(&mut self.err, rows)? {
            match <OpId>::try_from(&k[..32.min(k.len())]) {
                Ok(p) if prevs.last() != Some(&p) => prevs.push(p),
                Ok(_) => {}
                Err(_) => return self.corrupt("a `floating` key is shorter than 64 bytes".into()),
            }
        }
        Ok(prevs)
    }

    fn floating_by_prev(&mut self, prev: &OpId) -> Result<Vec<(OpId, u64, Op)>, HostError> {
        let (lo, hi) = ([prev.as_slice(), &[0u8; 32]].concat(), [prev.as_slice(), &[0xffu8; 32]].concat());
        let rows = floating_rows(&self.floating, lo.as_slice()..=hi.as_slice());
        let mut out = Vec::new();
        for (k, v) in stash(&mut self.err, rows)? {
            let parsed = (k.len() == 64 && v.len() >= 8)
                .then(|| Some((<OpId>::try_from(&k[32..]).ok()?, u64::from_le_bytes(v[..8].try_into().ok()?), Op::decode(&v[8..]).ok()?)))
                .flatten();
            match parsed {
                Some(entry) => out.push(entry),
                None => return self.corrupt(format!("`floating` row {} does not decode", hex::encode(&k))),
            }
        }
        Ok(out)
    }

    fn add_floating(&mut self, id: &OpId, arrival: u64, op: &Op) -> Result<(), HostError> {
        self.record(id, Status::Floating, op)?;
        let mut value = arrival.to_le_bytes().to_vec();
        value.extend_from_slice(&op.encode());
        let r = self.floating.insert([op.prev.as_slice(), id.as_slice()].concat().as_slice(), value.as_slice()).map(drop);
        stash(&mut self.err, r)
    }

    fn witness(&mut self, id: &OpId, op: &Op) -> Result<(), HostError> {
        let r = self.floating.remove([op.prev.as_slice(), id.as_slice()].concat().as_slice()).map(drop);
        stash(&mut self.err, r)?;
        self.record(id, Status::Witnessed, op)?;
        let r = self.tips.insert(op.author.as_slice(), id.as_slice()).map(drop);
        stash(&mut self.err, r)
    }
}
