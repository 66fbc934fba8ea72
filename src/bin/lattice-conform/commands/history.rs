//! History files: `record` (a store's log as a history) and `history new|add|build|convert|show`.

use crate::*;

mod expect;
mod record;

use expect::{expect_note, ExpectArgs};
pub(crate) use record::{record, RecordArgs};

#[derive(Subcommand)]
pub(crate) enum HistoryCommand {
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
        #[command(flatten)]
        expect: Box<ExpectArgs>,
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

pub(crate) fn history_command(registry: &Registry, cmd: HistoryCommand) -> anyhow::Result<()> {
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
        HistoryCommand::Add { file, author: name, put, delete, append, deps, hlc, batch, restart, expect } => {
            lattice_conform::output::check_file(&file, true)?;
            if let Err(history::HistoryError::NotFound { .. }) = history::check_path(&file) {
                anyhow::bail!(
                    "{}: no such history file (`lattice-conform history new {} --type T` makes an empty one)",
                    file.display(),
                    file.display()
                );
            }
            history::check_path(&file)?;
            let form = history::form_of(&file).map_err(|source| history::HistoryError::Io { path: file.clone(), source })?;
            let mut a = author::Authoring::new(history::History::load(&file)?)?;
            let bad = |reason| author::AuthorError::Bad { path: file.clone(), reason };
            let expect = expect.flags().reads().map_err(bad)?;
            let intent = author::Intent { author: name, put, delete, append, deps, hlc, batch, restart, expect };
            let (id, op) = a.add(&intent).map_err(bad)?;
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
            expect_note(registry, a.history())?;
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
pub(crate) fn form_of(path: &Path) -> anyhow::Result<&'static str> {
    Ok(history::form_of(path)?.extension())
}
