//! Temporary files, and what an interrupted run left of them (docs/FORMAT.md §18.7).
//!
//! Every file this tool writes through a rename (histories, manifests, goldens, certificates,
//! cache entries) is first written as `.lattice-tmp.<final name>.<6 random characters>` in the
//! final file's directory, and its writer holds an exclusive `flock` on it until the file is
//! renamed into place or dropped. A run killed in between leaves the temporary file, and no lock:
//! [`sweep`] finds such files — named so, and with no lock held — and removes them. A file whose
//! lock is held belongs to a writer at work and is left alone, so a sweep never disturbs another
//! run. Files of other programs (tempfile's default `.tmpXXXXXX`, say) are never touched.
//!
//! A temporary file is created with mode `0666` less the process umask, as `open(2)` and a
//! shell redirection create files (tempfile's own default, `0600`, would make every report,
//! certificate and golden private whatever the umask), and keeps that mode when renamed.

use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// How every temporary file of this tool's name starts.
pub const PREFIX: &str = ".lattice-tmp.";

/// Longest part of the final name kept in a temporary name (so it stays under 255 bytes).
const NAME_BYTES: usize = 200;

/// The mode a new file is created with before the umask applies (docs/FORMAT.md §11.4).
const MODE: u32 = 0o666;

/// A new temporary file beside `path` (created in `path`'s directory, which must exist), locked,
/// with mode [`MODE`] less the process umask.
pub fn temp_for(path: &Path) -> std::io::Result<NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let mut cut = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}.", &name[..cut]))
        .rand_bytes(6)
        .permissions(std::fs::Permissions::from_mode(MODE))
        .tempfile_in(parent)?;
    tmp.as_file().try_lock().map_err(std::io::Error::from)?;
    Ok(tmp)
}

/// Removes the temporary files an interrupted run left in `dir` and, down to `depth` levels,
/// in its subdirectories (symbolic links are not followed); returns them, sorted. A missing
/// `dir` has none.
pub fn sweep(dir: &Path, depth: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    sweep_into(dir, depth, &mut removed)?;
    removed.sort();
    Ok(removed)
}

fn sweep_into(dir: &Path, depth: usize, removed: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() && depth > 0 {
            sweep_into(&entry.path(), depth - 1, removed)?;
        } else if kind.is_file() && entry.file_name().to_string_lossy().starts_with(PREFIX) && abandoned(&entry.path())? {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(())
}

/// Whether nobody holds the lock of the temporary file at `path` (its writer is gone).
fn abandoned(path: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        // Renamed into place or removed by its writer meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// One line saying what a sweep removed (`None` when it removed nothing): what the binary prints
/// on standard error.
pub fn note(removed: &[PathBuf]) -> Option<String> {
    match removed {
        [] => None,
        [one] => Some(format!("removed {}, a temporary file left by an interrupted run", one.display())),
        [first, ..] => Some(format!(
            "removed {} temporary files left by an interrupted run ({} and {} more)",
            removed.len(),
            first.display(),
            removed.len() - 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_abandoned_temporary_files_and_leaves_live_and_foreign_ones() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("core__kvstore");
        std::fs::create_dir(&sub).unwrap();
        let live = temp_for(&sub.join("a.json")).unwrap();
        let dead = temp_for(&sub.join("b.json")).unwrap();
        // Its writer "dies": the file stays, its descriptor (and so its lock) goes.
        let (file, dead_path) = dead.keep().unwrap();
        drop(file);
        let foreign = dir.path().join(".tmpAbC123");
        std::fs::write(&foreign, b"not ours").unwrap();
        assert!(dead_path.file_name().unwrap().to_string_lossy().starts_with(".lattice-tmp.b.json."));
        assert_eq!(sweep(dir.path(), 0).unwrap(), Vec::<PathBuf>::new(), "depth 0 looks only at the directory itself");
        assert_eq!(sweep(dir.path(), 1).unwrap(), vec![dead_path.clone()]);
        assert!(live.path().exists() && foreign.exists() && !dead_path.exists());
    }
}
