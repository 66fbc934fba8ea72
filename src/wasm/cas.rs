//! Content-addressed Wasm modules: a cache directory of blobs named by their blake3 digest, and a
//! registry file mapping (store type, schema version) → digest (format: docs/WASM_ABI.md,
//! "Module cache and registry file").
//!
//! ```text
//! CACHE_DIR/
//!   registry.json           {"format": "lattice-conform/wasm-registry", "format_version": 1, "modules": [...]}
//!   blobs/<digest>.wasm     module bytes; <digest> = blake3 of the bytes, 64 lowercase hex digits
//! ```
//!
//! Loading a blob re-hashes its bytes and refuses a blob whose digest is not its name. Files are
//! written to a temporary name in the same directory and renamed into place, so a reader never
//! sees a half-written blob or registry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::engine::{Limits, WasmModule};
use super::logic::WasmOpener;
use super::{Digest, WasmError};

/// The registry file's name inside the cache directory.
pub const REGISTRY_FILE: &str = "registry.json";
/// The blob directory's name inside the cache directory.
pub const BLOBS_DIR: &str = "blobs";
/// The registry file's `format` tag.
pub const REGISTRY_FORMAT: &str = "lattice-conform/wasm-registry";
/// The registry format version this build reads and writes.
pub const REGISTRY_VERSION: u32 = 1;

/// One registered module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub store_type: String,
    pub schema_version: u64,
    /// blake3 of the module bytes, 64 lowercase hex digits: the blob's name.
    pub digest: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryJson {
    format: String,
    format_version: u32,
    modules: Vec<RegistryEntry>,
}

/// Only the version fields, read before the strict parse so a newer file is reported as such.
#[derive(Deserialize)]
struct Probe {
    format: String,
    format_version: u32,
}

/// What [`WasmCache::add`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    pub entry: RegistryEntry,
    /// The digest previously registered for the same type and schema, if it differed.
    pub replaced: Option<String>,
}

/// A module cache directory and its registry file.
#[derive(Clone, Debug)]
pub struct WasmCache {
    dir: PathBuf,
    limits: Limits,
}

impl WasmCache {
    /// The cache at `dir` (created on first write), with default [`Limits`] for the guests it opens.
    pub fn new(dir: impl Into<PathBuf>) -> WasmCache {
        WasmCache { dir: dir.into(), limits: Limits::default() }
    }

    pub fn with_limits(self, limits: Limits) -> WasmCache {
        WasmCache { limits, ..self }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(BLOBS_DIR).join(format!("{digest}.wasm"))
    }

    /// The module stored under `digest`: the one this process already compiled from those
    /// bytes, else the blob read, re-checked against the digest, and compiled.
    pub fn load(&self, digest: &Digest) -> Result<Arc<WasmModule>, WasmError> {
        if let Some(module) = WasmModule::compiled(digest) {
            return Ok(module);
        }
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => WasmError::MissingBlob { path: path.clone(), digest: *digest },
            _ => WasmError::Io { path: path.clone(), source },
        })?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(WasmError::DigestMismatch { path, expected: *digest, actual });
        }
        WasmModule::from_bytes(&bytes, &format!("cas:{digest}"))
    }

    /// The digests of the blobs whose names begin with `prefix` (lowercase hex), in order. A
    /// missing blob directory holds none.
    pub fn blobs_with_prefix(&self, prefix: &str) -> Result<Vec<Digest>, WasmError> {
        let dir = self.dir.join(BLOBS_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WasmError::Io { path: dir, source }),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|source| WasmError::Io { path: dir.clone(), source })?;
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else { continue };
            // Only blob names: 64 lowercase hex digits (a temporary file is skipped).
            if stem.len() == 64 && stem.starts_with(prefix) {
                if let Ok(d) = stem.parse::<Digest>() {
                    if d.to_string() == stem {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Stores `bytes` under their digest (if not already there) and returns the digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, WasmError> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
            return Ok(digest);
        }
        write_atomically(&path, bytes)?;
        Ok(digest)
    }

    /// Checks `bytes` as a guest (named `origin` in errors), stores the blob and registers it for
    /// the store type and schema version the module declares, replacing an earlier entry.
    pub fn add(&self, bytes: &[u8], origin: &str) -> Result<Added, WasmError> {
        let module = WasmModule::from_bytes(bytes, origin)?;
        let digest = self.put_blob(bytes)?;
        let entry = RegistryEntry {
            store_type: module.store_type().to_string(),
            schema_version: module.schema_version(),
            digest: digest.to_string(),
        };
        let mut entries = self.entries()?;
        let same = |e: &RegistryEntry| e.store_type == entry.store_type && e.schema_version == entry.schema_version;
        let replaced = entries.iter().find(|e| same(e)).map(|e| e.digest.clone()).filter(|d| *d != entry.digest);
        entries.retain(|e| !same(e));
        entries.push(entry.clone());
        self.write_entries(entries)?;
        Ok(Added { entry, replaced })
    }

    /// The registered modules, ordered by store type then schema version. A missing registry
    /// file is an empty registry.
    pub fn entries(&self) -> Result<Vec<RegistryEntry>, WasmError> {
        let path = self.dir.join(REGISTRY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WasmError::Io { path, source }),
        };
        parse_registry(&text).map_err(|detail| WasmError::RegistryFile { path, detail })
    }

    /// An opener for `store_type`: the entry with `schema_version` if registered, else the entry of
    /// the type's highest schema (so the caller can report the schema mismatch), else `None`.
    pub fn opener_for(&self, store_type: &str, schema_version: u64) -> Result<Option<WasmOpener>, WasmError> {
        let entries = self.entries()?;
        let of_type = entries.iter().filter(|e| e.store_type == store_type);
        let exact = of_type.clone().find(|e| e.schema_version == schema_version);
        let Some(entry) = exact.or_else(|| of_type.max_by_key(|e| e.schema_version)) else { return Ok(None) };
        let digest: Digest = entry.digest.parse().map_err(|detail| self.bad_registry(detail))?;
        let module = self.load(&digest)?;
        let registered = (module.store_type() == entry.store_type) && (module.schema_version() == entry.schema_version);
        if !registered {
            return Err(self.bad_registry(format!(
                "entry ({}, schema {}) names blob {digest}, which declares (`{}`, schema {})",
                entry.store_type,
                entry.schema_version,
                module.store_type(),
                module.schema_version()
            )));
        }
        Ok(Some(WasmOpener::new(module, self.limits)))
    }

    fn bad_registry(&self, detail: String) -> WasmError {
        WasmError::RegistryFile { path: self.dir.join(REGISTRY_FILE), detail }
    }

    fn write_entries(&self, mut entries: Vec<RegistryEntry>) -> Result<(), WasmError> {
        entries.sort_by(|a, b| (&a.store_type, a.schema_version).cmp(&(&b.store_type, b.schema_version)));
        let json = RegistryJson { format: REGISTRY_FORMAT.to_string(), format_version: REGISTRY_VERSION, modules: entries };
        let mut text = serde_json::to_string_pretty(&json).expect("the registry serializes");
        text.push('\n');
        write_atomically(&self.dir.join(REGISTRY_FILE), text.as_bytes())
    }
}

/// Parses a registry file: version first, then strictly, then each entry's digest and uniqueness.
fn parse_registry(text: &str) -> Result<Vec<RegistryEntry>, String> {
    let probe: Probe = serde_json::from_str(text).map_err(|e| format!("not a Wasm registry file: {e}"))?;
    if probe.format != REGISTRY_FORMAT {
        return Err(format!("not a Wasm registry file (format {:?}, expected {REGISTRY_FORMAT:?})", probe.format));
    }
    if probe.format_version > REGISTRY_VERSION {
        return Err(format!(
            "registry format_version {} is too new (this build reads {REGISTRY_VERSION}); upgrade lattice-conform",
            probe.format_version
        ));
    }
    if probe.format_version < REGISTRY_VERSION {
        return Err(format!("registry format_version {} is too old (this build reads {REGISTRY_VERSION})", probe.format_version));
    }
    let json: RegistryJson = serde_json::from_str(text).map_err(|e| format!("bad registry file: {e}"))?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in json.modules.iter().enumerate() {
        e.digest.parse::<Digest>().map_err(|m| format!("modules[{i}].digest: {m}"))?;
        if !seen.insert((&e.store_type, e.schema_version)) {
            return Err(format!("modules[{i}]: a second entry for `{}` schema {}", e.store_type, e.schema_version));
        }
    }
    Ok(json.modules)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WasmError> {
    let io = |source| WasmError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = crate::scratch::temp_for(path).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: u32, modules: &str) -> String {
        format!(r#"{{"format": "{REGISTRY_FORMAT}", "format_version": {version}, "modules": [{modules}]}}"#)
    }

    #[test]
    fn registry_files_are_checked_version_first_then_strictly() {
        let entry = format!(r#"{{"store_type": "a:b", "schema_version": 1, "digest": "{}"}}"#, "0".repeat(64));
        assert_eq!(parse_registry(&file(1, &entry)).unwrap().len(), 1);
        assert!(parse_registry(&file(2, "{\"new\": 1}")).unwrap_err().contains("too new"));
        assert!(parse_registry(&file(0, "")).unwrap_err().contains("too old"));
        assert!(parse_registry(&file(1, &format!("{entry}, {entry}")))
            .unwrap_err()
            .contains("modules[1]: a second entry for `a:b` schema 1"));
        assert!(parse_registry(&file(1, &entry.replace("\"digest\"", "\"x\": 1, \"digest\""))).unwrap_err().contains("unknown field"));
        assert!(parse_registry(&file(1, &entry.replace(&"0".repeat(64), "00"))).unwrap_err().contains("modules[0].digest"));
        assert!(parse_registry(r#"{"format": "other", "format_version": 1}"#).unwrap_err().contains("not a Wasm registry file"));
    }

    #[test]
    fn a_missing_registry_is_empty_and_blobs_are_written_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = WasmCache::new(tmp.path().join("c"));
        assert_eq!(cache.entries().unwrap(), vec![]);
        let d = cache.put_blob(b"bytes").unwrap();
        assert_eq!(std::fs::read(cache.blob_path(&d)).unwrap(), b"bytes");
        assert_eq!(cache.put_blob(b"bytes").unwrap(), d);
        assert!(matches!(cache.load(&Digest([1; 32])), Err(WasmError::MissingBlob { .. })));
    }

    #[test]
    fn blobs_are_found_by_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = WasmCache::new(tmp.path().join("c"));
        assert_eq!(cache.blobs_with_prefix("ab").unwrap(), vec![], "no blob directory yet");
        let d = cache.put_blob(b"one").unwrap();
        let e = cache.put_blob(b"two").unwrap();
        std::fs::write(tmp.path().join("c/blobs/notes.txt"), b"x").unwrap();
        assert_eq!(cache.blobs_with_prefix(&d.to_string()[..8]).unwrap(), vec![d]);
        let mut both = vec![d, e];
        both.sort();
        assert_eq!(cache.blobs_with_prefix("").unwrap(), both);
    }
}
