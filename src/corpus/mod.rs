//! The corpus: op histories on disk, one file per history under `corpus/<type dir>/`, and a
//! manifest listing every file with its blake3 digest (normative: docs/FORMAT.md, "Corpus").
//!
//! Loading a history through the corpus checks its digest against the manifest first, so a
//! fixture edited by hand (or by a bug) is named, never silently replayed.

pub mod crafted;
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
    /// The corpus directory is missing, not a directory, or has no manifest.
    #[error("{path}: {reason}")]
    NotACorpus { path: PathBuf, reason: &'static str },
    #[error("{path}: blake3 is {actual} but the manifest says {expected}; the file was changed after it was listed")]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
    #[error("{path}: the manifest lists it as `{listed}` but the file says `{found}`")]
    TypeMismatch { path: PathBuf, listed: String, found: String },
    #[error("store type `{0}` cannot name a corpus directory: use letters, digits, `.`, `-`, `_` and `:`, without `__` and without `_` next to `:`")]
    BadTypeName(String),
    #[error("history name {0:?}: use letters, digits, `.`, `-` and `_`, not starting with `.` (it names a file inside the corpus)")]
    BadHistoryName(String),
    #[error("history {name} is already listed as {path} (in the other form); remove it from the corpus first or choose another name")]
    NameTaken { name: String, path: String },
    #[error("{path}: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: history `{id}` is already in the corpus (as {listed}); choose another name with --id")]
    DuplicateId { path: PathBuf, id: String, listed: String },
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
        file.strip_suffix(".json").or_else(|| file.strip_suffix(".lch")).unwrap_or(file)
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
        let text = std::fs::read_to_string(&path).map_err(|source| match std::fs::metadata(dir) {
            Err(_) => CorpusError::NotACorpus { path: dir.to_path_buf(), reason: "no such corpus directory" },
            Ok(m) if !m.is_dir() => CorpusError::NotACorpus {
                path: dir.to_path_buf(),
                reason: "not a directory (a corpus is a directory holding MANIFEST.json)",
            },
            Ok(_) if !path.exists() => {
                CorpusError::NotACorpus { path: dir.to_path_buf(), reason: "not a corpus directory (it holds no MANIFEST.json)" }
            }
            Ok(_) => CorpusError::Io { path: path.clone(), source },
        })?;
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
    let mut tmp = crate::scratch::temp_for(path).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// blake3 of a file's bytes, lowercase hex.
pub fn digest_file(path: &Path) -> Result<String, CorpusError> {
    let bytes = std::fs::read(path).map_err(|source| CorpusError::Io { path: path.to_path_buf(), source })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Loads a listed history, whole, after checking its digest and type against the manifest.
pub fn load_checked(dir: &Path, entry: &ManifestEntry) -> Result<History, CorpusError> {
    let path = dir.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
    check_digest(&path, &entry.blake3, blake3::hash(&bytes).to_hex().to_string())?;
    let history = History::from_bytes(bytes, &path)?;
    check_type(&path, entry, &history.store_type)?;
    Ok(history)
}

/// Files up to this size are read whole and their digest checked before any op is handed out;
/// larger ones are streamed and checked at the end ([`CheckedStream::finish`]).
pub const STREAM_ABOVE: u64 = 8 << 20;

/// Opens a listed history as a stream: its type is checked at once, its digest before any op
/// (files up to [`STREAM_ABOVE`] bytes) or by [`CheckedStream::finish`] (larger ones), so a
/// consumer must call `finish` before trusting what it computed.
pub fn open_checked(dir: &Path, entry: &ManifestEntry) -> Result<CheckedStream, CorpusError> {
    let path = dir.join(&entry.path);
    let io = |source| CorpusError::Io { path: path.clone(), source };
    let len = std::fs::metadata(&path).map_err(io)?.len();
    let stream = if len <= STREAM_ABOVE {
        let bytes = std::fs::read(&path).map_err(io)?;
        check_digest(&path, &entry.blake3, blake3::hash(&bytes).to_hex().to_string())?;
        crate::history::OpStream::from_bytes(bytes, &path)?
    } else {
        crate::history::open(&path)?
    };
    check_type(&path, entry, &stream.header().store_type)?;
    Ok(CheckedStream { stream, path, expected: entry.blake3.clone() })
}

/// A listed history being read ([`open_checked`]).
pub struct CheckedStream {
    stream: crate::history::OpStream,
    path: PathBuf,
    expected: String,
}

impl CheckedStream {
    pub fn header(&self) -> &crate::history::Header {
        self.stream.header()
    }

    /// The ops, one at a time (stopping at the first error, which `finish` reports).
    pub fn ops(&mut self) -> &mut crate::history::OpStream {
        &mut self.stream
    }

    /// Reads what is left; fails if the file did not parse to its end or its digest is not the
    /// manifest's.
    pub fn finish(self) -> Result<crate::history::Finished, CorpusError> {
        let done = self.stream.finish()?;
        check_digest(&self.path, &self.expected, done.blake3.clone())?;
        Ok(done)
    }
}

fn check_digest(path: &Path, expected: &str, actual: String) -> Result<(), CorpusError> {
    if actual != expected {
        return Err(CorpusError::DigestMismatch { path: path.to_path_buf(), expected: expected.to_string(), actual });
    }
    Ok(())
}

fn check_type(path: &Path, entry: &ManifestEntry, found: &str) -> Result<(), CorpusError> {
    if found != entry.store_type {
        return Err(CorpusError::TypeMismatch { path: path.to_path_buf(), listed: entry.store_type.clone(), found: found.to_string() });
    }
    Ok(())
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

/// For unit tests: a private copy of the repository's corpus (its manifest and every history it
/// lists, each checked against its listed digest; copied again if a writer was caught half way),
/// so that a fixture added or regenerated while the tests run changes nothing they read. The copy
/// is `<returned dir>/corpus`.
#[cfg(test)]
pub(crate) fn repository_corpus_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut last = String::new();
    for _ in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("corpus");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo.join(MANIFEST), dir.join(MANIFEST)).unwrap();
        let manifest = Manifest::load(&dir, false).unwrap();
        let copied = manifest.files.iter().try_for_each(|e| {
            let bytes = std::fs::read(repo.join(&e.path)).map_err(|err| format!("{}: {err}", e.path))?;
            check_digest(&dir.join(&e.path), &e.blake3, blake3::hash(&bytes).to_hex().to_string()).map_err(|err| err.to_string())?;
            write_atomic(&dir.join(&e.path), &bytes).map_err(|err| err.to_string())
        });
        match copied {
            Ok(()) => return tmp,
            Err(e) => last = e,
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("no consistent copy of the corpus: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy unit tests read is outside the repository and holds every listed history.
    #[test]
    fn the_corpus_unit_tests_read_is_a_private_copy() {
        let copy = repository_corpus_copy();
        let dir = copy.path().join("corpus");
        assert!(!dir.starts_with(env!("CARGO_MANIFEST_DIR")), "{}", dir.display());
        let manifest = Manifest::load(&dir, false).unwrap();
        assert!(manifest.files.len() > 100, "{}", manifest.files.len());
        for e in &manifest.files {
            load_checked(&dir, e).unwrap();
        }
    }

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
    /// The form the histories are written in.
    pub form: crate::history::Form,
    /// Write long streamed histories ([`synthetic`]) instead of scenario histories.
    pub synthetic: bool,
}

/// Generates histories into `out` (creating `<type dir>/` and updating the manifest) and returns
/// the coverage of what was written.
pub fn generate_into(out: &Path, req: &GenRequest) -> Result<Coverage, CorpusError> {
    if req.synthetic {
        return generate_synthetic(out, req);
    }
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
    let mut created = Created::default();
    let bar = crate::progress::bar("gen", u64::from(req.histories), "histories");
    for i in 0..req.histories {
        bar.inc(1);
        let scenario = chosen[i as usize % chosen.len()];
        let history = gen::generate(scenario, req.seed, i, req.ops);
        let rel = format!("{dir}/{}.{}", gen::history_name(scenario.name, req.seed, i), req.form.extension());
        let written = created.write(&out.join(&rel), || crate::history::write(&out.join(&rel), req.form, &history))?;
        let e = cov.entry((req.store_type.clone(), scenario.name.to_string())).or_default();
        *e = (e.0 + 1, e.1 + written.ops);
        manifest.upsert(ManifestEntry { path: rel, store_type: req.store_type.clone(), ops: written.ops, blake3: written.blake3 });
    }
    manifest.save(out)?;
    created.keep();
    Ok(cov)
}

/// The histories a `gen` run wrote where no file was: removed again when the run fails before its
/// manifest is saved (a full disk, say), so a failed run leaves the corpus as it found it.
#[derive(Default)]
struct Created {
    paths: Vec<PathBuf>,
}

impl Created {
    /// Runs `write` (which writes `path`), noting `path` if nothing was there before.
    fn write<T, E>(&mut self, path: &Path, write: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let fresh = path.symlink_metadata().is_err();
        let written = write()?;
        if fresh {
            self.paths.push(path.to_path_buf());
        }
        Ok(written)
    }

    /// The run succeeded: keep everything.
    fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `gen --synthetic`: each history streamed from [`synthetic::ops`] straight to its file.
fn generate_synthetic(out: &Path, req: &GenRequest) -> Result<Coverage, CorpusError> {
    let Some(kind) = synthetic::Kind::of(&req.store_type) else {
        return Err(CorpusError::NoScenario {
            store_type: req.store_type.clone(),
            scenario: "synthetic generator".into(),
            known: "core:kvstore, core:logstore".into(),
        });
    };
    let dir = type_dir(&req.store_type)?;
    let mut manifest = Manifest::load(out, true)?;
    let mut cov = Coverage::new();
    let mut created = Created::default();
    let bar = crate::progress::bar("gen --synthetic", u64::from(req.histories), "histories");
    for i in 0..req.histories {
        bar.inc(1);
        let rel = format!("{dir}/{}.{}", gen::history_name(synthetic::SCENARIO, req.seed, i), req.form.extension());
        let written = created.write(&out.join(&rel), || synthetic::write_history(&out.join(&rel), req.form, kind, req.seed, i, req.ops))?;
        let e = cov.entry((req.store_type.clone(), synthetic::SCENARIO.to_string())).or_default();
        *e = (e.0 + 1, e.1 + written.ops);
        manifest.upsert(ManifestEntry { path: rel, store_type: req.store_type.clone(), ops: written.ops, blake3: written.blake3 });
    }
    manifest.save(out)?;
    created.keep();
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

/// A history file checked and ready to be copied into a corpus ([`prepare_add`]).
#[derive(Clone, Debug)]
pub struct PreparedAdd {
    bytes: Vec<u8>,
    /// The file it came from.
    pub source: PathBuf,
    pub header: crate::history::Header,
    /// Its manifest entry once copied.
    pub entry: ManifestEntry,
}

/// Checks the history at `src` (either form: read to its end, every op checked) for addition to
/// the corpus at `dir` as `name` (default: the file's stem): a portable name, a store type that
/// can name a directory, and an id `<store_type>/<name>` the corpus does not list yet. Nothing is
/// written.
pub fn prepare_add(dir: &Path, src: &Path, name: Option<&str>) -> Result<PreparedAdd, CorpusError> {
    crate::history::check_path(src)?;
    let bytes = std::fs::read(src).map_err(|source| CorpusError::Io { path: src.to_path_buf(), source })?;
    let done = crate::history::OpStream::from_bytes(bytes.clone(), src)?.finish()?;
    let name = match name {
        Some(n) => n.to_string(),
        None => crate::author::file_stem(src),
    };
    let form = crate::history::Form::of_bytes(&bytes);
    let store_type = done.header.store_type.clone();
    type_dir(&store_type).map_err(|e| CorpusError::BadHeader { path: src.to_path_buf(), reason: e.to_string() })?;
    let manifest = Manifest::load(dir, true)?;
    if let Some(e) = manifest.files.iter().find(|e| e.store_type == store_type && e.name() == name) {
        return Err(CorpusError::DuplicateId { path: src.to_path_buf(), id: e.id(), listed: e.path.clone() });
    }
    let rel = history_path(dir, &store_type, &name, form)?;
    let entry = ManifestEntry { path: rel, store_type, ops: done.ops, blake3: done.blake3 };
    Ok(PreparedAdd { bytes, source: src.to_path_buf(), header: done.header, entry })
}

impl PreparedAdd {
    /// Copies the file into the corpus (byte for byte, through a temporary file), unlisted:
    /// [`list_entry`] lists it once its goldens are written (`golden::bless_and_list`).
    pub fn write(self, dir: &Path) -> Result<ManifestEntry, CorpusError> {
        write_atomic(&dir.join(&self.entry.path), &self.bytes)?;
        Ok(self.entry)
    }
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
    let bar = crate::progress::bar("gen --check", manifest.files.len() as u64, "histories");
    for entry in &manifest.files {
        bar.inc(1);
        let path = dir.join(&entry.path);
        // Read only the header, so an edit that breaks the ops is reported as drift.
        let header = match crate::history::open(&path) {
            Ok(stream) => stream.header().clone(),
            Err(e) => {
                drift.push(Drift { path, reason: format!("no longer parses ({e})") });
                continue;
            }
        };
        let Some(p) = &header.provenance else { continue };
        checked += 1;
        let form = crate::history::form_of(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
        let reason = if p.generator == synthetic::GENERATOR {
            regenerate_synthetic_mismatch(&header, p, form, &path)?
        } else {
            let again = if p.generator == lattice::GENERATOR {
                if lattice_tests.is_none() {
                    lattice_tests = Some(lattice::TestFile::load(&dir.join(lattice::FILE))?);
                }
                let file = lattice_tests.as_ref().expect("loaded just above");
                match file.scenarios.iter().find(|s| s.name == p.scenario) {
                    Some(scenario) => Ok(scenario.build().expect("checked by TestFile::load").history),
                    None => Err(format!("scenario `{}` is no longer in {}", p.scenario, lattice::FILE)),
                }
            } else {
                regenerate(&header.store_type, p)
            };
            let bytes = std::fs::read(&path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
            match again {
                Ok(h) => compare_regenerated(&h, form, &bytes, p),
                Err(reason) => Some(reason),
            }
        };
        if let Some(reason) = reason {
            drift.push(Drift { path, reason });
        }
    }
    Ok((drift, checked))
}

/// A scenario history made again from its provenance, or why it cannot be.
fn regenerate(store_type: &str, p: &crate::history::Provenance) -> Result<History, String> {
    if p.generator != gen::GENERATOR {
        return Err(format!("made by generator `{}`, this build has `{}`", p.generator, gen::GENERATOR));
    }
    let Some(scenario) = gen::scenarios_for(store_type).into_iter().find(|s| s.name == p.scenario) else {
        return Err(format!("unknown scenario `{}` for `{store_type}`", p.scenario));
    };
    Ok(gen::generate(&scenario, p.seed, p.index, p.ops))
}

/// How the committed bytes differ from the regenerated history written in `form`, if they do.
fn compare_regenerated(again: &History, form: crate::history::Form, bytes: &[u8], p: &crate::history::Provenance) -> Option<String> {
    let how = format!("seed {}, scenario {}, index {}, ops {}", p.seed, p.scenario, p.index, p.ops);
    match form {
        crate::history::Form::Json => {
            let again = again.to_json();
            let text = String::from_utf8_lossy(bytes);
            if again == text {
                return None;
            }
            let line = again
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| again.lines().count().min(text.lines().count()));
            Some(format!("differs from its regeneration ({how}) from line {}", line + 1))
        }
        crate::history::Form::Binary => {
            let again = again.to_binary();
            if again == bytes {
                return None;
            }
            let at = again.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(again.len().min(bytes.len()));
            Some(format!("differs from its regeneration ({how}) from byte {at}"))
        }
    }
}

/// A synthetic history is regenerated as a stream into a scratch file and compared by digest.
fn regenerate_synthetic_mismatch(
    header: &crate::history::Header,
    p: &crate::history::Provenance,
    form: crate::history::Form,
    path: &Path,
) -> Result<Option<String>, CorpusError> {
    let Some(kind) = synthetic::Kind::of(&header.store_type) else {
        return Ok(Some(format!("no synthetic generator for `{}`", header.store_type)));
    };
    let scratch = tempfile::tempdir().map_err(|source| CorpusError::Io { path: std::env::temp_dir(), source })?;
    let again = synthetic::write_history(&scratch.path().join("again"), form, kind, p.seed, p.index, p.ops)?;
    let actual = digest_file(path)?;
    Ok((again.blake3 != actual).then(|| {
        format!(
            "differs from its regeneration (synthetic, seed {}, index {}, ops {}): blake3 {} instead of {actual}",
            p.seed, p.index, p.ops, again.blake3
        )
    }))
}

/// Coverage of a whole corpus, from the files' provenance (hand-written histories count under
/// the scenario `(none)`).
pub fn stats(dir: &Path) -> Result<Coverage, CorpusError> {
    let manifest = Manifest::load(dir, false)?;
    let mut cov = Coverage::new();
    for entry in &manifest.files {
        // The header is enough (a small file is digest-checked whole on opening).
        let stream = open_checked(dir, entry)?;
        let scenario = stream.header().provenance.as_ref().map_or_else(|| "(none)".to_string(), |p| p.scenario.clone());
        let e = cov.entry((entry.store_type.clone(), scenario)).or_default();
        *e = (e.0 + 1, e.1 + entry.ops);
    }
    Ok(cov)
}
