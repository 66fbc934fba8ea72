//! `migrate --check` (`migrate_checked`): the migration run once more under the five checks — source untouched, target identity, equivalence key by key, determinism, crash safety.

use super::*;

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
