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
    /// A pending golden was rejected (deleted).
    Rejected,
}

impl BlessAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BlessAction::Unchanged => "unchanged",
            BlessAction::New => "new",
            BlessAction::Changed => "changed",
            BlessAction::Accepted => "accepted",
            BlessAction::Rejected => "rejected",
        }
    }
}

/// One golden `bless` looked at: its id, what happened, and for a new or changed golden the
/// readable review lines (a summary of a new golden, the fields a changed one changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blessed {
    pub id: String,
    pub action: BlessAction,
    pub detail: Vec<String>,
}

/// Writes `golden` as pending unless the accepted file already holds exactly it. Never touches
/// the accepted file. The detail lines review the change against the accepted golden.
pub fn bless_one(golden_dir: &Path, entry: &ManifestEntry, golden: &Golden) -> Result<Blessed, GoldenError> {
    let accepted = path_for(golden_dir, entry);
    let (action, replaced) = bless_text(&accepted, &to_text(golden))?;
    let detail = match (action, replaced) {
        (BlessAction::New, _) => {
            let reads = golden.reads.iter().flatten().map(|r| format!("reads {}", r.describe()));
            reads.chain([summary(golden)]).collect()
        }
        (BlessAction::Changed, Some(text)) => match parse(&text, &accepted) {
            Ok(old) => diff_lines(&old, golden),
            Err(e) => vec![format!("the accepted golden does not load ({e}); the pending one replaces it whole"), summary(golden)],
        },
        _ => vec![],
    };
    Ok(Blessed { id: entry.id(), action, detail })
}

/// Writes `text` as the pending version of `accepted` unless `accepted` already holds exactly it.
/// Returns what happened and, for a changed golden, the accepted text the pending one would
/// replace (read once here, for the review lines).
pub fn bless_text(accepted: &Path, text: &str) -> Result<(BlessAction, Option<String>), GoldenError> {
    let (action, replaced) = match std::fs::read_to_string(accepted) {
        Ok(existing) if existing == text => (BlessAction::Unchanged, None),
        Ok(existing) => (BlessAction::Changed, Some(existing)),
        Err(_) => (BlessAction::New, None),
    };
    let pending = pending_path(accepted);
    if action == BlessAction::Unchanged {
        let _ = std::fs::remove_file(&pending);
        return Ok((action, None));
    }
    corpus::write_atomic(&pending, text.as_bytes())?;
    Ok((action, replaced))
}

/// One line saying what a golden holds: ops, counts, stall, floating, final hashes.
pub fn summary(g: &Golden) -> String {
    format!(
        "{} ops ({} applied, {} witnessed, {} refused, {} redelivered), {}, {} floating, final state {}, observed {}",
        g.ops,
        g.applied,
        g.witnessed,
        g.refused,
        g.redelivered,
        g.stall.as_ref().map_or_else(|| "no stall".to_string(), ToString::to_string),
        g.floating.len(),
        short(&g.final_state_hash),
        short(&g.final_observed_hash)
    )
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// The review of a changed golden: one line per field that differs, old → new, and where the
/// checkpoints say so, the span of ops in which the state first differs.
pub fn diff_lines(old: &Golden, new: &Golden) -> Vec<String> {
    // What a reader sees first (small end states only), then the hashes.
    let mut out = match (&old.reads, &new.reads) {
        (None, None) => Vec::new(),
        (o, n) => crate::expect::diff_reads(o.as_deref(), n.as_deref()),
    };
    if old.history_blake3 != new.history_blake3 {
        out.push(format!("history: {} → {} (the history file changed)", short(&old.history_blake3), short(&new.history_blake3)));
    }
    let stall = |s: &Option<StallAt>| s.as_ref().map_or_else(|| "none".to_string(), ToString::to_string);
    if old.stall != new.stall {
        out.push(format!("halt: {} → {}", stall(&old.stall), stall(&new.stall)));
    }
    for (what, o, n) in [
        ("ops", old.ops, new.ops),
        ("applied", old.applied, new.applied),
        ("witnessed", old.witnessed, new.witnessed),
        ("refused", old.refused, new.refused),
        ("redelivered", old.redelivered, new.redelivered),
    ] {
        if o != n {
            out.push(format!("{what}: {o} → {n}"));
        }
    }
    if old.floating != new.floating {
        out.push(format!("floating: {:?} → {:?}", old.floating, new.floating));
    }
    let mut agreed = 0;
    let mut first = None;
    for (o, n) in old.checkpoints.iter().zip(&new.checkpoints) {
        if o == n {
            agreed = o.after_ops;
            continue;
        }
        if first.is_none() {
            first = Some((agreed, n.after_ops));
        }
        if o.state_hash != n.state_hash {
            out.push(format!("checkpoint after {} ops: state {} → {}", n.after_ops, short(&o.state_hash), short(&n.state_hash)));
        }
        if o.observed_hash != n.observed_hash {
            out.push(format!("checkpoint after {} ops: observed {} → {}", n.after_ops, short(&o.observed_hash), short(&n.observed_hash)));
        }
        if o.after_ops != n.after_ops {
            out.push(format!("checkpoint position: after {} → after {} ops", o.after_ops, n.after_ops));
        }
    }
    if old.checkpoints.len() != new.checkpoints.len() {
        out.push(format!("checkpoints: {} → {}", old.checkpoints.len(), new.checkpoints.len()));
    }
    if old.final_state_hash != new.final_state_hash {
        out.push(format!("final state hash: {} → {}", old.final_state_hash, new.final_state_hash));
    }
    if old.final_observed_hash != new.final_observed_hash {
        let same_state = if old.final_state_hash == new.final_state_hash { " (same state: what readers see changed)" } else { "" };
        out.push(format!("final observed hash: {} → {}{same_state}", old.final_observed_hash, new.final_observed_hash));
    }
    match first {
        // When the history itself changed, its ops differ: there is no divergence to place.
        _ if old.history_blake3 != new.history_blake3 => {}
        Some((from, to)) => out.push(format!("first divergence: within ops {from}..{to} (the first checkpoint that differs)")),
        None if old.final_state_hash != new.final_state_hash || old.final_observed_hash != new.final_observed_hash => {
            let from = old.checkpoints.last().map_or(0, |c| c.after_ops);
            let why = if from == 0 { "no checkpoint before the end" } else { "every checkpoint agrees" };
            out.push(format!("first divergence: within ops {from}..{} ({why})", new.ops));
        }
        None => {}
    }
    if out.is_empty() {
        out.push("the text differs but no field does (formatting)".into());
    }
    out
}

/// The review lines of a changed JSON golden of any kind (e.g. a migration golden): each
/// top-level field whose value differs, old → new.
pub fn diff_json_fields(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t);
    let (Ok(o), Ok(n)) = (parse(old), parse(new)) else {
        return vec!["the accepted golden does not parse as a JSON object; the pending one replaces it whole".into()];
    };
    let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "(absent)".to_string(), |v| v.to_string());
    let mut out: Vec<String> =
        keys.into_iter().filter(|k| o.get(*k) != n.get(*k)).map(|k| format!("{k}: {} → {}", show(o.get(k)), show(n.get(k)))).collect();
    if out.is_empty() {
        out.push("the text differs but no field does (formatting)".into());
    }
    out
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

/// Blesses the golden of every history of the corpus, optionally of one store type: computes it
/// with the registered native logic and writes it as pending when it is new or changed. Returns
/// what happened to each history, in manifest order, with the review lines.
pub fn bless_all(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    let selected: Vec<&ManifestEntry> = manifest.files.iter().filter(|e| store_type.is_none_or(|t| t == e.store_type)).collect();
    let bar = crate::progress::bar("bless", selected.len() as u64, "histories");
    // Every golden is computed before any is written: a history whose expected reads the
    // reference build contradicts refuses the whole bless.
    let mut computed = Vec::with_capacity(selected.len());
    let mut contradicted = Vec::new();
    for entry in selected {
        let c = compute_entry(corpus_dir, entry, registry)?;
        if !c.unmet.is_empty() {
            contradicted.push((entry.id(), c.unmet));
        } else {
            computed.push((entry, c.golden));
        }
        bar.inc(1);
    }
    if !contradicted.is_empty() {
        return Err(BlessError::Contradicted(contradicted));
    }
    let mut out = Vec::with_capacity(computed.len());
    for (entry, golden) in computed {
        out.push(bless_one(golden_dir, entry, &golden)?);
    }
    Ok(out)
}

/// The reference build's golden of one listed history, with the history's expected reads it
/// does not meet.
fn compute_entry(corpus_dir: &Path, entry: &ManifestEntry, registry: &crate::registry::Registry) -> Result<Computed, BlessError> {
    let mut stream = corpus::open_checked(corpus_dir, entry)?;
    let header = stream.header().clone();
    let logic = registry.resolve(&header.identity())?;
    let computed = compute_checked(&header, stream.ops(), logic, HostFaults::default(), entry);
    stream.finish()?;
    Ok(computed)
}

/// Computes the golden of one listed history and writes it as pending when new or changed;
/// refused, writing nothing, when the reference build contradicts the history's expected reads.
pub fn bless_entry(
    corpus_dir: &Path,
    golden_dir: &Path,
    entry: &ManifestEntry,
    registry: &crate::registry::Registry,
) -> Result<Blessed, BlessError> {
    let c = compute_entry(corpus_dir, entry, registry)?;
    if !c.unmet.is_empty() {
        return Err(BlessError::Contradicted(vec![(entry.id(), c.unmet)]));
    }
    Ok(bless_one(golden_dir, entry, &c.golden)?)
}

/// What `bless --accept` / `bless --reject` does to a pending golden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// Rename the pending golden over the accepted one.
    Accept,
    /// Delete the pending golden (the accepted one, if any, stays).
    Reject,
}

/// A golden that may have a pending version: its id, the other names a pattern may match it by
/// (e.g. the history's name), and the accepted file's path.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub aliases: Vec<String>,
    pub accepted: PathBuf,
}

/// Accepts or rejects the pending goldens among `candidates` that match any of `patterns`
/// (globs over the id or an alias; none = every pending golden). A pattern that matches no
/// pending golden is refused before anything is done. Returns what was done, in candidate order.
pub fn review_pending(candidates: &[Candidate], review: Review, patterns: &[String]) -> Result<Vec<(String, BlessAction)>, GoldenError> {
    let pending: Vec<&Candidate> = candidates.iter().filter(|c| pending_path(&c.accepted).exists()).collect();
    let mut globs = Vec::with_capacity(patterns.len());
    for p in patterns {
        let g = globset::Glob::new(p).map_err(|e| GoldenError::BadPattern { pattern: p.clone(), reason: e.kind().to_string() })?;
        globs.push((p, g.compile_matcher()));
    }
    let matches = |c: &Candidate, m: &globset::GlobMatcher| m.is_match(&c.id) || c.aliases.iter().any(|a| m.is_match(a));
    for (p, m) in &globs {
        if !pending.iter().any(|c| matches(c, m)) {
            let ids: Vec<&str> = pending.iter().map(|c| c.id.as_str()).collect();
            return Err(GoldenError::NoPendingMatch {
                pattern: (*p).clone(),
                pending: if ids.is_empty() { "none".into() } else { ids.join(", ") },
            });
        }
    }
    let mut out = Vec::new();
    for c in pending.into_iter().filter(|c| globs.is_empty() || globs.iter().any(|(_, m)| matches(c, m))) {
        let action = match review {
            Review::Accept => accept_path(&c.accepted)?.unwrap_or(BlessAction::Unchanged),
            Review::Reject => {
                let pending = pending_path(&c.accepted);
                std::fs::remove_file(&pending).map_err(|source| GoldenError::Io { path: pending.clone(), source })?;
                BlessAction::Rejected
            }
        };
        out.push((c.id.clone(), action));
    }
    Ok(out)
}

/// The history goldens of a corpus (optionally of one type) as review candidates: id
/// `<store_type>/<name>`, alias `<name>`.
pub fn candidates(corpus_dir: &Path, golden_dir: &Path, store_type: Option<&str>) -> Result<Vec<Candidate>, CorpusError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    Ok(manifest
        .files
        .iter()
        .filter(|e| store_type.is_none_or(|t| t == e.store_type))
        .map(|e| Candidate { id: e.id(), aliases: vec![e.name().to_string()], accepted: path_for(golden_dir, e) })
        .collect())
}

/// `bless --accept` / `--reject` of history goldens.
pub fn review(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    review: Review,
    patterns: &[String],
) -> Result<Vec<(String, BlessAction)>, BlessError> {
    Ok(review_pending(&candidates(corpus_dir, golden_dir, store_type)?, review, patterns)?)
}

/// What lies in a golden directory that `verify` must not pass over: goldens waiting for
/// review and goldens no history (or migration case) of the corpus has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewState {
    /// `*.pending` files, sorted.
    pub pending: Vec<PathBuf>,
    /// Accepted goldens (`*.json`) that belong to no listed history, sorted.
    pub orphans: Vec<PathBuf>,
}

impl ReviewState {
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && self.orphans.is_empty()
    }
}

/// Scans `golden_dir` for pending goldens and orphans (accepted goldens that neither a history of
/// the corpus at `corpus_dir` nor one of its migration cases has). Hidden files are ignored.
pub fn review_state(corpus_dir: &Path, golden_dir: &Path) -> Result<ReviewState, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    let mut expected: std::collections::BTreeSet<PathBuf> = manifest.files.iter().map(|e| path_for(golden_dir, e)).collect();
    expected.extend(migration::migration_golden_paths(corpus_dir, golden_dir)?);
    let mut state = ReviewState::default();
    let mut dirs = vec![golden_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(GoldenError::Io { path: dir, source }.into()),
        };
        for e in entries {
            let e = e.map_err(|source| GoldenError::Io { path: dir.clone(), source })?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if e.file_type().map_err(|source| GoldenError::Io { path: path.clone(), source })?.is_dir() {
                dirs.push(path);
            } else if name.ends_with(PENDING_SUFFIX) {
                state.pending.push(path);
            } else if name.ends_with(".json") && !expected.contains(&path) {
                state.orphans.push(path);
            }
        }
    }
    state.pending.sort();
    state.orphans.sort();
    Ok(state)
}

/// How deep below a golden directory [`check_belongs`] looks for golden files (goldens lie at
/// `<type>/<name>.json` and `migrations/<pair>/<name>.json`).
const BELONGS_DEPTH: usize = 3;

/// Refuses a golden directory that is not the corpus's (docs/FORMAT.md §12.1): one that holds a
/// `MANIFEST.json` (a corpus directory), or that holds golden files of which none — accepted or
/// pending — is at the place of a history or a migration case of the corpus. A missing or empty
/// golden directory belongs to any corpus (goldens are about to be blessed into it). A corpus
/// whose manifest does not load is not judged here: the command reports that in its own words.
/// Cheap: one `stat` per listed history until a golden is found; the directory is walked only
/// when none is.
pub fn check_belongs(corpus_dir: &Path, golden_dir: &Path) -> Result<(), GoldenError> {
    let refuse = |why: String| GoldenError::NotThisCorpus { golden: golden_dir.to_path_buf(), corpus: corpus_dir.to_path_buf(), why };
    if golden_dir.join(corpus::MANIFEST).is_file() {
        return Err(refuse(format!("it holds a {} and is a corpus directory itself", corpus::MANIFEST)));
    }
    let Ok(manifest) = corpus::Manifest::load(corpus_dir, false) else { return Ok(()) };
    let mut expected: Vec<PathBuf> = manifest.files.iter().map(|e| path_for(golden_dir, e)).collect();
    expected.extend(migration::migration_golden_paths(corpus_dir, golden_dir).unwrap_or_default());
    let pending = |p: &Path| {
        let mut s = p.as_os_str().to_os_string();
        s.push(PENDING_SUFFIX);
        PathBuf::from(s)
    };
    if expected.iter().any(|p| p.is_file() || pending(p).is_file()) {
        return Ok(());
    }
    let mut found = Vec::new();
    golden_files(golden_dir, BELONGS_DEPTH, &mut found);
    found.sort();
    match found.first() {
        None => Ok(()),
        Some(first) => Err(refuse(format!(
            "none of its {} golden file(s) (e.g. {}) is the golden of one of the {} histories listed in {} or of their migration cases",
            found.len(),
            first.display(),
            manifest.files.len(),
            corpus_dir.join(corpus::MANIFEST).display()
        ))),
    }
}

/// The accepted golden files (`*.json`; hidden ones skipped) in `dir` and down to `depth` levels
/// below it. Unreadable directories are passed over. Pending goldens do not count: a pending
/// golden of a history not (yet) listed is what a `corpus add` or `record --corpus` killed before
/// listing leaves, and its rerun must be let in to complete it.
fn golden_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match e.file_type() {
            Ok(k) if k.is_dir() && depth > 0 => golden_files(&e.path(), depth - 1, out),
            Ok(k) if k.is_file() && name.ends_with(".json") => out.push(e.path()),
            _ => {}
        }
    }
}

/// Writes the pending goldens of one newly listed history: its golden and, when a migration
/// starts from its type, its migration golden (`corpus add`, `record --corpus`).
pub fn bless_new_entry(
    corpus_dir: &Path,
    golden_dir: &Path,
    entry: &ManifestEntry,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let mut out = vec![bless_entry(corpus_dir, golden_dir, entry, registry)?];
    out.extend(migration::bless_migrations_of(corpus_dir, golden_dir, entry, registry)?);
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
    #[error(transparent)]
    Migration(#[from] Box<migration::MigrationGoldenError>),
    /// (The registry's error is part of the message, not a source, so it is said once.)
    #[error("{path}: {reason}")]
    Header { path: PathBuf, reason: crate::registry::RegistryError },
    /// Histories whose expected reads (docs/FORMAT.md §10.10) the reference build does not meet.
    #[error("{}", contradicted_text(.0))]
    Contradicted(Vec<(String, Vec<Unmet>)>),
}

fn contradicted_text(c: &[(String, Vec<Unmet>)]) -> String {
    let mut lines = vec![format!(
        "refused: the reference build contradicts the expected reads of {} histor{}, so its golden{} would record a mistake; nothing written (fix the build, or the expectation if it is wrong)",
        c.len(),
        if c.len() == 1 { "y" } else { "ies" },
        if c.len() == 1 { "" } else { "s" }
    )];
    for (id, unmet) in c {
        for u in unmet {
            lines.push(format!("  {id}: {u}"));
        }
    }
    lines.join("\n")
}

impl From<migration::MigrationGoldenError> for BlessError {
    fn from(e: migration::MigrationGoldenError) -> BlessError {
        BlessError::Migration(Box::new(e))
    }
}

/// `corpus add`: copies the history at `src` into the corpus as `name` (default: its file stem),
/// lists it, and writes its pending goldens (the history's and, when a migration starts from its
/// type, the migration's). Refused before anything is written: a history that does not read to
/// its end, a type no build here opens, a name already listed.
pub fn add_to_corpus(
    corpus_dir: &Path,
    golden_dir: &Path,
    src: &Path,
    name: Option<&str>,
    registry: &crate::registry::Registry,
) -> Result<(ManifestEntry, Vec<Blessed>), BlessError> {
    let prepared = corpus::prepare_add(corpus_dir, src, name)?;
    registry.resolve(&prepared.header.identity()).map_err(|reason| BlessError::Header { path: src.to_path_buf(), reason })?;
    let entry = prepared.write(corpus_dir)?;
    let blessed = bless_and_list(corpus_dir, golden_dir, &entry, registry)?;
    Ok((entry, blessed))
}

/// The all-or-nothing end of `corpus add` and `record --corpus` (docs/FORMAT.md §11.9): with the
/// history already copied to `entry.path` (unlisted), writes its pending goldens and then lists it
/// — the manifest is written last, so a listed history always has its goldens. On an error the
/// history and any pending golden written for it are removed again, so nothing is left. (A run
/// killed before the listing leaves the unlisted copy and pending goldens; the same command run
/// again writes them over and lists the history.)
pub fn bless_and_list(
    corpus_dir: &Path,
    golden_dir: &Path,
    entry: &ManifestEntry,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let listed_before = corpus::Manifest::load(corpus_dir, true)?.files.iter().any(|e| e.path == entry.path);
    let done = bless_new_entry(corpus_dir, golden_dir, entry, registry).and_then(|b| Ok(corpus::list_entry(corpus_dir, entry).map(|_| b)?));
    if done.is_err() && !listed_before {
        let copy = corpus_dir.join(&entry.path);
        let _ = std::fs::remove_file(&copy);
        // The type directory, when this history was its first (removing a non-empty one fails).
        if let Some(dir) = copy.parent().filter(|d| *d != corpus_dir) {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_file(pending_path(&path_for(golden_dir, entry)));
        for m in crate::migrate::migrations().into_iter().filter(|m| m.source_type() == entry.store_type) {
            if let Ok(p) = migration::migration_golden_path(golden_dir, m.as_ref(), entry) {
                let _ = std::fs::remove_file(pending_path(&p));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(hashes: &[&str], stall: Option<u64>) -> Golden {
        let checkpoints = hashes[..hashes.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, h)| Checkpoint { after_ops: (i as u64 + 1) * 64, state_hash: h.repeat(64), observed_hash: "0".repeat(64) })
            .collect();
        Golden {
            format: GOLDEN_TAG.into(),
            format_version: GOLDEN_VERSION,
            history: "t/x".into(),
            history_blake3: "b".repeat(64),
            store_type: "t".into(),
            schema_version: 1,
            ops: 200,
            refused: 0,
            redelivered: 0,
            witnessed: 200,
            applied: 200,
            stall: stall.map(|op_index| StallAt { op_index, kind: RejectKind::BrokenChain }),
            floating: vec![],
            checkpoint_interval: CHECKPOINT_INTERVAL,
            checkpoints,
            final_state_hash: hashes[hashes.len() - 1].repeat(64),
            final_observed_hash: "0".repeat(64),
            reads: None,
        }
    }

    #[test]
    fn a_diff_names_each_changed_field_and_the_span_of_the_first_divergence() {
        let old = golden(&["a", "b", "c", "d"], None);
        let mut new = golden(&["a", "x", "y", "z"], Some(150));
        new.applied = 150;
        let lines = diff_lines(&old, &new);
        assert!(lines.contains(&"halt: none → stalled at op 150 (broken_chain)".to_string()), "{lines:?}");
        assert!(lines.contains(&"applied: 200 → 150".to_string()), "{lines:?}");
        assert!(lines.contains(&format!("checkpoint after 128 ops: state {} → {}", "b".repeat(16), "x".repeat(16))), "{lines:?}");
        assert!(lines.contains(&format!("final state hash: {} → {}", "d".repeat(64), "z".repeat(64))), "{lines:?}");
        assert_eq!(lines.last().unwrap(), "first divergence: within ops 64..128 (the first checkpoint that differs)");
        // Only the end differs: the span runs from the last checkpoint to the op count.
        let end = golden(&["a", "b", "c", "e"], None);
        assert_eq!(diff_lines(&old, &end).last().unwrap(), "first divergence: within ops 192..200 (every checkpoint agrees)");
        assert!(diff_lines(&old, &old).iter().all(|l| l.contains("formatting")));
    }
}
