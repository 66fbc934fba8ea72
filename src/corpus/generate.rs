//! `gen`: scenario or synthetic histories written into a corpus and listed in its manifest,
//! with the files of a failed run taken back.

use std::path::{Path, PathBuf};

use super::{gen, synthetic, type_dir, CorpusError, Coverage, Manifest, ManifestEntry};

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
