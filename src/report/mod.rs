//! Verification reports: the data model of `verify --format json` (docs/FORMAT.md §13.4), reading
//! one back, and merging the reports of a sharded run (§13.5); [`render`] turns one into human
//! text or JUnit XML. Nothing here runs a build: `verify` and `verify --migrations` fill reports in.

mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::lockstep::Divergence;
pub use render::{divergence_text, failures_only, human, junit, render, units, Format, EMPTY_SHARD};

/// A report that cannot be read or merged (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("--shard {0}: expected I/N with 1 <= I <= N")]
    BadShard(String),
    #[error("report {path}: {reason}")]
    BadReport { path: PathBuf, reason: String },
    #[error("report merge: {reason}")]
    BadShardSet { reason: String },
    #[error(
        "report merge: {other} and {first} differ in `{field}` ({other_value} vs {first_value}); merge only the reports of one run (same tool, build, corpus, goldens and selection)"
    )]
    PartsDiffer { field: &'static str, first: PathBuf, first_value: String, other: PathBuf, other_value: String },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
}

/// The outcome of a verification run; serializes to the `--format json` report (docs/FORMAT.md
/// §13.4). Everything but `durations_us` is deterministic: the same inputs give the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub format: String,
    pub format_version: u32,
    /// The tool that verified: `lattice-conform <version>` ([`tool_id`]).
    pub tool: String,
    /// The `--build` argument as given.
    pub build: String,
    /// What the build is, however it was named ([`build_identity`]): `wasm <blake3 of the module>`,
    /// `native lattice-conform <version>` or `native-fault:<name> lattice-conform <version>`.
    pub build_identity: String,
    /// blake3 of the corpus manifest's bytes (which lists every history's blake3).
    pub corpus_manifest_blake3: String,
    /// [`golden_set_digest`] of the goldens of the whole selection (every shard's).
    pub golden_blake3: String,
    pub selection: Selection,
    /// `I/N` when sharded; merged reports list every shard.
    pub shards: Vec<String>,
    /// Histories selected for this report but not run, because an earlier one failed (without
    /// `--keep-going`), sorted by id.
    pub not_run: Vec<NotRun>,
    pub results: Vec<HistoryResult>,
    /// The convergence check's verdicts (`verify --orders`), if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence: Option<crate::converge::Summary>,
    /// The limits a Wasm build ran under (absent for a native build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_limits: Option<crate::wasm::Limits>,
    /// Measured wall time of each history run, in microseconds, by id. The one field that differs
    /// between runs of the same inputs: `report merge` never compares it and nothing hashes it;
    /// the JUnit `time` attributes come from it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub durations_us: BTreeMap<String, u64>,
}

/// Which histories a report covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// `histories` (corpus histories against their goldens) or `migrations` (`verify --migrations`).
    pub kind: String,
    /// `--type`, if given.
    pub store_type: Option<String>,
    /// `--filter`, if given.
    pub filter: Option<String>,
    /// `N` of `--shard I/N`; `None` when unsharded.
    pub shard_count: Option<u32>,
    /// Histories selected in this report's shards (= results + not run).
    pub selected: u64,
    /// Histories selected by type and filter in all shards together.
    pub total: u64,
}

/// A selected history that did not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotRun {
    pub id: String,
    pub store_type: String,
    /// Why it did not run (*informative* wording).
    pub reason: String,
}

/// One history's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryResult {
    /// `<store_type>/<name>`.
    pub id: String,
    pub store_type: String,
    pub ops: u64,
    /// `None` when the history passed.
    pub failure: Option<Failure>,
}

/// Why a history failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// One line: what differs from the golden.
    pub summary: String,
    /// The first op at which the candidate's state differs from the reference build's, if any.
    pub divergence: Option<Divergence>,
    /// The history's expected reads (docs/FORMAT.md §10.10) this build did not meet, in list order.
    pub expectations: Vec<crate::expect::Unmet>,
}

const REPORT_TAG: &str = "lattice-conform/verify-report";
const REPORT_VERSION: u32 = 5;

/// The tool a report or certificate was written by: `lattice-conform <version>`.
pub fn tool_id() -> String {
    format!("lattice-conform {}", env!("CARGO_PKG_VERSION"))
}

impl Report {
    /// An empty report of `build` (identity, inputs and selection still to be filled in).
    pub fn new(build: String, shards: Vec<String>) -> Report {
        Report {
            format: REPORT_TAG.into(),
            format_version: REPORT_VERSION,
            tool: tool_id(),
            build,
            build_identity: String::new(),
            corpus_manifest_blake3: String::new(),
            golden_blake3: String::new(),
            selection: Selection::default(),
            shards,
            not_run: vec![],
            results: vec![],
            convergence: None,
            wasm_limits: None,
            durations_us: BTreeMap::new(),
        }
    }

    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Convergence failures: unknown divergences and stale known divergences.
    pub fn convergence_failures(&self) -> usize {
        self.convergence.as_ref().map_or(0, |c| c.unknown() + c.stale_known.len())
    }

    /// Whether this is one shard of a sharded run that selected no history.
    pub fn is_empty_shard(&self) -> bool {
        !self.shards.is_empty() && self.selection.selected == 0
    }

    /// Reads a JSON report written by `verify --format json`. A report of an older format is
    /// refused as too old: it lacks the inputs `report merge` compares.
    pub fn load(path: &std::path::Path) -> Result<Report, ReportError> {
        let bad = |reason: String| ReportError::BadReport { path: path.to_path_buf(), reason };
        if path.is_dir() {
            return Err(bad("a directory, not a verify report (name the JSON files `verify --format json` wrote)".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        match crate::versioned::check(&text, path, REPORT_TAG, REPORT_VERSION) {
            Err(crate::versioned::VersionError::TooOld { found, reads, .. }) => {
                let why = match found {
                    ..=3 => {
                        "such a report does not say which tool, build, corpus, goldens and selection it came from, so it cannot be merged"
                    }
                    _ => "its failures do not list the expected reads a build missed",
                };
                return Err(bad(format!(
                    "too old: a verify report of format_version {found}, but this build reads format_version {reads}; \
                     {why}: re-run `lattice-conform verify` to regenerate it"
                )));
            }
            other => other?,
        }
        serde_json::from_str(&text).map_err(|e| crate::versioned::json_error(path, &e).into())
    }

    /// Combines the reports of the shards of one run into one (docs/FORMAT.md §13.5): every part
    /// must come from the same inputs (tool, build, corpus, goldens, selection, shard count), each
    /// shard 1/N … N/N must be there exactly once, and no history may be in two parts. Results and
    /// not-run histories are sorted by id.
    pub fn merge(parts: Vec<(PathBuf, Report)>) -> Result<Report, ReportError> {
        let Some((first_path, first)) = parts.first().cloned() else {
            return Err(ReportError::BadShardSet { reason: "no report to merge".into() });
        };
        for (path, r) in &parts {
            check_counts(path, r)?;
            if let Some((field, a, b)) = first_difference(&first, r) {
                return Err(ReportError::PartsDiffer {
                    field,
                    first: first_path.clone(),
                    first_value: a,
                    other: path.clone(),
                    other_value: b,
                });
            }
        }
        let mut merged = Report { shards: vec![], not_run: vec![], results: vec![], convergence: None, ..first.clone() };
        merged.selection.selected = 0;
        merged.durations_us.clear();
        check_shard_set(&parts)?;
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, r) in &parts {
            for id in r.results.iter().map(|x| &x.id).chain(r.not_run.iter().map(|x| &x.id)) {
                if let Some(first) = seen.insert(id.clone(), path.clone()) {
                    let reason = format!("history `{id}` is also in {}; shards must not overlap", first.display());
                    return Err(ReportError::BadReport { path: path.clone(), reason });
                }
            }
        }
        for (path, r) in parts {
            merged.shards.extend(r.shards);
            merged.selection.selected += r.selection.selected;
            merged.not_run.extend(r.not_run);
            merged.results.extend(r.results);
            merged.durations_us.extend(r.durations_us);
            match (&mut merged.convergence, r.convergence) {
                (_, None) => {}
                (None, Some(c)) => merged.convergence = Some(c),
                (Some(m), Some(c)) if (m.orders, m.seed) == (c.orders, c.seed) => {
                    m.histories.extend(c.histories);
                    m.stale_known.extend(c.stale_known);
                }
                (Some(m), Some(c)) => {
                    let reason = format!(
                        "convergence ran with {} orders, seed {}; another report has {} orders, seed {}",
                        c.orders, c.seed, m.orders, m.seed
                    );
                    return Err(ReportError::BadReport { path, reason });
                }
            }
        }
        if merged.selection.selected != merged.selection.total {
            let reason = format!(
                "the shards hold {} histories but their selection has {}; the reports are not of one run",
                merged.selection.selected, merged.selection.total
            );
            return Err(ReportError::BadShardSet { reason });
        }
        if let Some(c) = &mut merged.convergence {
            c.histories.sort_by(|a, b| a.id.cmp(&b.id));
            c.stale_known.sort();
            c.stale_known.dedup();
        }
        merged.results.sort_by(|a, b| a.id.cmp(&b.id));
        merged.not_run.sort_by(|a, b| a.id.cmp(&b.id));
        merged.shards.sort();
        Ok(merged)
    }
}

/// The first input in which `other` differs from `first`: the field's name and both values, as
/// shown in messages (`` `value` ``, or `none` for an absent one).
fn first_difference(first: &Report, other: &Report) -> Option<(&'static str, String, String)> {
    let quote = |v: &str| format!("`{v}`");
    let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "none".to_string(), quote);
    let limits = |l: Option<crate::wasm::Limits>| l.map_or_else(|| "none (a native build)".to_string(), |l| quote(&l.to_string()));
    let shards = |n: Option<u32>| n.map_or_else(|| "none (unsharded)".to_string(), |n| quote(&n.to_string()));
    let fields = [
        ("tool", quote(&first.tool), quote(&other.tool)),
        ("build", quote(&first.build), quote(&other.build)),
        ("build_identity", quote(&first.build_identity), quote(&other.build_identity)),
        ("corpus_manifest_blake3", quote(&first.corpus_manifest_blake3), quote(&other.corpus_manifest_blake3)),
        ("golden_blake3", quote(&first.golden_blake3), quote(&other.golden_blake3)),
        ("selection.kind", quote(&first.selection.kind), quote(&other.selection.kind)),
        ("selection.store_type", opt(&first.selection.store_type), opt(&other.selection.store_type)),
        ("selection.filter", opt(&first.selection.filter), opt(&other.selection.filter)),
        ("selection.shard_count", shards(first.selection.shard_count), shards(other.selection.shard_count)),
        ("selection.total", quote(&first.selection.total.to_string()), quote(&other.selection.total.to_string())),
        ("wasm_limits", limits(first.wasm_limits), limits(other.wasm_limits)),
    ];
    fields.into_iter().find(|(_, a, b)| a != b)
}

/// A part's own numbers must agree: its results and not-run histories are its selected ones, and
/// its shards are of its selection's shard count.
fn check_counts(path: &std::path::Path, r: &Report) -> Result<(), ReportError> {
    let bad = |reason: String| ReportError::BadReport { path: path.to_path_buf(), reason };
    let listed = (r.results.len() + r.not_run.len()) as u64;
    if listed != r.selection.selected {
        return Err(bad(format!(
            "lists {} results and {} not run, but its selection says {} histories",
            r.results.len(),
            r.not_run.len(),
            r.selection.selected
        )));
    }
    for s in &r.shards {
        let (_, n) = parse_shard(s).map_err(|_| bad(format!("`{s}` is not a shard (expected I/N)")))?;
        if Some(n) != r.selection.shard_count {
            let count = r.selection.shard_count.map_or_else(|| "unsharded".to_string(), |n| format!("of {n} shards"));
            return Err(bad(format!("shard `{s}` but its selection is {count}")));
        }
    }
    if r.shards.is_empty() && r.selection.shard_count.is_some() {
        return Err(bad("lists no shard but its selection is sharded".into()));
    }
    Ok(())
}

/// The parts of a sharded run must hold each of its shards 1/N … N/N exactly once: a merge that
/// silently lacks a shard would pass a release gate on part of the corpus. An unsharded report
/// covers the whole selection, so it merges with nothing else.
fn check_shard_set(parts: &[(PathBuf, Report)]) -> Result<(), ReportError> {
    let bad = |reason: String| ReportError::BadShardSet { reason };
    if parts.len() > 1 {
        if let Some((path, _)) = parts.iter().find(|(_, r)| r.shards.is_empty()) {
            return Err(bad(format!("{} is an unsharded report (the whole selection); it merges with no other report", path.display())));
        }
    }
    let mut seen: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut n = 0;
    for (path, r) in parts {
        for s in &r.shards {
            let (i, count) = parse_shard(s).map_err(|_| bad(format!("{}: `{s}` is not a shard (expected I/N)", path.display())))?;
            n = count;
            if let Some(other) = seen.insert(i, path.clone()) {
                return Err(bad(format!("shard {i}/{count} appears twice: in {} and in {}", other.display(), path.display())));
            }
        }
    }
    let missing: Vec<String> = (1..=n).filter(|i| !seen.contains_key(i)).map(|i| format!("{i}/{n}")).collect();
    if !missing.is_empty() {
        return Err(bad(format!("shard {} missing; merge the reports of every shard of the run", missing.join(", "))));
    }
    Ok(())
}

/// Parses `I/N`.
pub fn parse_shard(s: &str) -> Result<(u32, u32), ReportError> {
    let parsed = s.split_once('/').and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((i, n)) if i >= 1 && i <= n => Ok((i, n)),
        _ => Err(ReportError::BadShard(s.to_string())),
    }
}

/// The shard (1-based) a history id belongs to among `n`: blake3(id) as a u64 LE, mod n, plus 1.
pub fn shard_of(id: &str, n: u32) -> u32 {
    let h = blake3::hash(id.as_bytes());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (x % n as u64) as u32 + 1
}
