//! The corpus manifest (`MANIFEST.json`: every history file with its type, op count and
//! digest), the directory name of a store type, and atomic writes and digests of corpus files.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CorpusError;

/// The manifest's file name inside a corpus directory.
pub const MANIFEST: &str = "MANIFEST.json";
const MANIFEST_TAG: &str = "lattice-conform/corpus-manifest";
const MANIFEST_VERSION: u32 = 1;

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
