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

/// Prints a line on stdout unless `--quiet` was given: for news of work that succeeded (summaries,
/// hints), never for failures, errors or the data a command was asked for.
macro_rules! say {
    ($($arg:tt)*) => {
        if !quiet() {
            println!($($arg)*);
        }
    };
}

/// Removes what an interrupted run left in `dir` (down to `depth` levels of subdirectories,
/// docs/FORMAT.md §18.7), saying so in one line on stderr unless `--quiet`.
fn sweep(dir: &Path, depth: usize) -> anyhow::Result<()> {
    let removed = lattice_conform::scratch::sweep(dir, depth).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if let Some(line) = lattice_conform::scratch::note(&removed) {
        if !quiet() {
            eprintln!("note: {line}");
        }
    }
    Ok(())
}

mod commands;

use commands::{certify::*, corpus::*, history::*, migrate::*, store::*, verify::*, wasm::*};

#[derive(Parser)]
#[command(
    name = "lattice-conform",
    version,
    about = "Self-describing Lattice stores and the conformance suite that guards their state hashes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print failures and errors only: no progress bars, no summaries of work that succeeded.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
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
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
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
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
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
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
    },
    /// Recreate state.db from log.db (the replaced state.db is kept as state.db.before-rebuild).
    Rebuild {
        /// The store's directory.
        dir: PathBuf,
        /// Rebuild even when state.db belongs to another store or reflects ops log.db lacks
        /// (those ops are then lost from the rebuilt store; the old state.db is still kept).
        #[arg(long)]
        force: bool,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
    },
    /// Print the decoded contents of a store's data table.
    Dump {
        /// The store's directory.
        dir: PathBuf,
        /// Print the rows as JSON (each decoded beside its hex).
        #[arg(long)]
        json: bool,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
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
        /// these globs (none: every pending golden) — a history's golden and its migration
        /// goldens alike; a pattern matching none is an error.
        #[arg(long, num_args = 0.., value_name = "ID|GLOB", conflicts_with = "reject")]
        accept: Option<Vec<String>>,
        /// Reject (delete) the pending goldens matching these globs (none: every pending golden);
        /// the accepted goldens stay as they are.
        #[arg(long, num_args = 0.., value_name = "ID|GLOB")]
        reject: Option<Vec<String>>,
        /// Only the migration goldens (by default `bless` computes and reviews the history goldens
        /// and the migration goldens together).
        #[arg(long)]
        migrations: bool,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
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
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
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

impl Command {
    /// The Wasm limit flags of a command that runs Wasm guests (`None`: it runs none).
    fn wasm_limit_args(&self) -> Option<&WasmLimitArgs> {
        match self {
            Command::Create { limits, .. }
            | Command::Apply { limits, .. }
            | Command::Open { limits, .. }
            | Command::Rebuild { limits, .. }
            | Command::Dump { limits, .. }
            | Command::Bless { limits, .. }
            | Command::Audit { limits, .. }
            | Command::Corpus(CorpusCommand::Add { limits, .. })
            | Command::Wasm(WasmCommand::Add { limits, .. } | WasmCommand::List { limits, .. }) => Some(limits),
            Command::Verify(args) => Some(&args.limits),
            Command::Migrate(args) => Some(&args.limits),
            Command::Certify(args) => Some(&args.limits),
            Command::Record(args) => Some(&args.limits),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    lattice_conform::progress::enable(lattice_conform::progress::wanted(cli.quiet));
    // Only the commands that run Wasm guests take the limit flags; the others run none.
    let limits = match cli.command.wasm_limit_args().map_or(Ok(Limits::default()), wasm_limits) {
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
    if e.downcast_ref::<lattice_conform::record::RecordError>().is_some_and(|r| r.is_check_failure())
        || e.downcast_ref::<lattice_conform::deep::DeepError>().is_some_and(|d| d.is_check_failure())
    {
        return exit::CHECK_FAILED;
    }
    let store_err = e.downcast_ref::<StoreError>().or_else(|| match e.downcast_ref::<OpenError>() {
        Some(OpenError::Store(s)) => Some(s),
        _ => None,
    });
    if e.downcast_ref::<CheckFailed>().is_some() {
        return exit::CHECK_FAILED;
    }
    // The reference build contradicts a fixture's expected reads: a check, not bad input.
    if matches!(e.downcast_ref::<lattice_conform::golden::BlessError>(), Some(lattice_conform::golden::BlessError::Contradicted(_))) {
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
        Command::Create { dir, store_type, id, .. } => create(&registry, &dir, &store_type, id.unwrap_or_else(Uuid::new_v4)),
        Command::Apply { dir, history, create, .. } => apply(&registry, &dir, &history, create),
        Command::Peek { dir, json } => peek(&dir, json),
        Command::Open { dir, verify, deep, verify_history: true, build, json, .. } => {
            verify_history(&registry, &dir, &build, json)?;
            open(&registry, &dir, verify, deep, json)
        }
        Command::Open { dir, verify, deep, json, .. } => open(&registry, &dir, verify, deep, json),
        Command::Rebuild { dir, force, .. } => rebuild(&registry, &dir, force),
        Command::Dump { dir, json, .. } => dump(&registry, &dir, json),
        Command::HoldOpen { dir } => hold_open(&registry, &dir),
        Command::History(cmd) => history_command(&registry, cmd),
        Command::Certify(args) => certify(&registry, args),
        Command::Record(args) => record(&registry, args),
        Command::Migrate(args) => migrate(&registry, args),
        Command::Audit { dir, json, .. } => audit(&registry, &dir, json),
        Command::Gen(args) => gen(args),
        Command::Corpus(CorpusCommand::Stats { corpus }) => corpus_stats(&corpus),
        Command::Corpus(CorpusCommand::Adequacy(args)) => adequacy(&registry, args),
        Command::Corpus(CorpusCommand::Add { history, corpus, golden, id, .. }) => {
            corpus_add(&registry, &history, &corpus, &golden, id.as_deref())
        }
        Command::Faults { json } => faults(json),
        Command::Bless { corpus, golden, store_type, accept, reject, migrations, .. } => {
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

/// `--quiet`: failures and errors only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--quiet` was given.
fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
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
