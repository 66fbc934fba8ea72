//! `record`: a store's log exported as a history, to a file or into a corpus.

use crate::*;

#[derive(clap::Args)]
pub(crate) struct RecordArgs {
    /// The store's directory (read only).
    dir: PathBuf,
    /// Write the history here.
    #[arg(long, required_unless_present = "corpus")]
    out: Option<PathBuf>,
    /// Or add it to this corpus (updating its manifest), with its goldens written as pending
    /// under --golden (review them with `bless --accept`).
    #[arg(long, requires_all = ["golden", "name"])]
    corpus: Option<PathBuf>,
    /// The golden directory for --corpus.
    #[arg(long)]
    golden: Option<PathBuf>,
    /// The history's name in the corpus.
    #[arg(long)]
    name: Option<String>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// The history's form. Default: from --out's extension (`.lch` binary, otherwise JSON); in a
    /// corpus, JSON up to 100,000 ops and binary above.
    #[arg(long, value_enum)]
    format: Option<Form>,
    /// Limits of the Wasm guests this command runs.
    #[command(flatten, next_help_heading = "Wasm guest limits")]
    pub(crate) limits: WasmLimitArgs,
}

pub(crate) fn record(registry: &Registry, args: RecordArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        lattice_conform::output::check_file(out, args.force)?;
    }
    for dir in args.corpus.iter().chain(&args.golden) {
        lattice_conform::output::check_dir(dir)?;
    }
    if let Some(out) = &args.out {
        sweep(out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")), 0)?;
    }
    if let (Some(c), Some(g)) = (&args.corpus, &args.golden) {
        lattice_conform::golden::check_belongs(c, g)?;
    }
    if let Some(c) = &args.corpus {
        sweep(c, 1)?;
    }
    if let Some(g) = &args.golden {
        sweep(g, 2)?;
    }
    if let Some(out) = &args.out {
        let form = args.format.unwrap_or(Form::for_path(out, Some(Form::Json))?);
        let r = lattice_conform::record::record_to(&args.dir, registry, out, form)?;
        say!("recorded {} ops to {} ({} bytes)", r.written.ops, out.display(), r.written.bytes);
    }
    if let (Some(c), Some(g), Some(name)) = (&args.corpus, &args.golden, &args.name) {
        let (r, entry, blessed) = lattice_conform::record::record_to_corpus(&args.dir, registry, c, g, name, args.format)?;
        say!("recorded {} ops as {} with pending goldens", r.written.ops, entry.id());
        if r.expect_kept > 0 {
            say!("kept the {} expected read(s) of the history it replaces", r.expect_kept);
        }
        if r.expect_dropped > 0 {
            say!(
                "note: dropped {} expected read(s) of the history it replaces: the ops before them are not the recorded log's first ops",
                r.expect_dropped
            );
        }
        if !quiet() {
            print_blessed(&blessed);
        }
        say!("review them under {}, then run `lattice-conform bless --accept {}`", g.display(), entry.id());
    }
    Ok(())
}
