//! Migrations: moving a store's data to a new store of a new type, and proving it safe.
//!
//! A change of logic never happens in place: a migration reads the source store read-only and
//! emits ops for the target type, which are applied through the normal apply path to a *new*
//! store (new UUID, new type) built in a temporary directory beside the destination and renamed
//! into place at the end — so an interrupted migration leaves no destination at all, and the
//! source is never written. [`migrate_checked`] runs the five checks a maintainer wants before
//! rollout. [`audit`] finds stores whose type was swapped in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lattice_logic::kvstore::{self as kv};
use lattice_logic::kvstore_v2::{self as v2};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::diff::{diff_rows, KeyDiff};
use crate::op::{op_id, Hlc, Op, ZERO_HASH};
use crate::registry::{Registry, RegistryError};
use crate::store::{self, Store, StoreError, StoreIdentity, StoreReader};

mod memory;
pub use memory::*;

/// Most target entries per migration op.
pub const ENTRIES_PER_OP: usize = 256;

/// A seeded fault of the `core:kvstore` → `core:kvstore-v2` migration (`lattice-conform faults`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MigrationFault {
    /// Payloads are split every 128 entries instead of 256.
    Chunk128,
    /// Payloads are split every 257 entries (an off-by-one in the chunk bound).
    Chunk257,
    /// Tombstoned keys are carried over as removes instead of dropped.
    KeepsTombstones,
    /// Every target row gets a conflict count of 0.
    ConflictsDropped,
    /// The first live key is silently dropped (a lossy migration).
    DropsFirstKey,
}

impl MigrationFault {
    /// Entries per payload this fault splits at.
    fn entries_per_op(fault: Option<MigrationFault>) -> usize {
        match fault {
            Some(MigrationFault::Chunk128) => 128,
            Some(MigrationFault::Chunk257) => ENTRIES_PER_OP + 1,
            _ => ENTRIES_PER_OP,
        }
    }
}

/// Groups entries into payloads in order: a new payload starts when one holds `per_op`
/// ([`ENTRIES_PER_OP`]) entries or the next entry would take it over the payload limit (a single
/// entry over the limit gets a payload of its own, which the target refuses on arrival).
fn chunk_payloads(entries: &[v2::Entry], per_op: usize) -> Vec<Vec<u8>> {
    let size = |e: &v2::Entry| match e {
        v2::Entry::Set { key, value, .. } => 13 + key.len() + value.len(),
        v2::Entry::Remove { key } => 5 + key.len(),
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 4);
    for (i, e) in entries.iter().enumerate() {
        let full = i - start == per_op || (i > start && bytes + size(e) > crate::op::MAX_PAYLOAD);
        if full {
            out.push(v2::encode_payload(&entries[start..i]));
            (start, bytes) = (i, 4);
        }
        bytes += size(e);
    }
    if start < entries.len() {
        out.push(v2::encode_payload(&entries[start..]));
    }
    out
}

/// The author of migration ops unless `--author` says otherwise: blake3("lattice-conform migration author v1").
pub fn default_author() -> [u8; 32] {
    *blake3::hash(b"lattice-conform migration author v1").as_bytes()
}

/// A way to turn a store of one type into ops for another.
pub trait Migration: Send + Sync {
    fn source_type(&self) -> &str;
    fn target_type(&self) -> &str;
    /// Target payloads for the source's `data` rows (given in key order). Deterministic.
    fn payloads(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>>;
    /// The source keys a target payload carries, in order (to name them when the target refuses
    /// it); none when the migration cannot tell.
    fn payload_keys(&self, _payload: &[u8]) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// The projection compared by the equivalence check: what a reader of the source sees of a
    /// row (`None`: the key is not carried over), as bytes a person can read in a diff.
    fn project_source(&self, value: &[u8]) -> Option<Vec<u8>>;
    /// The same projection for a target row.
    fn project_target(&self, value: &[u8]) -> Option<Vec<u8>>;
    /// What the migration does with a source row (for the summary's accounting). By default a
    /// row the projection carries over is migrated, any other dropped as unreadable.
    fn fate(&self, value: &[u8]) -> KeyFate {
        match self.project_source(value) {
            Some(_) => KeyFate::Migrated { conflicted: false },
            None => KeyFate::Unreadable,
        }
    }
}

/// What a migration does with one source key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFate {
    /// Carried over; `conflicted`: a reader of the source sees it conflicted (the target keeps
    /// that as its conflict count).
    Migrated { conflicted: bool },
    /// A deleted key (its winner is a tombstone): not carried over.
    Tombstone,
    /// A row that does not decode or has no value kind: not carried over.
    Unreadable,
}

/// Every source key, accounted for: `source_keys` = `migrated` + `tombstones_dropped` +
/// `unreadable_dropped`; `conflicted` counts the migrated keys a reader sees conflicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAccounting {
    pub source_keys: u64,
    pub migrated: u64,
    pub conflicted: u64,
    pub tombstones_dropped: u64,
    pub unreadable_dropped: u64,
}

impl KeyAccounting {
    /// The accounting of `rows` (the source's `data` rows) under `m`.
    pub fn of(m: &dyn Migration, rows: &[(Vec<u8>, Vec<u8>)]) -> KeyAccounting {
        let mut a = KeyAccounting { source_keys: rows.len() as u64, ..KeyAccounting::default() };
        for (_, v) in rows {
            match m.fate(v) {
                KeyFate::Migrated { conflicted } => {
                    a.migrated += 1;
                    a.conflicted += u64::from(conflicted);
                }
                KeyFate::Tombstone => a.tombstones_dropped += 1,
                KeyFate::Unreadable => a.unreadable_dropped += 1,
            }
        }
        a
    }

    /// `1 of 3 source keys migrated (0 conflicted, kept with their conflict count); 2 tombstones
    /// dropped; 0 unreadable rows dropped`.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} migrated ({} conflicted, kept with their conflict count); {} dropped; {} dropped",
            self.migrated,
            plural(self.source_keys, "source key", "source keys"),
            self.conflicted,
            plural(self.tombstones_dropped, "tombstone (deleted key)", "tombstones (deleted keys)"),
            plural(self.unreadable_dropped, "unreadable row", "unreadable rows"),
        )
    }
}

/// `n` and the noun, singular for 1.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `core:kvstore` → `core:kvstore-v2`: each key's stored value (what a Lattice read returns)
/// becomes one v2 row, with the number of heads it had minus one as its conflict count; keys
/// whose winner is a tombstone (or whose row has no kind) are dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvToV2 {
    /// A seeded fault (tests and `corpus adequacy`); `None` is the migration.
    pub fault: Option<MigrationFault>,
}

impl Migration for KvToV2 {
    fn source_type(&self) -> &str {
        kv::STORE_TYPE
    }

    fn target_type(&self) -> &str {
        v2::STORE_TYPE
    }

    fn payloads(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
        let f = self.fault;
        let mut entries: Vec<v2::Entry> = rows
            .iter()
            .filter_map(|(k, v)| {
                let seen = kv::inspect(Some(v)).ok()?;
                let conflicts = u32::try_from(seen.heads.len().saturating_sub(1)).unwrap_or(u32::MAX);
                let conflicts = if f == Some(MigrationFault::ConflictsDropped) { 0 } else { conflicts };
                match seen.value {
                    Some(value) => Some(v2::Entry::Set { key: k.clone(), value, conflicts }),
                    None if seen.tombstone && f == Some(MigrationFault::KeepsTombstones) => Some(v2::Entry::Remove { key: k.clone() }),
                    None => None,
                }
            })
            .collect();
        if f == Some(MigrationFault::DropsFirstKey) && !entries.is_empty() {
            entries.remove(0);
        }
        chunk_payloads(&entries, MigrationFault::entries_per_op(f))
    }

    fn payload_keys(&self, payload: &[u8]) -> Vec<Vec<u8>> {
        v2::decode_payload(payload).map(|entries| entries.iter().map(|e| e.key().to_vec()).collect()).unwrap_or_default()
    }

    fn fate(&self, value: &[u8]) -> KeyFate {
        match kv::inspect(Some(value)) {
            Ok(seen) if seen.value.is_some() => KeyFate::Migrated { conflicted: seen.conflicted },
            Ok(seen) if seen.tombstone => KeyFate::Tombstone,
            _ => KeyFate::Unreadable,
        }
    }

    /// What a Lattice reader sees (`inspect`): the value and whether the key is conflicted. A
    /// tombstone (or a row without a kind) reads as no value and is not carried over.
    fn project_source(&self, value: &[u8]) -> Option<Vec<u8>> {
        let seen = kv::inspect(Some(value)).ok()?;
        Some(reader_view(&seen.value?, seen.conflicted))
    }

    /// What a kvstore-v2 reader sees, in the same terms: conflicted = a conflict count above 0.
    fn project_target(&self, value: &[u8]) -> Option<Vec<u8>> {
        let row = v2::decode_row(value)?;
        Some(reader_view(&row.value?, row.conflicts > 0))
    }
}

/// A reader's view of one key as compact JSON: `{"conflicted":…,"value":{"hex":…,"utf8":…}}`.
fn reader_view(value: &[u8], conflicted: bool) -> Vec<u8> {
    let view = serde_json::json!({ "conflicted": conflicted, "value": crate::decode::Bytes::new(value) });
    serde_json::to_vec(&view).expect("a JSON value always serializes")
}

/// The migrations this build knows.
pub fn migrations() -> Vec<Arc<dyn Migration>> {
    vec![Arc::new(KvToV2::default())]
}

/// Errors of `migrate` and `audit`: unusable input, nothing written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "{src}: store is paused since op {op_index} was rejected; resolve that first (a migration must not carry a half-applied history)"
    )]
    SourcePaused { src: PathBuf, op_index: u64 },
    #[error("{0}: another process holds the store for writing; the migration checks compare the source before and after and need a source nobody writes while they run (stop the writer, or check a copy of the store). A plain `migrate` migrates a consistent snapshot of a store in use")]
    SourceBusy(PathBuf),
    #[error("no migration from `{from}` to `{to}`; available: {available}")]
    NoMigration { from: String, to: String, available: String },
    #[error("{0}: already exists; a migration never writes over an existing store (choose a new destination)")]
    DestinationExists(PathBuf),
    #[error("{0}: cannot create or clean the temporary build directory")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{dst}: the target store refused migration op {index} ({reason}); the source cannot be carried into this type, and nothing was written")]
    TargetRefused { dst: PathBuf, index: u64, reason: String },
    #[error("migration stopped by the injected failure `{0:?}`")]
    Injected(FailPoint),
}

/// Where a test makes a migration fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// After the first `k` migration ops were applied to the temporary store.
    AfterOp(usize),
    /// When the temporary store is complete, before it is renamed into place.
    BeforeRename,
    /// Just after the rename.
    AfterRename,
}

/// How to run one migration.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    pub to_type: String,
    /// The target store id; random when `None`.
    pub target_id: Option<Uuid>,
    pub author: [u8; 32],
    pub fail_at: Option<FailPoint>,
    /// Test support: after this many ops print `stalled` and wait forever (to be killed).
    pub stall_after: Option<usize>,
}

impl MigrateOptions {
    pub fn new(to_type: &str) -> MigrateOptions {
        MigrateOptions { to_type: to_type.into(), target_id: None, author: default_author(), fail_at: None, stall_after: None }
    }
}

/// What a completed migration produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub source: StoreIdentity,
    pub target: StoreIdentity,
    pub target_state_hash: String,
    pub ops: u64,
    pub source_keys: u64,
    /// What became of every source key.
    pub keys: KeyAccounting,
}

/// Migrates `src` into a new store at `dst`.
pub fn migrate(
    src: &Path,
    dst: &Path,
    opts: &MigrateOptions,
    migration: Option<Arc<dyn Migration>>,
    registry: &Registry,
) -> Result<Outcome, MigrateError> {
    let reader = StoreReader::open(src)?;
    if let Some(p) = reader.paused() {
        return Err(MigrateError::SourcePaused { src: src.to_path_buf(), op_index: p.op_index });
    }
    reader.verify()?;
    let migration = match migration {
        Some(m) => m,
        None => find(&reader.identity().store_type, &opts.to_type)?,
    };
    let logic = registry.opener(&opts.to_type)?.logic();
    match store::check_new_dir(dst) {
        Err(StoreError::AlreadyExists { .. }) => return Err(MigrateError::DestinationExists(dst.to_path_buf())),
        other => other?,
    }
    let mut rows = Vec::new();
    reader.for_each_row(|k, v| rows.push((k.to_vec(), v.to_vec())))?;
    let target_id = opts.target_id.unwrap_or_else(Uuid::new_v4);
    let ops = chain(&migration.payloads(&rows), target_id, opts.author);
    let outcome = build(dst, target_id, &ops, logic, opts)?;
    Ok(Outcome {
        source: reader.identity().clone(),
        target: outcome.0,
        target_state_hash: outcome.1,
        ops: ops.len() as u64,
        source_keys: rows.len() as u64,
        keys: KeyAccounting::of(migration.as_ref(), &rows),
    })
}

/// The migration from `from` to `to`, or an error listing what exists.
pub fn find(from: &str, to: &str) -> Result<Arc<dyn Migration>, MigrateError> {
    let all = migrations();
    let available = all.iter().map(|m| format!("{} -> {}", m.source_type(), m.target_type())).collect::<Vec<_>>().join(", ");
    all.into_iter().find(|m| m.source_type() == from && m.target_type() == to).ok_or(MigrateError::NoMigration {
        from: from.into(),
        to: to.into(),
        available,
    })
}

/// Chains payloads into ops of one author: HLC wall_ms = 1, 2, …, counter 0, no causal deps.
pub fn chain(payloads: &[Vec<u8>], store_id: Uuid, author: [u8; 32]) -> Vec<Op> {
    let mut prev = ZERO_HASH;
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let op = Op { author, hlc: Hlc { wall_ms: i as u64 + 1, counter: 0 }, prev, causal_deps: vec![], payload: p.clone() };
            prev = op_id(&store_id, &op);
            op
        })
        .collect()
}

/// The temporary directory prefix for a migration into `name`: `.<name>.migrating-`, with a name
/// longer than 96 bytes cut to its first 96 (at a character boundary) followed by `~` and the
/// first 16 hex digits of blake3(name), so the temporary name stays within the 255-byte limit of
/// a file name for any destination name that fits it, and stays distinct per destination.
fn temp_prefix(name: &str) -> String {
    const KEEP: usize = 96;
    if name.len() <= KEEP {
        return format!(".{name}.migrating-");
    }
    let cut = (0..=KEEP).rev().find(|&i| name.is_char_boundary(i)).unwrap_or(0);
    format!(".{}~{}.migrating-", &name[..cut], &blake3::hash(name.as_bytes()).to_hex()[..16])
}

/// Builds the target in a temporary directory beside `dst` ([`temp_prefix`]), then renames it
/// into place.
fn build(dst: &Path, id: Uuid, ops: &[Op], logic: store::Logic, opts: &MigrateOptions) -> Result<(StoreIdentity, String), MigrateError> {
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dst.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let prefix = temp_prefix(&name);
    remove_stale(parent, &prefix)?;
    let tmp = tempfile::Builder::new().prefix(&prefix).tempdir_in(parent).map_err(|e| MigrateError::Io(parent.to_path_buf(), e))?;
    let mut store = Store::create(&tmp.path().join("store"), id, logic)?;
    let split = opts.fail_at.and_then(|f| if let FailPoint::AfterOp(k) = f { Some(k) } else { None }).or(opts.stall_after);
    let k = split.unwrap_or(ops.len()).min(ops.len());
    let first = store.apply_ops(&ops[..k], 0)?;
    target_took_all(dst, &first)?;
    if opts.stall_after.is_some() {
        println!("stalled after {k} ops");
        loop {
            std::thread::park();
        }
    }
    if let Some(f @ FailPoint::AfterOp(_)) = opts.fail_at {
        return Err(MigrateError::Injected(f));
    }
    let rest = store.apply_ops(&ops[k..], k as u64)?;
    target_took_all(dst, &rest)?;
    let (identity, hash) = (store.identity().clone(), store.state_hash().to_string());
    drop(store);
    if opts.fail_at == Some(FailPoint::BeforeRename) {
        return Err(MigrateError::Injected(FailPoint::BeforeRename));
    }
    // A directory that appeared at `dst` meanwhile makes the rename fail (ENOTEMPTY): the
    // destination exists after all; the temporary directory is removed when `tmp` drops.
    if let Err(e) = std::fs::rename(tmp.path().join("store"), dst) {
        return Err(if dst.symlink_metadata().is_ok() {
            MigrateError::DestinationExists(dst.to_path_buf())
        } else {
            MigrateError::Io(dst.to_path_buf(), e)
        });
    }
    if opts.fail_at == Some(FailPoint::AfterRename) {
        return Err(MigrateError::Injected(FailPoint::AfterRename));
    }
    Ok((identity, hash))
}

/// Every migration op must be applied: a refusal (e.g. an entry over the payload limit) or a
/// stall means the target cannot hold the source, and nothing is renamed into place.
fn target_took_all(dst: &Path, summary: &store::ApplySummary) -> Result<(), MigrateError> {
    if let Some(r) = summary.refused.first() {
        return Err(MigrateError::TargetRefused { dst: dst.to_path_buf(), index: r.index, reason: r.reason.clone() });
    }
    if let Some(p) = &summary.stalled {
        return Err(MigrateError::TargetRefused { dst: dst.to_path_buf(), index: p.op_index, reason: p.reason.clone() });
    }
    Ok(())
}

/// Removes build directories left by an interrupted earlier run.
fn remove_stale(parent: &Path, prefix: &str) -> Result<(), MigrateError> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(()) };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            std::fs::remove_dir_all(e.path()).map_err(|err| MigrateError::Io(e.path(), err))?;
        }
    }
    Ok(())
}

/// One of the five checks, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// Keys whose projections differ (equivalence check only).
    pub diff: Vec<KeyDiff>,
}

impl CheckResult {
    fn new(name: &str, ok: bool, detail: String) -> CheckResult {
        CheckResult { name: name.into(), ok, detail, diff: vec![] }
    }
}

/// Runs the migration with the five checks around it. The outcome is `Err` only for unusable
/// input; failed checks are in the returned list.
pub fn migrate_checked(
    src: &Path,
    dst: &Path,
    opts: &MigrateOptions,
    migration: Option<Arc<dyn Migration>>,
    registry: &Registry,
) -> Result<(Outcome, Vec<CheckResult>), MigrateError> {
    if store::writer_active(src) {
        return Err(MigrateError::SourceBusy(src.to_path_buf()));
    }
    let before = (digests(src)?, store::peek_info(src)?);
    let mut opts = opts.clone();
    opts.target_id = Some(opts.target_id.unwrap_or_else(Uuid::new_v4));
    let migration = match migration {
        Some(m) => m,
        None => find(&store::peek_info(src)?.store_type, &opts.to_type)?,
    };
    // The migration itself, then the five checks.
    let bar = crate::progress::bar("migrate --check", 6, "steps");
    let outcome = migrate(src, dst, &opts, Some(migration.clone()), registry)?;
    bar.inc(1);
    let step = |c: CheckResult| {
        bar.inc(1);
        c
    };
    let checks = vec![
        step(check_source_untouched(src, &before)?),
        step(check_target_identity(dst, &outcome, registry)?),
        step(check_equivalence(src, dst, migration.as_ref(), &outcome.keys)?),
        step(check_deterministic(src, dst, &opts, &outcome, &migration, registry)?),
        step(check_crash_safe(src, &opts, &outcome, &migration, registry)?),
    ];
    // A writer that started meanwhile changed the source, not the migration (which only reads
    // it, taking no writer lock): that is no verdict on the migration.
    if !checks[0].ok && store::writer_active(src) {
        return Err(MigrateError::SourceBusy(src.to_path_buf()));
    }
    Ok((outcome, checks))
}

/// blake3 of every file in `dir`, by name.
fn digests(dir: &Path) -> Result<BTreeMap<String, String>, MigrateError> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(|e| MigrateError::Io(dir.to_path_buf(), e))? {
        let e = e.map_err(|err| MigrateError::Io(dir.to_path_buf(), err))?;
        let bytes = std::fs::read(e.path()).map_err(|err| MigrateError::Io(e.path(), err))?;
        out.insert(e.file_name().to_string_lossy().into_owned(), blake3::hash(&bytes).to_hex().to_string());
    }
    Ok(out)
}

fn check_source_untouched(src: &Path, before: &(BTreeMap<String, String>, StoreIdentity)) -> Result<CheckResult, MigrateError> {
    let after = (digests(src)?, store::peek_info(src)?);
    let changed: Vec<&String> = before.0.iter().filter(|(k, v)| after.0.get(*k) != Some(v)).map(|(k, _)| k).collect();
    let ok = changed.is_empty() && after.0.len() == before.0.len() && after.1 == before.1;
    let detail =
        if ok { format!("{} files byte-identical (blake3), identity unchanged", before.0.len()) } else { format!("changed: {changed:?}") };
    Ok(CheckResult::new("source untouched", ok, detail))
}

fn check_target_identity(dst: &Path, o: &Outcome, registry: &Registry) -> Result<CheckResult, MigrateError> {
    let (state, _log) = store::peek_both(dst)?;
    let schema = registry.opener(&o.target.store_type)?.schema_version();
    let ok = state.store_id == o.target.store_id
        && state.store_id != o.source.store_id
        && state.store_type == o.target.store_type
        && state.schema_version == schema;
    Ok(CheckResult::new("self-identifying target", ok, format!("peek: {state}; source id {}; log.db agrees", o.source.store_id)))
}

fn project(dir: &Path, f: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, MigrateError> {
    let reader = StoreReader::open(dir)?;
    let mut out = BTreeMap::new();
    reader.for_each_row(|k, v| {
        if let Some(p) = f(v) {
            out.insert(k.to_vec(), p);
        }
    })?;
    Ok(out)
}

fn check_equivalence(src: &Path, dst: &Path, m: &dyn Migration, keys: &KeyAccounting) -> Result<CheckResult, MigrateError> {
    let (a, b) = (project(src, |v| m.project_source(v))?, project(dst, |v| m.project_target(v))?);
    let diff = diff_rows("(projection)", &a, &b);
    let dropped = format!(
        "{}, {}",
        plural(keys.tombstones_dropped, "tombstone dropped", "tombstones dropped"),
        plural(keys.unreadable_dropped, "unreadable row dropped", "unreadable rows dropped")
    );
    let detail = if diff.is_empty() {
        format!("{} compared, each reads the same (value and conflicted) ({dropped})", plural(a.len() as u64, "live key", "live keys"))
    } else {
        format!("{} of {} differ ({dropped})", diff.len(), plural(a.len().max(b.len()) as u64, "live key", "live keys"))
    };
    Ok(CheckResult { diff, ..CheckResult::new("equivalence", a == b, detail) })
}

fn check_deterministic(
    src: &Path,
    dst: &Path,
    opts: &MigrateOptions,
    o: &Outcome,
    m: &Arc<dyn Migration>,
    registry: &Registry,
) -> Result<CheckResult, MigrateError> {
    let tmp = tempfile::tempdir().map_err(|e| MigrateError::Io(std::env::temp_dir(), e))?;
    let again = migrate(src, &tmp.path().join("again"), opts, Some(m.clone()), registry)?;
    let refused = matches!(migrate(src, dst, opts, Some(m.clone()), registry), Err(MigrateError::DestinationExists(_)));
    let ok = again.target_state_hash == o.target_state_hash && refused;
    Ok(CheckResult::new(
        "deterministic and idempotent",
        ok,
        format!("second run: {}; rerun over the destination refused: {refused}", again.target_state_hash),
    ))
}

fn check_crash_safe(
    src: &Path,
    opts: &MigrateOptions,
    o: &Outcome,
    m: &Arc<dyn Migration>,
    registry: &Registry,
) -> Result<CheckResult, MigrateError> {
    let n = o.ops as usize;
    let points = [
        FailPoint::AfterOp(0),
        FailPoint::AfterOp(n / 2),
        FailPoint::AfterOp(n.saturating_sub(1)),
        FailPoint::BeforeRename,
        FailPoint::AfterRename,
    ];
    for point in points {
        if let Some(problem) = crash_once(src, opts, o, m, registry, point)? {
            return Ok(CheckResult::new("crash-safe", false, format!("failure injected at {point:?}: {problem}")));
        }
    }
    Ok(CheckResult::new(
        "crash-safe",
        true,
        format!("{} injected failures: no partial target, reruns reach {}", points.len(), o.target_state_hash),
    ))
}

/// Interrupts a migration at `point`, checks what is left, reruns. `Some(problem)` on failure.
fn crash_once(
    src: &Path,
    opts: &MigrateOptions,
    o: &Outcome,
    m: &Arc<dyn Migration>,
    registry: &Registry,
    point: FailPoint,
) -> Result<Option<String>, MigrateError> {
    let tmp = tempfile::tempdir().map_err(|e| MigrateError::Io(std::env::temp_dir(), e))?;
    let dst = tmp.path().join("dst");
    let failing = MigrateOptions { fail_at: Some(point), ..opts.clone() };
    if !matches!(migrate(src, &dst, &failing, Some(m.clone()), registry), Err(MigrateError::Injected(_))) {
        return Ok(Some("the injected failure did not happen".into()));
    }
    if dst.exists() && point != FailPoint::AfterRename {
        return Ok(Some("a destination exists after an interrupted migration".into()));
    }
    let hash = if dst.exists() {
        let s = registry.open(&dst).map_err(|e| MigrateError::Io(dst.clone(), std::io::Error::other(e.to_string())))?;
        s.verify()?;
        s.state_hash().to_string()
    } else {
        migrate(src, &dst, opts, Some(m.clone()), registry)?.target_state_hash
    };
    Ok((hash != o.target_state_hash).then(|| format!("rerun reached {hash}, expected {}", o.target_state_hash)))
}

/// The `format` of `migrate --json`.
pub const MIGRATE_JSON_TAG: &str = "lattice-conform/migrate-result";
/// The `format` of `migrate --list --json`.
pub const MIGRATION_LIST_TAG: &str = "lattice-conform/migrations";
/// The `format` of `audit --json`.
pub const AUDIT_JSON_TAG: &str = "lattice-conform/audit";

/// What `migrate --json` prints (docs/FORMAT.md §14.7), fields in this order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateJson {
    pub format: &'static str,
    pub format_version: u32,
    pub source: StoreIdentity,
    pub target: StoreIdentity,
    pub target_state_hash: String,
    pub ops: u64,
    pub keys: KeyAccounting,
    /// The destination written, or `null` for a dry run.
    pub destination: Option<String>,
    /// The five checks in order, or `null` without `--check`/`--dry-run`.
    pub checks: Option<Vec<CheckResult>>,
    /// Whether every check passed (`true` without checks).
    pub passed: bool,
}

impl MigrateJson {
    pub fn new(o: &Outcome, checks: Option<&[CheckResult]>, destination: Option<&Path>) -> MigrateJson {
        MigrateJson {
            format: MIGRATE_JSON_TAG,
            format_version: 1,
            source: o.source.clone(),
            target: o.target.clone(),
            target_state_hash: o.target_state_hash.clone(),
            ops: o.ops,
            keys: o.keys,
            destination: destination.map(|d| d.display().to_string()),
            checks: checks.map(<[CheckResult]>::to_vec),
            passed: checks.is_none_or(|c| c.iter().all(|c| c.ok)),
        }
    }
}

/// One migration of `migrate --list --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationJson {
    pub source_type: String,
    pub target_type: String,
}

impl MigrationJson {
    pub fn of(m: &dyn Migration) -> MigrationJson {
        MigrationJson { source_type: m.source_type().into(), target_type: m.target_type().into() }
    }
}

/// What `migrate --list --json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationListJson {
    pub format: &'static str,
    pub format_version: u32,
    pub migrations: Vec<MigrationJson>,
}

impl MigrationListJson {
    pub fn new(migrations: Vec<MigrationJson>) -> MigrationListJson {
        MigrationListJson { format: MIGRATION_LIST_TAG, format_version: 1, migrations }
    }
}

/// What `audit --json` prints (docs/FORMAT.md §14.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditJson {
    pub format: &'static str,
    pub format_version: u32,
    pub dir: String,
    pub clean: bool,
    /// The findings' messages, in the order of §14.6.
    pub findings: Vec<String>,
}

impl AuditJson {
    pub fn new(dir: &Path, findings: &[Finding]) -> AuditJson {
        AuditJson {
            format: AUDIT_JSON_TAG,
            format_version: 1,
            dir: dir.display().to_string(),
            clean: findings.is_empty(),
            findings: findings.iter().map(|f| f.what.clone()).collect(),
        }
    }
}

/// One finding of `audit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub what: String,
}

/// Looks for the in-place type swap the design forbids. Read-only.
pub fn audit(dir: &Path, registry: &Registry) -> Result<Vec<Finding>, MigrateError> {
    let f = store::audit_facts(dir)?;
    let mut out = Vec::new();
    let mut say = |what: String| out.push(Finding { what });
    if f.state != f.log {
        say(format!("state.db says ({}) but log.db says ({})", f.state, f.log));
    }
    match &f.created_as {
        Some((ty, schema)) if (ty, *schema) != (&f.state.store_type, f.state.schema_version) => say(format!(
            "created as `{ty}` schema {schema}, now `{}` schema {}: the type was changed in place",
            f.state.store_type, f.state.schema_version
        )),
        Some(_) => {}
        None => say("log.db has no `created_as` record".into()),
    }
    match registry.opener(&f.state.store_type) {
        Ok(o) if o.schema_version() != f.state.schema_version => say(format!(
            "no opener supports `{}` schema {} (the registered one has schema {})",
            f.state.store_type,
            f.state.schema_version,
            o.schema_version()
        )),
        Ok(_) => {}
        Err(e) => say(e.to_string()),
    }
    if !f.hash_matches_type {
        say(format!("the stored state hash was not computed for `{}` schema {}", f.state.store_type, f.state.schema_version));
    }
    // The contents too: a store whose identity is in order must also replay to what it stores.
    if out.is_empty() {
        if let Err(e) = crate::deep::verify_deep(dir, registry) {
            out.push(Finding { what: format!("deep verification failed: {e}") });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::MemStore;

    fn set(key: &str, value_len: usize) -> v2::Entry {
        v2::Entry::Set { key: key.as_bytes().to_vec(), value: vec![7; value_len], conflicts: 0 }
    }

    #[test]
    fn payloads_split_at_256_entries_and_at_the_payload_limit() {
        let small: Vec<v2::Entry> = (0..300).map(|i| set(&format!("k{i:03}"), 10)).collect();
        let p = chunk_payloads(&small, ENTRIES_PER_OP);
        let counts: Vec<usize> = p.iter().map(|b| v2::decode_payload(b).unwrap().len()).collect();
        assert_eq!(counts, vec![256, 44]);
        let big: Vec<v2::Entry> = (0..3).map(|i| set(&format!("k{i}"), 600 << 10)).collect();
        let p = chunk_payloads(&big, ENTRIES_PER_OP);
        assert_eq!(p.len(), 3, "two 600 KiB values do not fit one 1 MiB payload");
        assert!(p.iter().all(|b| b.len() <= crate::op::MAX_PAYLOAD));
        let fits: Vec<v2::Entry> = (0..2).map(|i| set(&format!("k{i}"), 400 << 10)).collect();
        assert_eq!(chunk_payloads(&fits, ENTRIES_PER_OP).len(), 1);
        assert!(chunk_payloads(&[], ENTRIES_PER_OP).is_empty());
    }

    /// A source with 300 keys (one deleted, one written concurrently by a second author): each
    /// migration fault changes the payloads, and so the target.
    #[test]
    fn every_migration_fault_changes_the_payloads_of_a_wide_source_with_a_tombstone_and_a_conflict() {
        let id = Uuid::from_u128(7);
        let identity = StoreIdentity { store_id: id, store_type: kv::STORE_TYPE.into(), schema_version: 1 };
        let puts: Vec<kv::Entry> =
            (0..300).map(|i| kv::Entry::Put { key: format!("k{i:03}").into_bytes(), value: b"v".to_vec() }).collect();
        let first = Op {
            author: [1; 32],
            hlc: Hlc { wall_ms: 1, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload: kv::encode_payload(&puts),
        };
        let del = Op {
            author: [1; 32],
            hlc: Hlc { wall_ms: 2, counter: 0 },
            prev: op_id(&id, &first),
            causal_deps: vec![op_id(&id, &first)],
            payload: kv::encode_payload(&[kv::Entry::Delete { key: b"k000".to_vec() }]),
        };
        let other = Op {
            author: [2; 32],
            hlc: Hlc { wall_ms: 3, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload: kv::encode_payload(&[kv::Entry::Put { key: b"k001".to_vec(), value: b"w".to_vec() }]),
        };
        let store = MemStore::replayed(identity, Arc::new(kv::KvStore), [&first, &del, &other]);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = store.rows().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let reference = KvToV2::default().payloads(&rows);
        assert_eq!(reference.iter().map(|p| v2::decode_payload(p).unwrap().len()).collect::<Vec<_>>(), vec![256, 43]);
        for f in [
            MigrationFault::Chunk128,
            MigrationFault::Chunk257,
            MigrationFault::KeepsTombstones,
            MigrationFault::ConflictsDropped,
            MigrationFault::DropsFirstKey,
        ] {
            assert_ne!(KvToV2 { fault: Some(f) }.payloads(&rows), reference, "{f:?}");
        }
    }
}
