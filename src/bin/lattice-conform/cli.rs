//! The argument tree: `Cli` and its `Command`s (each group's arguments live beside its command,
//! in `commands/`), and which commands take the Wasm limit flags.

use crate::*;

#[derive(Parser)]
#[command(
    name = "lattice-conform",
    version,
    about = "Self-describing Lattice stores and the conformance suite that guards their state hashes"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Print failures and errors only: no progress bars, no summaries of work that succeeded.
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    pub(crate) fn wasm_limit_args(&self) -> Option<&WasmLimitArgs> {
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
