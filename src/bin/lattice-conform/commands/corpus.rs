//! The corpus and its goldens: `gen`, `corpus stats|add|adequacy`, `faults`, `bless`.

use crate::*;

#[derive(clap::Args)]
pub(crate) struct GenArgs {
    /// Store type to generate for (`core:kvstore`, `core:logstore`).
    #[arg(long = "type", required_unless_present_any = ["check", "lattice_tests"])]
    store_type: Option<String>,
    /// Seed of the generator; the same arguments always write the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many histories to write.
    #[arg(long, default_value_t = 40)]
    histories: u32,
    /// Ops per history (a target; a scenario may write a few more or less).
    #[arg(long, default_value_t = 100)]
    ops: u32,
    /// One scenario; by default every scenario of the type in turn.
    #[arg(long)]
    scenario: Option<String>,
    /// The corpus directory written into (histories under <type>/, and manifest.json).
    #[arg(long, default_value = "corpus")]
    out: PathBuf,
    /// Regenerate every committed history of --out from its provenance and compare bytes.
    #[arg(long, conflicts_with = "lattice_tests")]
    check: bool,
    /// Write the `lattice-<name>` history of every scenario of --out/lattice-tests.json (Lattice's
    /// own tests) into --out.
    #[arg(long, conflicts_with = "store_type")]
    lattice_tests: bool,
    /// The form of the histories written: `json` (reviewable) or `bin` (`.lch`, compact).
    #[arg(long, value_enum, default_value = "json")]
    format: Form,
    /// Write long synthetic histories (8 authors, 10,000 keys; docs/FORMAT.md §11.8), streamed op
    /// by op so memory stays flat at any --ops, instead of scenario histories.
    #[arg(long, conflicts_with_all = ["scenario", "check", "lattice_tests"])]
    synthetic: bool,
}

#[derive(Subcommand)]
pub(crate) enum CorpusCommand {
    /// Print the coverage table (scenario × type → histories, ops).
    Stats {
        /// The corpus directory.
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
    },
    /// Replay the corpus under every catalogued fault and print the kill matrix; exit 1 if a
    /// fault survives or is killed by fewer than --min-kills histories.
    Adequacy(AdequacyArgs),
    /// Copy a history (an authored fixture, a `record` output, a counterexample; either form)
    /// into the corpus under its type, list it in the manifest and write its goldens as pending
    /// (the history's and, when a migration starts from its type, the migration's).
    Add {
        /// The history file to add.
        history: PathBuf,
        /// The corpus directory.
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
        /// The golden directory (pending goldens are written here).
        #[arg(long, default_value = "golden")]
        golden: PathBuf,
        /// The history's name in the corpus (its id is `<store_type>/<name>`); default: the
        /// file's stem.
        #[arg(long)]
        id: Option<String>,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
    },
}

#[derive(clap::Args)]
pub(crate) struct AdequacyArgs {
    /// The corpus directory.
    #[arg(long, default_value = "corpus")]
    corpus: PathBuf,
    /// The golden directory (history goldens, and migration goldens under migrations/).
    #[arg(long, default_value = "golden")]
    golden: PathBuf,
    /// Only these faults (repeatable); default: every fault of `lattice-conform faults`.
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
    /// Only histories whose id (`<store_type>/<name>`) matches this glob.
    #[arg(long)]
    filter: Option<String>,
    /// A fault killed by fewer histories fails the run.
    #[arg(long, default_value_t = 3)]
    min_kills: u64,
    /// Delivery orders per history for the convergence column (0: none).
    #[arg(long, value_name = "N", default_value_t = 2)]
    orders: u32,
    /// Seed of those delivery orders.
    #[arg(long, default_value_t = 0)]
    order_seed: u64,
    /// Pairs (fault, history) run in parallel (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print the report as JSON (docs/FORMAT.md, "Adequacy report").
    #[arg(long)]
    json: bool,
}

pub(crate) fn gen(args: GenArgs) -> anyhow::Result<()> {
    lattice_conform::output::check_dir(&args.out)?;
    if args.check {
        let (drift, checked) = corpus::check_generated(&args.out)?;
        for d in &drift {
            eprintln!("drift: {}: {}", d.path.display(), d.reason);
        }
        if !drift.is_empty() {
            anyhow::bail!(CheckFailed(format!("{} of {checked} generated histories no longer regenerate byte for byte", drift.len())));
        }
        say!("gen --check: {checked} generated histories regenerate byte for byte");
        return Ok(());
    }
    if args.lattice_tests {
        let n = corpus::write_lattice_tests(&args.out)?;
        say!("gen --lattice-tests: wrote {n} histories from {}", args.out.join(corpus::lattice::FILE).display());
        return Ok(());
    }
    let store_type = args.store_type.expect("clap requires --type without --check or --lattice-tests");
    let req = corpus::GenRequest {
        store_type,
        seed: args.seed,
        histories: args.histories,
        ops: args.ops,
        scenario: args.scenario,
        form: args.format,
        synthetic: args.synthetic,
    };
    sweep(&args.out, 1)?;
    let cov = corpus::generate_into(&args.out, &req)?;
    if !quiet() {
        print!("{}", corpus::coverage_table(&cov));
    }
    Ok(())
}

pub(crate) fn adequacy(registry: &Registry, args: AdequacyArgs) -> anyhow::Result<()> {
    use lattice_conform::adequacy;
    let mut opts = adequacy::AdequacyOptions::new(Path::new("."));
    opts.corpus = args.corpus;
    opts.golden = args.golden;
    opts.faults = adequacy::select_faults(&args.faults)?;
    opts.filter = args.filter;
    opts.min_kills = args.min_kills;
    opts.orders = args.orders;
    opts.order_seed = args.order_seed;
    opts.jobs = args.jobs.unwrap_or(opts.jobs).max(1);
    let report = adequacy::run(&opts, registry)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
    } else {
        print!("{}", adequacy::render_human(&report));
    }
    if !report.passed() {
        let mut why = Vec::new();
        if !report.survivors.is_empty() {
            why.push(format!("{} surviving ({})", report.survivors.len(), report.survivors.join(", ")));
        }
        if !report.weak.is_empty() {
            why.push(format!("{} killed by fewer than {} histories ({})", report.weak.len(), report.min_kills, report.weak.join(", ")));
        }
        anyhow::bail!(CheckFailed(format!("corpus adequacy: {}", why.join("; "))));
    }
    Ok(())
}

/// One line of `faults --json`.
#[derive(Serialize)]
pub(crate) struct FaultLine {
    name: &'static str,
    rule: &'static str,
    store_type: &'static str,
    layer: &'static str,
    description: &'static str,
}

pub(crate) fn faults(json: bool) -> anyhow::Result<()> {
    let catalogue = lattice_conform::fault::CATALOGUE;
    if json {
        let lines: Vec<FaultLine> = catalogue
            .iter()
            .map(|f| FaultLine {
                name: f.name,
                rule: f.rule,
                store_type: f.store_type,
                layer: f.layer.as_str(),
                description: f.description,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&lines).expect("a list serializes"));
        return Ok(());
    }
    for f in catalogue {
        println!("{:<32} {:<14} {:<16} {:<9} {}", f.name, f.rule, f.store_type, f.layer.as_str(), f.description);
    }
    Ok(())
}

pub(crate) fn corpus_stats(dir: &Path) -> anyhow::Result<()> {
    print!("{}", corpus::coverage_table(&corpus::stats(dir)?));
    Ok(())
}

/// `--accept [P…]` / `--reject [P…]` as a review (clap keeps the two apart).
pub(crate) fn review_of(
    accept: Option<Vec<String>>,
    reject: Option<Vec<String>>,
) -> Option<(lattice_conform::golden::Review, Vec<String>)> {
    use lattice_conform::golden::Review;
    accept.map(|p| (Review::Accept, p)).or_else(|| reject.map(|p| (Review::Reject, p)))
}

pub(crate) fn bless(
    registry: &Registry,
    corpus: &Path,
    golden: &Path,
    store_type: Option<&str>,
    review: Option<(lattice_conform::golden::Review, Vec<String>)>,
    migrations_only: bool,
) -> anyhow::Result<()> {
    use lattice_conform::golden as g;
    lattice_conform::output::check_dir(golden)?;
    lattice_conform::golden::check_belongs(corpus, golden)?;
    sweep(golden, 2)?;
    let what = if migrations_only { "bless --migrations" } else { "bless" };
    // A migration case belongs to its source history: `--type` selects it by that type.
    let of_type =
        |id: &str| store_type.is_none_or(|t| id.strip_prefix("migration:").unwrap_or(id).split_once('/').is_some_and(|(ty, _)| ty == t));
    if let Some((review, patterns)) = review {
        // One review over both kinds: a history's id (or name) matches its golden and its
        // migration goldens alike.
        let mut candidates = if migrations_only { Vec::new() } else { g::candidates(corpus, golden, store_type)? };
        candidates.extend(g::migration_candidates(corpus, golden)?.into_iter().filter(|c| of_type(&c.id)));
        let done = g::review_pending(&candidates, review, &patterns)?;
        for (id, action) in &done {
            println!("{:<9} {id}", action.as_str());
        }
        let verb = if review == g::Review::Accept { "accepted" } else { "rejected" };
        say!("{what}: {}", if done.is_empty() { "nothing pending".to_string() } else { format!("{} {verb}", done.len()) });
        return Ok(());
    }
    // One replay per history gives its golden and its migration goldens alike.
    let done = match migrations_only {
        true => g::bless_migrations(corpus, golden, registry)?.into_iter().filter(|b| of_type(&b.id)).collect(),
        false => g::bless_all_with_migrations(corpus, golden, store_type, registry)?,
    };
    print_blessed(&done);
    let mut counts = std::collections::BTreeMap::new();
    for b in &done {
        *counts.entry(b.action.as_str()).or_insert(0) += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    say!("{what}: {}", if summary.is_empty() { "nothing to do".to_string() } else { summary.join(", ") });
    if done.iter().any(|b| b.action != BlessAction::Unchanged) {
        say!(
            "review the .pending files under {}, then run `lattice-conform bless --accept [ID|GLOB]…` (or `--reject`); a history's id accepts its migration goldens too",
            golden.display()
        );
    }
    Ok(())
}

/// One line `<action> <id>` per new or changed golden, then its review lines, indented.
pub(crate) fn print_blessed(done: &[lattice_conform::golden::Blessed]) {
    for b in done.iter().filter(|b| b.action != BlessAction::Unchanged) {
        println!("{:<9} {}", b.action.as_str(), b.id);
        for line in &b.detail {
            println!("    {line}");
        }
    }
}

pub(crate) fn corpus_add(registry: &Registry, history: &Path, corpus: &Path, golden: &Path, id: Option<&str>) -> anyhow::Result<()> {
    lattice_conform::output::check_dir(corpus)?;
    lattice_conform::output::check_dir(golden)?;
    lattice_conform::golden::check_belongs(corpus, golden)?;
    sweep(corpus, 1)?;
    sweep(golden, 2)?;
    let (entry, blessed) = lattice_conform::golden::add_to_corpus(corpus, golden, history, id, registry)?;
    say!("added {} as {} ({} ops)", history.display(), entry.id(), entry.ops);
    if !quiet() {
        print_blessed(&blessed);
    }
    say!("review the pending goldens under {}, then run `lattice-conform bless --accept {}`", golden.display(), entry.id());
    Ok(())
}
