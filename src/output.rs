//! Where commands may write: the guard every output path (`--out`, `--counterexample`,
//! `--counterexamples`, `gen --out`, `--golden`, …) passes before anything is written.
//!
//! Two rules (docs/FORMAT.md, "Output paths"):
//! - nothing is ever written inside a store directory (a directory holding `state.db` or
//!   `log.db`, or any directory below one): those files belong to the store, and a report or a
//!   history written over `log.db` destroys it. No flag overrides this;
//! - an existing file is replaced only when the user says so (`--force`).

use std::path::{Path, PathBuf};

/// An output path a command refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("{path}: refusing to write inside the store directory {store}; its files belong to the store (choose a path outside it)")]
    InsideStore { path: PathBuf, store: PathBuf },
    #[error("{path}: already exists; pass --force to replace it")]
    Exists { path: PathBuf },
}

/// The store directory `path` is in or is, if any: the nearest of `path` and its ancestors that
/// holds a `state.db` or `log.db` file. Symbolic links in the existing part are resolved first.
pub fn enclosing_store(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    // Resolve the longest existing prefix (so a symlink into a store is seen), keep the rest.
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(real) = existing.canonicalize() {
            break rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c));
        }
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?;
    };
    resolved.ancestors().find(|dir| ["state.db", "log.db"].iter().any(|f| dir.join(f).is_file())).map(Path::to_path_buf)
}

/// Checks a file a command is about to write: not inside a store, and not an existing file unless
/// `force`.
pub fn check_file(path: &Path, force: bool) -> Result<(), OutputError> {
    check_dir(path)?;
    if !force && path.symlink_metadata().is_ok() {
        return Err(OutputError::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

/// Checks a directory a command writes files into (it may exist): not a store and not inside one.
pub fn check_dir(path: &Path) -> Result<(), OutputError> {
    match enclosing_store(path) {
        Some(store) => Err(OutputError::InsideStore { path: path.to_path_buf(), store }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_and_below_a_store_are_refused_and_others_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("s");
        std::fs::create_dir_all(store.join("sub")).unwrap();
        std::fs::write(store.join("log.db"), b"x").unwrap();
        // Bad input tried: the store's own log, a new file in it, a file in a subdirectory, the
        // directory itself, and a path through a symlink into it.
        for p in [store.join("log.db"), store.join("new.json"), store.join("sub/x.json"), store.clone()] {
            assert!(matches!(check_file(&p, true), Err(OutputError::InsideStore { .. })), "{}", p.display());
        }
        std::os::unix::fs::symlink(&store, tmp.path().join("link")).unwrap();
        assert!(matches!(check_file(&tmp.path().join("link/out.json"), true), Err(OutputError::InsideStore { .. })));
        // Outside: a new file passes; an existing one needs force.
        let out = tmp.path().join("out.json");
        check_file(&out, false).unwrap();
        std::fs::write(&out, b"{}").unwrap();
        assert!(matches!(check_file(&out, false), Err(OutputError::Exists { .. })));
        check_file(&out, true).unwrap();
        check_dir(&tmp.path().join("not/yet/there")).unwrap();
    }
}
