//! Blessing and review: pending goldens written beside the accepted ones (`bless`, `corpus add`, `record --corpus`), their review lines, `bless --accept/--reject`, what `verify` must not pass over (pending and orphan goldens), and the check that a golden directory is its corpus's.

use super::*;

/// What `bless` did to one golden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlessAction {
    /// The accepted golden already says this.
    Unchanged,
    /// No accepted golden yet: a pending one was written.
    New,
    /// The accepted golden differs: a pending one was written beside it.
    Changed,
    /// A pending golden was accepted.
    Accepted,
    /// A pending golden was rejected (deleted).
    Rejected,
}

impl BlessAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BlessAction::Unchanged => "unchanged",
            BlessAction::New => "new",
            BlessAction::Changed => "changed",
            BlessAction::Accepted => "accepted",
            BlessAction::Rejected => "rejected",
        }
    }
}

/// One golden `bless` looked at: its id, what happened, and for a new or changed golden the
/// readable review lines (a summary of a new golden, the fields a changed one changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blessed {
    pub id: String,
    pub action: BlessAction,
    pub detail: Vec<String>,
}

/// Writes `golden` as pending unless the accepted file already holds exactly it. Never touches
/// the accepted file. The detail lines review the change against the accepted golden.
pub fn bless_one(golden_dir: &Path, entry: &ManifestEntry, golden: &Golden) -> Result<Blessed, GoldenError> {
    let accepted = path_for(golden_dir, entry);
    let (action, replaced) = bless_text(&accepted, &to_text(golden))?;
    let detail = match (action, replaced) {
        (BlessAction::New, _) => {
            let reads = golden.reads.iter().flatten().map(|r| format!("reads {}", r.describe()));
            reads.chain([summary(golden)]).collect()
        }
        (BlessAction::Changed, Some(text)) => match parse(&text, &accepted) {
            Ok(old) => diff_lines(&old, golden),
            Err(e) => vec![format!("the accepted golden does not load ({e}); the pending one replaces it whole"), summary(golden)],
        },
        _ => vec![],
    };
    Ok(Blessed { id: entry.id(), action, detail })
}

/// Writes `text` as the pending version of `accepted` unless `accepted` already holds exactly it.
/// Returns what happened and, for a changed golden, the accepted text the pending one would
/// replace (read once here, for the review lines).
pub fn bless_text(accepted: &Path, text: &str) -> Result<(BlessAction, Option<String>), GoldenError> {
    let (action, replaced) = match std::fs::read_to_string(accepted) {
        Ok(existing) if existing == text => (BlessAction::Unchanged, None),
        Ok(existing) => (BlessAction::Changed, Some(existing)),
        Err(_) => (BlessAction::New, None),
    };
    let pending = pending_path(accepted);
    if action == BlessAction::Unchanged {
        let _ = std::fs::remove_file(&pending);
        return Ok((action, None));
    }
    corpus::write_atomic(&pending, text.as_bytes())?;
    Ok((action, replaced))
}

/// One line saying what a golden holds: ops, counts, stall, floating, final hashes.
pub fn summary(g: &Golden) -> String {
    format!(
        "{} ops ({} applied, {} witnessed, {} refused, {} redelivered), {}, {} floating, final state {}, observed {}",
        g.ops,
        g.applied,
        g.witnessed,
        g.refused,
        g.redelivered,
        g.stall.as_ref().map_or_else(|| "no stall".to_string(), ToString::to_string),
        g.floating.len(),
        short(&g.final_state_hash),
        short(&g.final_observed_hash)
    )
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// The review of a changed golden: one line per field that differs, old → new, and where the
/// checkpoints say so, the span of ops in which the state first differs.
pub fn diff_lines(old: &Golden, new: &Golden) -> Vec<String> {
    // What a reader sees first (small end states only), then the hashes.
    let mut out = match (&old.reads, &new.reads) {
        (None, None) => Vec::new(),
        (o, n) => crate::expect::diff_reads(o.as_deref(), n.as_deref()),
    };
    if old.history_blake3 != new.history_blake3 {
        out.push(format!("history: {} → {} (the history file changed)", short(&old.history_blake3), short(&new.history_blake3)));
    }
    let stall = |s: &Option<StallAt>| s.as_ref().map_or_else(|| "none".to_string(), ToString::to_string);
    if old.stall != new.stall {
        out.push(format!("halt: {} → {}", stall(&old.stall), stall(&new.stall)));
    }
    for (what, o, n) in [
        ("ops", old.ops, new.ops),
        ("applied", old.applied, new.applied),
        ("witnessed", old.witnessed, new.witnessed),
        ("refused", old.refused, new.refused),
        ("redelivered", old.redelivered, new.redelivered),
    ] {
        if o != n {
            out.push(format!("{what}: {o} → {n}"));
        }
    }
    if old.floating != new.floating {
        out.push(format!("floating: {:?} → {:?}", old.floating, new.floating));
    }
    let mut agreed = 0;
    let mut first = None;
    for (o, n) in old.checkpoints.iter().zip(&new.checkpoints) {
        if o == n {
            agreed = o.after_ops;
            continue;
        }
        if first.is_none() {
            first = Some((agreed, n.after_ops));
        }
        if o.state_hash != n.state_hash {
            out.push(format!("checkpoint after {} ops: state {} → {}", n.after_ops, short(&o.state_hash), short(&n.state_hash)));
        }
        if o.observed_hash != n.observed_hash {
            out.push(format!("checkpoint after {} ops: observed {} → {}", n.after_ops, short(&o.observed_hash), short(&n.observed_hash)));
        }
        if o.after_ops != n.after_ops {
            out.push(format!("checkpoint position: after {} → after {} ops", o.after_ops, n.after_ops));
        }
    }
    if old.checkpoints.len() != new.checkpoints.len() {
        out.push(format!("checkpoints: {} → {}", old.checkpoints.len(), new.checkpoints.len()));
    }
    if old.final_state_hash != new.final_state_hash {
        out.push(format!("final state hash: {} → {}", old.final_state_hash, new.final_state_hash));
    }
    if old.final_observed_hash != new.final_observed_hash {
        let same_state = if old.final_state_hash == new.final_state_hash { " (same state: what readers see changed)" } else { "" };
        out.push(format!("final observed hash: {} → {}{same_state}", old.final_observed_hash, new.final_observed_hash));
    }
    match first {
        // When the history itself changed, its ops differ: there is no divergence to place.
        _ if old.history_blake3 != new.history_blake3 => {}
        Some((from, to)) => out.push(format!("first divergence: within ops {from}..{to} (the first checkpoint that differs)")),
        None if old.final_state_hash != new.final_state_hash || old.final_observed_hash != new.final_observed_hash => {
            let from = old.checkpoints.last().map_or(0, |c| c.after_ops);
            let why = if from == 0 { "no checkpoint before the end" } else { "every checkpoint agrees" };
            out.push(format!("first divergence: within ops {from}..{} ({why})", new.ops));
        }
        None => {}
    }
    if out.is_empty() {
        out.push("the text differs but no field does (formatting)".into());
    }
    out
}

/// The review lines of a changed JSON golden of any kind (e.g. a migration golden): each
/// top-level field whose value differs, old → new.
pub fn diff_json_fields(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t);
    let (Ok(o), Ok(n)) = (parse(old), parse(new)) else {
        return vec!["the accepted golden does not parse as a JSON object; the pending one replaces it whole".into()];
    };
    let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "(absent)".to_string(), |v| v.to_string());
    let mut out: Vec<String> =
        keys.into_iter().filter(|k| o.get(*k) != n.get(*k)).map(|k| format!("{k}: {} → {}", show(o.get(k)), show(n.get(k)))).collect();
    if out.is_empty() {
        out.push("the text differs but no field does (formatting)".into());
    }
    out
}

/// Accepts the pending golden of `entry`, if there is one.
pub fn accept_one(golden_dir: &Path, entry: &ManifestEntry) -> Result<Option<BlessAction>, GoldenError> {
    accept_path(&path_for(golden_dir, entry))
}

/// Replaces `accepted` with its pending version, if there is one.
pub fn accept_path(accepted: &Path) -> Result<Option<BlessAction>, GoldenError> {
    let pending = pending_path(accepted);
    if !pending.exists() {
        return Ok(None);
    }
    std::fs::rename(&pending, accepted).map_err(|source| GoldenError::Io { path: accepted.to_path_buf(), source })?;
    Ok(Some(BlessAction::Accepted))
}

/// Blesses the golden of every history of the corpus, optionally of one store type: computes it
/// with the registered native logic and writes it as pending when it is new or changed. Returns
/// what happened to each history, in manifest order, with the review lines.
pub fn bless_all(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    bless_selected(corpus_dir, golden_dir, &select(&manifest, store_type), &[], registry, true)
}

/// [`bless_all`] and the migration goldens of the same histories (`bless`), from one replay of each
/// history: a migration golden migrates the state the history's replay ends in, so the replay
/// that computes the history's golden gives it. The result lists the history goldens in manifest
/// order, then the migration goldens in [`bless_migrations`]' order (by migration, then manifest);
/// every golden is computed before any is written, and a contradicted expected read refuses all.
pub fn bless_all_with_migrations(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    bless_selected(corpus_dir, golden_dir, &select(&manifest, store_type), &crate::migrate::migrations(), registry, true)
}

/// The manifest's entries of `store_type` (all of them without one), in manifest order.
fn select<'a>(manifest: &'a corpus::Manifest, store_type: Option<&str>) -> Vec<&'a ManifestEntry> {
    manifest.files.iter().filter(|e| store_type.is_none_or(|t| t == e.store_type)).collect()
}

/// Blesses the goldens of `selected` and, from the same replay, their migration goldens under
/// `migrations` (none: history goldens only). Every golden is computed before any is written: a
/// history whose expected reads the reference build contradicts refuses the whole bless. History
/// goldens come first, in `selected`'s order, then migration goldens by migration, then history.
fn bless_selected(
    corpus_dir: &Path,
    golden_dir: &Path,
    selected: &[&ManifestEntry],
    migrations: &[std::sync::Arc<dyn crate::migrate::Migration>],
    registry: &crate::registry::Registry,
    progress: bool,
) -> Result<Vec<Blessed>, BlessError> {
    let bar = match progress {
        true => crate::progress::bar("bless", selected.len() as u64, "histories"),
        false => indicatif::ProgressBar::hidden(),
    };
    let (mut computed, mut contradicted, mut migrated) = (Vec::with_capacity(selected.len()), Vec::new(), Vec::new());
    for (n, &entry) in selected.iter().enumerate() {
        let (c, goldens) = compute_with_migrations(corpus_dir, entry, migrations, registry)?;
        migrated.extend(goldens.into_iter().map(|(k, m, g)| (k, n, m, entry, g)));
        if !c.unmet.is_empty() {
            contradicted.push((entry.id(), c.unmet));
        } else {
            computed.push((entry, c.golden));
        }
        bar.inc(1);
    }
    if !contradicted.is_empty() {
        return Err(BlessError::Contradicted(contradicted));
    }
    let mut out = Vec::with_capacity(computed.len() + migrated.len());
    for (entry, golden) in computed {
        out.push(bless_one(golden_dir, entry, &golden)?);
    }
    migrated.sort_by_key(|(k, n, ..)| (*k, *n));
    for (_, _, m, entry, g) in migrated {
        out.push(super::migration::write_migration_golden(golden_dir, m.as_ref(), entry, &g)?);
    }
    Ok(out)
}

/// A migration golden computed by [`compute_with_migrations`]: the migration's index in
/// `migrations()`, the migration, the golden.
type MigrationComputed = (usize, std::sync::Arc<dyn crate::migrate::Migration>, super::MigrationGolden);

/// One replay of a listed history with the reference build: its golden (and the expected reads it
/// does not meet), and the migration golden of each of `migrations` that starts from its type,
/// computed from the state the replay ends in.
fn compute_with_migrations(
    corpus_dir: &Path,
    entry: &ManifestEntry,
    migrations: &[std::sync::Arc<dyn crate::migrate::Migration>],
    registry: &crate::registry::Registry,
) -> Result<(Computed, Vec<MigrationComputed>), BlessError> {
    let mut stream = corpus::open_checked(corpus_dir, entry)?;
    let header = stream.header().clone();
    let logic = registry.resolve(&header.identity())?;
    let mut store = MemStore::new(header.identity(), logic.clone());
    let c = compute_expecting(&header, stream.ops(), &mut store, entry, true).expect("an in-memory replica never fails");
    stream.finish()?;
    let mut out = Vec::new();
    for (k, m) in migrations.iter().enumerate().filter(|(_, m)| m.source_type() == entry.store_type) {
        let migration_error = |e: crate::migrate::MigrateError| BlessError::from(super::MigrationGoldenError::from(e));
        let target = registry.opener(m.target_type()).map_err(|e| migration_error(e.into()))?.logic();
        let build = super::GoldenBuild { source: logic.clone(), target, faults: HostFaults::default() };
        out.push((k, m.clone(), super::migration::migration_golden_of(m.as_ref(), entry, &store, &build).map_err(migration_error)?));
    }
    Ok((c, out))
}

/// What `bless --accept` / `bless --reject` does to a pending golden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// Rename the pending golden over the accepted one.
    Accept,
    /// Delete the pending golden (the accepted one, if any, stays).
    Reject,
}

/// A golden that may have a pending version: its id, the other names a pattern may match it by
/// (e.g. the history's name), and the accepted file's path.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub aliases: Vec<String>,
    pub accepted: PathBuf,
}

/// Accepts or rejects the pending goldens among `candidates` that match any of `patterns`
/// (globs over the id or an alias; none = every pending golden). A pattern that matches no
/// pending golden is refused before anything is done. Returns what was done, in candidate order.
pub fn review_pending(candidates: &[Candidate], review: Review, patterns: &[String]) -> Result<Vec<(String, BlessAction)>, GoldenError> {
    let pending: Vec<&Candidate> = candidates.iter().filter(|c| pending_path(&c.accepted).exists()).collect();
    let mut globs = Vec::with_capacity(patterns.len());
    for p in patterns {
        let g = globset::Glob::new(p).map_err(|e| GoldenError::BadPattern { pattern: p.clone(), reason: e.kind().to_string() })?;
        globs.push((p, g.compile_matcher()));
    }
    let matches = |c: &Candidate, m: &globset::GlobMatcher| m.is_match(&c.id) || c.aliases.iter().any(|a| m.is_match(a));
    for (p, m) in &globs {
        if !pending.iter().any(|c| matches(c, m)) {
            let ids: Vec<&str> = pending.iter().map(|c| c.id.as_str()).collect();
            return Err(GoldenError::NoPendingMatch {
                pattern: (*p).clone(),
                pending: if ids.is_empty() { "none".into() } else { ids.join(", ") },
            });
        }
    }
    let mut out = Vec::new();
    for c in pending.into_iter().filter(|c| globs.is_empty() || globs.iter().any(|(_, m)| matches(c, m))) {
        let action = match review {
            Review::Accept => accept_path(&c.accepted)?.unwrap_or(BlessAction::Unchanged),
            Review::Reject => {
                let pending = pending_path(&c.accepted);
                std::fs::remove_file(&pending).map_err(|source| GoldenError::Io { path: pending.clone(), source })?;
                BlessAction::Rejected
            }
        };
        out.push((c.id.clone(), action));
    }
    Ok(out)
}

/// The history goldens of a corpus (optionally of one type) as review candidates: id
/// `<store_type>/<name>`, alias `<name>`.
pub fn candidates(corpus_dir: &Path, golden_dir: &Path, store_type: Option<&str>) -> Result<Vec<Candidate>, CorpusError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    Ok(manifest
        .files
        .iter()
        .filter(|e| store_type.is_none_or(|t| t == e.store_type))
        .map(|e| Candidate { id: e.id(), aliases: vec![e.name().to_string()], accepted: path_for(golden_dir, e) })
        .collect())
}

/// `bless --accept` / `--reject` of history goldens.
pub fn review(
    corpus_dir: &Path,
    golden_dir: &Path,
    store_type: Option<&str>,
    review: Review,
    patterns: &[String],
) -> Result<Vec<(String, BlessAction)>, BlessError> {
    Ok(review_pending(&candidates(corpus_dir, golden_dir, store_type)?, review, patterns)?)
}

/// What lies in a golden directory that `verify` must not pass over: goldens waiting for
/// review and goldens no history (or migration case) of the corpus has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewState {
    /// `*.pending` files, sorted.
    pub pending: Vec<PathBuf>,
    /// Accepted goldens (`*.json`) that belong to no listed history, sorted.
    pub orphans: Vec<PathBuf>,
}

impl ReviewState {
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && self.orphans.is_empty()
    }
}

/// Scans `golden_dir` for pending goldens and orphans (accepted goldens that neither a history of
/// the corpus at `corpus_dir` nor one of its migration cases has). Hidden files are ignored.
pub fn review_state(corpus_dir: &Path, golden_dir: &Path) -> Result<ReviewState, BlessError> {
    let manifest = corpus::Manifest::load(corpus_dir, false)?;
    let mut expected: std::collections::BTreeSet<PathBuf> = manifest.files.iter().map(|e| path_for(golden_dir, e)).collect();
    expected.extend(migration::migration_golden_paths(corpus_dir, golden_dir)?);
    let mut state = ReviewState::default();
    let mut dirs = vec![golden_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(GoldenError::Io { path: dir, source }.into()),
        };
        for e in entries {
            let e = e.map_err(|source| GoldenError::Io { path: dir.clone(), source })?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if e.file_type().map_err(|source| GoldenError::Io { path: path.clone(), source })?.is_dir() {
                dirs.push(path);
            } else if name.ends_with(PENDING_SUFFIX) {
                state.pending.push(path);
            } else if name.ends_with(".json") && !expected.contains(&path) {
                state.orphans.push(path);
            }
        }
    }
    state.pending.sort();
    state.orphans.sort();
    Ok(state)
}

/// How deep below a golden directory [`check_belongs`] looks for golden files (goldens lie at
/// `<type>/<name>.json` and `migrations/<pair>/<name>.json`).
const BELONGS_DEPTH: usize = 3;

/// Refuses a golden directory that is not the corpus's (docs/FORMAT.md §12.1): one that holds a
/// `MANIFEST.json` (a corpus directory), or that holds golden files of which none — accepted or
/// pending — is at the place of a history or a migration case of the corpus. A missing or empty
/// golden directory belongs to any corpus (goldens are about to be blessed into it). A corpus
/// whose manifest does not load is not judged here: the command reports that in its own words.
/// Cheap: one `stat` per listed history until a golden is found; the directory is walked only
/// when none is.
pub fn check_belongs(corpus_dir: &Path, golden_dir: &Path) -> Result<(), GoldenError> {
    let refuse = |why: String| GoldenError::NotThisCorpus { golden: golden_dir.to_path_buf(), corpus: corpus_dir.to_path_buf(), why };
    if golden_dir.exists() && !golden_dir.is_dir() {
        return Err(refuse("it is a file, not a directory".into()));
    }
    if golden_dir.join(corpus::MANIFEST).is_file() {
        return Err(refuse(format!("it holds a {} and is a corpus directory itself", corpus::MANIFEST)));
    }
    let Ok(manifest) = corpus::Manifest::load(corpus_dir, false) else { return Ok(()) };
    let mut expected: Vec<PathBuf> = manifest.files.iter().map(|e| path_for(golden_dir, e)).collect();
    expected.extend(migration::migration_golden_paths(corpus_dir, golden_dir).unwrap_or_default());
    let pending = |p: &Path| {
        let mut s = p.as_os_str().to_os_string();
        s.push(PENDING_SUFFIX);
        PathBuf::from(s)
    };
    if expected.iter().any(|p| p.is_file() || pending(p).is_file()) {
        return Ok(());
    }
    let mut found = Vec::new();
    golden_files(golden_dir, BELONGS_DEPTH, &mut found);
    found.sort();
    match found.first() {
        None => Ok(()),
        Some(first) => Err(refuse(format!(
            "none of its {} golden file(s) (e.g. {}) is the golden of one of the {} histories listed in {} or of their migration cases",
            found.len(),
            first.display(),
            manifest.files.len(),
            corpus_dir.join(corpus::MANIFEST).display()
        ))),
    }
}

/// The accepted golden files (`*.json`; hidden ones skipped) in `dir` and down to `depth` levels
/// below it. Unreadable directories are passed over. Pending goldens do not count: a pending
/// golden of a history not (yet) listed is what a `corpus add` or `record --corpus` killed before
/// listing leaves, and its rerun must be let in to complete it.
fn golden_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match e.file_type() {
            Ok(k) if k.is_dir() && depth > 0 => golden_files(&e.path(), depth - 1, out),
            Ok(k) if k.is_file() && name.ends_with(".json") => out.push(e.path()),
            _ => {}
        }
    }
}

/// Writes the pending goldens of one newly listed history: its golden and, when a migration
/// starts from its type, its migration golden (`corpus add`, `record --corpus`).
pub fn bless_new_entry(
    corpus_dir: &Path,
    golden_dir: &Path,
    entry: &ManifestEntry,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    // One replay gives the golden and the migration goldens (as `bless` does).
    bless_selected(corpus_dir, golden_dir, &[entry], &crate::migrate::migrations(), registry, false)
}

/// Failures of `bless`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlessError {
    #[error(transparent)]
    Golden(#[from] GoldenError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Migration(#[from] Box<migration::MigrationGoldenError>),
    /// (The registry's error is part of the message, not a source, so it is said once.)
    #[error("{path}: {reason}")]
    Header { path: PathBuf, reason: crate::registry::RegistryError },
    /// Histories whose expected reads (docs/FORMAT.md §10.10) the reference build does not meet.
    #[error("{}", contradicted_text(.0))]
    Contradicted(Vec<(String, Vec<Unmet>)>),
}

fn contradicted_text(c: &[(String, Vec<Unmet>)]) -> String {
    let mut lines = vec![format!(
        "refused: the reference build contradicts the expected reads of {} histor{}, so its golden{} would record a mistake; nothing written (fix the build, or the expectation if it is wrong)",
        c.len(),
        if c.len() == 1 { "y" } else { "ies" },
        if c.len() == 1 { "" } else { "s" }
    )];
    for (id, unmet) in c {
        for u in unmet {
            lines.push(format!("  {id}: {u}"));
        }
    }
    lines.join("\n")
}

impl From<migration::MigrationGoldenError> for BlessError {
    fn from(e: migration::MigrationGoldenError) -> BlessError {
        BlessError::Migration(Box::new(e))
    }
}

/// `corpus add`: copies the history at `src` into the corpus as `name` (default: its file stem),
/// lists it, and writes its pending goldens (the history's and, when a migration starts from its
/// type, the migration's). Refused before anything is written: a history that does not read to
/// its end, a type no build here opens, a name already listed.
pub fn add_to_corpus(
    corpus_dir: &Path,
    golden_dir: &Path,
    src: &Path,
    name: Option<&str>,
    registry: &crate::registry::Registry,
) -> Result<(ManifestEntry, Vec<Blessed>), BlessError> {
    let prepared = corpus::prepare_add(corpus_dir, src, name)?;
    registry.resolve(&prepared.header.identity()).map_err(|reason| BlessError::Header { path: src.to_path_buf(), reason })?;
    let entry = prepared.write(corpus_dir)?;
    let blessed = bless_and_list(corpus_dir, golden_dir, &entry, registry)?;
    Ok((entry, blessed))
}

/// The all-or-nothing end of `corpus add` and `record --corpus` (docs/FORMAT.md §11.9): with the
/// history already copied to `entry.path` (unlisted), writes its pending goldens and then lists it
/// — the manifest is written last, so a listed history always has its goldens. On an error the
/// history and any pending golden written for it are removed again, so nothing is left. (A run
/// killed before the listing leaves the unlisted copy and pending goldens; the same command run
/// again writes them over and lists the history.)
pub fn bless_and_list(
    corpus_dir: &Path,
    golden_dir: &Path,
    entry: &ManifestEntry,
    registry: &crate::registry::Registry,
) -> Result<Vec<Blessed>, BlessError> {
    let listed_before = corpus::Manifest::load(corpus_dir, true)?.files.iter().any(|e| e.path == entry.path);
    let done = bless_new_entry(corpus_dir, golden_dir, entry, registry).and_then(|b| Ok(corpus::list_entry(corpus_dir, entry).map(|_| b)?));
    if done.is_err() && !listed_before {
        let copy = corpus_dir.join(&entry.path);
        let _ = std::fs::remove_file(&copy);
        // The type directory, when this history was its first (removing a non-empty one fails).
        if let Some(dir) = copy.parent().filter(|d| *d != corpus_dir) {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_file(pending_path(&path_for(golden_dir, entry)));
        for m in crate::migrate::migrations().into_iter().filter(|m| m.source_type() == entry.store_type) {
            if let Ok(p) = migration::migration_golden_path(golden_dir, m.as_ref(), entry) {
                let _ = std::fs::remove_file(pending_path(&p));
            }
        }
    }
    done
}
