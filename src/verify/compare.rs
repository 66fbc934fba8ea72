//! Comparing a run with its golden: the fields that differ (`Field`, the adequacy kill matrix's columns) and the one line that says the first of them.

use super::*;

/// What part of a history's expected outcome a build got wrong (the columns of the adequacy kill
/// matrix): the first four and the last two are golden fields, the others come from the
/// migration goldens and the convergence check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Where (or whether) projection stalls.
    Stall,
    /// A checkpoint's state hash or observed hash.
    Checkpoint,
    /// The final state hash.
    StateHash,
    /// The final observed hash (what readers see).
    ObservedHash,
    /// The migration golden of the history's final state.
    MigrationGolden,
    /// The convergence check's verdict.
    Convergence,
    /// The ops still floating at the end.
    Floating,
    /// The delivery counts (refused, redelivered, witnessed, applied).
    Counts,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Stall,
        Field::Checkpoint,
        Field::StateHash,
        Field::ObservedHash,
        Field::MigrationGolden,
        Field::Convergence,
        Field::Floating,
        Field::Counts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Stall => "stall",
            Field::Checkpoint => "checkpoint",
            Field::StateHash => "state_hash",
            Field::ObservedHash => "observed_hash",
            Field::MigrationGolden => "migration_golden",
            Field::Convergence => "convergence",
            Field::Floating => "floating",
            Field::Counts => "counts",
        }
    }
}

/// Every golden field in which `actual` differs from `expected` (empty: the run reproduces the
/// golden). [`compare`] says the first of them in words.
pub fn differing_fields(expected: &Golden, actual: &Golden) -> Vec<Field> {
    let counts = |g: &Golden| (g.refused, g.redelivered, g.witnessed, g.applied, g.checkpoints.len());
    [
        (Field::Stall, expected.stall != actual.stall),
        (Field::Checkpoint, expected.checkpoints.iter().zip(&actual.checkpoints).any(|(e, a)| e != a)),
        (Field::StateHash, expected.final_state_hash != actual.final_state_hash),
        (Field::ObservedHash, expected.final_observed_hash != actual.final_observed_hash),
        (Field::Floating, expected.floating != actual.floating),
        (Field::Counts, counts(expected) != counts(actual)),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect()
}

/// The first difference between the golden and this run, in the order a reader wants it.
pub fn compare(expected: &Golden, actual: &Golden) -> Option<String> {
    if expected.history_blake3 != actual.history_blake3 {
        return Some(format!(
            "the golden was made from history {} but the history is now {}",
            expected.history_blake3, actual.history_blake3
        ));
    }
    if expected.stall != actual.stall {
        return Some(format!("stall: expected {}, got {}", stall_text(&expected.stall), stall_text(&actual.stall)));
    }
    for (e, a) in expected.checkpoints.iter().zip(&actual.checkpoints) {
        if e.after_ops != a.after_ops {
            return Some(format!("checkpoint positions: expected one after {} ops, got one after {}", e.after_ops, a.after_ops));
        }
        if e.state_hash != a.state_hash {
            return Some(format!(
                "state hash at the checkpoint after {} ops: expected {}, got {}",
                e.after_ops, e.state_hash, a.state_hash
            ));
        }
        if e.observed_hash != a.observed_hash {
            return Some(format!(
                "observed hash at the checkpoint after {} ops: expected {}, got {} (the state hashes agree: this build changes what readers see)",
                e.after_ops, e.observed_hash, a.observed_hash
            ));
        }
    }
    if expected.final_state_hash != actual.final_state_hash {
        return Some(format!("final state hash: expected {}, got {}", expected.final_state_hash, actual.final_state_hash));
    }
    if expected.final_observed_hash != actual.final_observed_hash {
        return Some(format!(
            "final observed hash: expected {}, got {} (the state hashes agree: this build changes what readers see)",
            expected.final_observed_hash, actual.final_observed_hash
        ));
    }
    if expected.floating != actual.floating {
        return Some(format!("ops still floating at the end: expected {:?}, got {:?}", expected.floating, actual.floating));
    }
    // The end state's reads are for review; the observed hash, compared above, covers them.
    let unread = |g: &Golden| Golden { reads: None, ..g.clone() };
    if unread(expected) != unread(actual) {
        let counts = |g: &Golden| {
            format!(
                "{} refused / {} redelivered / {} witnessed / {} applied / {} checkpoints",
                g.refused,
                g.redelivered,
                g.witnessed,
                g.applied,
                g.checkpoints.len()
            )
        };
        return Some(format!("counts: expected {}, got {}", counts(expected), counts(actual)));
    }
    None
}

pub(super) fn stall_text(s: &Option<golden::StallAt>) -> String {
    s.as_ref().map_or_else(|| "no stall".into(), ToString::to_string)
}

/// Ops covered by the last checkpoint both runs agree on (0 if none).
pub(super) fn last_agreeing_checkpoint(expected: &Golden, actual: &Golden) -> u64 {
    expected.checkpoints.iter().zip(&actual.checkpoints).take_while(|(e, a)| e == a).last().map_or(0, |(e, _)| e.after_ops)
}
