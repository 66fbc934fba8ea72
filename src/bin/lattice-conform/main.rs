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

mod cli;
mod commands;

use cli::{Cli, Command};
use commands::{certify::*, corpus::*, history::*, migrate::*, store::*, verify::*, wasm::*};

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
