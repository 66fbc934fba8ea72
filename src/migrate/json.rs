//! The JSON shapes of `migrate --json`, `migrate --list --json` and `audit --json` (docs/FORMAT.md §14.6, §14.7).

use super::*;

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
