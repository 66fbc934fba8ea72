//! `record` and `open --verify-history`: real stores as test input, and a node refusing a build
//! that changed the meaning of its history.
//!
//! `record` exports a store's log (the applied ops, in apply order) as a history, checked to
//! reproduce the store's current state hash, so a maintainer can certify a hot fix against
//! production histories. `verify_history` replays a store's log with a given build and refuses
//! the build if the result differs from the stored state hash: the store verified against its own
//! tables first, so it is the build that disagrees with the store's history, not the store that
//! is corrupt.

use std::path::Path;

use crate::build::{BuildError, BuildSpec};
use crate::deep::{deep_check, DeepError};
pub use crate::deep::{verify_deep, DeepCheck};
use crate::history::{Form, Header, History, HistoryError, HistoryWriter, Written};
use crate::lockstep::Divergence;
use crate::registry::Registry;
use crate::replay::MemStore;
use crate::store::{StoreError, StoreReader};
use crate::stream::UntilErr;

/// Failures of `record` and `verify_history`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Deep(#[from] DeepError),
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    #[error(transparent)]
    Bless(#[from] crate::golden::BlessError),
}

impl RecordError {
    /// Whether this is a failed check on a readable store (exit 1) rather than bad input (exit 2).
    pub fn is_check_failure(&self) -> bool {
        matches!(self, RecordError::Deep(d) if d.is_check_failure()) || matches!(self, RecordError::Store(s) if s.is_check_failure())
    }
}

/// Reads a store (read-only) and returns its log as a history, after checking that the native
/// logic replays it to the stored state hash and, for a stalled store, to the same stall. The
/// log holds every received op, so a stalled store's log is a complete history that reproduces
/// its stall.
pub fn record(dir: &Path, registry: &Registry) -> Result<History, RecordError> {
    let reader = StoreReader::open(dir)?;
    let mut ops = Vec::new();
    deep_check::<RecordError>(dir, &reader, registry, &mut |op| {
        ops.push(op.clone());
        Ok(())
    })?;
    Ok(History::new(reader.identity(), ops))
}

/// What [`record_to`] wrote.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub identity: crate::store::StoreIdentity,
    pub check: DeepCheck,
    pub written: Written,
    /// `record --corpus` over a listed history with expected reads (docs/FORMAT.md §10.10): how
    /// many it carried over (their ops are the recorded log's first ops) and how many it dropped.
    pub expect_kept: usize,
    pub expect_dropped: usize,
}

/// [`record`] straight into a history file at `out` in `form`, streaming the log: memory does
/// not grow with the log's length beyond what the replay keeps. The file appears (atomically)
/// only if every check passed.
pub fn record_to(dir: &Path, registry: &Registry, out: &Path, form: Form) -> Result<Recorded, RecordError> {
    record_expecting(dir, registry, out, form, Vec::new())
}

/// [`record_to`] writing `expect` (already checked against the log) as the history's expected reads.
fn record_expecting(
    dir: &Path,
    registry: &Registry,
    out: &Path,
    form: Form,
    expect: Vec<crate::expect::Read>,
) -> Result<Recorded, RecordError> {
    let reader = StoreReader::open(dir)?;
    let identity = reader.identity().clone();
    let header = Header { expect, ..Header::of(&identity) };
    let mut writer = HistoryWriter::create(out, form, &header, reader.log_len())?;
    let bar = crate::progress::bar("record", reader.log_len(), "ops");
    let check = deep_check(dir, &reader, registry, &mut |op| {
        bar.inc(1);
        writer.push(op).map_err(RecordError::from)
    })?;
    let written = writer.finish()?;
    Ok(Recorded { identity, check, written, expect_kept: 0, expect_dropped: 0 })
}

/// The expected reads of the history listed at `rel` (if any) that still hold their place in the
/// log of the store at `dir`: those whose first `after` ops are the log's first `after` entries.
/// Returns them and how many were dropped.
fn carried_expectations(dir: &Path, corpus_dir: &Path, rel: &str) -> Result<(Vec<crate::expect::Read>, usize), RecordError> {
    let listed = crate::corpus::Manifest::load(corpus_dir, true).ok().is_some_and(|m| m.files.iter().any(|e| e.path == rel));
    let old = match listed.then(|| crate::history::History::load(&corpus_dir.join(rel))) {
        Some(Ok(h)) if !h.expect.is_empty() => h,
        _ => return Ok((Vec::new(), 0)),
    };
    let reach = old.expect.iter().filter_map(|e| e.after).max().unwrap_or(0) as usize;
    let reader = StoreReader::open(dir)?;
    let mut log = Vec::with_capacity(reach);
    for op in reader.log_stream()?.take(reach) {
        log.push(op?);
    }
    let agree = old.ops.iter().zip(&log).take_while(|(a, b)| a == b).count();
    let (kept, dropped): (Vec<_>, Vec<_>) = old.expect.into_iter().partition(|e| e.after.is_some_and(|n| n as usize <= agree));
    Ok((kept, dropped.len()))
}

/// Above this many ops, [`record_to_corpus`] writes the binary form unless told otherwise.
pub const CORPUS_JSON_MAX_OPS: u64 = 100_000;

/// `record --corpus`: [`record_to`] into the corpus at `corpus_dir` as `name` (in `form`, default
/// JSON up to [`CORPUS_JSON_MAX_OPS`] ops and binary above), listed in its manifest, with its
/// goldens written as *pending* (the history's and, when a migration starts from its type, the
/// migration's) for review with `bless --accept`.
pub fn record_to_corpus(
    dir: &Path,
    registry: &Registry,
    corpus_dir: &Path,
    golden_dir: &Path,
    name: &str,
    form: Option<Form>,
) -> Result<(Recorded, crate::corpus::ManifestEntry, Vec<crate::golden::Blessed>), RecordError> {
    let ops = StoreReader::open(dir)?.log_len();
    let form = form.unwrap_or(if ops > CORPUS_JSON_MAX_OPS { Form::Binary } else { Form::Json });
    let identity = crate::store::peek_info(dir)?;
    let rel = crate::corpus::history_path(corpus_dir, &identity.store_type, name, form)?;
    let (expect, dropped) = carried_expectations(dir, corpus_dir, &rel)?;
    let kept = expect.len();
    let mut r = record_expecting(dir, registry, &corpus_dir.join(&rel), form, expect)?;
    (r.expect_kept, r.expect_dropped) = (kept, dropped);
    let entry = crate::corpus::entry_of(&rel, &r.identity.store_type, &r.written);
    let blessed = crate::golden::bless_and_list(corpus_dir, golden_dir, &entry, registry)?;
    Ok((r, entry, blessed))
}

/// What `verify_history` found when the build does not reproduce the store.
#[derive(Debug)]
pub struct HistoryRefusal {
    pub replayed: String,
    pub stored: String,
    /// The first op at which the build departs from the registered native logic, if it does.
    pub divergence: Option<Divergence>,
}

/// The `format` of `open --verify-history --json`'s output when the build is refused.
pub const REFUSAL_TAG: &str = "lattice-conform/history-refusal";

/// What `open --verify-history --json` prints when the build is refused (docs/FORMAT.md §16.2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefusalJson {
    pub format: &'static str,
    pub format_version: u32,
    pub dir: String,
    pub build: String,
    /// Always `false`: the build does not reproduce the store's history.
    pub reproduces: bool,
    pub stored_state_hash: String,
    pub replayed_state_hash: String,
    /// The first op at which the build departs from the store's registered logic (§13.2), or
    /// `null` if none does (the registered logic does not reproduce the stored state either).
    pub divergence: Option<Divergence>,
}

impl HistoryRefusal {
    /// The refusal in words: it blames the build, not the store (which verified).
    pub fn message(&self, dir: &Path, build: &BuildSpec) -> String {
        format!(
            "build {build} does not reproduce this store's history: replaying the log of {} with it gives state hash {}, but the store, which verifies against its own tables, says {}",
            dir.display(),
            self.replayed,
            self.stored
        )
    }

    pub fn to_json(&self, dir: &Path, build: &BuildSpec) -> RefusalJson {
        RefusalJson {
            format: REFUSAL_TAG,
            format_version: 1,
            dir: dir.display().to_string(),
            build: build.to_string(),
            reproduces: false,
            stored_state_hash: self.stored.clone(),
            replayed_state_hash: self.replayed.clone(),
            divergence: self.divergence.clone(),
        }
    }
}

/// Replays the store's log with `build`; `Ok(None)` if it reproduces the stored state hash,
/// `Ok(Some(refusal))` if the build does not (the store itself verified first: a store that does
/// not is `Err`, *corrupt*).
pub fn verify_history(dir: &Path, build: &BuildSpec, registry: &Registry) -> Result<Option<HistoryRefusal>, RecordError> {
    let reader = StoreReader::open(dir)?;
    reader.verify()?;
    let id = reader.identity().clone();
    if !build.is_exec() {
        let logic = build.logic(&id.store_type, registry)?;
        build.check_identity(&logic, &id.store_type, id.schema_version, &format!("the store {}", dir.display()))?;
    }
    let factory = build.factory(&id.store_type, registry)?;
    let unusable = |e: crate::replica::ReplicaError| RecordError::from(BuildError::from(e));
    let mut ops = UntilErr::new(reader.log_stream()?);
    let mut replica = factory.open(&id).map_err(unusable)?;
    crate::replica::deliver_all(replica.as_mut(), ops.by_ref()).map_err(unusable)?;
    let replayed = replica.state_hash().map_err(unusable)?;
    replica.finish().map_err(unusable)?;
    ops.finish()?;
    if replayed == reader.state_hash() {
        return Ok(None);
    }
    let reference = registry.resolve(&id).map_err(BuildError::from)?;
    let mut again = UntilErr::new(reader.log_stream()?);
    let mut r = MemStore::new(id.clone(), reference);
    let mut c = factory.open(&id).map_err(unusable)?;
    let divergence = crate::lockstep::first_divergence_of(&Header::of(&id), again.by_ref(), &mut r, c.as_mut(), 0).map_err(unusable)?;
    again.finish()?;
    Ok(Some(HistoryRefusal { replayed: replayed.to_string(), stored: reader.state_hash().to_string(), divergence }))
}
