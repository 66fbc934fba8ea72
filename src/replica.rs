//! The one seam every engine drives: a [`Replica`] is a whole store replica — delivery,
//! witnessing, projection and stall rules, and the rows it stores — fed ops one at a time, as a
//! batch, or across a restart, and read back.
//!
//! Implementations: [`MemStore`] (the in-memory replay with native, fault or Wasm logic) and the
//! outside module's `ExecReplica` (an outside build: a process speaking docs/BUILD_PROTOCOL.md).
//! A [`ReplicaFactory`] makes a fresh replica per history; `BuildSpec::factory` (in `build`, a
//! layer above) resolves a `--build` to one.
//!
//! An in-memory replica never fails; an outside one can (it hangs, dies, answers garbage): every
//! method returns a [`ReplicaError`] then, and the engines turn it into an "unusable build"
//! verdict (exit 2) naming the history and the op, never a pass.

use std::collections::BTreeMap;

use crate::hash::StateHash;
use crate::history::Step;
use crate::op::Op;
use crate::replay::{Counts, Delivered, MemStore, Stall};
use crate::store::StoreIdentity;

/// Why an outside replica could not go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplicaError(pub String);

/// A store replica under test.
pub trait Replica: Send {
    /// Delivers one op on its own (one ingest): received, witnessed and projected.
    fn deliver(&mut self, op: &Op) -> Result<Delivered, ReplicaError>;
    /// Delivers each op on its own, in order (one ingest each); an outside replica sends them in
    /// one frame. The results are those of [`Replica::deliver`] called for each.
    fn deliver_each(&mut self, ops: &[Op]) -> Result<Vec<Delivered>, ReplicaError> {
        ops.iter().map(|op| self.deliver(op)).collect()
    }
    /// Delivers each op on its own, in order, and gives the state hash and observed hash after
    /// every delivery whose count (from the store's first) is a multiple of `every`, with that
    /// count. An outside replica keeps frames in flight while it takes answers in.
    fn deliver_checkpointed(&mut self, ops: &[Op], every: u64) -> Result<Vec<Checkpoint>, ReplicaError> {
        let mut out = Vec::new();
        for op in ops {
            self.deliver(op)?;
            let n = self.counts().delivered;
            if n.is_multiple_of(every) {
                out.push((n, self.state_hash()?, self.observed_hash()?));
            }
        }
        Ok(out)
    }
    /// Delivers `ops` as one batch (one ingest, docs/FORMAT.md §4.5): each op's receipt, and
    /// what the batch as a whole witnessed and applied ([`Delivered::Skipped`] if it aborted).
    fn deliver_batch(&mut self, ops: &[Op]) -> Result<(Vec<Delivered>, Delivered), ReplicaError>;
    /// Closes the replica and reopens it from what it stores (an in-memory replica keeps
    /// everything a store directory keeps, so for it this changes nothing).
    fn restart(&mut self) -> Result<(), ReplicaError>;
    /// The state hash (docs/FORMAT.md §8) of the rows it stores now.
    fn state_hash(&mut self) -> Result<StateHash, ReplicaError>;
    /// The observed hash (§8.6) of its views now.
    fn observed_hash(&mut self) -> Result<StateHash, ReplicaError>;
    /// Where projection stalled, if it did.
    fn stall(&self) -> Option<Stall>;
    /// Running totals over all deliveries.
    fn counts(&self) -> Counts;
    /// Arrival indices of the ops still floating, ascending.
    fn floating(&mut self) -> Result<Vec<u64>, ReplicaError>;
    /// The `data` rows in key order.
    fn rows(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError>;
    /// Every key's view, in key order (rows readers do not see, or that cannot be viewed, absent).
    fn views(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError>;
    /// Ends the replica: an outside build is told the history is over and checked one last time
    /// (its stored rows against what it reported). Dropping without `finish` also ends it.
    fn finish(&mut self) -> Result<(), ReplicaError> {
        Ok(())
    }
}

/// Ops handed to a replica at once where no answer is needed in between: at most this many go
/// in one DELIVER frame to an outside build (docs/BUILD_PROTOCOL.md §4); the goldens' checkpoint
/// interval, so checkpoints fall on frame boundaries.
pub const FRAME_OPS: usize = 64;

/// Delivers `ops` each on its own, in order, in frames of [`FRAME_OPS`] (nothing is read back in
/// between); the number of ops delivered.
pub fn deliver_all(replica: &mut dyn Replica, ops: impl Iterator<Item = Op>) -> Result<u64, ReplicaError> {
    let (mut ops, mut n) = (ops.peekable(), 0u64);
    while ops.peek().is_some() {
        let frame: Vec<Op> = ops.by_ref().take(FRAME_OPS).collect();
        replica.deliver_each(&frame)?;
        n += frame.len() as u64;
    }
    Ok(n)
}

/// Ops read from a history and handed to a replica at once (a multiple of any checkpoint
/// interval that divides 4096; an outside build receives them as frames, several in flight).
pub const DELIVER_CHUNK: usize = 4096;

/// Delivers a history's ops, read in order, to `replica` as the history's delivery plan says
/// (docs/FORMAT.md §10.9: batches as one ingest, restarts between ops), and returns the
/// checkpoints: (deliveries so far, state hash, observed hash) after every `every`-th delivery,
/// except where that falls strictly inside a batch. Also returns the number of ops read.
pub fn run_plan(
    replica: &mut dyn Replica,
    ops: impl Iterator<Item = Op>,
    plan: &crate::history::Delivery,
    every: u64,
) -> Result<(Vec<Checkpoint>, u64), ReplicaError> {
    run_plan_stopping(replica, ops, plan, every, &[], &mut |_, _| Ok(()))
}

/// [`run_plan`] that also calls `at_stop(replica, n)` when `n` ops have been delivered, for each
/// `n` in `stops` (ascending): before the restarts due there, and never inside a batch (a stop
/// there is taken when the batch ends). The expected reads of a history are read this way.
pub fn run_plan_stopping(
    replica: &mut dyn Replica,
    ops: impl Iterator<Item = Op>,
    plan: &crate::history::Delivery,
    every: u64,
    stops: &[u64],
    at_stop: &mut dyn FnMut(&mut dyn Replica, u64) -> Result<(), ReplicaError>,
) -> Result<(Vec<Checkpoint>, u64), ReplicaError> {
    let mut ops = ops.peekable();
    let (mut walk, mut at, mut checkpoints) = (plan.walk(), 0u64, Vec::new());
    let mut stops = stops.iter().copied().peekable();
    loop {
        while stops.next_if(|s| *s <= at).is_some() {
            at_stop(replica, at)?;
        }
        match walk.next(at) {
            Step::Restart => replica.restart()?,
            _ if ops.peek().is_none() => return Ok((checkpoints, at)),
            Step::Batch { len } => {
                let batch: Vec<Op> = ops.by_ref().take(len as usize).collect();
                replica.deliver_batch(&batch)?;
                at += batch.len() as u64;
                if at.is_multiple_of(every) {
                    checkpoints.push((at, replica.state_hash()?, replica.observed_hash()?));
                }
            }
            Step::Each { until } => {
                let until = [until, stops.peek().copied()].into_iter().flatten().min();
                let room = until.map_or(DELIVER_CHUNK as u64, |m| (m - at).min(DELIVER_CHUNK as u64));
                let chunk: Vec<Op> = ops.by_ref().take(room as usize).collect();
                checkpoints.extend(replica.deliver_checkpointed(&chunk, every)?);
                at += chunk.len() as u64;
            }
        }
    }
}

/// (deliveries so far, state hash, observed hash) at a checkpoint.
pub type Checkpoint = (u64, StateHash, StateHash);

/// Makes a fresh, empty replica for a store identity.
pub trait ReplicaFactory: Send + Sync {
    fn open(&self, identity: &StoreIdentity) -> Result<Box<dyn Replica>, ReplicaError>;
}

impl Replica for MemStore {
    fn deliver(&mut self, op: &Op) -> Result<Delivered, ReplicaError> {
        Ok(MemStore::deliver(self, op))
    }

    fn deliver_batch(&mut self, ops: &[Op]) -> Result<(Vec<Delivered>, Delivered), ReplicaError> {
        Ok(MemStore::deliver_batch(self, ops))
    }

    fn restart(&mut self) -> Result<(), ReplicaError> {
        Ok(())
    }

    fn state_hash(&mut self) -> Result<StateHash, ReplicaError> {
        Ok(MemStore::state_hash(self))
    }

    fn observed_hash(&mut self) -> Result<StateHash, ReplicaError> {
        Ok(MemStore::observed_hash(self))
    }

    fn stall(&self) -> Option<Stall> {
        MemStore::stall(self).cloned()
    }

    fn counts(&self) -> Counts {
        MemStore::counts(self)
    }

    fn floating(&mut self) -> Result<Vec<u64>, ReplicaError> {
        Ok(MemStore::floating(self))
    }

    fn rows(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError> {
        Ok(MemStore::rows(self).clone())
    }

    fn views(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError> {
        Ok(MemStore::views(self).clone())
    }
}

/// In-memory replicas of one logic on a host with (possibly no) seeded faults.
pub struct MemFactory {
    pub logic: crate::store::Logic,
    pub faults: crate::replay::HostFaults,
}

impl ReplicaFactory for MemFactory {
    fn open(&self, identity: &StoreIdentity) -> Result<Box<dyn Replica>, ReplicaError> {
        Ok(Box::new(MemStore::new(identity.clone(), self.logic.clone()).with_faults(self.faults)))
    }
}
