//! A history's delivery plan (docs/FORMAT.md §10.9): which runs of ops are delivered as one
//! batch (§4.5) and before which ops the replica restarts (§4.6). Absent — every op delivered on
//! its own, no restart — in every history written before format version 2, and then written
//! nowhere, so those files keep their bytes.

use serde::{Deserialize, Serialize};

/// Where a history's delivery departs from "one op per ingest".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Runs of consecutive ops delivered as one batch: ascending, disjoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<Batch>,
    /// Op indices before which the replica restarts (an index equal to the op count: after the
    /// last op), strictly ascending, none strictly inside a batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<u64>,
}

/// Ops `start .. start + len` (0-based history indices) delivered as one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub start: u64,
    pub len: u64,
}

/// The next step of delivering a history by its plan ([`Walk::next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Close the replica and reopen it.
    Restart,
    /// The next `len` ops as one batch.
    Batch { len: u64 },
    /// The ops before index `until` each on its own (`None`: every op left).
    Each { until: Option<u64> },
}

/// A plan walked alongside a stream of ops whose count need not be known: the one walk every
/// engine that delivers a history by its plan uses.
pub struct Walk<'a> {
    batches: std::iter::Peekable<std::slice::Iter<'a, Batch>>,
    restarts: std::iter::Peekable<std::slice::Iter<'a, u64>>,
}

impl Walk<'_> {
    /// The next step when the ops before index `at` have been delivered: the restarts due there
    /// first (one step each), then a batch starting there, else the ops up to the next mark.
    pub fn next(&mut self, at: u64) -> Step {
        if self.restarts.next_if(|r| **r == at).is_some() {
            return Step::Restart;
        }
        if let Some(b) = self.batches.next_if(|b| b.start == at) {
            return Step::Batch { len: b.len };
        }
        Step::Each { until: [self.batches.peek().map(|b| b.start), self.restarts.peek().map(|r| **r)].into_iter().flatten().min() }
    }
}

impl Delivery {
    /// Whether every op is delivered on its own and nothing restarts.
    pub fn is_plain(&self) -> bool {
        self.batches.is_empty() && self.restarts.is_empty()
    }

    /// Checks the plan's own shape (the op count is checked by [`Delivery::check_len`]); the
    /// error names the field and entry.
    pub fn check(&self) -> Result<(), String> {
        let mut end = 0u64;
        for (i, b) in self.batches.iter().enumerate() {
            if b.len == 0 {
                return Err(format!("delivery.batches[{i}]: an empty batch (len 0)"));
            }
            if b.start < end {
                return Err(format!(
                    "delivery.batches[{i}]: starts at op {} inside or before the batch before it (which ends at op {end})",
                    b.start
                ));
            }
            end = b.start.checked_add(b.len).ok_or_else(|| format!("delivery.batches[{i}]: start + len overflows"))?;
        }
        for (i, w) in self.restarts.windows(2).enumerate() {
            if w[0] >= w[1] {
                return Err(format!("delivery.restarts[{}]: {} is not above the restart before it ({})", i + 1, w[1], w[0]));
            }
        }
        for (i, r) in self.restarts.iter().enumerate() {
            if let Some(b) = self.batches.iter().find(|b| b.start < *r && *r < b.start + b.len) {
                return Err(format!(
                    "delivery.restarts[{i}]: a restart before op {r} falls inside the batch of ops {} to {}",
                    b.start,
                    b.start + b.len - 1
                ));
            }
        }
        Ok(())
    }

    /// The batches as (start, len).
    pub fn batch_ranges(&self) -> Vec<(u64, u64)> {
        self.batches.iter().map(|b| (b.start, b.len)).collect()
    }

    /// Checks that the plan names no op past the `ops` the history holds.
    pub fn check_len(&self, ops: u64) -> Result<(), String> {
        if let Some((i, b)) = self.batches.iter().enumerate().find(|(_, b)| b.start + b.len > ops) {
            return Err(format!("delivery.batches[{i}]: ends at op {} but the history has {ops} ops", b.start + b.len - 1));
        }
        if let Some((i, r)) = self.restarts.iter().enumerate().find(|(_, r)| **r > ops) {
            return Err(format!("delivery.restarts[{i}]: a restart before op {r} but the history has {ops} ops"));
        }
        Ok(())
    }

    /// This plan for the first `ops` ops of the history only: the batches that end within them,
    /// the restarts up to their end (for a prefix or a shrunk copy of a history).
    pub fn clamped(&self, ops: u64) -> Delivery {
        Delivery {
            batches: self.batches.iter().copied().filter(|b| b.start + b.len <= ops).collect(),
            restarts: self.restarts.iter().copied().filter(|r| *r <= ops).collect(),
        }
    }

    /// A walk of this plan from the first op.
    pub fn walk(&self) -> Walk<'_> {
        Walk { batches: self.batches.iter().peekable(), restarts: self.restarts.iter().peekable() }
    }

    /// The binary form's plan block (§10.6, version 2): u32 batch count, per batch u64 start and
    /// u64 len; u32 restart count, per restart u64 index.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.batches.len() as u32).to_le_bytes());
        for b in &self.batches {
            out.extend_from_slice(&b.start.to_le_bytes());
            out.extend_from_slice(&b.len.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    }

    /// Parses a plan block, returning it and the bytes it took.
    pub fn from_bytes(b: &[u8]) -> Result<(Delivery, usize), String> {
        let mut at = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
            let s = b.get(at..at + n).ok_or_else(|| format!("the delivery plan is cut short at its {what}"))?;
            at += n;
            Ok(s)
        };
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        let nb = u32_(take(4, "batch count")?);
        let mut batches = Vec::new();
        for _ in 0..nb {
            let start = u64_(take(8, "batch start")?);
            let len = u64_(take(8, "batch length")?);
            batches.push(Batch { start, len });
        }
        let nr = u32_(take(4, "restart count")?);
        let mut restarts = Vec::new();
        for _ in 0..nr {
            restarts.push(u64_(take(8, "restart")?));
        }
        let plan = Delivery { batches, restarts };
        plan.check()?;
        Ok((plan, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_cover_every_op_once_with_restarts_between_and_bad_plans_are_named() {
        let plan = Delivery { batches: vec![Batch { start: 2, len: 3 }, Batch { start: 5, len: 1 }], restarts: vec![0, 2, 7, 8] };
        plan.check().unwrap();
        // Driven as the engines drive it, over 8 ops.
        let steps = |plan: &Delivery, ops: u64| {
            let (mut walk, mut at, mut out) = (plan.walk(), 0u64, Vec::new());
            loop {
                match walk.next(at) {
                    Step::Restart => out.push("restart".to_string()),
                    _ if at == ops => return out,
                    Step::Batch { len } => {
                        out.push(format!("batch {at}..{}", at + len));
                        at += len;
                    }
                    Step::Each { until } => {
                        let end = until.unwrap_or(ops).min(ops);
                        out.push(format!("each {at}..{end}"));
                        at = end;
                    }
                }
            }
        };
        let want = ["restart", "each 0..2", "restart", "batch 2..5", "batch 5..6", "each 6..7", "restart", "each 7..8", "restart"];
        assert_eq!(steps(&plan, 8), want);
        assert_eq!(steps(&Delivery::default(), 3), ["each 0..3"]);
        assert_eq!(Delivery::from_bytes(&plan.to_bytes()).unwrap(), (plan.clone(), plan.to_bytes().len()));
        assert!(plan.check_len(7).unwrap_err().contains("delivery.restarts[3]"));
        let overlap = Delivery { batches: vec![Batch { start: 2, len: 3 }, Batch { start: 4, len: 1 }], restarts: vec![] };
        assert!(overlap.check().unwrap_err().contains("delivery.batches[1]"));
        let inside = Delivery { batches: vec![Batch { start: 2, len: 3 }], restarts: vec![3] };
        assert!(inside.check().unwrap_err().contains("falls inside the batch of ops 2 to 4"));
        assert!(Delivery { batches: vec![Batch { start: 0, len: 0 }], restarts: vec![] }.check().is_err());
        assert!(Delivery { batches: vec![], restarts: vec![3, 3] }.check().is_err());
        assert!(Delivery::from_bytes(&[1, 0, 0, 0, 5]).is_err());
    }
}
