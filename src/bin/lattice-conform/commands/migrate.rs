//! Migrations to a new store: `migrate`.

use crate::*;

#[derive(clap::Args)]
pub(crate) struct MigrateArgs {
    /// The source store (read only, never written).
    #[arg(required_unless_present = "list")]
    src: Option<PathBuf>,
    /// The new store to create (must not exist); optional with --dry-run.
    #[arg(required_unless_present_any = ["list", "dry_run"])]
    dst: Option<PathBuf>,
    /// The target store type (`migrate --list` shows the migrations).
    #[arg(long, required_unless_present = "list")]
    to_type: Option<String>,
    /// The new store's id (default: a random v4 UUID).
    #[arg(long)]
    id: Option<Uuid>,
    /// The author of the migration ops, 64 hex digits (default: blake3("lattice-conform migration author v1")).
    #[arg(long)]
    author: Option<String>,
    /// Run the migration and all checks in a temporary directory; leave nothing behind.
    #[arg(long)]
    dry_run: bool,
    /// Run the five checks and report them.
    #[arg(long)]
    check: bool,
    /// List the available migrations.
    #[arg(long)]
    list: bool,
    /// Print the result as JSON on standard output (docs/FORMAT.md §14.7).
    #[arg(long)]
    json: bool,
    /// Test support: stop after K ops and wait to be killed.
    #[arg(long, hide = true)]
    stall_after: Option<usize>,
    /// Limits of the Wasm guests this command runs.
    #[command(flatten, next_help_heading = "Wasm guest limits")]
    pub(crate) limits: WasmLimitArgs,
}

pub(crate) fn migrate(registry: &Registry, args: MigrateArgs) -> anyhow::Result<()> {
    use lattice_conform::migrate as m;
    if args.list {
        if args.json {
            let list: Vec<m::MigrationJson> = m::migrations().iter().map(|mig| m::MigrationJson::of(mig.as_ref())).collect();
            return print_json(&m::MigrationListJson::new(list));
        }
        for mig in m::migrations() {
            println!("{} -> {}", mig.source_type(), mig.target_type());
        }
        return Ok(());
    }
    let (src, to_type) = (args.src.expect("clap"), args.to_type.expect("clap"));
    if let Some(dst) = args.dst.as_ref().filter(|d| d.symlink_metadata().is_err()) {
        // (An existing DST is refused below as existing, whatever it is.)
        lattice_conform::output::check_dir(dst)?;
    }
    let mut opts = m::MigrateOptions::new(&to_type);
    opts.target_id = args.id;
    opts.stall_after = args.stall_after;
    if let Some(a) = &args.author {
        opts.author = lattice_conform::history::hash32(a).map_err(|e| anyhow::anyhow!("--author: {e}"))?;
    }
    let tmp = tempfile::tempdir()?;
    let target = match (&args.dst, args.dry_run) {
        (Some(dst), false) => dst.clone(),
        _ => tmp.path().join("dry-run"),
    };
    if let Some(dst) = args.dst.as_ref().filter(|d| args.dry_run && d.exists()) {
        anyhow::bail!(m::MigrateError::DestinationExists(dst.clone()));
    }
    let (o, checks) = if args.check || args.dry_run {
        let (o, checks) = m::migrate_checked(&src, &target, &opts, None, registry)?;
        (o, Some(checks))
    } else {
        (m::migrate(&src, &target, &opts, None, registry)?, None)
    };
    let written = (!args.dry_run).then(|| target.clone());
    if args.json {
        print_json(&m::MigrateJson::new(&o, checks.as_deref(), written.as_deref()))?;
    } else {
        say!("migrated {} → {} in {}; state hash {}", o.source, o.target, m::plural(o.ops, "op", "ops"), o.target_state_hash);
        say!("keys: {}", o.keys.summary());
        for (i, c) in checks.iter().flatten().enumerate() {
            if c.ok && quiet() {
                continue;
            }
            println!("check {}: {:<28} {}  {}", i + 1, c.name, if c.ok { "ok  " } else { "FAIL" }, c.detail);
            for d in &c.diff {
                println!(
                    "    {}: expected {} got {}",
                    d.key,
                    d.expected_text.as_deref().unwrap_or("(absent)"),
                    d.actual_text.as_deref().unwrap_or("(absent)")
                );
            }
        }
        match (&args.dst, args.dry_run) {
            (Some(dst), true) => say!("dry run: nothing was written to {}", dst.display()),
            (None, _) => say!("dry run: nothing was written"),
            _ => {}
        }
    }
    let checks = checks.unwrap_or_default();
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        anyhow::bail!(CheckFailed(format!("{failed} of {} migration checks failed", checks.len())));
    }
    Ok(())
}
