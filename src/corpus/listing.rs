//! Writing a history into a corpus and listing it: the portable path of a history, manifest
//! entries, and the Lattice tests written as `lattice-*` histories.

use std::path::Path;

use super::{lattice, type_dir, CorpusError, Manifest, ManifestEntry};
use crate::history::History;

/// Writes the history of every scenario of `dir/lattice-tests.json` into the corpus at `dir`
/// (as `lattice-<name>`, listed in the manifest) and returns how many were written.
pub fn write_lattice_tests(dir: &Path) -> Result<usize, CorpusError> {
    let file = lattice::TestFile::load(&dir.join(lattice::FILE))?;
    let histories = lattice::histories(&file);
    for (name, history) in &histories {
        add_history(dir, name, history)?;
    }
    Ok(histories.len())
}

/// Writes `history` into the corpus at `dir` as `<type dir>/<name>.json` and lists it in the
/// manifest (replacing an entry of the same path).
pub fn add_history(dir: &Path, name: &str, history: &History) -> Result<ManifestEntry, CorpusError> {
    let rel = history_path(dir, &history.store_type, name, crate::history::Form::Json)?;
    let written = crate::history::write(&dir.join(&rel), crate::history::Form::Json, history)?;
    list(dir, &rel, &history.store_type, &written)
}

/// The path, relative to the corpus directory `dir`, of the history `name` of `store_type` in
/// `form`: `<type dir>/<name>.json` or `.lch`. Refused when the manifest lists the name in the
/// other form (a history's id is its type and name, whatever its form).
pub fn history_path(dir: &Path, store_type: &str, name: &str, form: crate::history::Form) -> Result<String, CorpusError> {
    let portable =
        !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !portable {
        return Err(CorpusError::BadHistoryName(name.to_string()));
    }
    let rel = format!("{}/{name}.{}", type_dir(store_type)?, form.extension());
    let manifest = Manifest::load(dir, true)?;
    if let Some(other) = manifest.files.iter().find(|e| e.store_type == store_type && e.name() == name && e.path != rel) {
        return Err(CorpusError::NameTaken { name: format!("{store_type}/{name}"), path: other.path.clone() });
    }
    Ok(rel)
}

/// Lists the history just written at `rel` in the manifest of the corpus at `dir` (replacing an
/// entry of the same path).
pub fn list(dir: &Path, rel: &str, store_type: &str, written: &crate::history::Written) -> Result<ManifestEntry, CorpusError> {
    list_entry(dir, &entry_of(rel, store_type, written))
}

/// The manifest entry of a history written at `rel`.
pub fn entry_of(rel: &str, store_type: &str, written: &crate::history::Written) -> ManifestEntry {
    ManifestEntry { path: rel.to_string(), store_type: store_type.to_string(), ops: written.ops, blake3: written.blake3.clone() }
}

/// Adds (or replaces) `entry` in the manifest of the corpus at `dir`.
pub fn list_entry(dir: &Path, entry: &ManifestEntry) -> Result<ManifestEntry, CorpusError> {
    let mut manifest = Manifest::load(dir, true)?;
    manifest.upsert(entry.clone());
    manifest.save(dir)?;
    Ok(entry.clone())
}
