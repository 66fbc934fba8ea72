//! The release gate: `verify` (histories, `--orders`, `--migrations`, `--repeat`) and `report merge`.

use crate::*;

mod report;

pub(crate) use report::{finish_report, report_merge, CheckFailed, ReportCommand};

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The build under test: `native`, `native-fault:NAME`, a path to a .wasm file,
    /// `cas:<digest or unique prefix>`, or an outside build `exec:PROGRAM` / `exec:FILE.json`
    /// (docs/BUILD_PROTOCOL.md).
    #[arg(long, default_value = "native")]
    build: String,
    /// Only histories of this store type; default: the type the build declares (a Wasm guest,
    /// a store-logic fault), else every type.
    #[arg(long = "type")]
    store_type: Option<String>,
    /// The corpus directory (histories and MANIFEST.json).
    #[arg(long, default_value = "corpus")]
    corpus: PathBuf,
    /// The golden directory (accepted goldens; pending ones fail the run unless --allow-pending).
    #[arg(long, default_value = "golden")]
    golden: PathBuf,
    /// Glob over history ids (`<store_type>/<name>`), e.g. `*batches*`.
    #[arg(long)]
    filter: Option<String>,
    /// Run the I-th of N deterministic shards, e.g. `2/4`.
    #[arg(long)]
    shard: Option<String>,
    /// Histories verified in parallel (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// The report's form: `human` text, `json` (docs/FORMAT.md §13.4; the input of `report
    /// merge`) or `junit` XML.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Verify every history (with --migrations: every case) even after a failure.
    #[arg(long)]
    keep_going: bool,
    /// Run each history N times, each in a fresh replica (a fresh process for `exec:` builds);
    /// a history whose runs differ fails as a nondeterministic build, naming the first op where
    /// two runs differ.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Check the migration goldens (every bundled source history migrated) instead; --build may
    /// then be `native` or `native-fault:NAME` with a migration fault (`lattice-conform faults`).
    #[arg(long, conflicts_with_all = ["filter", "shard", "store_type"])]
    migrations: bool,
    /// Convergence: also replay each history in N further delivery orders (seeded); every order
    /// must show readers what the history's own order shows.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "migrations")]
    orders: u32,
    /// Seed of the delivery orders of --orders.
    #[arg(long, default_value_t = 0)]
    order_seed: u64,
    /// The known-divergences file (divergences that are real behaviour of the system under
    /// test); default: corpus/known-divergences.json when it exists.
    #[arg(long, value_name = "FILE")]
    known: Option<PathBuf>,
    /// Record the divergences this run finds, of the selected histories of entry ID's store type,
    /// as that entry's occurrences under --order-seed (replacing the ones recorded for those
    /// histories and that seed), rewrite the known-divergences file, and judge the run by it.
    /// Review the file's diff: this is how a known divergence is blessed.
    #[arg(long, value_name = "ID", requires = "orders")]
    record_known: Option<String>,
    /// Where --orders writes the shrunk counterexample of a divergence not listed as known.
    #[arg(long, value_name = "DIR", default_value = "counterexamples")]
    counterexamples: PathBuf,
    /// Write the report (in --format) to FILE instead of standard output, whole or not at all
    /// (an existing FILE is replaced); standard error then gets the verdict line.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Pass even when the golden directory holds pending goldens (`*.pending`, not yet reviewed)
    /// or goldens of no history of the corpus (orphans); by default these fail the run (exit 1).
    #[arg(long)]
    allow_pending: bool,
    /// Print the ids of the histories selected (by --type, --filter and --shard), one per line,
    /// and exit 0 without replaying anything or reading the goldens.
    #[arg(long, conflicts_with_all = ["migrations", "orders", "record_known", "output", "repeat"])]
    list: bool,
    /// Limits of the Wasm guests this command runs.
    #[command(flatten, next_help_heading = "Wasm guest limits")]
    pub(crate) limits: WasmLimitArgs,
}

pub(crate) fn verify(registry: &Registry, args: VerifyArgs) -> anyhow::Result<()> {
    if args.list {
        let opts = verify_options(registry, args)?;
        let mut out = std::io::stdout().lock();
        for entry in lattice_conform::verify::select(&opts)? {
            writeln!(out, "{}", entry.id())?;
        }
        return Ok(());
    }
    if let Some(out) = &args.output {
        lattice_conform::output::check_dir(out)?;
    }
    // Another corpus's goldens (or the corpus itself as --golden) are unusable input, said in one
    // line before any history is replayed, not hundreds of orphans and missing goldens.
    lattice_conform::golden::check_belongs(&args.corpus, &args.golden)?;
    // Pending goldens and orphans fail the run before anything is replayed; a scan that cannot
    // run (no manifest, …) leaves the error to the verify run, which reports it in its words.
    let review = (!args.allow_pending).then(|| lattice_conform::golden::review_state(&args.corpus, &args.golden));
    if let Some(Ok(state)) = &review {
        review_state_ok(state, &args.corpus, &args.golden)?;
    }
    verify_run(registry, args)?;
    if let Some(Err(e)) = review {
        return Err(e.into());
    }
    Ok(())
}

/// Fails (exit 1) when the golden directory holds pending goldens or orphans, listing them.
pub(crate) fn review_state_ok(state: &lattice_conform::golden::ReviewState, corpus: &Path, golden: &Path) -> anyhow::Result<()> {
    if state.is_clean() {
        return Ok(());
    }
    let list = |paths: &[PathBuf]| paths.iter().map(|p| format!("\n  {}", p.display())).collect::<String>();
    let mut why = Vec::new();
    if !state.pending.is_empty() {
        why.push(format!(
            "{} pending golden(s) not yet reviewed (run `lattice-conform bless --accept` or `--reject`):{}",
            state.pending.len(),
            list(&state.pending)
        ));
    }
    if !state.orphans.is_empty() {
        why.push(format!(
            "{} golden(s) of no history in {} (orphans: remove them, or add their history back):{}",
            state.orphans.len(),
            corpus.display(),
            list(&state.orphans)
        ));
    }
    anyhow::bail!(CheckFailed(format!("{}: {}\n(pass --allow-pending to verify anyway)", golden.display(), why.join("\n"))))
}

pub(crate) fn verify_run(registry: &Registry, args: VerifyArgs) -> anyhow::Result<()> {
    if args.migrations {
        let fault = match args.build.parse()? {
            lattice_conform::build::BuildSpec::Native => None,
            lattice_conform::build::BuildSpec::NativeFault(name) => {
                match lattice_conform::fault::find(&name).and_then(|f| f.migration_fault().map(|m| (f.name, m))) {
                    Some(f) => Some(f),
                    None => anyhow::bail!(
                        "--migrations --build native-fault:{name}: not a migration fault (see `lattice-conform faults`; migration faults are named migrate-*)"
                    ),
                }
            }
            other => anyhow::bail!(
                "--migrations --build {other}: migrations run natively; use `native` or `native-fault:NAME` with a migration fault"
            ),
        };
        let mut report = lattice_conform::golden::verify_migrations(&args.corpus, &args.golden, registry, fault, args.keep_going)?;
        lattice_conform::verify::bind_migrations(&mut report, &args.corpus, &args.golden)?;
        return finish_report(&report, args.format, args.output.as_deref());
    }
    let (orders, order_seed, format) = (args.orders, args.order_seed, args.format);
    let (known, record_known, counterexamples, output) =
        (args.known.clone(), args.record_known.clone(), args.counterexamples.clone(), args.output.clone());
    let opts = verify_options(registry, args)?;
    let args = RunArgs { orders, order_seed, format, known, record_known, counterexamples, output };
    if args.orders > 0 {
        lattice_conform::output::check_dir(&args.counterexamples)?;
    }
    let mut report = lattice_conform::verify::verify(&opts, registry)?;
    if args.orders == 0 {
        let shown = finish_report(&report, args.format, args.output.as_deref());
        rerun_hint(&report);
        return shown;
    }
    let known_path = args.known.clone().unwrap_or_else(|| opts.corpus.join("known-divergences.json"));
    let known = if args.known.is_some() || known_path.exists() {
        Some(lattice_conform::converge::KnownDivergences::load(&known_path)?)
    } else {
        None
    };
    if let (Some(id), None) = (&args.record_known, &known) {
        anyhow::bail!("--record-known {id}: no known-divergences file at {} (give one with --known)", known_path.display());
    }
    if let (Some(id), Some(file)) = (&args.record_known, &known) {
        if !file.divergences.iter().any(|k| &k.id == id) {
            let ids: Vec<&str> = file.divergences.iter().map(|k| k.id.as_str()).collect();
            anyhow::bail!("--record-known {id}: {} has no entry `{id}` (entries: {})", known_path.display(), ids.join(", "));
        }
    }
    let mut run = lattice_conform::verify::run_orders(
        &opts,
        registry,
        args.orders,
        args.order_seed,
        known.as_ref().map(|k| (known_path.as_path(), k)),
    )?;
    if let (Some(id), Some(mut file)) = (&args.record_known, known) {
        let n = file.record(id, &run).expect("the entry was checked above");
        corpus::write_atomic(&known_path, file.to_json().as_bytes())?;
        eprintln!("recorded {n} occurrence(s) of known divergence `{id}` (seed {}) in {}", args.order_seed, known_path.display());
        run.rematch(&file);
    }
    write_counterexamples(&run, &args.counterexamples, &opts)?;
    report.convergence = Some(run.summary());
    let shown = finish_report(&report, args.format, args.output.as_deref());
    rerun_hint(&report);
    shown
}

/// What `verify_run` needs of its arguments besides the selection.
struct RunArgs {
    orders: u32,
    order_seed: u64,
    format: Format,
    known: Option<PathBuf>,
    record_known: Option<String>,
    counterexamples: PathBuf,
    output: Option<PathBuf>,
}

/// The selection and run options of `verify` (not `--migrations`): the build resolved (a `cas:`
/// prefix once, so the report names the whole digest), the type defaulting to the one it
/// declares.
fn verify_options(registry: &Registry, args: VerifyArgs) -> anyhow::Result<VerifyOptions> {
    let mut opts = VerifyOptions::new(Path::new("."));
    opts.corpus = args.corpus;
    opts.golden = args.golden;
    opts.build = args.build.parse::<lattice_conform::build::BuildSpec>()?.resolve(registry)?;
    opts.store_type = match args.store_type {
        Some(t) => Some(t),
        None => opts.build.declared_type(registry)?,
    };
    opts.filter = args.filter;
    opts.shard = args.shard.as_deref().map(lattice_conform::verify::parse_shard).transpose()?;
    opts.jobs = args.jobs.unwrap_or(opts.jobs).max(1);
    opts.keep_going = args.keep_going;
    opts.repeat = args.repeat;
    opts.progress = lattice_conform::progress::enabled();
    Ok(opts)
}

/// On standard error, after a failed run's report: how to rerun only the first failed history
/// (nothing when every history passed, or with --quiet).
fn rerun_hint(report: &Report) {
    if let Some(first) = report.results.iter().find(|r| r.failure.is_some()) {
        if !quiet() {
            eprintln!("hint: rerun just this one: add `--filter '{}'` (drop any --shard)", first.id);
        }
    }
}

/// Writes the shrunk counterexample of each divergence not listed as known, as two histories.
pub(crate) fn write_counterexamples(run: &lattice_conform::converge::Run, dir: &Path, opts: &VerifyOptions) -> anyhow::Result<()> {
    let selected = lattice_conform::verify::select(opts)?;
    for (id, c) in run.unknown() {
        let lattice_conform::converge::Convergence::Diverges(x) = c else { continue };
        let entry = selected.iter().find(|e| &e.id() == id).expect("selected by the run");
        let h = corpus::load_checked(&opts.corpus, entry)?;
        let (a, b) = lattice_conform::converge::counterexample_histories(&h, x);
        for (suffix, hist) in [("a", a), ("b", b)] {
            let path = dir.join(format!("{}-order-{suffix}.json", entry.name()));
            corpus::write_atomic(&path, hist.to_json().as_bytes())?;
            eprintln!("counterexample: wrote {}", path.display());
        }
    }
    Ok(())
}
