//! Migration goldens (docs/FORMAT.md §15): the expected outcome of migrating the state each
//! corpus history reaches — a target state hash, or, for a state no migration op can carry (a
//! value too large for an op of its own), the reason it is not migratable. Computed, blessed and
//! verified here (the migrations themselves are `crate::migrate`); a golden is always computable, so `corpus add`, `record --corpus` and `bless
//! --migrations` never stop at a history that cannot be migrated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lattice_logic::kvstore as kv;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::migrate::{
    chain, default_author, golden_target_id, migrations, target_hash_with, KvToV2, MigrateError, Migration, MigrationFault, NotMigratable,
};
use crate::registry::Registry;
use crate::replay::{HostFaults, MemStore};
use crate::store::{self, StoreIdentity};

/// The expected outcome of migrating one corpus history's final state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationGolden {
    pub format: String,
    pub format_version: u32,
    pub history: String,
    pub history_blake3: String,
    /// `<from type> -> <to type>`.
    pub migration: String,
    pub target_store_id: Uuid,
    pub author: String,
    pub source_state_hash: String,
    pub source_keys: u64,
    /// The migrated state's hash; absent exactly when `not_migratable` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_state_hash: Option<String>,
    /// Present when the source state cannot be migrated (written only then, so goldens of
    /// migratable states keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_migratable: Option<NotMigratable>,
}

impl MigrationGolden {
    /// The outcome in a few words: the target state hash, or why there is none.
    pub fn outcome(&self) -> String {
        match (&self.target_state_hash, &self.not_migratable) {
            (Some(h), _) => format!("target state {h}"),
            (None, Some(n)) => n.to_string(),
            (None, None) => "no target state hash and no reason".to_string(),
        }
    }
}

const MIGRATION_GOLDEN_TAG: &str = "lattice-conform/migration-golden";
const MIGRATION_GOLDEN_VERSION: u32 = 1;

/// `golden/migrations/<from dir>-to-<to dir>/<history name>.json`.
pub fn migration_golden_path(
    golden_dir: &Path,
    m: &dyn Migration,
    entry: &crate::corpus::ManifestEntry,
) -> Result<PathBuf, crate::corpus::CorpusError> {
    let dir = format!("{}-to-{}", crate::corpus::type_dir(m.source_type())?, crate::corpus::type_dir(m.target_type())?);
    Ok(golden_dir.join("migrations").join(dir).join(format!("{}.json", entry.name())))
}

/// Replays a corpus history natively (projection ends where it stalls, if it does), migrates the resulting state in memory with
/// the fixed golden target id and the default author, and records the hashes.
pub fn compute_migration_golden(
    m: &dyn Migration,
    entry: &crate::corpus::ManifestEntry,
    history: &crate::history::History,
    registry: &Registry,
) -> Result<MigrationGolden, MigrateError> {
    compute_migration_golden_streamed(m, entry, &history.header(), history.ops.iter().cloned(), registry)
}

/// [`compute_migration_golden`] over ops as they are read (a corpus history stream).
pub fn compute_migration_golden_streamed(
    m: &dyn Migration,
    entry: &crate::corpus::ManifestEntry,
    header: &crate::history::Header,
    ops: impl Iterator<Item = crate::op::Op>,
    registry: &Registry,
) -> Result<MigrationGolden, MigrateError> {
    let build = GoldenBuild {
        source: registry.resolve(&header.identity())?,
        target: registry.opener(m.target_type())?.logic(),
        faults: HostFaults::default(),
    };
    migration_golden_of(m, entry, &replay_source(header, ops, &build), &build)
}

/// What a migration golden is computed with: the source's and the target's logic and the host
/// faults of both replays ([`compute_migration_golden`] uses the registry's and none).
pub struct GoldenBuild {
    pub source: store::Logic,
    pub target: store::Logic,
    pub faults: HostFaults,
}

/// [`compute_migration_golden`] under a given build (used by `corpus adequacy`).
pub fn compute_migration_golden_with(
    m: &dyn Migration,
    entry: &crate::corpus::ManifestEntry,
    history: &crate::history::History,
    build: &GoldenBuild,
) -> Result<MigrationGolden, MigrateError> {
    migration_golden_of(m, entry, &replay_source(&history.header(), history.ops.iter().cloned(), build), build)
}

/// The migration golden of a replayed source.
pub(super) fn migration_golden_of(
    m: &dyn Migration,
    entry: &crate::corpus::ManifestEntry,
    source: &MemStore,
    build: &GoldenBuild,
) -> Result<MigrationGolden, MigrateError> {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = source.rows().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let id = golden_target_id();
    let target = target_hash_with(m, &rows, id, default_author(), build.target.clone(), build.faults);
    Ok(MigrationGolden {
        format: MIGRATION_GOLDEN_TAG.into(),
        format_version: MIGRATION_GOLDEN_VERSION,
        history: entry.id(),
        history_blake3: entry.blake3.clone(),
        migration: format!("{} -> {}", m.source_type(), m.target_type()),
        target_store_id: id,
        author: hex::encode(default_author()),
        source_state_hash: source.state_hash().to_string(),
        source_keys: rows.len() as u64,
        target_state_hash: target.as_ref().ok().cloned(),
        not_migratable: target.err(),
    })
}

/// Errors of migration goldens (bless and verify).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationGoldenError {
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Golden(#[from] super::GoldenError),
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
}

/// Every (migration, corpus entry) pair whose source type is the migration's.
/// A migration paired with one source history of the corpus.
type MigrationCase = (Arc<dyn Migration>, crate::corpus::ManifestEntry);

fn migration_cases(corpus_dir: &Path) -> Result<Vec<MigrationCase>, MigrationGoldenError> {
    let manifest = crate::corpus::Manifest::load(corpus_dir, false)?;
    let mut out = Vec::new();
    for m in migrations() {
        out.extend(manifest.files.iter().filter(|e| e.store_type == m.source_type()).map(|e| (m.clone(), e.clone())));
    }
    Ok(out)
}

/// Blesses the migration goldens of every source history of the corpus: each is computed and
/// written as pending when new or changed (with review lines: the fields that change).
pub fn bless_migrations(corpus_dir: &Path, golden_dir: &Path, registry: &Registry) -> Result<Vec<super::Blessed>, MigrationGoldenError> {
    let mut out = Vec::new();
    let cases = migration_cases(corpus_dir)?;
    let bar = crate::progress::bar("bless (migrations)", cases.len() as u64, "histories");
    for (m, e) in cases {
        out.push(bless_migration(corpus_dir, golden_dir, m.as_ref(), &e, registry)?);
        bar.inc(1);
    }
    Ok(out)
}

fn bless_migration(
    corpus_dir: &Path,
    golden_dir: &Path,
    m: &dyn Migration,
    e: &crate::corpus::ManifestEntry,
    registry: &Registry,
) -> Result<super::Blessed, MigrationGoldenError> {
    let mut stream = crate::corpus::open_checked(corpus_dir, e)?;
    let header = stream.header().clone();
    let g = compute_migration_golden_streamed(m, e, &header, stream.ops(), registry)?;
    stream.finish()?;
    write_migration_golden(golden_dir, m, e, &g)
}

/// Writes migration golden `g` of `e` as pending unless the accepted one already says it, with
/// its review lines.
pub(super) fn write_migration_golden(
    golden_dir: &Path,
    m: &dyn Migration,
    e: &crate::corpus::ManifestEntry,
    g: &MigrationGolden,
) -> Result<super::Blessed, MigrationGoldenError> {
    use super::BlessAction;
    let path = migration_golden_path(golden_dir, m, e)?;
    let mut text = serde_json::to_string_pretty(&g).expect("a migration golden serializes");
    text.push('\n');
    let (action, replaced) = super::bless_text(&path, &text)?;
    let detail = match (action, replaced) {
        (BlessAction::New, _) => vec![format!(
            "{}: source state {} ({} keys) → {}",
            g.migration,
            g.source_state_hash.get(..16).unwrap_or_default(),
            g.source_keys,
            g.target_state_hash.as_deref().and_then(|h| h.get(..16)).map_or_else(|| g.outcome(), |h| format!("target state {h}"))
        )],
        (BlessAction::Changed, Some(old)) => super::diff_json_fields(&old, &text),
        _ => vec![],
    };
    Ok(super::Blessed { id: format!("migration:{}", e.id()), action, detail })
}

/// The migration goldens of a corpus as review candidates: id `migration:<store_type>/<name>`,
/// aliases `<store_type>/<name>` and `<name>`.
pub fn migration_candidates(corpus_dir: &Path, golden_dir: &Path) -> Result<Vec<super::Candidate>, MigrationGoldenError> {
    let mut out = Vec::new();
    for (m, e) in migration_cases(corpus_dir)? {
        out.push(super::Candidate {
            id: format!("migration:{}", e.id()),
            aliases: vec![e.id(), e.name().to_string()],
            accepted: migration_golden_path(golden_dir, m.as_ref(), &e)?,
        });
    }
    Ok(out)
}

/// Every migration golden path the corpus calls for (for the orphan scan).
pub fn migration_golden_paths(corpus_dir: &Path, golden_dir: &Path) -> Result<Vec<PathBuf>, MigrationGoldenError> {
    Ok(migration_candidates(corpus_dir, golden_dir)?.into_iter().map(|c| c.accepted).collect())
}

/// `bless --migrations --accept` / `--reject` (only the migration goldens).
pub fn review_migrations(
    corpus_dir: &Path,
    golden_dir: &Path,
    review: super::Review,
    patterns: &[String],
) -> Result<Vec<(String, super::BlessAction)>, MigrationGoldenError> {
    Ok(super::review_pending(&migration_candidates(corpus_dir, golden_dir)?, review, patterns)?)
}

/// Checks every migration golden; results use ids `migration:<store_type>/<name>`.
///
/// `fault` seeds a [`MigrationFault`] into the `core:kvstore` → `core:kvstore-v2` migration
/// (`verify --migrations --build native-fault:NAME`); the report names that build. A failing case
/// gets the first migration op at which the reference migration and this one leave the target
/// in different states, with the decoded key diff (docs/FORMAT.md §15.5). Without `keep_going`
/// the run stops at the first failing case, and the cases after it are reported as not run.
pub fn verify_migrations(
    corpus_dir: &Path,
    golden_dir: &Path,
    registry: &Registry,
    fault: Option<(&str, MigrationFault)>,
    keep_going: bool,
) -> Result<crate::report::Report, MigrationGoldenError> {
    let build = fault.map_or_else(|| "native".to_string(), |(name, _)| format!("native-fault:{name}"));
    let mut report = crate::report::Report::new(build, vec![]);
    let cases = migration_cases(corpus_dir)?;
    for (n, (reference, e)) in cases.iter().enumerate() {
        let m: Arc<dyn Migration> = match fault {
            Some((_, f)) if reference.source_type() == kv::STORE_TYPE => Arc::new(KvToV2 { fault: Some(f) }),
            _ => reference.clone(),
        };
        let path = migration_golden_path(golden_dir, m.as_ref(), e)?;
        let id = format!("migration:{}", e.id());
        if !path.exists() {
            return Err(super::GoldenError::MissingMigration { path, history: id }.into());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| super::GoldenError::Io { path: path.clone(), source })?;
        crate::versioned::check(&text, &path, MIGRATION_GOLDEN_TAG, MIGRATION_GOLDEN_VERSION)?;
        let expected: MigrationGolden = serde_json::from_str(&text).map_err(|err| crate::versioned::json_error(&path, &err))?;
        let mut stream = crate::corpus::open_checked(corpus_dir, e)?;
        let header = stream.header().clone();
        let golden_build = GoldenBuild {
            source: registry.resolve(&header.identity()).map_err(MigrateError::from)?,
            target: registry.opener(m.target_type()).map_err(MigrateError::from)?.logic(),
            faults: HostFaults::default(),
        };
        let source = replay_source(&header, stream.ops(), &golden_build);
        let ops = stream.finish()?.ops;
        let actual = migration_golden_of(m.as_ref(), e, &source, &golden_build)?;
        let failure = (expected != actual).then(|| {
            let rows: Vec<(Vec<u8>, Vec<u8>)> = source.rows().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let divergence = migration_lockstep(reference.as_ref(), m.as_ref(), &rows, &golden_build.target);
            let found = match &divergence {
                Some(d) => format!("; the reference migration and this build first differ at migration op {}", d.op_index),
                None => "; the reference migration agrees with this build on every migration op, so the golden is what changed (re-run `lattice-conform bless` and review)".to_string(),
            };
            crate::report::Failure {
                summary: format!(
                    "{}: expected {}, got {} (source {} → {}){found}",
                    expected.migration,
                    expected.outcome(),
                    actual.outcome(),
                    expected.source_state_hash,
                    actual.source_state_hash
                ),
                divergence,
                expectations: Vec::new(),
            }
        });
        let failed = failure.is_some();
        report.results.push(crate::report::HistoryResult { id: id.clone(), store_type: e.store_type.clone(), ops, failure });
        if failed && !keep_going {
            report.not_run = cases[n + 1..]
                .iter()
                .map(|(_, e)| crate::report::NotRun {
                    id: format!("migration:{}", e.id()),
                    store_type: e.store_type.clone(),
                    reason: format!("not run: verification stopped at the first failure ({id}); use --keep-going to run every case"),
                })
                .collect();
            report.not_run.sort_by(|a, b| a.id.cmp(&b.id));
            break;
        }
    }
    Ok(report)
}

/// The source state of a migration golden: the history replayed by its plan with the source
/// logic (projection ends where it stalls, if it does).
fn replay_source(header: &crate::history::Header, ops: impl Iterator<Item = crate::op::Op>, build: &GoldenBuild) -> MemStore {
    let mut source = MemStore::new(header.identity(), build.source.clone()).with_faults(build.faults);
    crate::replica::run_plan(&mut source, ops, &header.delivery, super::CHECKPOINT_INTERVAL).expect("an in-memory replica never fails");
    source
}

/// Migrates `rows` with the reference migration and with the candidate, each into a fresh target
/// store (the golden target id, the migration author), delivering their ops side by side: the
/// first index at which the two deliveries' outcomes, state hashes or observed hashes differ, with
/// the candidate's op there (the reference's when the candidate has no op at that index) and the
/// decoded key diffs of the two target states after it. `None` when every index agrees.
fn migration_lockstep(
    reference: &dyn Migration,
    candidate: &dyn Migration,
    rows: &[(Vec<u8>, Vec<u8>)],
    target: &store::Logic,
) -> Option<crate::lockstep::Divergence> {
    use crate::lockstep::delivered_text;
    let (id, author) = (golden_target_id(), default_author());
    let target_type = candidate.target_type();
    let identity = StoreIdentity { store_id: id, store_type: target_type.into(), schema_version: target.schema_version() };
    let (rp, cp) = (reference.payloads(rows), candidate.payloads(rows));
    let (rops, cops) = (chain(&rp, id, author), chain(&cp, id, author));
    let (mut r, mut c) = (MemStore::new(identity.clone(), target.clone()), MemStore::new(identity, target.clone()));
    let step = |store: &mut MemStore, m: &dyn Migration, ops: &[crate::op::Op], payloads: &[Vec<u8>], i: usize| match ops.get(i) {
        Some(op) => {
            let d = store.deliver(op);
            let text = delivered_text(&d, store.stall(), true);
            format!("{text} ({} keys)", m.payload_keys(&payloads[i]).len())
        }
        None => format!("no migration op {i} (the migration has {} ops)", ops.len()),
    };
    for i in 0..rops.len().max(cops.len()) {
        let (ro, co) = (step(&mut r, reference, &rops, &rp, i), step(&mut c, candidate, &cops, &cp, i));
        if ro == co && r.state_hash() == c.state_hash() && r.observed_hash() == c.observed_hash() {
            continue;
        }
        let op = cops.get(i).or_else(|| rops.get(i)).expect("one of them has op i");
        return Some(crate::lockstep::Divergence {
            op_index: i as u64,
            op_id: hex::encode(crate::op::op_id(&id, op)),
            author: hex::encode(op.author),
            wall_ms: op.hlc.wall_ms,
            counter: op.hlc.counter,
            payload: (op.payload.len() <= crate::history::DECODED_MAX_PAYLOAD)
                .then(|| crate::decode::decode_payload(target_type, &op.payload))
                .flatten(),
            reference: ro,
            candidate: co,
            reference_state_hash: r.state_hash().to_string(),
            candidate_state_hash: c.state_hash().to_string(),
            reference_observed_hash: r.observed_hash().to_string(),
            candidate_observed_hash: c.observed_hash().to_string(),
            diff: crate::diff::diff_rows(target_type, r.rows(), c.rows()),
            read_diff: crate::diff::diff_views(target_type, &r.views().clone(), &c.views().clone()),
        });
    }
    None
}
