//! `corpus adequacy`: how many of the catalogued faults ([`crate::fault`]) the bundled corpus and
//! its goldens catch, and with which histories and fields.
//!
//! Every history is replayed under every fault that can touch it (a fault of its store type, or
//! of the host), and the outcome is compared with the committed golden by the comparison `verify`
//! uses ([`verify::differing_fields`]); a `core:kvstore` history's migration golden is recomputed
//! under every fault that can reach a migration (kvstore, kvstore-v2, host and migration faults);
//! and the convergence verdict over `orders` seeded delivery orders ([`converge::orders`]) is
//! compared with the reference build's. A history *kills* a fault when any of these differ. The
//! report is the kill matrix — fault × scenario family → killing histories, and which fields —
//! the kill rate, and the faults that survive or are killed by fewer than `min_kills` histories.
//! Pairs run in parallel; the report is sorted and does not depend on thread timing.
//! Normative: docs/FORMAT.md, "Adequacy report".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::converge;
use crate::corpus::{self, CorpusError, Manifest, ManifestEntry};
use crate::fault::{Fault, Layer};
use crate::golden::{self, Golden, GoldenError};
use crate::golden::{migration_golden_path, GoldenBuild, MigrationGolden};
use crate::history::History;
use crate::migrate::{KvToV2, MigrateError, Migration};
use crate::registry::{Registry, RegistryError};
use crate::replay::{HostFaults, MemStore};
use crate::store::Logic;
use crate::verify::{self, Field};

const REPORT_TAG: &str = "lattice-conform/adequacy-report";
const REPORT_VERSION: u32 = 2;

/// What to measure.
#[derive(Clone, Debug)]
pub struct AdequacyOptions {
    pub corpus: PathBuf,
    pub golden: PathBuf,
    /// The faults to inject (default: the whole catalogue).
    pub faults: Vec<Fault>,
    /// Only histories whose id (`<store_type>/<name>`) matches this glob (default: all).
    pub filter: Option<String>,
    /// A fault killed by fewer histories than this fails the run.
    pub min_kills: u64,
    /// Delivery orders per history for the convergence column (0: no convergence check).
    pub orders: u32,
    pub order_seed: u64,
    pub jobs: usize,
}

impl AdequacyOptions {
    /// Defaults: `corpus/` and `golden/` under `root`, every catalogued fault, 3 kills, 2 orders.
    pub fn new(root: &std::path::Path) -> AdequacyOptions {
        AdequacyOptions {
            corpus: root.join("corpus"),
            golden: root.join("golden"),
            faults: crate::fault::CATALOGUE.to_vec(),
            filter: None,
            min_kills: 3,
            orders: 2,
            order_seed: 0,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Unusable input: the measurement could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdequacyError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Golden(#[from] GoldenError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("{path}: {reason}")]
    MigrationGolden { path: PathBuf, reason: String },
    #[error("--fault {0}: no such fault (`lattice-conform faults` lists them)")]
    UnknownFault(String),
    #[error("no fault selected")]
    NoFaults,
    #[error("--filter {glob:?}: {reason}")]
    BadFilter { glob: String, reason: String },
    #[error("no history of corpus {corpus} matches --filter {glob:?}")]
    NothingSelected { corpus: PathBuf, glob: String },
}

/// The adequacy report; serializes to `corpus adequacy --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdequacyReport {
    pub format: String,
    pub format_version: u32,
    /// Histories replayed.
    pub histories: u64,
    /// Of them, histories with a migration golden.
    pub migration_goldens: u64,
    pub orders: u32,
    pub order_seed: u64,
    pub min_kills: u64,
    /// One row per fault, in catalogue order.
    pub faults: Vec<FaultRow>,
    /// Faults killed by at least one history.
    pub killed: u64,
    /// Faults killed by no history, by name.
    pub survivors: Vec<String>,
    /// Faults killed, but by fewer than `min_kills` histories, by name.
    pub weak: Vec<String>,
    /// One row per rule (docs/FORMAT.md §21.3) a fault of the run breaks.
    pub rules: Vec<RuleRow>,
}

/// How well one rule is pinned: by the fewest kills of the faults that break it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRow {
    pub rule: String,
    /// Faults of the run that break it.
    pub faults: u64,
    /// The fewest histories that killed one of them.
    pub kills: u64,
}

/// One fault's row of the kill matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRow {
    pub name: String,
    /// The rule it breaks (docs/FORMAT.md §21.3).
    pub rule: String,
    pub store_type: String,
    pub layer: String,
    pub description: String,
    /// Histories the fault was injected into.
    pub tried: u64,
    /// Histories that caught it.
    pub kills: u64,
    /// Scenario family → histories of it that caught the fault.
    pub families: BTreeMap<String, u64>,
    /// Field → histories whose outcome differed in it (one history may count under several).
    pub fields: BTreeMap<Field, u64>,
}

impl AdequacyReport {
    /// True when every fault is killed by at least `min_kills` histories.
    pub fn passed(&self) -> bool {
        self.survivors.is_empty() && self.weak.is_empty()
    }

    /// The kill rate in tenths of a percent (integer arithmetic: no floats in a report).
    pub fn kill_rate_permille(&self) -> u64 {
        (self.killed * 1000).checked_div(self.faults.len() as u64).unwrap_or(0)
    }

    /// The fewest kills of any fault.
    pub fn min_measured_kills(&self) -> u64 {
        self.faults.iter().map(|f| f.kills).min().unwrap_or(0)
    }
}

/// Picks faults by name from the catalogue (all of it when `names` is empty).
pub fn select_faults(names: &[String]) -> Result<Vec<Fault>, AdequacyError> {
    if names.is_empty() {
        return Ok(crate::fault::CATALOGUE.to_vec());
    }
    names.iter().map(|n| crate::fault::find(n).copied().ok_or_else(|| AdequacyError::UnknownFault(n.clone()))).collect()
}

/// One history with what it is compared against.
struct Case {
    entry: ManifestEntry,
    family: String,
    history: History,
    golden: Golden,
    migration: Option<MigrationGolden>,
    /// The reference build's convergence verdict (when `orders` > 0).
    convergence: Option<Verdict>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Skipped,
    Converges,
    Diverges,
}

/// Measures the corpus against the faults of `opts`.
pub fn run(opts: &AdequacyOptions, registry: &Registry) -> Result<AdequacyReport, AdequacyError> {
    if opts.faults.is_empty() {
        return Err(AdequacyError::NoFaults);
    }
    let entries = select(opts)?;
    let cases = parallel(opts.jobs, &entries, |e| load_case(opts, registry, e))?;
    let pairs: Vec<(usize, usize)> = (0..opts.faults.len())
        .flat_map(|f| (0..cases.len()).map(move |c| (f, c)))
        .filter(|&(f, c)| reachable(&opts.faults[f], &cases[c]))
        .collect();
    let outcomes = parallel(opts.jobs, &pairs, |&(f, c)| caught(opts, registry, &opts.faults[f], &cases[c]))?;
    let mut rows: Vec<FaultRow> = opts.faults.iter().map(row).collect();
    for (&(f, c), fields) in pairs.iter().zip(outcomes) {
        let row = &mut rows[f];
        row.tried += 1;
        if fields.is_empty() {
            continue;
        }
        row.kills += 1;
        *row.families.entry(cases[c].family.clone()).or_default() += 1;
        for field in fields {
            *row.fields.entry(field).or_default() += 1;
        }
    }
    Ok(AdequacyReport {
        format: REPORT_TAG.into(),
        format_version: REPORT_VERSION,
        histories: cases.len() as u64,
        migration_goldens: cases.iter().filter(|c| c.migration.is_some()).count() as u64,
        orders: opts.orders,
        order_seed: opts.order_seed,
        min_kills: opts.min_kills,
        killed: rows.iter().filter(|r| r.kills > 0).count() as u64,
        survivors: rows.iter().filter(|r| r.kills == 0).map(|r| r.name.clone()).collect(),
        weak: rows.iter().filter(|r| r.kills > 0 && r.kills < opts.min_kills).map(|r| r.name.clone()).collect(),
        rules: rule_rows(&rows),
        faults: rows,
    })
}

/// The rules the rows break, in the rule list's order, then any other rule in row order.
fn rule_rows(rows: &[FaultRow]) -> Vec<RuleRow> {
    let mut ids: Vec<&str> = crate::fault::RULES.iter().map(|r| r.id).filter(|id| rows.iter().any(|f| f.rule == *id)).collect();
    for f in rows {
        if !ids.contains(&f.rule.as_str()) {
            ids.push(&f.rule);
        }
    }
    ids.into_iter()
        .map(|id| {
            let of: Vec<&FaultRow> = rows.iter().filter(|f| f.rule == id).collect();
            RuleRow { rule: id.to_string(), faults: of.len() as u64, kills: of.iter().map(|f| f.kills).min().unwrap_or(0) }
        })
        .collect()
}

/// The manifest's entries, narrowed by `opts.filter`.
fn select(opts: &AdequacyOptions) -> Result<Vec<ManifestEntry>, AdequacyError> {
    let files = Manifest::load(&opts.corpus, false)?.files;
    let Some(glob) = &opts.filter else { return Ok(files) };
    let bad = |reason: String| AdequacyError::BadFilter { glob: glob.clone(), reason };
    let m = globset::Glob::new(glob).map_err(|e| bad(e.to_string()))?.compile_matcher();
    let chosen: Vec<ManifestEntry> = files.into_iter().filter(|e| m.is_match(e.id())).collect();
    if chosen.is_empty() {
        return Err(AdequacyError::NothingSelected { corpus: opts.corpus.clone(), glob: glob.clone() });
    }
    Ok(chosen)
}

fn row(f: &Fault) -> FaultRow {
    FaultRow {
        name: f.name.into(),
        rule: f.rule.into(),
        store_type: f.store_type.into(),
        layer: f.layer.as_str().into(),
        description: f.description.into(),
        tried: 0,
        kills: 0,
        families: BTreeMap::new(),
        fields: BTreeMap::new(),
    }
}

/// The scenario family of a history: its generator scenario, `lattice-tests` for the histories
/// translated from Lattice's tests, `(none)` for hand-written ones.
fn family(entry: &ManifestEntry, history: &History) -> String {
    if entry.name().starts_with("lattice-") {
        return "lattice-tests".into();
    }
    history.provenance.as_ref().map_or_else(|| "(none)".into(), |p| p.scenario.clone())
}

fn load_case(opts: &AdequacyOptions, registry: &Registry, entry: &ManifestEntry) -> Result<Case, AdequacyError> {
    let history = corpus::load_checked(&opts.corpus, entry)?;
    let golden = golden::load(&golden::path_for(&opts.golden, entry), &entry.id())?;
    let migration = match source_migration(&entry.store_type) {
        Some(m) => Some(load_migration_golden(opts, &m, entry)?),
        None => None,
    };
    let convergence = (opts.orders > 0)
        .then(|| registry.opener(&entry.store_type).map(|o| verdict(&history, &entry.id(), &o.logic(), HostFaults::default(), opts)))
        .transpose()?;
    Ok(Case { family: family(entry, &history), entry: entry.clone(), history, golden, migration, convergence })
}

/// The migration whose source type is `store_type`, if any (its goldens are in the corpus).
fn source_migration(store_type: &str) -> Option<KvToV2> {
    (store_type == KvToV2::default().source_type()).then(KvToV2::default)
}

fn load_migration_golden(opts: &AdequacyOptions, m: &KvToV2, entry: &ManifestEntry) -> Result<MigrationGolden, AdequacyError> {
    let path = migration_golden_path(&opts.golden, m, entry)?;
    let bad = |reason: String| AdequacyError::MigrationGolden { path: path.clone(), reason };
    if !path.exists() {
        return Err(bad(format!(
            "missing migration golden for history `{}` (run `lattice-conform bless`, review, then `bless --accept`)",
            entry.id()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// Whether `fault` can change anything `case` checks.
fn reachable(fault: &Fault, case: &Case) -> bool {
    let t = case.entry.store_type.as_str();
    let migrates = case.migration.is_some();
    let to_type = KvToV2::default().target_type().to_string();
    fault.applies_to(t)
        || (migrates && fault.layer == Layer::Migration && fault.store_type == t)
        || (migrates && fault.store_type == to_type && fault.logic_for(&to_type).is_some())
}

/// The fields in which `case` under `fault` differs from what is expected (empty: not caught).
fn caught(opts: &AdequacyOptions, registry: &Registry, fault: &Fault, case: &Case) -> Result<Vec<Field>, AdequacyError> {
    let t = &case.entry.store_type;
    let faults = fault.host_faults();
    let logic = match fault.logic_for(t) {
        Some(l) => l,
        None => registry.opener(t)?.logic(),
    };
    let mut fields = Vec::new();
    if fault.applies_to(t) {
        let actual = golden::compute_with(&case.history, logic.clone(), faults, &case.entry);
        fields = verify::differing_fields(&case.golden, &actual);
        if let Some(reference) = case.convergence {
            if verdict(&case.history, &case.entry.id(), &logic, faults, opts) != reference {
                fields.push(Field::Convergence);
            }
        }
    }
    if let Some(expected) = &case.migration {
        let m = KvToV2 { fault: fault.migration_fault() };
        let target = m.target_type();
        let build = GoldenBuild {
            source: logic,
            target: fault.logic_for(target).map_or_else(|| registry.opener(target).map(|o| o.logic()), Ok)?,
            faults,
        };
        // A faulty build may refuse its own migration ops: that is caught, not an input error.
        let differs = match crate::golden::compute_migration_golden_with(&m, &case.entry, &case.history, &build) {
            Ok(actual) => actual != *expected,
            Err(_) => true,
        };
        if differs {
            fields.push(Field::MigrationGolden);
        }
    }
    fields.sort();
    Ok(fields)
}

/// The convergence verdict of `h` under a build: does every one of `opts.orders` seeded orders
/// reach the own order's hashes ([`converge::disagree`])? No shrinking: only the verdict counts.
fn verdict(h: &History, id: &str, logic: &Logic, faults: HostFaults, opts: &AdequacyOptions) -> Verdict {
    let mut own = replayed(h, logic, faults, h.ops.iter());
    if own.stall().is_some() {
        return Verdict::Skipped;
    }
    let own = (own.observed_hash(), own.state_hash());
    for order in converge::orders(h, id, opts.orders, opts.order_seed) {
        let mut s = replayed(h, logic, faults, order.iter().map(|&i| &h.ops[i]));
        if converge::disagree(&h.store_type, (s.observed_hash(), s.state_hash()), own) {
            return Verdict::Diverges;
        }
    }
    Verdict::Converges
}

fn replayed<'a>(h: &History, logic: &Logic, faults: HostFaults, ops: impl Iterator<Item = &'a crate::op::Op>) -> MemStore {
    let mut s = MemStore::new(h.identity(), logic.clone()).with_faults(faults);
    for op in ops {
        s.deliver(op);
    }
    s
}

/// `work` over `items` on `jobs` threads; results in item order, the first error (by item order)
/// wins.
fn parallel<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> Result<R, AdequacyError> + Sync,
) -> Result<Vec<R>, AdequacyError> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<R, AdequacyError>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                slots.lock().expect("no thread panics while holding the lock")[i] = Some(result);
            });
        }
    });
    slots.into_inner().expect("threads are done").into_iter().map(|r| r.expect("every item ran")).collect()
}

/// The report for people: one line per fault (kills, families, fields), then the verdict.
pub fn render_human(r: &AdequacyReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "corpus adequacy: {} faults × {} histories ({} with migration goldens), convergence over {} orders (seed {})",
        r.faults.len(),
        r.histories,
        r.migration_goldens,
        r.orders,
        r.order_seed
    );
    let _ = writeln!(
        out,
        "{:<32} {:<14} {:<9} {:<15} {:>5}  caught by (family: histories | field: histories)",
        "fault", "rule", "layer", "type", "kills"
    );
    for f in &r.faults {
        let families: Vec<String> = f.families.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let fields: Vec<String> = f.fields.iter().map(|(k, v)| format!("{} {v}", k.as_str())).collect();
        let _ = writeln!(
            out,
            "{:<32} {:<14} {:<9} {:<15} {:>5}  {} | {}",
            f.name,
            f.rule,
            f.layer,
            f.store_type,
            f.kills,
            if families.is_empty() { "-".to_string() } else { families.join(", ") },
            if fields.is_empty() { "-".to_string() } else { fields.join(", ") }
        );
    }
    let rate = r.kill_rate_permille();
    let _ = writeln!(
        out,
        "killed {} of {} faults ({}.{}%); fewest kills {} (required {})",
        r.killed,
        r.faults.len(),
        rate / 10,
        rate % 10,
        r.min_measured_kills(),
        r.min_kills
    );
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let pinned = r.rules.iter().filter(|x| x.kills >= r.min_kills).count();
    let _ = writeln!(out, "rules: {pinned} of {} pinned by at least {} histories", r.rules.len(), r.min_kills);
    let _ = writeln!(out, "surviving: {}", list(&r.survivors));
    let _ = writeln!(out, "killed by fewer than {}: {}", r.min_kills, list(&r.weak));
    out
}
