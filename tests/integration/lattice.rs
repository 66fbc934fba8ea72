//! Lattice's own tests, translated (corpus/lattice-tests.json): every scenario's history is in
//! the corpus, and what a replay reads is what the Lattice test asserts — natively and through
//! the committed guest of the scenario's type.

use std::sync::Arc;

use lattice_conform::corpus::lattice::{self, TestFile};
use lattice_conform::corpus::{self, Manifest};
use lattice_conform::registry::Registry;
use lattice_conform::replay::MemStore;
use lattice_conform::store::Logic;
use lattice_conform::wasm::{Limits, WasmModule, WasmOpener};

use crate::util::fixtures;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tests_file() -> TestFile {
    TestFile::load(&fixtures().join("corpus").join(lattice::FILE)).unwrap()
}

fn guest(store_type: &str) -> Logic {
    let name = store_type.replace(':', "-");
    let path = root().join("guests/dist").join(format!("{name}.wasm"));
    let module = Arc::new(WasmModule::compile_uncached(&std::fs::read(&path).unwrap(), &name).unwrap());
    WasmOpener::new(module, Limits::default()).wasm_logic()
}

#[test]
fn every_lattice_scenario_reads_what_the_lattice_test_asserts_natively_and_in_wasm() {
    let file = tests_file();
    let registry = Registry::with_reference_types();
    let mut failures = Vec::new();
    let mut reads = 0;
    for s in &file.scenarios {
        let built = s.build().unwrap();
        let identity = built.history.identity();
        reads += s.expect.len();
        for (build, logic) in [("native", registry.opener(&s.store_type).unwrap().logic()), ("wasm", guest(&s.store_type))] {
            for f in lattice::check(s, &built, MemStore::new(identity.clone(), logic)) {
                failures.push(format!("{} ({}, {build}): {f}", s.name, s.source));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(file.scenarios.len() >= 40 && reads >= 50, "{} scenarios, {reads} reads", file.scenarios.len());
}

#[test]
fn every_lattice_scenario_is_a_corpus_history_built_from_the_file() {
    let file = tests_file();
    let dir = fixtures().join("corpus");
    let manifest = Manifest::load(&dir, false).unwrap();
    for (name, history) in lattice::histories(&file) {
        let entry = manifest
            .files
            .iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("{name} is not in the corpus (run `lattice-conform gen --lattice-tests`)"));
        assert_eq!(corpus::load_checked(&dir, entry).unwrap(), history, "{name}");
    }
    let listed = manifest.files.iter().filter(|e| e.name().starts_with(lattice::PREFIX)).count();
    assert_eq!(listed, file.scenarios.len(), "a lattice-* history without a scenario");
}

#[test]
fn a_wrong_expectation_is_reported_naming_the_read() {
    // The bad input: the scenario file with one asserted value changed.
    let mut file = tests_file();
    let s = file.scenarios.iter_mut().find(|s| s.name == "kvstore-state-duplicate-keys-last-wins").unwrap();
    s.expect[0].value = Some(Some("first".into()));
    let built = s.build().unwrap();
    let logic = Registry::with_reference_types().opener(&s.store_type).unwrap().logic();
    let got = lattice::check(s, &built, MemStore::new(built.history.identity(), logic));
    assert_eq!(got, vec!["get test/key: value: expected \"first\", got \"second\"".to_string()]);
}

#[test]
fn a_scenario_naming_an_unknown_label_is_refused_naming_scenario_and_op() {
    // The bad input: a scenario file whose op depends on a label no earlier op has.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("corpus").join(lattice::FILE)).unwrap();
    let bad = text.replacen(
        "\"deps\": [\n            \"a1\",\n            \"b1\"\n          ]",
        "\"deps\": [\n            \"a1\",\n            \"zz\"\n          ]",
        1,
    );
    assert_ne!(bad, text, "the fixture edit applied");
    let path = tmp.path().join(lattice::FILE);
    std::fs::write(&path, bad).unwrap();
    let err = TestFile::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("scenario `kvstore-crdt-conflict-flag-cleared-after-merge-2`: op `a2`: `zz` is not an earlier op's label"),
        "{err}"
    );
}

#[test]
fn every_lattice_scenario_is_listed_in_docs_lattice_md() {
    let doc = std::fs::read_to_string(root().join("docs/LATTICE.md")).unwrap();
    let file = tests_file();
    for s in &file.scenarios {
        let (path, test) = s.source.split_once("::").unwrap();
        let row = format!("| `{path}` | `{test}` | `{}` ({}) | {} | agree |", s.history_name(), s.store_type, s.expect.len());
        assert!(doc.contains(&row), "docs/LATTICE.md lacks the row\n{row}");
    }
    for u in &file.untranslatable {
        let (path, test) = u.source.split_once("::").unwrap();
        assert!(doc.contains(&format!("| `{path}` | `{test}` | {} |", u.reason)), "docs/LATTICE.md lacks {}", u.source);
    }
}
