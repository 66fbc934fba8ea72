//! The `lattice-conform` command line: arguments in, one library call, output and an exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lattice_conform::corpus;
use lattice_conform::decode::decode_row;
use lattice_conform::exit;
use lattice_conform::golden::BlessAction;
use lattice_conform::history::{self as history, Form};
use lattice_conform::registry::{OpenError, Registry};
use lattice_conform::report::{render, Format};
use lattice_conform::store::{self, PauseRecord, Store, StoreError, StoreIdentity};
use lattice_conform::verify::{Report, VerifyOptions};
use lattice_conform::wasm::{Limits, WasmCache, WasmError};
use serde::Serialize;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "lattice-conform",
    version,
    about = "Self-describing Lattice stores and the conformance suite that guards their state hashes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    limits: WasmLimitArgs,
    /// Print failures and errors only: no progress bars, no summaries of work that succeeded.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
}

/// Limits of Wasm guests, for every command (each falls back to its environment variable, then
/// to the default; docs/WASM_ABI.md §6).
#[derive(clap::Args)]
struct WasmLimitArgs {
    /// Fuel per op for Wasm guests, host calls included [env: LATTICE_WASM_FUEL; default 1000000000].
    #[arg(long, global = true, value_name = "UNITS", value_parser = clap::value_parser!(u64).range(1..))]
    wasm_fuel: Option<u64>,
    /// Memory cap of a Wasm guest in MiB, 1 to 4096 [env: LATTICE_WASM_MEMORY_MIB; default 256].
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    wasm_memory_mib: Option<u64>,
    /// Bytes one op of a Wasm guest may write, in MiB [env: LATTICE_WASM_WRITE_MIB; default 64].
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1048576))]
    wasm_write_mib: Option<u64>,
    /// `put`/`delete` calls one op of a Wasm guest may make [env: LATTICE_WASM_ROW_WRITES; default 262144].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    wasm_row_writes: Option<u64>,
    /// Wall-clock watchdog per op of a Wasm guest, in ms [env: LATTICE_WASM_WATCHDOG_MS; default 5000].
    #[arg(long, global = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    wasm_watchdog_ms: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty store of TYPE in DIR (which must not exist).
    Create {
        /// The new store's directory (it must not exist).
        dir: PathBuf,
        /// The store type, fixed for the store's life, e.g. `core:kvstore` (`core:logstore`,
        /// `core:kvstore-v2`, or a type a Wasm guest in the cache declares).
        #[arg(long = "type")]
        store_type: String,
        /// Store id; a random v4 UUID if omitted.
        #[arg(long)]
        id: Option<Uuid>,
    },
    /// Apply the ops of a history file to the store in DIR, resuming after ops already logged.
    Apply {
        /// The store's directory.
        dir: PathBuf,
        /// The history file (JSON or binary `.lch`) whose ops are delivered, in file order.
        history: PathBuf,
        /// Create DIR with the history's identity if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Print a store's identity without opening its logic or writing anything.
    Peek {
        /// The store's directory.
        dir: PathBuf,
        /// Print the identity as one JSON object (docs/FORMAT.md).
        #[arg(long)]
        json: bool,
    },
    /// Open a store through the registry (peek → resolve → open) and print its state hash.
    Open {
        /// The store's directory.
        dir: PathBuf,
        /// Recompute the state hash from the tables; a mismatch is reported as corrupt (exit 1).
        #[arg(long)]
        verify: bool,
        /// Deep verification (implies --verify): also read every log.db entry, check the log's
        /// integrity, replay it from genesis and require the stored state hash, stall and
        /// floating ops (catches a state.db from another replica and a damaged or truncated log).
        #[arg(long)]
        deep: bool,
        /// Replay the store's log with --build and refuse the build (exit 1) if the result differs
        /// from the stored state hash.
        #[arg(long)]
        verify_history: bool,
        /// The build for --verify-history: `native`, `native-fault:NAME`, a .wasm path, `cas:<digest>`,
        /// or `exec:PROGRAM` / `exec:FILE.json`.
        #[arg(long, default_value = "native")]
        build: String,
        /// Print the result as one JSON object on stdout (and nothing else there).
        #[arg(long)]
        json: bool,
    },
    /// Recreate state.db from log.db (the replaced state.db is kept as state.db.before-rebuild).
    Rebuild {
        /// The store's directory.
        dir: PathBuf,
        /// Rebuild even when state.db belongs to another store or reflects ops log.db lacks
        /// (those ops are then lost from the rebuilt store; the old state.db is still kept).
        #[arg(long)]
        force: bool,
    },
    /// Print the decoded contents of a store's data table.
    Dump {
        /// The store's directory.
        dir: PathBuf,
        /// Print the rows as JSON (each decoded beside its hex).
        #[arg(long)]
        json: bool,
    },
    /// Generate op histories into a corpus directory (deterministic: same arguments, same bytes).
    Gen(GenArgs),
    /// Corpus tools.
    #[command(subcommand)]
    Corpus(CorpusCommand),
    /// List the seeded semantic faults `--build native-fault:NAME` and `corpus adequacy` inject.
    Faults {
        /// Print the catalogue as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Compute goldens for the corpus and write new or changed ones as pending (never overwriting
    /// an accepted golden), printing what changes; with --accept or --reject, review the pending ones.
    Bless {
        /// The corpus directory.
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
        /// The golden directory.
        #[arg(long, default_value = "golden")]
        golden: PathBuf,
        /// Only the histories of this store type.
        #[arg(long = "type")]
        store_type: Option<String>,
        /// Accept the pending goldens whose id (`<store_type>/<name>`) or name matches one of
        /// these globs (none: every pending golden); a pattern matching none is an error.
        #[arg(long, num_args = 0.., value_name = "ID|GLOB", conflicts_with = "reject")]
        accept: Option<Vec<String>>,
        /// Reject (delete) the pending goldens matching these globs (none: every pending golden);
        /// the accepted goldens stay as they are.
        #[arg(long, num_args = 0.., value_name = "ID|GLOB")]
        reject: Option<Vec<String>>,
        /// Bless the migration goldens instead of the history goldens.
        #[arg(long)]
        migrations: bool,
    },
    /// Replay corpus histories through a build and compare them with the goldens.
    Verify(VerifyArgs),
    /// Verification reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Migrate SRC to a new store DST of another type (new UUID), optionally with the five checks.
    Migrate(MigrateArgs),
    /// Flag a store whose type was changed in place (exit 1 with the findings; 0 when clean).
    Audit {
        /// The store directory (only read).
        dir: PathBuf,
        /// Print the findings as JSON on standard output (docs/FORMAT.md §14.6).
        #[arg(long)]
        json: bool,
    },
    /// Certify a hot-fix build as hash-equivalent to its baseline, or check a certificate.
    Certify(CertifyArgs),
    /// Export a store's log as a history (checked to reproduce its state hash).
    Record(RecordArgs),
    /// History files: convert between the JSON and binary forms, show one.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Test support: open DIR for writing, print "ready", hold it until standard input closes.
    #[command(hide = true)]
    HoldOpen { dir: PathBuf },
    /// Wasm guest modules: the content-addressed module cache and its registry file.
    #[command(subcommand)]
    Wasm(WasmCommand),
    /// Serve a build of this tool over the outside-build protocol on standard input and output
    /// (docs/BUILD_PROTOCOL.md): the reference adapter that `--build exec:…` drives.
    ServeBuild {
        /// The build served: `native` or `native-fault:NAME` (a fault of the hash encoding
        /// cannot be served: over the protocol the host computes the hash).
        #[arg(long, default_value = "native")]
        build: String,
        /// Misbehave on purpose, for testing a host's verdicts: `hang-at:N`, `crash-at:N`,
        /// `garbage`, `version:V`, `stderr-flood:BYTES`, or `alternate:FILE` (every other run
        /// witnesses in one pass only: a nondeterministic build).
        #[arg(long)]
        misbehave: Option<String>,
    },
    /// Print a shell completion script for lattice-conform on stdout (e.g.
    /// `lattice-conform completions bash > /etc/bash_completion.d/lattice-conform`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    lattice_conform::progress::enable(lattice_conform::progress::wanted(cli.quiet));
    let limits = match wasm_limits(&cli.limits) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::INPUT_ERROR as u8);
        }
    };
    match run(cli.command, limits) {
        Ok(()) => ExitCode::from(exit::OK as u8),
        // The reader of our output went away (`dump | head`): a normal end of output.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// `println!` panics when standard output is a closed pipe. Rust ignores SIGPIPE, so that panic
/// is how a `print!` learns the reader left; treat it as the end of output (exit 0, no message)
/// rather than a crash. Every other panic reaches the previous hook unchanged.
fn quiet_on_closed_stdout() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(exit::OK);
        }
        previous(info);
    }));
}

fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<lattice_conform::record::RecordError>().is_some_and(|r| r.is_check_failure()) {
        return exit::CHECK_FAILED;
    }
    let store_err = e.downcast_ref::<StoreError>().or_else(|| match e.downcast_ref::<OpenError>() {
        Some(OpenError::Store(s)) => Some(s),
        _ => None,
    });
    if e.downcast_ref::<CheckFailed>().is_some() {
        return exit::CHECK_FAILED;
    }
    match store_err {
        Some(s) if s.is_check_failure() => exit::CHECK_FAILED,
        _ => exit::INPUT_ERROR,
    }
}

fn run(command: Command, limits: Limits) -> anyhow::Result<()> {
    let registry = with_wasm_env(Registry::with_reference_types().with_wasm_limits(limits));
    match command {
        Command::Create { dir, store_type, id } => create(&registry, &dir, &store_type, id.unwrap_or_else(Uuid::new_v4)),
        Command::Apply { dir, history, create } => apply(&registry, &dir, &history, create),
        Command::Peek { dir, json } => peek(&dir, json),
        Command::Open { dir, verify, deep, verify_history: true, build, json } => {
            verify_history(&registry, &dir, &build, json)?;
            open(&registry, &dir, verify, deep, json)
        }
        Command::Open { dir, verify, deep, json, .. } => open(&registry, &dir, verify, deep, json),
        Command::Rebuild { dir, force } => rebuild(&registry, &dir, force),
        Command::Dump { dir, json } => dump(&registry, &dir, json),
        Command::HoldOpen { dir } => hold_open(&registry, &dir),
        Command::History(cmd) => history_command(cmd),
        Command::Certify(args) => certify(&registry, args),
        Command::Record(args) => record(&registry, args),
        Command::Migrate(args) => migrate(&registry, args),
        Command::Audit { dir, json } => audit(&registry, &dir, json),
        Command::Gen(args) => gen(args),
        Command::Corpus(CorpusCommand::Stats { corpus }) => corpus_stats(&corpus),
        Command::Corpus(CorpusCommand::Adequacy(args)) => adequacy(&registry, args),
        Command::Corpus(CorpusCommand::Add { history, corpus, golden, id }) => {
            corpus_add(&registry, &history, &corpus, &golden, id.as_deref())
        }
        Command::Faults { json } => faults(json),
        Command::Bless { corpus, golden, store_type, accept, reject, migrations } => {
            bless(&registry, &corpus, &golden, store_type.as_deref(), review_of(accept, reject), migrations)
        }
        Command::Verify(args) => verify(&registry, args),
        Command::Report(ReportCommand::Merge { reports, format, output }) => report_merge(&reports, format, output.as_deref()),
        Command::Wasm(cmd) => wasm_command(cmd, limits),
        Command::ServeBuild { build, misbehave } => serve_build(&registry, &build, misbehave.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "lattice-conform", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn serve_build(registry: &Registry, build: &str, misbehave: Option<&str>) -> anyhow::Result<()> {
    use lattice_conform::build::BuildSpec;
    let build: BuildSpec = build.parse()?;
    if !matches!(build, BuildSpec::Native | BuildSpec::NativeFault(_)) {
        anyhow::bail!("serve-build --build {build}: only `native` and `native-fault:NAME` can be served");
    }
    let misbehave = misbehave.map(str::parse).transpose().map_err(|e: String| anyhow::anyhow!(e))?;
    let resolve = |t: &str| build.replay_parts(t, registry).map_err(|e| e.to_string());
    let types = registry.registered_types().into_iter().filter_map(|t| resolve(&t).ok().map(|(l, _)| (t, l.schema_version()))).collect();
    let served = lattice_conform::outside::serve::Served { build: build.to_string(), types, resolve: &resolve };
    lattice_conform::outside::serve::serve(&served, misbehave, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(())
}

/// `--quiet`: failures and errors only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--quiet` was given.
fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a line on stdout unless `--quiet` was given: for news of work that succeeded (summaries,
/// hints), never for failures, errors or the data a command was asked for.
macro_rules! say {
    ($($arg:tt)*) => {
        if !quiet() {
            println!($($arg)*);
        }
    };
}

fn create(registry: &Registry, dir: &Path, store_type: &str, id: Uuid) -> anyhow::Result<()> {
    let logic = registry.opener(store_type)?.logic();
    let store = Store::create(dir, id, logic)?;
    say!("created {}: {}", dir.display(), store.identity());
    Ok(())
}

fn apply(registry: &Registry, dir: &Path, path: &Path, create: bool) -> anyhow::Result<()> {
    // A history that does not load is refused before anything is written: the whole file is
    // read once (as a stream, holding no ops) before it is delivered.
    let history = lattice_conform::history::open(path)?.finish()?.header;
    if !history.delivery.batches.is_empty() && !quiet() {
        eprintln!(
            "note: {} batches ops (its delivery plan, docs/FORMAT.md §10.9); apply delivers each op on its own, so the store may differ from the history's golden",
            path.display()
        );
    }
    let mut store = if create && !dir.exists() {
        let logic = registry.resolve(&history.identity())?;
        Store::create(dir, history.store_id, logic)?
    } else {
        // A refused apply writes nothing: the identity and a pause are checked read-only first
        // (a read-write redb open rewrites the header even when nothing is applied). Only a store
        // a crash left needing repair goes straight to the read-write open, which repairs it.
        match registry.open_read_only(dir) {
            Ok(ro) => {
                check_history_matches(ro.reader.identity(), &history, path)?;
                if let Some(pause) = ro.reader.paused() {
                    return Err(StoreError::Paused { dir: dir.to_path_buf(), pause: pause.clone() }.into());
                }
            }
            Err(OpenError::Store(e)) if e.needs_repair() => {}
            Err(e) => return Err(e.into()),
        }
        registry.open(dir)?
    };
    check_history_matches(store.identity(), &history, path)?;
    // Also after a crash repair, which the read-only checks above could not see past.
    if let Some(pause) = store.paused() {
        return Err(StoreError::Paused { dir: dir.to_path_buf(), pause: pause.clone() }.into());
    }
    // Ops the store already received (an earlier run of this history, cut short) are ignored as
    // redeliveries, so re-running an interrupted apply completes it.
    let mut ops = lattice_conform::history::open(path)?;
    let summary = store.apply_stream(ops.by_ref(), 0)?;
    // The file changed since it was checked: what was delivered stays (a re-run resumes).
    let delivered = ops.finish()?.ops;
    say!(
        "delivered {} ops: {} received ({} applied), {} already received; state hash {}",
        delivered,
        summary.received,
        summary.applied,
        summary.duplicates,
        store.state_hash()
    );
    let floating = store.floating_count()?;
    if floating > 0 {
        say!("{floating} received ops are floating: their `prev` or `causal_deps` have not arrived (they apply when those do)");
    }
    if let Some(r) = summary.refused.first() {
        anyhow::bail!("{}: op {} (id {}) refused on arrival: {}", path.display(), r.index, r.op_id, r.reason);
    }
    if let Some(p) = summary.stalled {
        return Err(
            StoreError::Rejected { dir: dir.to_path_buf(), index: p.op_index, op_id: p.op_id, kind: p.kind, reason: p.reason }.into()
        );
    }
    Ok(())
}

fn check_history_matches(store: &StoreIdentity, history: &lattice_conform::history::Header, path: &Path) -> anyhow::Result<()> {
    let wanted = history.identity();
    if *store != wanted {
        anyhow::bail!(HistoryMismatch { path: path.to_path_buf(), history: wanted, store: store.clone() });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: the history is for the store ({history}), but the target is ({store})")]
struct HistoryMismatch {
    path: PathBuf,
    history: StoreIdentity,
    store: StoreIdentity,
}

#[derive(Serialize)]
struct PeekJson {
    #[serde(flatten)]
    identity: StoreIdentity,
    source: store::PeekSource,
}

fn peek(dir: &Path, json: bool) -> anyhow::Result<()> {
    let (identity, source) = store::peek_with_source(dir)?;
    if source == store::PeekSource::StateDb && dir.join("log.db").exists() {
        store::peek_both(dir)?;
    }
    if json {
        print_json(&PeekJson { identity, source })
    } else {
        print_identity(&identity);
        println!("source:         {}", if source == store::PeekSource::StateDb { "state.db" } else { "log.db" });
        Ok(())
    }
}

#[derive(Serialize)]
struct OpenJson {
    #[serde(flatten)]
    identity: StoreIdentity,
    state_hash: String,
    ops: u64,
    /// Entries a concurrent writer had logged past the snapshot read.
    logged_ahead: u64,
    paused: Option<PauseRecord>,
    verified: bool,
    /// Present after --deep: what the deep verification checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    deep: Option<lattice_conform::record::DeepCheck>,
}

fn open(registry: &Registry, dir: &Path, verify: bool, deep: bool, json: bool) -> anyhow::Result<()> {
    let store = registry.open_for_reading(dir)?;
    // The deep check verifies first itself.
    if verify && !deep {
        store.verify()?;
    }
    let deep = if deep { Some(lattice_conform::record::verify_deep(dir, registry)?) } else { None };
    let out = OpenJson {
        identity: store.identity().clone(),
        state_hash: store.state_hash().to_string(),
        ops: store.log_len(),
        logged_ahead: store.logged_ahead(),
        paused: store.paused().cloned(),
        verified: verify || deep.is_some(),
        deep,
    };
    if json {
        return print_json(&out);
    }
    print_identity(&out.identity);
    println!("state_hash:     {}", out.state_hash);
    println!("ops:            {}", out.ops);
    if let Some(p) = &out.paused {
        println!("paused:         at op {} ({}): {}", p.op_index, p.kind.as_str(), p.reason);
    }
    if out.logged_ahead > 0 {
        println!("writer active:  {} more ops logged while this snapshot was read (not included)", out.logged_ahead);
    }
    if out.verified {
        println!("verified:       state hash recomputed from the tables and matches");
    }
    if let Some(d) = &out.deep {
        println!(
            "deep:           {} log entries read, replayed from genesis: same state hash, {} floating, stall {}",
            d.log_entries,
            d.floating,
            d.stall.map_or("none".to_string(), |i| format!("at log entry {i}"))
        );
    }
    Ok(())
}

fn rebuild(registry: &Registry, dir: &Path, force: bool) -> anyhow::Result<()> {
    let identity = Store::log_identity(dir)?;
    let (store, note) = Store::rebuild(dir, registry.resolve(&identity)?, force)?;
    say!("rebuilt state.db from {} logged ops; state hash {}", store.log_len(), store.state_hash());
    if let Some(kept) = &note.kept {
        say!("the replaced state.db is kept as {}", kept.display());
    }
    if let Some(p) = store.paused() {
        println!("projection stalls again at log entry {} ({}): {}", p.op_index, p.kind.as_str(), p.reason);
    }
    Ok(())
}

#[derive(Serialize)]
struct DumpJson {
    store_type: String,
    rows: Vec<lattice_conform::decode::DecodedRow>,
}

fn dump(registry: &Registry, dir: &Path, json: bool) -> anyhow::Result<()> {
    let store = registry.open_for_reading(dir)?;
    let store_type = store.identity().store_type.clone();
    let mut rows = Vec::new();
    store.for_each_row(|k, v| rows.push(decode_row(&store_type, k, v)))?;
    if json {
        return print_json(&DumpJson { store_type, rows });
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in rows {
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok(())
}

#[derive(clap::Args)]
struct GenArgs {
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
enum CorpusCommand {
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
    },
}

#[derive(clap::Args)]
struct AdequacyArgs {
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

#[derive(clap::Args)]
struct VerifyArgs {
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
    /// Verify every history even after a failure.
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
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Combine shard reports (from `verify --format json`) into one verdict.
    Merge {
        /// The shard reports (`verify --format json`), one per shard of one run.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// The merged report's form: `human`, `json` or `junit`.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Write the merged report to FILE instead of standard output (as `verify --output`).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn gen(args: GenArgs) -> anyhow::Result<()> {
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
    let cov = corpus::generate_into(&args.out, &req)?;
    if !quiet() {
        print!("{}", corpus::coverage_table(&cov));
    }
    Ok(())
}

fn adequacy(registry: &Registry, args: AdequacyArgs) -> anyhow::Result<()> {
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
struct FaultLine {
    name: &'static str,
    store_type: &'static str,
    layer: &'static str,
    description: &'static str,
}

fn faults(json: bool) -> anyhow::Result<()> {
    let catalogue = lattice_conform::fault::CATALOGUE;
    if json {
        let lines: Vec<FaultLine> = catalogue
            .iter()
            .map(|f| FaultLine { name: f.name, store_type: f.store_type, layer: f.layer.as_str(), description: f.description })
            .collect();
        println!("{}", serde_json::to_string_pretty(&lines).expect("a list serializes"));
        return Ok(());
    }
    for f in catalogue {
        println!("{:<28} {:<16} {:<9} {}", f.name, f.store_type, f.layer.as_str(), f.description);
    }
    Ok(())
}

fn corpus_stats(dir: &Path) -> anyhow::Result<()> {
    print!("{}", corpus::coverage_table(&corpus::stats(dir)?));
    Ok(())
}

/// `--accept [P…]` / `--reject [P…]` as a review (clap keeps the two apart).
fn review_of(accept: Option<Vec<String>>, reject: Option<Vec<String>>) -> Option<(lattice_conform::golden::Review, Vec<String>)> {
    use lattice_conform::golden::Review;
    accept.map(|p| (Review::Accept, p)).or_else(|| reject.map(|p| (Review::Reject, p)))
}

fn bless(
    registry: &Registry,
    corpus: &Path,
    golden: &Path,
    store_type: Option<&str>,
    review: Option<(lattice_conform::golden::Review, Vec<String>)>,
    migrations: bool,
) -> anyhow::Result<()> {
    use lattice_conform::golden as g;
    lattice_conform::output::check_dir(golden)?;
    let what = if migrations { "bless --migrations" } else { "bless" };
    if let Some((review, patterns)) = review {
        let done = if migrations {
            lattice_conform::migrate::review_migrations(corpus, golden, review, &patterns)?
        } else {
            g::review(corpus, golden, store_type, review, &patterns)?
        };
        for (id, action) in &done {
            println!("{:<9} {id}", action.as_str());
        }
        let verb = if review == g::Review::Accept { "accepted" } else { "rejected" };
        say!("{what}: {}", if done.is_empty() { "nothing pending".to_string() } else { format!("{} {verb}", done.len()) });
        return Ok(());
    }
    let done = if migrations {
        lattice_conform::migrate::bless_migrations(corpus, golden, registry)?
    } else {
        g::bless_all(corpus, golden, store_type, registry)?
    };
    print_blessed(&done);
    let mut counts = std::collections::BTreeMap::new();
    for b in &done {
        *counts.entry(b.action.as_str()).or_insert(0) += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    say!("{what}: {}", if summary.is_empty() { "nothing to do".to_string() } else { summary.join(", ") });
    if done.iter().any(|b| b.action != BlessAction::Unchanged) {
        let flag = if migrations { " --migrations" } else { "" };
        say!(
            "review the .pending files under {}, then run `lattice-conform bless{flag} --accept [ID|GLOB]…` (or `--reject`)",
            golden.display()
        );
    }
    Ok(())
}

/// One line `<action> <id>` per new or changed golden, then its review lines, indented.
fn print_blessed(done: &[lattice_conform::golden::Blessed]) {
    for b in done.iter().filter(|b| b.action != BlessAction::Unchanged) {
        println!("{:<9} {}", b.action.as_str(), b.id);
        for line in &b.detail {
            println!("    {line}");
        }
    }
}

fn corpus_add(registry: &Registry, history: &Path, corpus: &Path, golden: &Path, id: Option<&str>) -> anyhow::Result<()> {
    lattice_conform::output::check_dir(corpus)?;
    lattice_conform::output::check_dir(golden)?;
    let (entry, blessed) = lattice_conform::golden::add_to_corpus(corpus, golden, history, id, registry)?;
    say!("added {} as {} ({} ops)", history.display(), entry.id(), entry.ops);
    if !quiet() {
        print_blessed(&blessed);
    }
    say!(
        "review the pending goldens under {}, then run `lattice-conform bless --accept {}`{}",
        golden.display(),
        entry.id(),
        if blessed.iter().any(|b| b.id.starts_with("migration:")) {
            format!(" and `lattice-conform bless --migrations --accept {}`", entry.id())
        } else {
            String::new()
        }
    );
    Ok(())
}

fn verify(registry: &Registry, args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.output {
        lattice_conform::output::check_dir(out)?;
    }
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
fn review_state_ok(state: &lattice_conform::golden::ReviewState, corpus: &Path, golden: &Path) -> anyhow::Result<()> {
    if state.is_clean() {
        return Ok(());
    }
    let list = |paths: &[PathBuf]| paths.iter().map(|p| format!("\n  {}", p.display())).collect::<String>();
    let mut why = Vec::new();
    if !state.pending.is_empty() {
        why.push(format!(
            "{} pending golden(s) not yet reviewed (run `lattice-conform bless --accept` or `--reject`, with `--migrations` for migration goldens):{}",
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

fn verify_run(registry: &Registry, args: VerifyArgs) -> anyhow::Result<()> {
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
        let mut report = lattice_conform::migrate::verify_migrations(&args.corpus, &args.golden, registry, fault)?;
        lattice_conform::verify::bind_migrations(&mut report, &args.corpus, &args.golden)?;
        return finish_report(&report, args.format, args.output.as_deref());
    }
    let mut opts = VerifyOptions::new(Path::new("."));
    opts.corpus = args.corpus;
    opts.golden = args.golden;
    // A `cas:` prefix is resolved once, so the report names the whole digest.
    opts.build = args.build.parse::<lattice_conform::build::BuildSpec>()?.resolve(registry)?;
    if args.orders > 0 && opts.build.is_exec() {
        anyhow::bail!(lattice_conform::build::BuildError::ExecNotALogic {
            spec: opts.build.to_string(),
            what: "verify --orders (it replays a store logic in many orders in one process)"
        });
    }
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
    if args.orders > 0 {
        lattice_conform::output::check_dir(&args.counterexamples)?;
    }
    let mut report = lattice_conform::verify::verify(&opts, registry)?;
    if args.orders == 0 {
        return finish_report(&report, args.format, args.output.as_deref());
    }
    let known_path = args.known.clone().unwrap_or_else(|| opts.corpus.join("known-divergences.json"));
    let known = if args.known.is_some() || known_path.exists() {
        Some(lattice_conform::converge::KnownDivergences::load(&known_path)?)
    } else {
        None
    };
    let run =
        lattice_conform::converge::run(&opts, registry, args.orders, args.order_seed, known.as_ref().map(|k| (known_path.as_path(), k)))?;
    write_counterexamples(&run, &args.counterexamples, &opts)?;
    report.convergence = Some(run.summary());
    finish_report(&report, args.format, args.output.as_deref())
}

/// Writes the shrunk counterexample of each divergence not listed as known, as two histories.
fn write_counterexamples(run: &lattice_conform::converge::Run, dir: &Path, opts: &VerifyOptions) -> anyhow::Result<()> {
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

fn report_merge(paths: &[PathBuf], format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    if let Some(out) = output {
        lattice_conform::output::check_dir(out)?;
    }
    let parts = paths.iter().map(|p| Ok((p.clone(), Report::load(p)?))).collect::<anyhow::Result<Vec<_>>>()?;
    finish_report(&Report::merge(parts)?, format, output)
}

/// Prints the report (or writes it to `output`); a failed history, an unknown divergence or a
/// stale known divergence makes the exit code 1.
fn finish_report(report: &Report, format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    let quiet = quiet();
    let text = render(report, format);
    match output {
        Some(path) => {
            corpus::write_atomic(path, text.as_bytes())?;
            let verdict = format!("build {}: {} passed, {} failed", report.build, report.passed(), report.failed());
            if !quiet || report.failed() > 0 {
                eprintln!("{verdict}, {} not run; report written to {}", report.not_run.len(), path.display());
            }
        }
        // --quiet keeps a machine-readable report whole, and cuts the human one to its failures.
        None if quiet && format == Format::Human => print!("{}", lattice_conform::report::failures_only(report)),
        None => print!("{text}"),
    }
    if !quiet && report.is_empty_shard() && (format != Format::Human || output.is_some()) {
        eprintln!("{}", lattice_conform::report::EMPTY_SHARD);
    }
    if report.failed() > 0 {
        anyhow::bail!(CheckFailed(format!("{} of {} histories failed", report.failed(), report.results.len())));
    }
    if report.convergence_failures() > 0 {
        anyhow::bail!(CheckFailed(format!("{} convergence failures (unknown or stale divergences)", report.convergence_failures())));
    }
    Ok(())
}

/// A check failed on well-formed input (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CheckFailed(String);

#[derive(clap::Args)]
struct MigrateArgs {
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
}

fn migrate(registry: &Registry, args: MigrateArgs) -> anyhow::Result<()> {
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

fn audit(registry: &Registry, dir: &Path, json: bool) -> anyhow::Result<()> {
    let findings = lattice_conform::migrate::audit(dir, registry)?;
    if json {
        print_json(&lattice_conform::migrate::AuditJson::new(dir, &findings))?;
    } else {
        for f in &findings {
            println!("finding: {}", f.what);
        }
    }
    if !findings.is_empty() {
        anyhow::bail!(CheckFailed(format!("{}: {} finding(s): the store does not match its history", dir.display(), findings.len())));
    }
    if !json {
        say!("{}: clean", dir.display());
    }
    Ok(())
}

#[derive(clap::Args)]
struct CertifyArgs {
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
    /// The bundled corpus (phase 1).
    #[arg(long, default_value = "corpus")]
    bundled: PathBuf,
    /// More corpora to replay in phase 1 (e.g. recorded production histories).
    #[arg(long)]
    corpus: Vec<PathBuf>,
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
    /// Where to write the shrunk counterexample history on divergence.
    #[arg(long, default_value = "certify-counterexample.json")]
    counterexample: PathBuf,
    /// Replace --out and --counterexample if they exist.
    #[arg(long)]
    force: bool,
    /// Re-derive this certificate; exit 0 if it still holds, 1 if not (naming what changed), 2
    /// if an input it records cannot be found. Its `.wasm` builds are looked for relative to the
    /// certificate's directory, then by digest in the Wasm cache ($LATTICE_WASM_CACHE).
    #[arg(long)]
    check: Option<PathBuf>,
    /// Print the result as JSON on standard output (docs/FORMAT.md §17.7; with --check, §17.6).
    #[arg(long)]
    json: bool,
}

fn certify(registry: &Registry, args: CertifyArgs) -> anyhow::Result<()> {
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
    lattice_conform::output::check_file(&args.counterexample, args.force)?;
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
        corpora: std::iter::once(args.bundled).chain(args.corpus).collect(),
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
        c::Verdict::Diverged { source, history, divergence } => {
            lattice_conform::corpus::write_atomic(&args.counterexample, history.to_json().as_bytes())?;
            let mut text = String::new();
            lattice_conform::report::divergence_text(&mut text, &divergence);
            let head = format!("DIVERGED on {source}; shrunk to {} ops, written to {}", history.ops.len(), args.counterexample.display());
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

/// The store type `certify` runs when `--type` is left out: the one the builds declare, which
/// must agree when both declare one.
fn infer_certify_type(
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

#[derive(clap::Args)]
struct RecordArgs {
    /// The store's directory (read only).
    dir: PathBuf,
    /// Write the history here.
    #[arg(long, required_unless_present = "corpus")]
    out: Option<PathBuf>,
    /// Or add it to this corpus (updating its manifest), with its goldens written as pending
    /// under --golden (review them with `bless --accept` and `bless --migrations --accept`).
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
}

fn record(registry: &Registry, args: RecordArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        lattice_conform::output::check_file(out, args.force)?;
    }
    for dir in args.corpus.iter().chain(&args.golden) {
        lattice_conform::output::check_dir(dir)?;
    }
    if let Some(out) = &args.out {
        let form = args.format.unwrap_or(Form::for_path(out, Some(Form::Json))?);
        let r = lattice_conform::record::record_to(&args.dir, registry, out, form)?;
        say!("recorded {} ops to {} ({} bytes)", r.written.ops, out.display(), r.written.bytes);
    }
    if let (Some(c), Some(g), Some(name)) = (&args.corpus, &args.golden, &args.name) {
        let (r, entry, blessed) = lattice_conform::record::record_to_corpus(&args.dir, registry, c, g, name, args.format)?;
        say!("recorded {} ops as {} with pending goldens", r.written.ops, entry.id());
        if !quiet() {
            print_blessed(&blessed);
        }
        let migration = if blessed.iter().any(|b| b.id.starts_with("migration:")) {
            format!(" and `lattice-conform bless --migrations --accept {}`", entry.id())
        } else {
            String::new()
        };
        say!("review them under {}, then run `lattice-conform bless --accept {}`{migration}", g.display(), entry.id());
    }
    Ok(())
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Write an empty history (a header, no ops) of a store type to OUT (`.json` or `.lch`).
    New {
        /// Where to write it; its form comes from the extension (`.json`, `.lch`).
        out: PathBuf,
        /// The store type: `core:kvstore`, `core:logstore` or `core:kvstore-v2`.
        #[arg(long = "type")]
        store_type: String,
        /// The store id; default: derived from the type and OUT's file stem (docs/FORMAT.md,
        /// "Authored histories"), so the same command gives the same bytes.
        #[arg(long)]
        id: Option<Uuid>,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Append one op to FILE, described by intent: the payload is encoded with the store type's
    /// codec, `prev` chained to the author's previous op, the deps resolved and the id computed.
    Add {
        /// The history to append to (rewritten in place, in its form).
        file: PathBuf,
        /// The author's name (1 to 32 bytes; its key is the name's bytes followed by zeros).
        #[arg(long)]
        author: String,
        /// Put KEY=VALUE (kvstore types; repeatable; `hex:…` for bytes).
        #[arg(long, value_name = "KEY=VALUE")]
        put: Vec<String>,
        /// Delete KEY (kvstore types; repeatable; after the puts in the batch).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
        /// Append TEXT as a log entry (core:logstore).
        #[arg(long, value_name = "TEXT")]
        append: Option<String>,
        /// The op's causal deps: `auto` (default: the current heads of the keys it touches, for
        /// core:kvstore; none for the other types), `none`, or op ids, author names (that
        /// author's latest op) and `missing:NAME` (an op that never arrives).
        #[arg(long, num_args = 1.., value_name = "auto|none|OPID|AUTHOR")]
        deps: Vec<String>,
        /// The HLC, WALL_MS[.COUNTER]; default: one ms after the greatest HLC in FILE
        /// (1700000000000 for the first op), never the wall clock.
        #[arg(long, value_name = "WALL[.COUNTER]")]
        hlc: Option<String>,
        /// Deliver this op in one batch with the op before it (one ingest, as Lattice ingests a
        /// peer's batch; docs/FORMAT.md §4.5): it joins that op's batch, or the two become one.
        #[arg(long)]
        batch: bool,
        /// Restart the replica (close it and reopen it from its files) before this op.
        #[arg(long)]
        restart: bool,
    },
    /// Write the history a JSON script of intents describes (docs/FORMAT.md, "History script")
    /// to OUT: the same bytes as `history new` and one `history add` per op.
    Build {
        /// The script.
        script: PathBuf,
        /// Where to write the history (`.json` or `.lch`).
        out: PathBuf,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Convert a history between the JSON and binary forms (byte-exact both ways for files this
    /// tool wrote). The output's form comes from its extension (`.json`, `.lch`) or --format.
    Convert {
        /// The history to read (either form).
        input: PathBuf,
        /// Where to write it.
        output: PathBuf,
        /// The output's form, whatever its extension.
        #[arg(long, value_enum)]
        format: Option<Form>,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a history of either form: its header, then one line per op (index, id, author,
    /// HLC, prev, deps, payload size and decoded payload).
    Show {
        /// The history to read (either form).
        file: PathBuf,
        /// Print at most this many ops (the whole file is still read and checked).
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn history_command(cmd: HistoryCommand) -> anyhow::Result<()> {
    use lattice_conform::author;
    match cmd {
        HistoryCommand::New { out, store_type, id, force } => {
            let form = Form::for_path(&out, None)?;
            lattice_conform::output::check_file(&out, force)?;
            let id = id.unwrap_or_else(|| author::default_store_id(&store_type, &author::file_stem(&out)));
            let h = author::empty(&store_type, id)?;
            history::write(&out, form, &h)?;
            say!("wrote {} ({} history of store {id}, no ops)", out.display(), store_type);
            Ok(())
        }
        HistoryCommand::Add { file, author: name, put, delete, append, deps, hlc, batch, restart } => {
            lattice_conform::output::check_file(&file, true)?;
            let form = history::form_of(&file).map_err(|source| history::HistoryError::Io { path: file.clone(), source })?;
            let mut a = author::Authoring::new(history::History::load(&file)?)?;
            let intent = author::Intent { author: name, put, delete, append, deps, hlc, batch, restart };
            let (id, op) = a.add(&intent).map_err(|reason| author::AuthorError::Bad { path: file.clone(), reason })?;
            let written = history::write(&file, form, a.history())?;
            say!(
                "op {} by {}: id {} hlc {}.{} prev {} deps {}",
                written.ops - 1,
                intent.author,
                hex::encode(id),
                op.hlc.wall_ms,
                op.hlc.counter,
                &hex::encode(op.prev)[..16],
                if op.causal_deps.is_empty() {
                    "none".to_string()
                } else {
                    op.causal_deps.iter().map(|d| hex::encode(&d[..8])).collect::<Vec<_>>().join(",")
                }
            );
            Ok(())
        }
        HistoryCommand::Build { script, out, force } => {
            let form = Form::for_path(&out, None)?;
            lattice_conform::output::check_file(&out, force)?;
            let s = author::Script::load(&script)?;
            let h = author::build(&s, &script, &out)?;
            let written = history::write(&out, form, &h)?;
            say!("built {} ops from {} into {} (blake3 {})", written.ops, script.display(), out.display(), written.blake3);
            Ok(())
        }
        HistoryCommand::Convert { input, output, format, force } => {
            let form = match format {
                Some(f) => f,
                None => Form::for_path(&output, None)?,
            };
            lattice_conform::output::check_file(&output, force)?;
            if std::fs::canonicalize(&input).ok().is_some_and(|i| std::fs::canonicalize(&output).ok() == Some(i)) {
                anyhow::bail!("{}: the input and the output are the same file", output.display());
            }
            let mut ops = history::open(&input)?;
            let header = ops.header().clone();
            let mut w = history::HistoryWriter::create(&output, form, &header, ops.declared_ops().unwrap_or(0))?;
            for op in ops.by_ref() {
                w.push(&op)?;
            }
            // A late `provenance` (JSON written with it after `ops`) or a bad op: check before
            // the output appears.
            let done = ops.finish()?;
            if done.header != header {
                anyhow::bail!("{}: `provenance` follows `ops`; convert needs it first (move it above `ops`)", input.display());
            }
            let written = w.finish()?;
            say!(
                "{} ops: {} ({}) → {} ({}, {} bytes)",
                written.ops,
                input.display(),
                form_of(&input)?,
                output.display(),
                form.extension(),
                written.bytes
            );
            Ok(())
        }
        HistoryCommand::Show { file, limit } => {
            let mut ops = history::open(&file)?;
            let header = ops.header().clone();
            let mut out = std::io::stdout().lock();
            writeln!(out, "form:           {}", form_of(&file)?)?;
            writeln!(out, "store_id:       {}", header.store_id)?;
            writeln!(out, "store_type:     {}", header.store_type)?;
            writeln!(out, "schema_version: {}", header.schema_version)?;
            if let Some(n) = ops.declared_ops() {
                writeln!(out, "ops (declared): {n}")?;
            }
            if let Some(p) = &header.provenance {
                writeln!(out, "provenance:     {} seed {} scenario {} index {} ops {}", p.generator, p.seed, p.scenario, p.index, p.ops)?;
            }
            let plan = &header.delivery;
            if !plan.batches.is_empty() {
                let b: Vec<String> = plan.batches.iter().map(|b| format!("#{}–#{}", b.start, b.start + b.len - 1)).collect();
                writeln!(out, "batches:        {}", b.join(", "))?;
            }
            if !plan.restarts.is_empty() {
                let r: Vec<String> = plan.restarts.iter().map(|r| format!("#{r}")).collect();
                writeln!(out, "restarts before: {}", r.join(", "))?;
            }
            for (i, op) in (0u64..).zip(ops.by_ref()) {
                if limit.is_some_and(|l| i >= l) {
                    continue;
                }
                let id = lattice_conform::op::op_id(&header.store_id, &op);
                let decoded = (op.payload.len() <= history::DECODED_MAX_PAYLOAD)
                    .then(|| lattice_conform::decode::decode_payload(&header.store_type, &op.payload))
                    .flatten()
                    .map_or(String::new(), |d| format!(" {d}"));
                writeln!(
                    out,
                    "#{i} {} author {} hlc {}.{} prev {} deps {} payload {} B{decoded}",
                    &hex::encode(id)[..16],
                    &hex::encode(op.author)[..16],
                    op.hlc.wall_ms,
                    op.hlc.counter,
                    &hex::encode(op.prev)[..16],
                    op.causal_deps.len(),
                    op.payload.len()
                )?;
            }
            let done = ops.finish()?;
            writeln!(out, "{} ops; blake3 {}", done.ops, done.blake3)?;
            Ok(())
        }
    }
}

/// The form of an existing history file, told from its first byte.
fn form_of(path: &Path) -> anyhow::Result<&'static str> {
    Ok(history::form_of(path)?.extension())
}

fn verify_history(registry: &Registry, dir: &Path, build: &str, json: bool) -> anyhow::Result<()> {
    let spec = build.parse::<lattice_conform::build::BuildSpec>()?.resolve(registry)?;
    let Some(refusal) = lattice_conform::record::verify_history(dir, &spec, registry)? else {
        if !json {
            say!("history verified: replaying the log with {spec} reproduces the stored state hash");
        }
        return Ok(());
    };
    let mut text = String::new();
    if let Some(d) = &refusal.divergence {
        lattice_conform::report::divergence_text(&mut text, d);
    }
    if json {
        print_json(&refusal.to_json(dir, &spec))?;
        eprint!("{text}");
    } else {
        println!("replaying the log with {spec} gives {}, the store says {}", refusal.replayed, refusal.stored);
        print!("{text}");
    }
    anyhow::bail!(CheckFailed(refusal.message(dir, &spec)))
}

fn hold_open(registry: &Registry, dir: &Path) -> anyhow::Result<()> {
    let _store = registry.open(dir)?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}

fn print_identity(id: &StoreIdentity) {
    println!("store_id:       {}", id.store_id);
    println!("store_type:     {}", id.store_type);
    println!("schema_version: {}", id.schema_version);
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

// ---- Wasm modules ---------------------------------------------------------------------------

/// The Wasm cache directory used by the open flow and `--build cas:<digest>`.
const ENV_WASM_CACHE: &str = "LATTICE_WASM_CACHE";
#[derive(Subcommand)]
enum WasmCommand {
    /// Check FILE as a guest module, store it in the cache by digest and register it for the
    /// store type and schema version it declares.
    Add {
        /// The guest module (a .wasm file).
        file: PathBuf,
        /// The cache directory (default: $LATTICE_WASM_CACHE).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// List the registered modules: store type, schema version, digest.
    List {
        /// The cache directory (default: $LATTICE_WASM_CACHE).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Print the blake3 digest of each FILE (b3sum format: digest, two spaces, name).
    Digest {
        /// The files to digest.
        files: Vec<PathBuf>,
    },
}

/// Attaches the Wasm cache named by $LATTICE_WASM_CACHE (its guests run under the registry's limits).
fn with_wasm_env(registry: Registry) -> Registry {
    match std::env::var_os(ENV_WASM_CACHE) {
        Some(dir) if !dir.is_empty() => registry.with_wasm_cache(WasmCache::new(dir)),
        _ => registry,
    }
}

/// The Wasm limits: each flag, else its environment variable, else the default; every value
/// checked (a malformed or out-of-range variable is a usage error naming it).
fn wasm_limits(args: &WasmLimitArgs) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let mib = |m: u64| usize::try_from(m << 20).unwrap_or(usize::MAX);
    Ok(Limits {
        fuel_per_op: pick(args.wasm_fuel, "LATTICE_WASM_FUEL", 1, u64::MAX)?.unwrap_or(d.fuel_per_op),
        memory_bytes: pick(args.wasm_memory_mib, "LATTICE_WASM_MEMORY_MIB", 1, 4096)?.map_or(d.memory_bytes, mib),
        write_bytes_per_op: pick(args.wasm_write_mib, "LATTICE_WASM_WRITE_MIB", 1, 1 << 20)?.map_or(d.write_bytes_per_op, |m| m << 20),
        row_writes_per_op: pick(args.wasm_row_writes, "LATTICE_WASM_ROW_WRITES", 1, u64::MAX)?.unwrap_or(d.row_writes_per_op),
        watchdog_ms: pick(args.wasm_watchdog_ms, "LATTICE_WASM_WATCHDOG_MS", 1, 86_400_000)?.unwrap_or(d.watchdog_ms),
    })
}

/// A limit from its flag (already range-checked by clap), else from the variable `name`.
fn pick(flag: Option<u64>, name: &str, min: u64, max: u64) -> anyhow::Result<Option<u64>> {
    if flag.is_some() {
        return Ok(flag);
    }
    let v = match std::env::var(name) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(e) => anyhow::bail!("${name}: {e}"),
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => anyhow::bail!("${name} = {v:?}: expected a whole number from {min} to {max}"),
    }
}

fn wasm_cache(cache: Option<PathBuf>, limits: Limits) -> anyhow::Result<WasmCache> {
    let dir = cache.or_else(|| std::env::var_os(ENV_WASM_CACHE).filter(|d| !d.is_empty()).map(PathBuf::from));
    let dir = dir.ok_or_else(|| anyhow::anyhow!("no Wasm cache directory: pass --cache DIR or set ${ENV_WASM_CACHE}"))?;
    Ok(WasmCache::new(dir).with_limits(limits))
}

fn wasm_command(cmd: WasmCommand, limits: Limits) -> anyhow::Result<()> {
    match cmd {
        WasmCommand::Add { file, cache } => wasm_add(&wasm_cache(cache, limits)?, &file),
        WasmCommand::List { cache } => wasm_list(&wasm_cache(cache, limits)?),
        WasmCommand::Digest { files } => wasm_digest(&files),
    }
}

fn wasm_add(cache: &WasmCache, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).map_err(|source| WasmError::Io { path: file.to_path_buf(), source })?;
    let added = cache.add(&bytes, &file.display().to_string())?;
    let e = &added.entry;
    let replaces = added.replaced.as_ref().map(|old| format!(" (replaces {old})")).unwrap_or_default();
    say!("added {} schema {}: {}{replaces}", e.store_type, e.schema_version, e.digest);
    Ok(())
}

fn wasm_list(cache: &WasmCache) -> anyhow::Result<()> {
    for e in cache.entries()? {
        let digest: lattice_conform::wasm::Digest = e.digest.parse().map_err(anyhow::Error::msg)?;
        let missing = if cache.blob_path(&digest).exists() { "" } else { "  (blob missing)" };
        println!("{}  {}  {}{missing}", e.store_type, e.schema_version, e.digest);
    }
    Ok(())
}

fn wasm_digest(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| WasmError::Io { path: file.clone(), source })?;
        println!("{}  {}", lattice_conform::wasm::Digest::of(&bytes), file.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand, option and positional argument a user can see explains itself in `--help`
    /// (the bad input tried: any argument added without a doc comment fails this test by name).
    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{sub_path}: (the subcommand itself)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "lattice-conform", &mut missing);
        assert!(missing.is_empty(), "{} options or arguments have no help text:\n{}", missing.len(), missing.join("\n"));
    }
}
