//! `gen --check`: every generated history of a corpus regenerated from its provenance and
//! compared with the committed bytes.

use std::path::{Path, PathBuf};

use super::{digest_file, gen, lattice, synthetic, CorpusError, Manifest};
use crate::history::History;

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
