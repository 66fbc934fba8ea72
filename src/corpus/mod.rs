//! The corpus: op histories on disk, one file per history under `corpus/<type dir>/`, and a
//! manifest listing every file with its blake3 digest (normative: docs/FORMAT.md, "Corpus").
//!
//! Loading a history through the corpus checks its digest against the manifest first, so a
//! fixture edited by hand (or by a bug) is named, never silently replayed.

pub mod gen;
pub mod lattice;
pub mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::history::{History, HistoryError};

/// The manifest's file name inside a corpus directory.
pub const MANIFEST: &str = "MANIFEST.json";
const MANIFEST_TAG: &str = "lattice-conform/corpus-manifest";
const MANIFEST_VERSION: u32 = 1;

/// Errors reading or writing a corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    #[error("{path}: cannot read or write")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("{path}: blake3 is {actual} but the manifest says {expected}; the file was changed after it was listed")]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
    #[error("{path}: the manifest lists it as `{listed}` but the file says `{found}`")]
    TypeMismatch { path: PathBuf, listed: String, found: String },
    #[error("store type `{0}` cannot name a corpus directory: use letters, digits, `.`, `-`, `_` and `:`, without `__` and without `_` next to `:`")]
    BadTypeName(String),
    #[error("history name {0:?}: use letters, digits, `.`, `-` and `_`, not starting with `.` (it names a file inside the corpus)")]
    BadHistoryName(String),
    #[error("no {scenario} for `{store_type}`; known scenarios: {known}")]
    NoScenario { store_type: String, scenario: String, known: String },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    LatticeTests(#[from] lattice::LatticeTestsError),
}

/// The manifest: every history file of a corpus, by path relative to the corpus directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub files: Vec<ManifestEntry>,
}

/// One listed history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Path relative to the corpus directory, `/`-separated: `<type dir>/<name>.json`.
    pub path: String,
    pub store_type: String,
    pub ops: u64,
    pub blake3: String,
}

impl ManifestEntry {
    /// The history's name: its file stem, unique within its type.
    pub fn name(&self) -> &str {
        let file = self.path.rsplit('/').next().unwrap_or(&self.path);
        file.strip_suffix(".json").unwrap_or(file)
    }

    /// `<store_type>/<name>`: the id a history goes by in reports and shards.
    pub fn id(&self) -> String {
        format!("{}/{}", self.store_type, self.name())
    }
}

/// The directory name for a store type: `:` becomes `__` (so `core:kvstore` → `core__kvstore`).
/// Names that would make the mapping ambiguous (`__`, or `_` beside `:`) are refused, so a
/// directory name maps back to exactly one type by replacing `__` with `:`.
pub fn type_dir(store_type: &str) -> Result<String, CorpusError> {
    let ok = !store_type.is_empty()
        && !store_type.contains("__")
        && !store_type.contains("_:")
        && !store_type.contains(":_")
        && store_type.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !ok {
        return Err(CorpusError::BadTypeName(store_type.to_string()));
    }
    Ok(store_type.replace(':', "__"))
}

impl Manifest {
    /// Reads `dir/MANIFEST.json`; a missing manifest is an empty one only if `allow_missing`.
    pub fn load(dir: &Path, allow_missing: bool) -> Result<Manifest, CorpusError> {
        let path = dir.join(MANIFEST);
        if allow_missing && !path.exists() {
            return Ok(Manifest { format: MANIFEST_TAG.into(), format_version: MANIFEST_VERSION, files: vec![] });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
        crate::versioned::check(&text, &path, MANIFEST_TAG, MANIFEST_VERSION)?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| crate::versioned::json_error(&path, &e))?;
        Ok(m)
    }

    /// Writes the manifest, entries sorted by path, atomically (temp file + rename).
    pub fn save(&mut self, dir: &Path) -> Result<(), CorpusError> {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut text = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        text.push('\n');
        write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Adds or replaces the entry for `entry.path`.
    pub fn upsert(&mut self, entry: ManifestEntry) {
        self.files.retain(|e| e.path != entry.path);
        self.files.push(entry);
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// crash never leaves a half-written file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CorpusError> {
    let io = |source| CorpusError::Io { path: path.to_path_buf(), source };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// blake3 of a file's bytes, lowercase hex.
pub fn digest_file(path: &Path) -> Result<String, CorpusError> {
    let bytes = std::fs::read(path).map_err(|source| CorpusError::Io { path: path.to_path_buf(), source })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Loads a listed history after checking its digest and type against the manifest.
pub fn load_checked(dir: &Path, entry: &ManifestEntry) -> Result<History, CorpusError> {
    let path = dir.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
    let actual = blake3::hash(&bytes).to_hex().to_string();
    if actual != entry.blake3 {
        return Err(CorpusError::DigestMismatch { path, expected: entry.blake3.clone(), actual });
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| CorpusError::Io { path: path.clone(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, e) })?;
    let history = History::parse(&text, &path)?;
    if history.store_type != entry.store_type {
        return Err(CorpusError::TypeMismatch { path, listed: entry.store_type.clone(), found: history.store_type });
    }
    Ok(history)
}

/// Coverage: (store type, scenario) → (histories, ops).
pub type Coverage = BTreeMap<(String, String), (u64, u64)>;

/// Renders a coverage table as aligned text.
pub fn coverage_table(cov: &Coverage) -> String {
    let mut out = format!("{:<16} {:<22} {:>9} {:>9}\n", "store_type", "scenario", "histories", "ops");
    for ((ty, scenario), (h, ops)) in cov {
        out.push_str(&format!("{ty:<16} {scenario:<22} {h:>9} {ops:>9}\n"));
    }
    let (h, ops) = cov.values().fold((0, 0), |(a, b), (h, o)| (a + h, b + o));
    out.push_str(&format!("{:<16} {:<22} {h:>9} {ops:>9}\n", "total", ""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_dirs_are_portable_and_reversible() {
        assert_eq!(type_dir("core:kvstore").unwrap(), "core__kvstore");
        assert_eq!(type_dir("my.app-v2").unwrap(), "my.app-v2");
        for bad in ["", "a__b", "a/b", "ä", "a b", "a_:b", "a:_b"] {
            assert!(type_dir(bad).is_err(), "{bad:?}");
        }
    }
}

/// What `gen` should write.
#[derive(Clone, Debug)]
pub struct GenRequest {
    pub store_type: String,
    pub seed: u64,
    pub histories: u32,
    pub ops: u32,
    /// One scenario, or every scenario of the type in turn.
    pub scenario: Option<String>,
}

/// Generates histories into `out` (creating `<type dir>/` and updating the manifest) and returns
/// the coverage of what was written.
pub fn generate_into(out: &Path, req: &GenRequest) -> Result<Coverage, CorpusError> {
    let scenarios = gen::scenarios_for(&req.store_type);
    let chosen: Vec<&gen::Scenario> = match &req.scenario {
        Some(name) => scenarios.iter().filter(|s| s.name == name).collect(),
        None => scenarios.iter().collect(),
    };
    if chosen.is_empty() {
        let known: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        return Err(CorpusError::NoScenario {
            store_type: req.store_type.clone(),
            scenario: req.scenario.as_ref().map_or("scenario at all".to_string(), |name| format!("scenario `{name}`")),
            known: if known.is_empty() { "(none)".to_string() } else { known.join(", ") },
        });
    }
    let dir = type_dir(&req.store_type)?;
    let mut manifest = Manifest::load(out, true)?;
    let mut cov = Coverage::new();
    for i in 0..req.histories {
        let scenario = chosen[i as usize % chosen.len()];
        let history = gen::generate(scenario, req.seed, i, req.ops);
        let rel = format!("{dir}/{}.json", gen::history_name(scenario.name, req.seed, i));
        let text = history.to_json();
        write_atomic(&out.join(&rel), text.as_bytes())?;
        let ops = history.ops.len() as u64;
        let e = cov.entry((req.store_type.clone(), scenario.name.to_string())).or_default();
        *e = (e.0 + 1, e.1 + ops);
        manifest.upsert(ManifestEntry {
            path: rel,
            store_type: req.store_type.clone(),
            ops,
            blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
        });
    }
    manifest.save(out)?;
    Ok(cov)
}

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
    let portable =
        !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !portable {
        return Err(CorpusError::BadHistoryName(name.to_string()));
    }
    let rel = format!("{}/{name}.json", type_dir(&history.store_type)?);
    let text = history.to_json();
    write_atomic(&dir.join(&rel), text.as_bytes())?;
    let entry = ManifestEntry {
        path: rel,
        store_type: history.store_type.clone(),
        ops: history.ops.len() as u64,
        blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
    };
    let mut manifest = Manifest::load(dir, true)?;
    manifest.upsert(entry.clone());
    manifest.save(dir)?;
    Ok(entry)
}

/// One committed history that no longer regenerates byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub path: PathBuf,
    pub reason: String,
}

/// Regenerates every generated history of the corpus from its provenance and compares bytes.
/// Returns the drifted files and the number checked (histories without provenance are skipped).
pub fn check_generated(dir: &Path) -> Result<(Vec<Drift>, usize), CorpusError> {
    let manifest = Manifest::load(dir, false)?;
    let mut drift = Vec::new();
    let mut checked = 0;
    let mut lattice_tests: Option<lattice::TestFile> = None;
    for entry in &manifest.files {
        let path = dir.join(&entry.path);
        let text = std::fs::read_to_string(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
        // Read only what regeneration needs, so an edit that breaks the ops is reported as drift.
        let probe: ProvenanceProbe = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                drift.push(Drift { path, reason: format!("no longer parses ({e})") });
                continue;
            }
        };
        let Some(p) = &probe.provenance else { continue };
        checked += 1;
        if p.generator == lattice::GENERATOR {
            if lattice_tests.is_none() {
                lattice_tests = Some(lattice::TestFile::load(&dir.join(lattice::FILE))?);
            }
            let file = lattice_tests.as_ref().expect("loaded just above");
            if let Some(reason) = regenerate_lattice_mismatch(file, p, &text) {
                drift.push(Drift { path, reason });
            }
            continue;
        }
        if let Some(reason) = regenerate_mismatch(&probe.store_type, p, &text) {
            drift.push(Drift { path, reason });
        }
    }
    Ok((drift, checked))
}

#[derive(Deserialize)]
struct ProvenanceProbe {
    store_type: String,
    provenance: Option<crate::history::Provenance>,
}

fn regenerate_mismatch(store_type: &str, p: &crate::history::Provenance, text: &str) -> Option<String> {
    if p.generator != gen::GENERATOR {
        return Some(format!("made by generator `{}`, this build has `{}`", p.generator, gen::GENERATOR));
    }
    let Some(scenario) = gen::scenarios_for(store_type).into_iter().find(|s| s.name == p.scenario) else {
        return Some(format!("unknown scenario `{}` for `{store_type}`", p.scenario));
    };
    let again = gen::generate(&scenario, p.seed, p.index, p.ops).to_json();
    if again == text {
        return None;
    }
    let line = again.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or_else(|| again.lines().count().min(text.lines().count()));
    Some(format!(
        "differs from its regeneration (seed {}, scenario {}, index {}, ops {}) from line {}",
        p.seed,
        p.scenario,
        p.index,
        p.ops,
        line + 1
    ))
}

fn regenerate_lattice_mismatch(file: &lattice::TestFile, p: &crate::history::Provenance, text: &str) -> Option<String> {
    let Some(scenario) = file.scenarios.iter().find(|s| s.name == p.scenario) else {
        return Some(format!("scenario `{}` is no longer in {}", p.scenario, lattice::FILE));
    };
    let again = scenario.build().expect("checked by TestFile::load").history.to_json();
    (again != text).then(|| format!("differs from scenario `{}` of {} as it builds now", p.scenario, lattice::FILE))
}

/// Coverage of a whole corpus, from the files' provenance (hand-written histories count under
/// the scenario `(none)`).
pub fn stats(dir: &Path) -> Result<Coverage, CorpusError> {
    let manifest = Manifest::load(dir, false)?;
    let mut cov = Coverage::new();
    for entry in &manifest.files {
        let history = load_checked(dir, entry)?;
        let scenario = history.provenance.map_or_else(|| "(none)".to_string(), |p| p.scenario);
        let e = cov.entry((entry.store_type.clone(), scenario)).or_default();
        *e = (e.0 + 1, e.1 + entry.ops);
    }
    Ok(cov)
}
