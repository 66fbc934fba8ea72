//! Every fuzz seed and every crash input the fuzzers ever found, replayed through its harness
//! (`lattice_conform::harness`) in the ordinary test run, so a fixed crash stays fixed without
//! nightly or cargo-fuzz. Crash inputs live in `fuzz/regressions/<target>/`, one file each.

use std::path::{Path, PathBuf};

use lattice_conform::harness;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_seed_and_regression_input_passes_its_harness() {
    let mut failures = Vec::new();
    for (target, harness) in harness::TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target));
        assert!(!seeds.is_empty(), "fuzz target {target} has no seeds in fuzz/seeds/{target}");
        for path in seeds.iter().chain(&files(&fuzz_dir().join("regressions").join(target))) {
            let bytes = std::fs::read(path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| harness(&bytes)) {
                let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                failures.push(format!("{}: {}", path.display(), msg.unwrap_or_default()));
            }
        }
    }
    assert!(failures.is_empty(), "inputs that break their harness:\n{}", failures.join("\n"));
}

#[test]
fn every_fuzz_target_has_a_harness_and_every_regression_directory_a_target() {
    let targets: Vec<String> =
        files(&fuzz_dir().join("fuzz_targets")).iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let harnesses: Vec<String> = harness::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    let mut sorted = harnesses.clone();
    sorted.sort();
    assert_eq!(targets, sorted, "fuzz/fuzz_targets/*.rs and harness::TARGETS differ");
    if let Ok(dirs) = std::fs::read_dir(fuzz_dir().join("regressions")) {
        for d in dirs {
            let name = d.unwrap().file_name().to_string_lossy().into_owned();
            assert!(harness::by_name(&name).is_some(), "fuzz/regressions/{name} names no fuzz target");
        }
    }
}
