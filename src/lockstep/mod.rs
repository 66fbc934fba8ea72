//! Lockstep: two replicas fed the same ops side by side, compared after every delivery — the
//! first divergent op between two builds, with a key-level diff of rows and of reads. Used by
//! `verify` (explaining a golden mismatch), `certify`, `record` and `open --verify-history`;
//! none of them owns it, and nothing here knows about goldens or reports. Also `rechain` (ops
//! relinked after an edit) and `shrink` (a counterexample made small).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diff::{diff_rows, diff_views, KeyDiff};
use crate::history::{Header, History, Step};
use crate::op::{op_id, Op, OpId};
use crate::replay::{Delivered, HostFaults, MemStore, Stall};
use crate::replica::{Replica, ReplicaError, ReplicaFactory, FRAME_OPS};
use crate::store::Logic;

mod shrink;
pub use shrink::*;

/// The first op at which the reference and the candidate disagree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    pub op_index: u64,
    pub op_id: String,
    pub author: String,
    pub wall_ms: u64,
    pub counter: u32,
    /// The op's payload decoded for its store type (`null` if it does not decode or is longer
    /// than the history file's decoded-form limit).
    pub payload: Option<serde_json::Value>,
    /// What the reference build did with the op (`applied`, `duplicate`, or a reject kind).
    pub reference: String,
    pub candidate: String,
    pub reference_state_hash: String,
    pub candidate_state_hash: String,
    pub reference_observed_hash: String,
    pub candidate_observed_hash: String,
    /// Stored rows that differ, decoded.
    pub diff: Vec<KeyDiff>,
    /// Keys whose reads differ (the logic's views, decoded): the reference's read and this
    /// build's. Non-empty while `diff` is empty when the build changes only what readers see.
    pub read_diff: Vec<KeyDiff>,
}

/// Replays both builds; compares what each delivery did, the state hash and the observed hash
/// after every op from `start` on.
pub fn first_divergence(h: &History, reference: Logic, candidate: Logic, start: u64) -> Option<Divergence> {
    first_divergence_with(h, reference, (candidate, HostFaults::default()), start)
}

/// [`first_divergence`] with a candidate that replays on a host with seeded faults.
pub fn first_divergence_with(h: &History, reference: Logic, candidate: (Logic, HostFaults), start: u64) -> Option<Divergence> {
    first_divergence_streamed(&h.header(), h.ops.iter().cloned(), reference, candidate, start)
}

/// [`first_divergence_with`] over ops as they are read, holding none of them.
pub fn first_divergence_streamed(
    h: &Header,
    ops: impl Iterator<Item = Op>,
    reference: Logic,
    (candidate, faults): (Logic, HostFaults),
    start: u64,
) -> Option<Divergence> {
    let identity = h.identity();
    let mut r = MemStore::new(identity.clone(), reference);
    let mut c = MemStore::new(identity, candidate).with_faults(faults);
    first_divergence_of(h, ops, &mut r, &mut c, start).expect("in-memory replicas never fail")
}

/// The lockstep over any two replicas. Ops before `start` are delivered in frames of up to
/// [`FRAME_OPS`] without comparing (an outside replica answers each frame in one round trip);
/// from `start` on, one by one. An error is a replica that could not go on (which one it was is
/// in its message).
pub fn first_divergence_of(
    h: &Header,
    ops: impl Iterator<Item = Op>,
    r: &mut dyn Replica,
    c: &mut dyn Replica,
    start: u64,
) -> Result<Option<Divergence>, ReplicaError> {
    if !h.delivery.is_plain() {
        return planned(h, ops, r, c);
    }
    let mut ops = ops.peekable();
    let mut i = 0u64;
    while i < start {
        let chunk: Vec<Op> = ops.by_ref().take((start - i).min(FRAME_OPS as u64) as usize).collect();
        if chunk.is_empty() {
            break;
        }
        r.deliver_each(&chunk)?;
        c.deliver_each(&chunk)?;
        i += chunk.len() as u64;
    }
    for op in ops {
        let (rd, cd) = (r.deliver(&op)?, c.deliver(&op)?);
        let (rs, cs) = (r.stall(), c.stall());
        let (ro, co) = (delivered_text(&rd, rs.as_ref(), false), delivered_text(&cd, cs.as_ref(), false));
        if ro != co || r.state_hash()? != c.state_hash()? || r.observed_hash()? != c.observed_hash()? {
            let (ro, co) = (delivered_text(&rd, rs.as_ref(), true), delivered_text(&cd, cs.as_ref(), true));
            return Ok(Some(divergence_at(h, i, &op, ro, co, r, c)?));
        }
        i += 1;
    }
    Ok(None)
}

/// The lockstep of a history with a delivery plan (FORMAT §10.9): restarts where it says, a
/// batch delivered whole to both and compared as one step (a divergence names its first op).
fn planned(
    h: &Header,
    ops: impl Iterator<Item = Op>,
    r: &mut dyn Replica,
    c: &mut dyn Replica,
) -> Result<Option<Divergence>, ReplicaError> {
    let mut ops = ops.peekable();
    let (mut walk, mut i) = (h.delivery.walk(), 0u64);
    loop {
        let step = walk.next(i);
        if step == Step::Restart {
            r.restart()?;
            c.restart()?;
            continue;
        }
        let Some(first) = ops.peek().cloned() else { return Ok(None) };
        let (same, ro, co, len) = match step {
            Step::Batch { len } => {
                let batch: Vec<Op> = ops.by_ref().take(len as usize).collect();
                let (ra, rw) = r.deliver_batch(&batch)?;
                let (ca, cw) = c.deliver_batch(&batch)?;
                let text = |each: &[Delivered], whole: &Delivered, s: Option<&Stall>, explain: bool| {
                    let each: Vec<String> = each
                        .iter()
                        .map(|d| match d {
                            Delivered::Received { .. } => "received".to_string(),
                            d => delivered_text(d, None, false),
                        })
                        .collect();
                    format!("batch of {} ({}): {}", batch.len(), each.join(", "), delivered_text(whole, s, explain))
                };
                let (rs, cs) = (r.stall(), c.stall());
                let same = text(&ra, &rw, rs.as_ref(), false) == text(&ca, &cw, cs.as_ref(), false);
                (same, text(&ra, &rw, rs.as_ref(), true), text(&ca, &cw, cs.as_ref(), true), batch.len() as u64)
            }
            // An op on its own: compared after each one, whatever the step's length.
            _ => {
                let op = ops.next().expect("peeked");
                let (rd, cd) = (r.deliver(&op)?, c.deliver(&op)?);
                let (rs, cs) = (r.stall(), c.stall());
                let same = delivered_text(&rd, rs.as_ref(), false) == delivered_text(&cd, cs.as_ref(), false);
                (same, delivered_text(&rd, rs.as_ref(), true), delivered_text(&cd, cs.as_ref(), true), 1)
            }
        };
        if !same || r.state_hash()? != c.state_hash()? || r.observed_hash()? != c.observed_hash()? {
            return Ok(Some(divergence_at(h, i, &first, ro, co, r, c)?));
        }
        i += len;
    }
}

fn divergence_at(
    h: &Header,
    i: u64,
    op: &Op,
    ro: String,
    co: String,
    r: &mut dyn Replica,
    c: &mut dyn Replica,
) -> Result<Divergence, ReplicaError> {
    Ok(Divergence {
        op_index: i,
        op_id: hex::encode(op_id(&h.store_id, op)),
        author: hex::encode(op.author),
        wall_ms: op.hlc.wall_ms,
        counter: op.hlc.counter,
        payload: (op.payload.len() <= crate::history::DECODED_MAX_PAYLOAD)
            .then(|| crate::decode::decode_payload(&h.store_type, &op.payload))
            .flatten(),
        reference: ro,
        candidate: co,
        reference_state_hash: r.state_hash()?.to_string(),
        candidate_state_hash: c.state_hash()?.to_string(),
        reference_observed_hash: r.observed_hash()?.to_string(),
        candidate_observed_hash: c.observed_hash()?.to_string(),
        diff: diff_rows(&h.store_type, &r.rows()?, &c.rows()?),
        read_diff: diff_views(&h.store_type, &r.views()?, &c.views()?),
    })
}

/// What one delivery did, in words compared between builds (a stall by its kind only: the
/// wording of a reason may differ between builds of one logic). `explain` adds the reason of a
/// `host_failure` stall (a Wasm build's fuel, trap, cap or watchdog) for the report.
pub fn delivered_text(d: &Delivered, stall: Option<&Stall>, explain: bool) -> String {
    match d {
        Delivered::Refused(r) => format!("refused on arrival ({})", r.kind.as_str()),
        Delivered::Redelivered => "redelivered".into(),
        Delivered::Skipped => "not delivered (its batch aborted)".into(),
        Delivered::Received { witnessed: 0, .. } => "floats".into(),
        Delivered::Received { witnessed, applied, stalled: false } => format!("witnessed {witnessed}, applied {applied}"),
        Delivered::Received { witnessed, applied, stalled: true } => match stall {
            Some(s) if explain && s.kind == crate::kernel::RejectKind::HostFailure => {
                format!("witnessed {witnessed}, applied {applied}, stalled ({}: {})", s.kind.as_str(), s.reason)
            }
            s => format!("witnessed {witnessed}, applied {applied}, stalled ({})", s.map_or("?", |s| s.kind.as_str())),
        },
    }
}

/// The first divergence between fresh replicas of two builds over `ops`.
pub fn lockstep(
    h: &Header,
    ops: impl Iterator<Item = Op>,
    baseline: &dyn ReplicaFactory,
    candidate: &dyn ReplicaFactory,
) -> Result<Option<Divergence>, ReplicaError> {
    let identity = h.identity();
    let (mut b, mut c) = (baseline.open(&identity)?, candidate.open(&identity)?);
    let d = first_divergence_of(h, ops, b.as_mut(), c.as_mut(), 0)?;
    if d.is_none() {
        b.finish()?;
        c.finish()?;
    }
    Ok(d)
}

/// Repairs `prev` links and `causal_deps` after ops of `h` were edited or removed. `ops` pairs
/// each kept op (possibly edited) with its id in `h`. A `prev` or dep that named an op of `h` is
/// pointed at that op's new id (a `prev` at the author's previous kept op, or zero if none; a dep
/// naming a removed op is dropped); links to ids outside `h` — injected faults — are kept.
pub fn rechain(h: &History, ops: &[(OpId, Op)]) -> Vec<Op> {
    let known: std::collections::BTreeSet<OpId> = h.ops.iter().map(|op| op_id(&h.store_id, op)).collect();
    let mut renamed: BTreeMap<OpId, OpId> = BTreeMap::new();
    let mut rebuilt: BTreeMap<OpId, Op> = BTreeMap::new();
    let mut tips: BTreeMap<[u8; 32], OpId> = BTreeMap::new();
    let mut out = Vec::with_capacity(ops.len());
    for (original, op) in ops {
        if let Some(again) = rebuilt.get(original) {
            // A redelivered op stays a redelivery of the rebuilt op.
            out.push(again.clone());
            continue;
        }
        let mut op = op.clone();
        if known.contains(&op.prev) {
            op.prev = tips.get(&op.author).copied().unwrap_or(crate::op::ZERO_HASH);
        }
        op.causal_deps = op.causal_deps.iter().filter_map(|d| if known.contains(d) { renamed.get(d).copied() } else { Some(*d) }).collect();
        op.causal_deps.sort();
        op.causal_deps.dedup();
        let new = op_id(&h.store_id, &op);
        renamed.insert(*original, new);
        tips.insert(op.author, new);
        rebuilt.insert(*original, op.clone());
        out.push(op);
    }
    out
}
