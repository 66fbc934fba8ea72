//! `verify`: replay corpus histories through a build and compare them with the goldens.
//!
//! Each selected history is digest-checked against the manifest, replayed in memory with the
//! build's logic, and compared with its golden: halt (op index and kind), checkpoint hashes, final
//! hash and counts. On a mismatch the reference build (the registered native logic) and the
//! candidate are replayed in lockstep from the last agreeing checkpoint to find the exact first
//! divergent op, which is reported decoded together with a key-level diff of `data`. Histories
//! run in parallel; results are always reported in corpus order.
//!
//! A [`Report`] is bound to its inputs — the tool, the build's identity, the digests of the corpus
//! manifest and of the goldens, the selection — so that [`Report::merge`] combines only the shards
//! of one run, and all of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::build::{BuildError, BuildSpec};
use crate::converge;
use crate::corpus::{self, CorpusError, Manifest, ManifestEntry};
use crate::golden::{self, Golden, GoldenError};
use crate::history::Header;
use crate::registry::Registry;
use crate::replay::MemStore;

/// What to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub corpus: PathBuf,
    pub golden: PathBuf,
    pub build: BuildSpec,
    /// Only histories of this store type.
    pub store_type: Option<String>,
    /// Only histories whose id (`<store_type>/<name>`) matches this glob.
    pub filter: Option<String>,
    /// `(i, n)`: only the i-th of n shards (1-based).
    pub shard: Option<(u32, u32)>,
    pub jobs: usize,
    /// Run every history even after a failure.
    pub keep_going: bool,
    /// Show a progress bar on stderr (drawn only when [`crate::progress::enable`]d).
    pub progress: bool,
    /// Run each history this many times in fresh replicas (fresh processes for an outside
    /// build); any difference between runs fails the history as a nondeterministic build.
    pub repeat: u32,
}

impl VerifyOptions {
    /// Defaults: `corpus/` and `golden/` under `root`, native build, every type, all cores.
    pub fn new(root: &std::path::Path) -> VerifyOptions {
        VerifyOptions {
            corpus: root.join("corpus"),
            golden: root.join("golden"),
            build: BuildSpec::Native,
            store_type: None,
            filter: None,
            shard: None,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_going: false,
            progress: false,
            repeat: 1,
        }
    }
}

/// Unusable input: verification could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Golden(#[from] GoldenError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("--filter {glob:?}: {reason}")]
    BadFilter { glob: String, reason: String },
    #[error("no history selected from corpus {corpus} ({selection})")]
    NothingSelected { corpus: PathBuf, selection: String },
    #[error("--type {store_type}: unknown store type: corpus {corpus} has no history of it and no opener is registered for it; known types: {known}")]
    UnknownType { store_type: String, corpus: PathBuf, known: String },
    #[error(
        "{build}: the build implements `{found}` schema {found_schema}, but history `{history}` is `{expected}` schema {expected_schema}"
    )]
    BuildTypeMismatch { build: String, history: String, found: String, found_schema: u64, expected: String, expected_schema: u64 },
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("history `{history}`: build {build} is unusable")]
    Replica {
        build: String,
        history: String,
        #[source]
        source: crate::replica::ReplicaError,
    },
}

pub use crate::lockstep::{first_divergence, first_divergence_streamed, first_divergence_with, Divergence};
pub use crate::report::{parse_shard, shard_of, tool_id, Failure, HistoryResult, NotRun, Report, Selection};

mod compare;
pub use compare::*;

/// What a build is, however it was named: `wasm <blake3 of the module's bytes>` for a `.wasm`
/// file or `cas:<digest>`; for the native builds, whose logic is compiled into this tool,
/// `native <tool>` or `native-fault:<name> <tool>` ([`tool_id`]). A `.wasm` file is read (and
/// compiled, so a module that is no guest is refused here); an unknown fault is refused.
pub fn build_identity(build: &BuildSpec) -> Result<String, VerifyError> {
    Ok(match build {
        BuildSpec::Native => format!("native {}", tool_id()),
        BuildSpec::NativeFault(name) => {
            if crate::fault::find(name).is_none() {
                return Err(BuildError::UnknownFault { fault: name.clone(), store_type: String::new() }.into());
            }
            format!("native-fault:{name} {}", tool_id())
        }
        BuildSpec::WasmFile(path) => {
            let module = crate::wasm::WasmModule::from_file(path)
                .map_err(|source| BuildError::Wasm { build: build.to_string(), source: Box::new(source) })?;
            format!("wasm {}", module.digest())
        }
        BuildSpec::Cas(digest) => format!("wasm {digest}"),
        BuildSpec::Exec(exec) => exec.identity().map_err(BuildError::Exec)?,
        // Callers resolve a prefix against the cache first ([`BuildSpec::resolve`]).
        BuildSpec::CasPrefix(_) => {
            return Err(BuildError::BadSpec(format!("{build}: a `cas:` prefix not resolved against the cache")).into())
        }
    })
}

/// The digest of a set of goldens (docs/FORMAT.md §13.4): blake3 over, for each history in
/// ascending id order, its id's UTF-8 bytes, a 0 byte, then 0x01, the golden file's length as a
/// u64 LE and its bytes — or a single 0x00 if the file does not exist.
pub fn golden_set_digest(goldens: impl IntoIterator<Item = (String, PathBuf)>) -> Result<String, VerifyError> {
    let mut goldens: Vec<(String, PathBuf)> = goldens.into_iter().collect();
    goldens.sort();
    let mut hasher = blake3::Hasher::new();
    for (id, path) in goldens {
        hasher.update(id.as_bytes());
        hasher.update(&[0]);
        match std::fs::read(&path) {
            Ok(bytes) => {
                hasher.update(&[1]);
                hasher.update(&(bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                hasher.update(&[0]);
            }
            Err(source) => return Err(GoldenError::Io { path, source }.into()),
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Runs the convergence check (`verify --orders`, [`converge::check`]) on every history `opts` selects, with `opts`' build; `known` is the
/// known-divergences file and where it was read from.
pub fn run_orders(
    opts: &VerifyOptions,
    registry: &Registry,
    orders: u32,
    seed: u64,
    known: Option<(&std::path::Path, &converge::KnownDivergences)>,
) -> Result<converge::Run, anyhow::Error> {
    let entries = select(opts)?;
    let mut histories = Vec::with_capacity(entries.len());
    let mut types = std::collections::BTreeSet::new();
    for e in &entries {
        let h = crate::corpus::load_checked(&opts.corpus, e)?;
        if !opts.build.is_exec() {
            let logic = opts.build.logic(&h.store_type, registry)?;
            opts.build.check_identity(&logic, &h.store_type, h.schema_version, &format!("history `{}`", e.id()))?;
        }
        let f = opts.build.factory(&h.store_type, registry)?;
        types.insert(h.store_type.clone());
        let unusable = |e2: crate::replica::ReplicaError| anyhow::anyhow!("history `{}`: build {} is unusable: {e2}", e.id(), opts.build);
        histories.push((e.id(), converge::check(&h, &e.id(), f.as_ref(), orders, seed, known.map(|(_, k)| k)).map_err(unusable)?));
    }
    let mut run = converge::Run { orders, seed, histories, stale_known: vec![] };
    if let Some((path, file)) = known {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        for k in file.divergences.iter().filter(|k| types.contains(&k.store_type)) {
            let f = opts.build.factory(&k.store_type, registry)?;
            if !converge::known_still_diverges(dir, k, f.as_ref())? {
                run.stale_known.push(k.id.clone());
            }
        }
        run.stale_known.extend(converge::stale_occurrences(file, &run));
    }
    Ok(run)
}

/// Runs a verification. `Err` is unusable input; failing histories are in the report. A shard
/// that selects no history gives a passing report of 0 histories.
pub fn verify(opts: &VerifyOptions, registry: &Registry) -> Result<Report, VerifyError> {
    let selected = select_all(opts, &registry.registered_types())?;
    let shards = opts.shard.map(|(i, n)| vec![format!("{i}/{n}")]).unwrap_or_default();
    let mut report = Report::new(opts.build.to_string(), shards);
    report.build_identity = build_identity(&opts.build.resolve(registry)?)?;
    report.corpus_manifest_blake3 = selected.manifest_blake3.clone();
    report.golden_blake3 = golden_set_digest(selected.all.iter().map(|e| (e.id(), golden::path_for(&opts.golden, e))))?;
    report.selection = Selection {
        kind: "histories".into(),
        store_type: opts.store_type.clone(),
        filter: opts.filter.clone(),
        shard_count: opts.shard.map(|(_, n)| n),
        selected: selected.entries.len() as u64,
        total: selected.all.len() as u64,
    };
    report.wasm_limits = opts.build.is_wasm().then(|| registry.wasm_limits());
    let entries = selected.entries;
    if entries.is_empty() {
        return Ok(report);
    }
    let results = run_all(opts, registry, &entries)?;
    let first_failure = results.iter().find(|(r, _)| r.failure.is_some()).map(|(r, _)| r.id.clone());
    report.not_run = entries[results.len()..]
        .iter()
        .map(|e| NotRun {
            id: e.id(),
            store_type: e.store_type.clone(),
            reason: format!(
                "not run: verification stopped at the first failure ({}); use --keep-going to run every history",
                first_failure.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    report.not_run.sort_by(|a, b| a.id.cmp(&b.id));
    report.durations_us = results.iter().map(|(r, d)| (r.id.clone(), d.as_micros() as u64)).collect();
    report.results = results.into_iter().map(|(r, _)| r).collect();
    report.results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(report)
}

/// Fills in the inputs and selection of a `verify --migrations` report: every migration golden
/// compared (`migration:<id>`), over the whole corpus.
pub fn bind_migrations(report: &mut Report, corpus_dir: &std::path::Path, golden_dir: &std::path::Path) -> Result<(), VerifyError> {
    let manifest_path = corpus_dir.join(corpus::MANIFEST);
    let manifest = Manifest::load(corpus_dir, false)?;
    let mut goldens = Vec::new();
    for m in crate::migrate::migrations() {
        for e in manifest.files.iter().filter(|e| e.store_type == m.source_type()) {
            goldens.push((format!("migration:{}", e.id()), crate::golden::migration_golden_path(golden_dir, m.as_ref(), e)?));
        }
    }
    report.build_identity = build_identity(&report.build.parse()?)?;
    report.corpus_manifest_blake3 = corpus::digest_file(&manifest_path)?;
    report.selection = Selection {
        kind: "migrations".into(),
        store_type: None,
        filter: None,
        shard_count: None,
        selected: goldens.len() as u64,
        total: goldens.len() as u64,
    };
    report.golden_blake3 = golden_set_digest(goldens)?;
    Ok(())
}

/// What `--type`, `--filter` and `--shard` select from a corpus.
#[derive(Clone, Debug)]
pub struct Selected {
    /// blake3 of the manifest file's bytes.
    pub manifest_blake3: String,
    /// Selected by type and filter, in every shard, in manifest order.
    pub all: Vec<ManifestEntry>,
    /// Those of them in this shard (all of them when unsharded), in manifest order.
    pub entries: Vec<ManifestEntry>,
}

/// The manifest entries selected by type, filter and shard, in manifest order (empty for a
/// shard that selects none).
pub fn select(opts: &VerifyOptions) -> Result<Vec<ManifestEntry>, VerifyError> {
    Ok(select_all(opts, &[])?.entries)
}

/// The selection (docs/FORMAT.md §13.1). A `--type` that is neither in the corpus nor among
/// `registered` types is an error naming the known types; a type and filter that select nothing
/// are an error; a shard of a non-empty selection may be empty.
pub fn select_all(opts: &VerifyOptions, registered: &[String]) -> Result<Selected, VerifyError> {
    let manifest = Manifest::load(&opts.corpus, false)?;
    let manifest_blake3 = corpus::digest_file(&opts.corpus.join(corpus::MANIFEST))?;
    if let Some(t) = &opts.store_type {
        let known: std::collections::BTreeSet<&str> =
            manifest.files.iter().map(|e| e.store_type.as_str()).chain(registered.iter().map(String::as_str)).collect();
        if !known.contains(t.as_str()) {
            let known = known.into_iter().collect::<Vec<_>>().join(", ");
            return Err(VerifyError::UnknownType { store_type: t.clone(), corpus: opts.corpus.clone(), known });
        }
    }
    let glob = match &opts.filter {
        Some(g) => {
            Some(globset::Glob::new(g).map_err(|e| VerifyError::BadFilter { glob: g.clone(), reason: e.to_string() })?.compile_matcher())
        }
        None => None,
    };
    let all: Vec<ManifestEntry> = manifest
        .files
        .into_iter()
        .filter(|e| opts.store_type.as_ref().is_none_or(|t| *t == e.store_type))
        .filter(|e| glob.as_ref().is_none_or(|g| g.is_match(e.id())))
        .collect();
    if all.is_empty() {
        let mut selection = Vec::new();
        selection.extend(opts.store_type.as_ref().map(|t| format!("type `{t}`")));
        selection.extend(opts.filter.as_ref().map(|g| format!("filter `{g}`")));
        let selection = if selection.is_empty() { "every history".to_string() } else { selection.join(", ") };
        return Err(VerifyError::NothingSelected { corpus: opts.corpus.clone(), selection });
    }
    let entries = all.iter().filter(|e| opts.shard.is_none_or(|(i, n)| shard_of(&e.id(), n) == i)).cloned().collect();
    Ok(Selected { manifest_blake3, all, entries })
}

/// Runs histories on `opts.jobs` threads. Without `keep_going`, stops handing out histories after
/// a failure and returns the results up to and including the first failure in corpus order —
/// every earlier history has completed by then, so the output does not depend on timing. Each
/// result comes with the wall time its run took.
fn run_all(opts: &VerifyOptions, registry: &Registry, entries: &[ManifestEntry]) -> Result<Vec<(HistoryResult, Duration)>, VerifyError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<Timed>>> = Mutex::new((0..entries.len()).map(|_| None).collect());
    let bar = progress_bar(opts.progress, entries.len());
    let factories = Factories::default();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, entries.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(entry) = entries.get(i) else { break };
                let started = Instant::now();
                let result = verify_one(opts, registry, &factories, entry).map(|r| (r, started.elapsed()));
                let failed = !matches!(&result, Ok((r, _)) if r.failure.is_none());
                if failed && !opts.keep_going {
                    stop.store(true, Ordering::SeqCst);
                }
                slots.lock().expect("no thread panics while holding the lock")[i] = Some(result);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    collect(slots.into_inner().expect("threads are done"), opts.keep_going)
}

/// A history's result and how long it took, or why it could not be verified.
type Timed = Result<(HistoryResult, Duration), VerifyError>;

fn collect(slots: Vec<Option<Timed>>, keep_going: bool) -> Result<Vec<(HistoryResult, Duration)>, VerifyError> {
    let mut out = Vec::new();
    for slot in slots {
        let Some(result) = slot else { break };
        let result = result?;
        let failed = result.0.failure.is_some();
        out.push(result);
        if failed && !keep_going {
            break;
        }
    }
    Ok(out)
}

fn progress_bar(show: bool, len: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    crate::progress::bar("verify", len as u64, "histories")
}

/// The replica factories of one run, one per store type, shared by its threads (so an outside
/// build's processes are reused from history to history).
#[derive(Default)]
pub struct Factories(Mutex<BTreeMap<String, Factory>>);

/// A store type's replica factory, and the (type, schema) its logic implements — `None` for an
/// outside build, whose handshake says it when a replica is opened.
type Factory = (std::sync::Arc<dyn crate::replica::ReplicaFactory>, Option<(String, u64)>);

impl Factories {
    /// The factory of `store_type`, made (and the build's logic resolved) once per run.
    fn get(&self, build: &BuildSpec, store_type: &str, registry: &Registry) -> Result<Factory, BuildError> {
        let mut map = self.0.lock().expect("no panic holds the factories");
        if let Some(f) = map.get(store_type) {
            return Ok(f.clone());
        }
        let implements = match build.is_exec() {
            true => None,
            false => {
                let logic = build.replay_parts(store_type, registry)?.0;
                Some((logic.store_type().to_string(), logic.schema_version()))
            }
        };
        let f: Factory = (build.factory(store_type, registry)?.into(), implements);
        map.insert(store_type.to_string(), f.clone());
        Ok(f)
    }
}

/// Verifies one history against its golden.
pub fn verify_one(
    opts: &VerifyOptions,
    registry: &Registry,
    factories: &Factories,
    entry: &ManifestEntry,
) -> Result<HistoryResult, VerifyError> {
    let mut stream = corpus::open_checked(&opts.corpus, entry)?;
    let header = stream.header().clone();
    let (factory, implements) = factories.get(&opts.build, &header.store_type, registry)?;
    if let Some(implements) = &implements {
        check_build_type(opts, &header, implements, entry)?;
    }
    let unusable = |source| VerifyError::Replica { build: opts.build.to_string(), history: entry.id(), source };
    let mut replica = factory.open(&header.identity()).map_err(unusable)?;
    let golden::Computed { golden: actual, unmet } =
        golden::compute_expecting(&header, stream.ops(), replica.as_mut(), entry, false).map_err(unusable)?;
    drop(replica);
    // A history that does not read to its end is named before its golden is looked at.
    let ops = stream.finish()?.ops;
    let expected = golden::load(&golden::path_for(&opts.golden, entry), &entry.id())?;
    let failure = match (compare(&expected, &actual), unmet.is_empty()) {
        (Some(summary), _) => Some(Failure { summary, divergence: None, expectations: unmet }),
        (None, false) => Some(Failure { summary: unmet_summary(&unmet), divergence: None, expectations: unmet }),
        (None, true) => None,
    };
    // Runs that differ are a nondeterministic build whether or not the first matched the golden.
    if opts.repeat > 1 {
        let fresh = opts.build.fresh_factory(&header.store_type, registry)?;
        let differ = repeat_runs(opts, entry, &header, fresh.as_ref(), &actual)?;
        if differ.is_some() || failure.is_none() {
            return Ok(HistoryResult { id: entry.id(), store_type: entry.store_type.clone(), ops, failure: differ });
        }
    }
    let failure = match failure {
        Some(mut f) => {
            // The search replays the history again, from a fresh read of the file.
            let reference = registry.opener(&header.store_type).map_err(BuildError::from)?.logic();
            let mut again = corpus::open_checked(&opts.corpus, entry)?;
            let start = last_agreeing_checkpoint(&expected, &actual);
            let mut r = MemStore::new(header.identity(), reference);
            let mut c = factory.open(&header.identity()).map_err(unusable)?;
            f.divergence = crate::lockstep::first_divergence_of(&header, again.ops(), &mut r, c.as_mut(), start).map_err(unusable)?;
            if f.divergence.is_none() && opts.build.is_exec() {
                f.summary.push_str("; the reference build agrees with a fresh run of this build on every op: the golden changed, or the build is nondeterministic (run with --repeat N to tell)");
            } else if f.divergence.is_none() {
                f.summary.push_str("; the reference build agrees with this build on every op, so the golden is what changed (re-run `lattice-conform bless` and review)");
            }
            again.finish()?;
            Some(f)
        }
        None => None,
    };
    Ok(HistoryResult { id: entry.id(), store_type: entry.store_type.clone(), ops, failure })
}

/// The one-line summary of a run that reproduces its golden but misses expected reads.
fn unmet_summary(unmet: &[crate::expect::Unmet]) -> String {
    let n = unmet.len();
    let first = &unmet[0];
    format!(
        "{n} expected read{} not met, first after {} ops ({}); the golden agrees with this build, so it records the same mistake",
        if n == 1 { "" } else { "s" },
        first.after,
        first.differences.join("; ")
    )
}

/// Runs the history again `opts.repeat - 1` times in fresh replicas; the first run whose golden
/// differs from the first one's is a nondeterministic build: the lockstep of two fresh replicas
/// names the first op where their outcomes differ (when the two replicas happen to agree that
/// time, the failure says so and shows the differing fields).
fn repeat_runs(
    opts: &VerifyOptions,
    entry: &ManifestEntry,
    header: &Header,
    factory: &dyn crate::replica::ReplicaFactory,
    first: &Golden,
) -> Result<Option<Failure>, VerifyError> {
    let unusable = |source| VerifyError::Replica { build: opts.build.to_string(), history: entry.id(), source };
    for run in 2..=opts.repeat {
        let mut stream = corpus::open_checked(&opts.corpus, entry)?;
        let mut replica = factory.open(&header.identity()).map_err(unusable)?;
        let again = golden::compute_on(header, stream.ops(), replica.as_mut(), entry).map_err(unusable)?;
        stream.finish()?;
        let Some(why) = compare(first, &again) else { continue };
        let mut divergence = None;
        for _ in 0..opts.repeat {
            let mut s = corpus::open_checked(&opts.corpus, entry)?;
            let (mut a, mut b) = (factory.open(&header.identity()).map_err(unusable)?, factory.open(&header.identity()).map_err(unusable)?);
            divergence = crate::lockstep::first_divergence_of(header, s.ops(), a.as_mut(), b.as_mut(), 0).map_err(unusable)?;
            if divergence.is_some() {
                break;
            }
        }
        let at = match &divergence {
            Some(d) => format!("; first differing op {} ({} vs {})", d.op_index, d.reference, d.candidate),
            None => "; two further pairs of runs happened to agree, so no op is named".into(),
        };
        let summary = format!("nondeterministic build: run 1 and run {run} of {} differ ({why}){at}", opts.repeat);
        return Ok(Some(Failure { summary, divergence, expectations: Vec::new() }));
    }
    Ok(None)
}

fn check_build_type(
    opts: &VerifyOptions,
    h: &Header,
    (found, found_schema): &(String, u64),
    entry: &ManifestEntry,
) -> Result<(), VerifyError> {
    if *found == h.store_type && *found_schema == h.schema_version {
        return Ok(());
    }
    Err(VerifyError::BuildTypeMismatch {
        build: opts.build.to_string(),
        history: entry.id(),
        found: found.clone(),
        found_schema: *found_schema,
        expected: h.store_type.clone(),
        expected_schema: h.schema_version,
    })
}

#[cfg(test)]
mod tests;
