//! Golden files: the expected outcome of replaying one corpus history, fixed per store type.
//!
//! A golden records the history's digest, the delivery counts, where projection stalls (the op's
//! arrival index and reject kind) or none, which ops are still floating at the end, the state hash
//! every [`CHECKPOINT_INTERVAL`] deliveries, and the final state hash — each state hash beside the
//! observed hash of the same moment (what readers see). It
//! is only ever produced by running the real code (`bless`), written as *pending* beside the
//! accepted file, and accepted explicitly (`bless --accept`): an accepted golden is never
//! silently overwritten. Normative: docs/FORMAT.md, "Golden file".

pub mod migration;

pub use migration::{
    bless_migrations, compute_migration_golden, compute_migration_golden_streamed, compute_migration_golden_with, migration_candidates,
    migration_golden_path, migration_golden_paths, review_migrations, verify_migrations, GoldenBuild, MigrationGolden,
    MigrationGoldenError,
};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corpus::{self, CorpusError, ManifestEntry};
use crate::expect::{Read, Unmet};
use crate::history::History;
use crate::kernel::RejectKind;
use crate::replay::{HostFaults, MemStore};
use crate::replica::{Replica, ReplicaError};
use crate::store::Logic;

mod bless;
pub use bless::*;

/// Deliveries between two checkpoints.
pub const CHECKPOINT_INTERVAL: u64 = 64;
const GOLDEN_TAG: &str = "lattice-conform/golden";
const GOLDEN_VERSION: u32 = 4;
/// Suffix of a golden waiting for review.
pub const PENDING_SUFFIX: &str = ".pending";

/// The expected outcome of one history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    pub format: String,
    pub format_version: u32,
    /// `<store_type>/<name>`.
    pub history: String,
    /// blake3 of the history file.
    pub history_blake3: String,
    pub store_type: String,
    pub schema_version: u64,
    /// Ops in the history (each delivered once, in history order).
    pub ops: u64,
    /// Deliveries refused on arrival (encoding limits).
    pub refused: u64,
    /// Deliveries of an op already received.
    pub redelivered: u64,
    /// Ops witnessed (their `prev` and `causal_deps` were there).
    pub witnessed: u64,
    /// Witnessed ops projected into the state.
    pub applied: u64,
    /// Where projection stalled, if it did.
    pub stall: Option<StallAt>,
    /// Arrival indices of the ops still floating after the last delivery, ascending.
    pub floating: Vec<u64>,
    pub checkpoint_interval: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub final_state_hash: String,
    /// What readers see at the end (docs/FORMAT.md, "Observed state").
    pub final_observed_hash: String,
    /// What a reader sees at the end, key by key (or the whole log), for a small end state
    /// (docs/FORMAT.md §12.2); written by `bless` for review, not compared by `verify` (the
    /// observed hash covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<Vec<Read>>,
}

/// The op at which projection stalled (by arrival index) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallAt {
    pub op_index: u64,
    pub kind: RejectKind,
}

impl std::fmt::Display for StallAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stalled at op {} ({})", self.op_index, self.kind.as_str())
    }
}

/// The state hash and the observed hash after the first `after_ops` deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub after_ops: u64,
    pub state_hash: String,
    pub observed_hash: String,
}

/// Errors reading or writing goldens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoldenError {
    #[error("{path}: missing golden for history `{history}` (run `lattice-conform bless`, review, then `bless --accept`)")]
    Missing { path: PathBuf, history: String },
    #[error("{path}: cannot read or write")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing migration golden for history `{history}` (run `lattice-conform bless`, review, then `bless --accept`)")]
    MissingMigration { path: PathBuf, history: String },
    #[error("pattern `{pattern}` matches no pending golden (pending: {pending})")]
    NoPendingMatch { pattern: String, pending: String },
    #[error("pattern `{pattern}`: not a glob: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("{golden}: not a golden directory of the corpus {corpus}: {why} (is --golden or --corpus wrong?)")]
    NotThisCorpus { golden: PathBuf, corpus: PathBuf, why: String },
}

/// Replays `history` with `logic` and records its golden.
pub fn compute(history: &History, logic: Logic, entry: &ManifestEntry) -> Golden {
    compute_with(history, logic, HostFaults::default(), entry)
}

/// [`compute`] on a host with seeded faults (a `native-fault:` build of the delivery, kernel or
/// hash layer); with none it is `compute`.
pub fn compute_with(history: &History, logic: Logic, faults: HostFaults, entry: &ManifestEntry) -> Golden {
    compute_streamed(&history.header(), history.ops.iter().cloned(), logic, faults, entry)
}

/// [`compute_with`] over ops as they are read (a history stream), holding none of them; with the
/// end state's reads (§12.2), as `bless` writes it.
pub fn compute_streamed(
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    logic: Logic,
    faults: HostFaults,
    entry: &ManifestEntry,
) -> Golden {
    compute_checked(header, ops, logic, faults, entry).golden
}

/// A golden and the history's expectations (§10.10) the run did not meet.
pub struct Computed {
    pub golden: Golden,
    pub unmet: Vec<Unmet>,
}

/// [`compute_streamed`] that also checks the history's expected reads.
pub fn compute_checked(
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    logic: Logic,
    faults: HostFaults,
    entry: &ManifestEntry,
) -> Computed {
    let mut store = MemStore::new(header.identity(), logic).with_faults(faults);
    compute_expecting(header, ops, &mut store, entry, true).expect("an in-memory replica never fails")
}

/// The golden of the ops delivered to `replica` (any build: in memory, or an outside process
/// fed in frames that end on the checkpoints). An error is a replica that could not go on.
pub fn compute_on(
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    store: &mut dyn Replica,
    entry: &ManifestEntry,
) -> Result<Golden, ReplicaError> {
    compute_expecting(header, ops, store, entry, false).map(|c| c.golden)
}

/// [`compute_on`] that also reads the history's expectations at their points, and, with
/// `reads`, the end state's reads when the history is small (§12.2).
pub fn compute_expecting(
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    store: &mut dyn Replica,
    entry: &ManifestEntry,
    reads: bool,
) -> Result<Computed, ReplicaError> {
    let mut unmet = Vec::new();
    let stops = crate::expect::stops(&header.expect);
    let mut at_stop = |r: &mut dyn Replica, at: u64| check_expected(&header.store_type, &header.expect, at, r, &mut unmet);
    let (cps, done) = crate::replica::run_plan_stopping(store, ops, &header.delivery, CHECKPOINT_INTERVAL, &stops, &mut at_stop)?;
    let checkpoints = cps
        .into_iter()
        .map(|(after_ops, state, observed)| Checkpoint { after_ops, state_hash: state.to_string(), observed_hash: observed.to_string() })
        .collect();
    let observed = store.observed_hash()?.to_string();
    let state_hash = store.state_hash()?.to_string();
    let (counts, stall, floating) = (store.counts(), store.stall(), store.floating()?);
    let reads = match reads && done <= crate::expect::GOLDEN_READS_MAX_OPS {
        true => crate::expect::reads_of(&header.store_type, &store.views()?),
        false => None,
    };
    store.finish()?;
    let golden = Golden {
        format: GOLDEN_TAG.into(),
        format_version: GOLDEN_VERSION,
        history: entry.id(),
        history_blake3: entry.blake3.clone(),
        store_type: header.store_type.clone(),
        schema_version: header.schema_version,
        ops: done,
        refused: counts.refused,
        redelivered: counts.redelivered,
        witnessed: counts.witnessed,
        applied: counts.applied,
        stall: stall.map(|s| StallAt { op_index: s.op_index, kind: s.kind }),
        floating,
        checkpoint_interval: CHECKPOINT_INTERVAL,
        checkpoints,
        final_state_hash: state_hash,
        final_observed_hash: observed,
        reads,
    };
    Ok(Computed { golden, unmet })
}

/// The history's expectations read from `replica` at their points: called by the plan runner
/// each time `at` ops have been delivered and some expectation reads there.
fn check_expected(
    store_type: &str,
    expect: &[Read],
    at: u64,
    replica: &mut dyn Replica,
    unmet: &mut Vec<Unmet>,
) -> Result<(), ReplicaError> {
    let due: Vec<(usize, &Read)> = expect.iter().enumerate().filter(|(_, e)| e.after == Some(at)).collect();
    if due.is_empty() {
        return Ok(());
    }
    let views = replica.views()?;
    for (index, e) in due {
        let differences = crate::expect::check(store_type, e, &views);
        if !differences.is_empty() {
            let expected = Read { after: None, ..e.clone() }.describe();
            unmet.push(Unmet { index: index as u64, after: at, expected, differences });
        }
    }
    Ok(())
}

/// Path of the accepted golden of a corpus entry under `golden_dir`: the entry's path with a
/// `.json` extension whatever the history's form (`core__kvstore/x.lch` → `core__kvstore/x.json`).
pub fn path_for(golden_dir: &Path, entry: &ManifestEntry) -> PathBuf {
    let rel = entry.path.strip_suffix(".lch").map_or_else(|| entry.path.clone(), |stem| format!("{stem}.json"));
    golden_dir.join(rel)
}

fn pending_path(accepted: &Path) -> PathBuf {
    let mut s = accepted.as_os_str().to_owned();
    s.push(PENDING_SUFFIX);
    PathBuf::from(s)
}

/// Loads a golden file.
pub fn load(path: &Path, history: &str) -> Result<Golden, GoldenError> {
    if !path.exists() {
        return Err(GoldenError::Missing { path: path.to_path_buf(), history: history.to_string() });
    }
    let text = std::fs::read_to_string(path).map_err(|source| GoldenError::Io { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// Parses the text of a golden file read from `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<Golden, GoldenError> {
    crate::versioned::check(text, path, GOLDEN_TAG, GOLDEN_VERSION)?;
    serde_json::from_str(text).map_err(|e| crate::versioned::json_error(path, &e).into())
}

/// The canonical text of a golden: pretty JSON with a trailing newline.
pub fn to_text(g: &Golden) -> String {
    let mut s = serde_json::to_string_pretty(g).expect("a golden always serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
