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

mod audit;
pub use audit::*;

mod json;
pub use json::*;

mod check;
pub use check::*;

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

#[cfg(test)]
mod tests;
