//! The corpus: op histories on disk, one file per history under `corpus/<type dir>/`, and a
//! manifest listing every file with its blake3 digest (normative: docs/FORMAT.md, "Corpus").
//!
//! Loading a history through the corpus checks its digest against the manifest first, so a
//! fixture edited by hand (or by a bug) is named, never silently replayed.

pub mod crafted;
pub mod gen;
pub mod lattice;
pub mod synthetic;

mod checked;
mod drift;
mod generate;
mod listing;
mod manifest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[cfg(test)]
use checked::check_digest;
pub use checked::{load_checked, open_checked, CheckedStream, STREAM_ABOVE};
pub use drift::{check_generated, Drift};
pub use generate::{generate_into, GenRequest};
pub use listing::{add_history, entry_of, history_path, list, list_entry, write_lattice_tests};
pub use manifest::{digest_file, type_dir, write_atomic, Manifest, ManifestEntry, MANIFEST};

use crate::history::HistoryError;

/// Errors reading or writing a corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    #[error("{path}: listed in {manifest} but not there: restore it, or take its entry out of the manifest")]
    ListedButMissing { path: PathBuf, manifest: PathBuf },
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
        None => file_stem(src),
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

/// A path's file name without its extension (`corpus/x.json` → `x`), empty if it has none: the
/// default name of an added history and of an authored one.
pub fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(String::new, |st| st.to_string_lossy().into_owned())
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
