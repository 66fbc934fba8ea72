//! The write path of an open [`Store`]: batched delivery (receive, witness, project) with the
//! log and the state committed per batch, the stall recorded in the same transaction, and the
//! catch-up of a state that lags its log.

use lattice_logic::HostError;
use redb::ReadableDatabase;
use serde::Serialize;

use super::chain::{self, Pairing};
use super::error::RedbContext;
use super::layout::*;
use super::snapshot::{log_count, read_log};
use super::tables::{stashed, RedbChain, RedbData, RedbIntentions};
use super::{PauseRecord, Store, StoreError, BATCH};
use crate::delivery::{self, Arrival, DagView};
use crate::kernel;
use crate::op::Op;

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

impl Store {
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

    /// Delivers log entries the state has not seen yet (after a crash between the two commits,
    /// or into the empty `state.db` of a rebuild).
    ///
    /// The tail is checked against `log.db`'s chain before anything is delivered (`pairing`).
    pub(super) fn catch_up(&mut self, pairing: Pairing) -> Result<(), StoreError> {
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
