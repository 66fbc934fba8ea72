//! The `lattice-conform` command line: arguments in, one library call, output and an exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lattice_conform::decode::decode_row;
use lattice_conform::exit;
use lattice_conform::history::History;
use lattice_conform::registry::{OpenError, Registry};
use lattice_conform::store::{self, PauseRecord, Store, StoreError, StoreIdentity};
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
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty store of TYPE in DIR (which must not exist).
    Create {
        dir: PathBuf,
        #[arg(long = "type")]
        store_type: String,
        /// Store id; a random v4 UUID if omitted.
        #[arg(long)]
        id: Option<Uuid>,
    },
    /// Apply the ops of a history file to the store in DIR, resuming after ops already logged.
    Apply {
        dir: PathBuf,
        history: PathBuf,
        /// Create DIR with the history's identity if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Print a store's identity without opening its logic or writing anything.
    Peek {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Open a store through the registry (peek → resolve → open) and print its state hash.
    Open {
        dir: PathBuf,
        /// Recompute the state hash from the tables; a mismatch is reported as corrupt (exit 1).
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
    /// Recreate state.db from log.db.
    Rebuild { dir: PathBuf },
    /// Print the decoded contents of a store's data table.
    Dump {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Test support: open DIR for writing, print "ready", hold it until standard input closes.
    #[command(hide = true)]
    HoldOpen { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    let store_err = e.downcast_ref::<StoreError>().or_else(|| match e.downcast_ref::<OpenError>() {
        Some(OpenError::Store(s)) => Some(s),
        _ => None,
    });
    match store_err {
        Some(s) if s.is_check_failure() => exit::CHECK_FAILED,
        _ => exit::INPUT_ERROR,
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let registry = Registry::with_reference_types();
    match command {
        Command::Create { dir, store_type, id } => create(&registry, &dir, &store_type, id.unwrap_or_else(Uuid::new_v4)),
        Command::Apply { dir, history, create } => apply(&registry, &dir, &history, create),
        Command::Peek { dir, json } => peek(&dir, json),
        Command::Open { dir, verify, json } => open(&registry, &dir, verify, json),
        Command::Rebuild { dir } => rebuild(&registry, &dir),
        Command::Dump { dir, json } => dump(&registry, &dir, json),
        Command::HoldOpen { dir } => hold_open(&registry, &dir),
    }
}

fn create(registry: &Registry, dir: &Path, store_type: &str, id: Uuid) -> anyhow::Result<()> {
    let logic = registry.opener(store_type)?.logic();
    let store = Store::create(dir, id, logic)?;
    println!("created {}: {}", dir.display(), store.identity());
    Ok(())
}

fn apply(registry: &Registry, dir: &Path, path: &Path, create: bool) -> anyhow::Result<()> {
    let history = History::load(path)?;
    let mut store = if create && !dir.exists() {
        let logic = registry.resolve(&history_identity(&history))?;
        Store::create(dir, history.store_id, logic)?
    } else {
        registry.open(dir)?
    };
    check_history_matches(&store, &history, path)?;
    let (skipped, summary) = store.apply_resuming(&history.ops)?;
    println!(
        "applied {} ops ({} duplicates, {} already logged); state hash {}",
        summary.applied,
        summary.duplicates,
        skipped,
        store.state_hash()
    );
    Ok(())
}

fn history_identity(h: &History) -> StoreIdentity {
    StoreIdentity { store_id: h.store_id, store_type: h.store_type.clone(), schema_version: h.schema_version }
}

fn check_history_matches(store: &Store, history: &History, path: &Path) -> anyhow::Result<()> {
    let wanted = history_identity(history);
    if *store.identity() != wanted {
        anyhow::bail!(HistoryMismatch { path: path.to_path_buf(), history: wanted, store: store.identity().clone() });
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
    paused: Option<PauseRecord>,
    verified: bool,
}

fn open(registry: &Registry, dir: &Path, verify: bool, json: bool) -> anyhow::Result<()> {
    let store = registry.open(dir)?;
    if verify {
        store.verify()?;
    }
    let out = OpenJson {
        identity: store.identity().clone(),
        state_hash: store.state_hash().to_string(),
        ops: store.log_len(),
        paused: store.paused().cloned(),
        verified: verify,
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
    if verify {
        println!("verified:       state hash recomputed from the tables and matches");
    }
    Ok(())
}

fn rebuild(registry: &Registry, dir: &Path) -> anyhow::Result<()> {
    let identity = Store::log_identity(dir)?;
    let store = Store::rebuild(dir, registry.resolve(&identity)?)?;
    println!("rebuilt state.db from {} logged ops; state hash {}", store.log_len(), store.state_hash());
    Ok(())
}

#[derive(Serialize)]
struct DumpJson {
    store_type: String,
    rows: Vec<lattice_conform::decode::DecodedRow>,
}

fn dump(registry: &Registry, dir: &Path, json: bool) -> anyhow::Result<()> {
    let store = registry.open(dir)?;
    let store_type = store.identity().store_type.clone();
    let mut rows = Vec::new();
    store.for_each_row(|k, v| rows.push(decode_row(&store_type, k, v)))?;
    if json {
        return print_json(&DumpJson { store_type, rows });
    }
    let mut out = std::io::stdout().lock();
    for row in rows {
        writeln!(out, "{row}")?;
    }
    Ok(())
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
