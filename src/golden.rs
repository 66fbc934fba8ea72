//! Golden files: the expected outcome of replaying one corpus history, fixed per store type.
//!
//! A golden records the history's digest, the delivery counts, where projection stalls (the op's
//! arrival index and reject kind) or none, which ops are still floating at the end, the state hash
//! every [`CHECKPOINT_INTERVAL`] deliveries, and the final state hash — each state hash beside the
//! observed hash of the same moment (what readers see). It
//! is only ever produced by running the real code (`bless`), written as *pending* beside the
//! accepted file, and accepted explicitly (`bless --accept`): an accepted golden is never
//! silently overwritten. Normative: docs/FORMAT.md, "Golden file".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corpus::{self, CorpusError, ManifestEntry};
use crate::history::History;
use crate::kernel::RejectKind;
use crate::replay::{HostFaults, MemStore};
use crate::store::Logic;

/// Deliveries between two checkpoints.
pub const CHECKPOINT_INTERVAL: u64 = 64;
const GOLDEN_TAG: &str = "lattice-conform/golden";
const GOLDEN_VERSION: u32 = 3;
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
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
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

/// [`compute_with`] over ops as they are read (a history stream), holding none of them.
pub fn compute_streamed(
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    logic: Logic,
    faults: HostFaults,
    entry: &ManifestEntry,
) -> Golden {
    let mut store = MemStore::new(header.identity(), logic).with_faults(faults);
    let mut checkpoints = Vec::new();
    let mut done = 0u64;
    for op in ops {
        store.deliver(&op);
        done += 1;
        if done.is_multiple_of(CHECKPOINT_INTERVAL) {
            let observed_hash = store.observed_hash().to_string();
            checkpoints.push(Checkpoint { after_ops: done, state_hash: store.state_hash().to_string(), observed_hash });
        }
    }
    let observed = store.observed_hash().to_string();
    let out = store.outcome();
    Golden {
        format: GOLDEN_TAG.into(),
        format_version: GOLDEN_VERSION,
        history: entry.id(),
        history_blake3: entry.blake3.clone(),
        store_type: header.store_type.clone(),
        schema_version: header.schema_version,
        ops: done,
        refused: out.counts.refused,
        redelivered: out.counts.redelivered,
        witnessed: out.counts.witnessed,
        applied: out.counts.applied,
        stall: out.stall.map(|s| StallAt { op_index: s.op_index, kind: s.kind }),
        floating: out.floating,
        checkpoint_interval: CHECKPOINT_INTERVAL,
        checkpoints,
        final_state_hash: out.state_hash.to_string(),
        final_observed_hash: observed,
    }
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

/// What `bless` did to one golden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlessAction {
    /// The accepted golden already says this.
    Unchanged,
    /// No accepted golden yet: a pending one was written.
    New,
    /// The accepted golden differs: a pending one was written beside it.
    Changed,
    /// A pending golden was accepted.
    Accepted,
}

/// Writes `golden` as pending unless the accepted file already holds exactly it. Never touches
/// the accepted file.
pub fn bless_one(golden_dir: &Path, entry: &ManifestEntry, golden: &Golden) -> Result<BlessAction, GoldenError> {
    bless_text(&path_for(golden_dir, entry), &to_text(golden))
}

/// Writes `text` as the pending version of `accepted` unless `accepted` already holds exactly it.
pub fn bless_text(accepted: &Path, text: &str) -> Result<BlessAction, GoldenError> {
    let action = match std::fs::read_to_string(accepted) {
        Ok(existing) if existing == text => BlessAction::Unchanged,
        Ok(_) => BlessAction::Changed,
        Err(_) => BlessAction::New,
    };
    let pending = pending_path(accepted);
    if action == BlessAction::Unchanged {
        let _ = std::fs::remove_file(&pending);
        return Ok(action);
    }
    corpus::write_atomic(&pending, text.as_bytes())?;
    Ok(action)
}

/// Accepts the pending golden of `entry`, if there is one.
pub fn accept_one(golden_dir: &Path, entry: &ManifestEntry) -> Result<Option<BlessAction>, GoldenError> {
    accept_path(&path_for(golden_dir, entry))
}

/// Replaces `accepted` with its pending version, if there is one.
pub fn accept_path(accepted: &Path) -> Result<Option<BlessAction>, GoldenError> {
    let pending = pending_path(accepted);
    if !pending.exists() {
        return Ok(None);
    }
    std::fs::rename(&pending, accepted).map_err(|source| GoldenError::Io { path: accepted.to_path_buf(), source })?;
    Ok(Some(BlessAction::Accepted))
}

/// Blesses (or with `accept`, accepts) the golden of every history of the corpus, optionally of
/// one store type. Goldens are computed with the registered native logic. Returns what happened
/// to each history, in manifest order.
pub fn bless_all(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    accept: bool,
    registry: &crate::registry::Registry,
) -> Result<Vec<(String, BlessAction)>, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    let mut out = Vec::new();
    for entry in manifest.files.iter().filter(|e| store_type.is_none_or(|t| t == e.store_type)) {
        let action = if accept {
            match accept_one(golden_dir, entry)? {
                Some(a) => a,
                None => continue,
            }
        } else {
            let mut stream = corpus::open_checked(corpus_dir, entry)?;
            let header = stream.header().clone();
            let logic = registry.resolve(&header.identity())?;
            let golden = compute_streamed(&header, stream.ops(), logic, HostFaults::default(), entry);
            stream.finish()?;
            bless_one(golden_dir, entry, &golden)?
        };
        out.push((entry.id(), action));
    }
    Ok(out)
}

/// Failures of `bless`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlessError {
    #[error(transparent)]
    Golden(#[from] GoldenError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}
