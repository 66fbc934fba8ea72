//! Shrinking a diverging history to a small counterexample (`certify`): cut after the divergent
//! op, drop chunks of ops, cut payloads; deterministic, and bounded in replays and time.

use serde::Serialize;

use super::{lockstep, rechain, Divergence};
use crate::history::History;
use crate::op::{op_id, Op, OpId};
use crate::replica::ReplicaFactory;

/// What shrinking a counterexample cost (docs/FORMAT.md §17.4): the replays it made and, when a
/// cap stopped it before it was done, which one (the counterexample still diverges, but may not
/// be minimal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Shrinking {
    pub replays: u32,
    pub stopped: Option<String>,
}

/// Most replays one shrink makes. Each replays the shrunk history through both builds from a fresh
/// replica — a fresh Wasm guest that regrows its memory, say — so the cap bounds a certify whose
/// candidate fails late or slowly. Deterministic: the same run stops at the same replay.
pub const SHRINK_REPLAYS: u32 = 64;

/// The wall-clock safety cap of one shrink, in seconds (reported when it stops one).
pub const SHRINK_SECONDS: u64 = 60;

/// The ops of `h` paired with their ids.
pub fn with_ids(h: &History) -> Vec<(OpId, Op)> {
    h.ops.iter().map(|op| (op_id(&h.store_id, op), op.clone())).collect()
}

/// Shrinks a diverging history: cut after the divergent op, then, while the builds still diverge,
/// drop chunks of ops (half of them, then a quarter, … then single ops, from the back) and cut
/// payloads (all of one, then half, … then one byte), until neither makes progress.
/// Deterministic. The chunks keep the number of replays logarithmic when most ops do not matter —
/// above all when the candidate fails on one op whatever else is there (a Wasm guest hitting a
/// limit), where each replay costs a full per-op allowance.
/// A replica that fails during shrinking counts as not reproducing the divergence (the shrunk
/// history is then a larger one, never a wrong one). At most [`SHRINK_REPLAYS`] replays, and
/// [`SHRINK_SECONDS`] of wall time, are spent: past either, every further candidate counts as
/// not diverging, and [`Shrinking::stopped`] says which cap was hit.
pub fn shrink(
    h: History,
    d: Divergence,
    baseline: &dyn ReplicaFactory,
    candidate: &dyn ReplicaFactory,
) -> (History, Divergence, Shrinking) {
    let started = std::time::Instant::now();
    let spent = std::cell::RefCell::new(Shrinking::default());
    let diverges = |base: &History, ops: &[(OpId, Op)]| {
        if ops.is_empty() {
            return None;
        }
        let mut s = spent.borrow_mut();
        if s.stopped.is_none() && s.replays >= SHRINK_REPLAYS {
            s.stopped = Some(format!("the cap of {SHRINK_REPLAYS} replays"));
        } else if s.stopped.is_none() && started.elapsed().as_secs() >= SHRINK_SECONDS {
            s.stopped = Some(format!("the wall-clock cap of {SHRINK_SECONDS} s, after {} replays", s.replays));
        }
        if s.stopped.is_some() {
            return None;
        }
        s.replays += 1;
        drop(s);
        let ops = rechain(base, ops);
        let cand = History { delivery: base.delivery.clamped(ops.len() as u64), ops, ..base.clone() };
        lockstep(&cand.header(), cand.ops.iter().cloned(), baseline, candidate).ok().flatten().map(|d| (cand, d))
    };
    let mut best = cut((History { provenance: None, ..h }, d));
    loop {
        let before = best.0.ops.len();
        drop_ops(&mut best, &diverges);
        let cut_payloads = cut_payloads(&mut best, &diverges);
        if best.0.ops.len() == before && !cut_payloads || spent.borrow().stopped.is_some() {
            return (best.0, best.1, spent.into_inner());
        }
    }
}

type Diverges<'a> = dyn Fn(&History, &[(OpId, Op)]) -> Option<(History, Divergence)> + 'a;

/// Removes chunks of ops (halves, quarters, … single ops; each pass from the back) while the
/// builds still diverge.
fn drop_ops(best: &mut (History, Divergence), diverges: &Diverges) {
    let mut chunk = best.0.ops.len().div_ceil(2).max(1);
    loop {
        let mut removed = false;
        let mut end = best.0.ops.len();
        while end > 0 {
            let start = end.saturating_sub(chunk);
            let mut ops = with_ids(&best.0);
            ops.drain(start..end);
            match diverges(&best.0, &ops) {
                Some(found) => {
                    *best = cut(found);
                    removed = true;
                    end = start.min(best.0.ops.len());
                }
                None => end = start,
            }
        }
        if chunk == 1 && !removed {
            return;
        }
        chunk = (chunk / 2).max(1);
    }
}

/// Shortens payloads from their end — the whole payload, then half, … then one byte — while the
/// builds still diverge. Whether anything was cut.
fn cut_payloads(best: &mut (History, Divergence), diverges: &Diverges) -> bool {
    let mut any = false;
    let mut i = 0;
    while i < best.0.ops.len() {
        let len = best.0.ops[i].payload.len();
        let cuts = std::iter::successors(Some(len), |&k| (k > 1).then_some(k / 2)).filter(|&k| k > 0);
        let shorter = cuts.into_iter().find_map(|k| {
            let mut ops = with_ids(&best.0);
            ops[i].1.payload.truncate(len - k);
            diverges(&best.0, &ops)
        });
        match shorter {
            Some(found) => {
                *best = cut(found);
                any = true;
            }
            None => i += 1,
        }
    }
    any
}

fn cut((h, d): (History, Divergence)) -> (History, Divergence) {
    // A divergence in a batch is named by the batch's first op; the batch is kept whole.
    let end = h.delivery.batches.iter().find(|b| b.start == d.op_index).map_or(d.op_index + 1, |b| b.start + b.len);
    let ops = h.ops[..end as usize].to_vec();
    (History { delivery: h.delivery.clamped(ops.len() as u64), ops, ..h }, d)
}
