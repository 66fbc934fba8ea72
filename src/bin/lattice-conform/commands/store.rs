//! Store directories: `create`, `apply`, `peek`, `open` (with `--verify-history`), `rebuild`, `dump`, `audit`, and `serve-build` (the reference adapter of outside builds).

use crate::*;

pub(crate) fn serve_build(registry: &Registry, build: &str, misbehave: Option<&str>) -> anyhow::Result<()> {
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

pub(crate) fn create(registry: &Registry, dir: &Path, store_type: &str, id: Uuid) -> anyhow::Result<()> {
    let logic = registry.opener(store_type)?.logic();
    let store = Store::create(dir, id, logic)?;
    say!("created {}: {}", dir.display(), store.identity());
    Ok(())
}

pub(crate) fn apply(registry: &Registry, dir: &Path, path: &Path, create: bool) -> anyhow::Result<()> {
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

pub(crate) fn check_history_matches(store: &StoreIdentity, history: &lattice_conform::history::Header, path: &Path) -> anyhow::Result<()> {
    let wanted = history.identity();
    if *store != wanted {
        anyhow::bail!(HistoryMismatch { path: path.to_path_buf(), history: wanted, store: store.clone() });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: the history is for the store ({history}), but the target is ({store})")]
pub(crate) struct HistoryMismatch {
    path: PathBuf,
    history: StoreIdentity,
    store: StoreIdentity,
}

#[derive(Serialize)]
pub(crate) struct PeekJson {
    #[serde(flatten)]
    identity: StoreIdentity,
    source: store::PeekSource,
}

pub(crate) fn peek(dir: &Path, json: bool) -> anyhow::Result<()> {
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

/// `open --verify` or `--deep` on a store a crash (or a full disk) left needing a repair, which a
/// check does not make.
#[derive(Debug, thiserror::Error)]
#[error("{0} (`open --verify` and `--deep` only read, so they do not repair: `open` without them does, and needs free space for it)")]
pub(crate) struct NeedsRepair(StoreError);

#[derive(Serialize)]
pub(crate) struct OpenJson {
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

pub(crate) fn open(registry: &Registry, dir: &Path, verify: bool, deep: bool, json: bool) -> anyhow::Result<()> {
    // A check only reads (docs/FORMAT.md §9.8): it never repairs, so it needs no free space and
    // leaves every byte as it was; a plain `open` repairs what a crash left.
    let store = if verify || deep {
        match registry.open_read_only(dir) {
            Ok(ro) => lattice_conform::registry::Opened::ReadOnly(Box::new(ro)),
            Err(OpenError::Store(e)) if e.needs_repair() => anyhow::bail!(NeedsRepair(e)),
            Err(e) => return Err(e.into()),
        }
    } else {
        registry.open_for_reading(dir)?
    };
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
        println!(
            "verified:       state hash recomputed from the tables and matches; log.db gives back the {} entries state.db reflects",
            out.ops
        );
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

pub(crate) fn rebuild(registry: &Registry, dir: &Path, force: bool) -> anyhow::Result<()> {
    let identity = Store::log_identity(dir)?;
    let (store, note) = Store::rebuild(dir, registry.resolve(&identity)?, force)?;
    if let Some(stale) = &note.removed_stale {
        if !quiet() {
            eprintln!("note: removed {}, left by an interrupted rebuild", stale.display());
        }
    }
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
pub(crate) struct DumpJson {
    store_type: String,
    rows: Vec<lattice_conform::decode::DecodedRow>,
}

pub(crate) fn dump(registry: &Registry, dir: &Path, json: bool) -> anyhow::Result<()> {
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

pub(crate) fn audit(registry: &Registry, dir: &Path, json: bool) -> anyhow::Result<()> {
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

pub(crate) fn verify_history(registry: &Registry, dir: &Path, build: &str, json: bool) -> anyhow::Result<()> {
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

pub(crate) fn hold_open(registry: &Registry, dir: &Path) -> anyhow::Result<()> {
    let _store = registry.open(dir)?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}
