//! Hot-fix certification: `certify` and `certify --check`.

use crate::*;

#[derive(clap::Args)]
pub(crate) struct CertifyArgs {
    /// The store type both builds implement; default: the type a Wasm build declares (or a
    /// `native-fault:` fault's type).
    #[arg(long = "type")]
    store_type: Option<String>,
    /// The build in production: `native`, `native-fault:NAME`, a .wasm path or `cas:<digest>`.
    #[arg(long, required_unless_present = "check")]
    baseline: Option<String>,
    /// The hot-fix build to certify against --baseline (same forms).
    #[arg(long, required_unless_present = "check")]
    candidate: Option<String>,
    /// The corpus directory (histories and MANIFEST.json), as in `verify`; phase 1 replays it
    /// first. Default: `corpus`.
    #[arg(long, value_name = "DIR")]
    corpus: Vec<PathBuf>,
    /// More corpora replayed after --corpus in phase 1 (e.g. recorded production histories).
    #[arg(long, value_name = "DIR")]
    extra_corpus: Vec<PathBuf>,
    /// The former name of --corpus (it always named the corpus).
    #[arg(long, value_name = "DIR", hide = true)]
    bundled: Option<PathBuf>,
    /// Generated cases in phase 2.
    #[arg(long, default_value_t = 200)]
    cases: u32,
    /// Seed of the generated cases, the payload mutations and the --orders delivery orders.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most ops in a generated case or a mutated corpus prefix.
    #[arg(long, default_value_t = 200)]
    max_ops: u32,
    /// Also compare the builds on every corpus history in N further delivery orders (seeded by
    /// --seed), so a hot fix that changes what a reordered replica shows is caught.
    #[arg(long, value_name = "N", default_value_t = 0)]
    orders: u32,
    /// Where to write the certificate.
    #[arg(long, default_value = "certificate.json")]
    out: PathBuf,
    /// Where to write the shrunk counterexample history on divergence (a counterexample left
    /// there by an earlier run is replaced, saying so on standard error).
    #[arg(long, default_value = "certify-counterexample.json")]
    counterexample: PathBuf,
    /// Replace --out and --counterexample if they exist (a file at --counterexample that is not
    /// a history file needs it).
    #[arg(long)]
    force: bool,
    /// Re-derive this certificate; exit 0 if it still holds, 1 if not (naming what changed), 2
    /// if the file is not a certificate this build reads or an input it records cannot be found.
    /// Its `.wasm` builds and corpora are looked for relative to the certificate's directory;
    /// builds then by digest in the Wasm cache ($LATTICE_WASM_CACHE).
    #[arg(long)]
    check: Option<PathBuf>,
    /// Print the result as JSON on standard output (docs/FORMAT.md §17.7; with --check, §17.6).
    #[arg(long)]
    json: bool,
    /// Limits of the Wasm guests this command runs.
    #[command(flatten, next_help_heading = "Wasm guest limits")]
    pub(crate) limits: WasmLimitArgs,
}

pub(crate) fn certify(registry: &Registry, args: CertifyArgs) -> anyhow::Result<()> {
    use lattice_conform::certify as c;
    if let Some(path) = &args.check {
        let report = c::check(path, registry)?;
        if args.json {
            print_json(&report)?;
        } else if report.holds {
            say!("{}: still holds", path.display());
        }
        if !report.holds {
            anyhow::bail!(CheckFailed(format!("{}: the certificate no longer holds: {}", path.display(), report.changes.join("; "))));
        }
        return Ok(());
    }
    lattice_conform::output::check_file(&args.out, args.force)?;
    let stale_counterexample = earlier_counterexample(&args.counterexample, args.force)?;
    let baseline: lattice_conform::build::BuildSpec = args.baseline.expect("clap").parse()?;
    let candidate: lattice_conform::build::BuildSpec = args.candidate.expect("clap").parse()?;
    let store_type = match args.store_type {
        Some(t) => t,
        None => infer_certify_type(registry, &baseline, &candidate)?,
    };
    let opts = c::CertifyOptions {
        store_type,
        baseline,
        candidate,
        corpora: std::iter::once(main_corpus(&args.corpus, args.bundled, &args.extra_corpus)?).chain(args.extra_corpus).collect(),
        cases: args.cases,
        seed: args.seed,
        max_ops: args.max_ops,
        orders: args.orders,
    };
    let verdict = c::certify(&opts, registry)?;
    let out = match &verdict {
        c::Verdict::Equivalent(_) => &args.out,
        c::Verdict::Diverged { .. } => &args.counterexample,
    };
    let json = c::RunJson::new(&opts, &verdict, out);
    match verdict {
        c::Verdict::Equivalent(cert) => {
            let cert = c::located_at(cert, &args.out)?;
            lattice_conform::corpus::write_atomic(&args.out, c::to_text(&cert).as_bytes())?;
            if args.json {
                return print_json(&c::RunJson::new(&opts, &c::Verdict::Equivalent(cert), out));
            }
            say!("equivalent on {} histories ({} ops); certificate written to {}", cert.histories, cert.ops, args.out.display());
            Ok(())
        }
        c::Verdict::Diverged { source, history, divergence, shrinking } => {
            lattice_conform::corpus::write_atomic(&args.counterexample, history.to_json().as_bytes())?;
            if stale_counterexample {
                eprintln!("note: replaced {}, a counterexample left by an earlier run", args.counterexample.display());
            }
            let mut text = String::new();
            lattice_conform::report::divergence_text(&mut text, &divergence);
            let mut head = format!(
                "DIVERGED on {source}; shrunk to {} ops in {} replays, written to {}",
                history.ops.len(),
                shrinking.replays,
                args.counterexample.display()
            );
            if let Some(cap) = &shrinking.stopped {
                head.push_str(&format!(" (shrinking stopped at {cap}: it still diverges, but may not be minimal)"));
            }
            if args.json {
                print_json(&json)?;
                eprintln!("{head}");
                eprint!("{text}");
            } else {
                println!("{head}");
                print!("{text}");
            }
            anyhow::bail!(CheckFailed(format!("{} is not hash-equivalent to {}", opts.candidate, opts.baseline)))
        }
    }
}

/// The corpus phase 1 replays first: `--corpus` (as in `verify`), its former name `--bundled`,
/// or `corpus`. Until `--extra-corpus` existed, `--corpus DIR` (repeatable) added DIR *after*
/// that corpus; arguments that may be written in that sense are refused with a hint instead of
/// silently certifying on other histories (docs/FORMAT.md §17.1): `--corpus` together with
/// `--bundled` or given more than once, or given once, without `--extra-corpus`, while `./corpus`
/// holds another corpus (which the old meaning would have replayed first).
fn main_corpus(corpus: &[PathBuf], bundled: Option<PathBuf>, extra: &[PathBuf]) -> anyhow::Result<PathBuf> {
    const HINT: &str =
        "certify's --corpus names the corpus, as in `verify`, and the extra corpora it used to add are now --extra-corpus DIR";
    let extras = |dirs: &[PathBuf]| dirs.iter().map(|p| format!(" --extra-corpus {}", p.display())).collect::<String>();
    let given = |dirs: &[PathBuf]| dirs.iter().map(|p| format!("--corpus {}", p.display())).collect::<Vec<_>>().join(" ");
    let one = match (corpus, bundled) {
        ([], Some(b)) => return Ok(b),
        ([], None) => return Ok(PathBuf::from("corpus")),
        (many, Some(b)) => anyhow::bail!(
            "--bundled {b} {}: {HINT}; write `--corpus {b}{}` for the corpus {b} followed by the others",
            given(many),
            extras(many),
            b = b.display()
        ),
        ([one], None) => one.clone(),
        (many, None) => anyhow::bail!(
            "{}: certify replays one corpus (--corpus DIR) and then the --extra-corpus ones; {HINT}: write `--corpus corpus{}` for what this used to mean",
            given(many),
            extras(many)
        ),
    };
    let default = Path::new("corpus");
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if extra.is_empty() && default.join(lattice_conform::corpus::MANIFEST).is_file() && !same(&one, default) {
        anyhow::bail!(
            "--corpus {dir}: ambiguous here: {HINT}, and ./corpus holds another corpus. Write `--corpus corpus --extra-corpus {dir}` to replay ./corpus and then {dir} (what `--corpus {dir}` used to mean), or `--bundled {dir}` to replay {dir} alone",
            dir = one.display()
        );
    }
    Ok(one)
}

/// Checks `--counterexample` before the run: not inside a store, and an existing file only when
/// it is a history file (a counterexample an earlier failed run left, which this run replaces if
/// it diverges; `Ok(true)`) or with `--force`. Anything else there is refused (exit 2), so a
/// mistyped path never destroys an unrelated file.
fn earlier_counterexample(path: &Path, force: bool) -> anyhow::Result<bool> {
    lattice_conform::output::check_dir(path)?;
    if force || path.symlink_metadata().is_err() {
        return Ok(false);
    }
    let is_history = path.is_file() && lattice_conform::history::History::load(path).is_ok();
    if !is_history {
        lattice_conform::output::check_file(path, false)?;
    }
    Ok(true)
}

/// The store type `certify` runs when `--type` is left out: the one the builds declare, which
/// must agree when both declare one.
pub(crate) fn infer_certify_type(
    registry: &Registry,
    baseline: &lattice_conform::build::BuildSpec,
    candidate: &lattice_conform::build::BuildSpec,
) -> anyhow::Result<String> {
    match (baseline.declared_type(registry)?, candidate.declared_type(registry)?) {
        (Some(b), Some(c)) if b != c => {
            anyhow::bail!("--baseline {baseline} implements `{b}` but --candidate {candidate} implements `{c}`: a hot fix keeps its store type")
        }
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => anyhow::bail!(
            "--type is needed: neither --baseline {baseline} nor --candidate {candidate} declares a store type (only Wasm builds and store-logic faults do)"
        ),
    }
}
