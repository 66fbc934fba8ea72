//! Histories at scale: the binary form round-trips the whole corpus byte for byte, a streamed
//! replay gives what the whole-file one gives, and large histories flow through `gen`, `bless`,
//! `verify`, `apply`, `record` and `history convert` as streams.

use std::path::{Path, PathBuf};

use lattice_conform::corpus::{self, Manifest};
use lattice_conform::golden;
use lattice_conform::history::{self, Form, History};
use lattice_conform::registry::Registry;
use lattice_conform::replay::HostFaults;

use crate::util::{fixtures, run, run_in};

#[test]
fn the_whole_corpus_round_trips_between_json_and_binary_byte_for_byte() {
    let dir = fixtures().join("corpus");
    let manifest = Manifest::load(&dir, false).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::with_reference_types();
    for entry in &manifest.files {
        let path = dir.join(&entry.path);
        let json = std::fs::read(&path).unwrap();
        let h = History::load(&path).unwrap();
        // JSON → binary → JSON.
        let bin = tmp.path().join("h.lch");
        history::write(&bin, Form::Binary, &History::load(&path).unwrap()).unwrap();
        let back = tmp.path().join("h.json");
        history::write(&back, Form::Json, &History::load(&bin).unwrap()).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), json, "{}: JSON → binary → JSON", entry.path);
        // Binary → JSON → binary.
        let again = tmp.path().join("again.lch");
        history::write(&again, Form::Binary, &History::load(&back).unwrap()).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&bin).unwrap(), "{}: binary → JSON → binary", entry.path);
        // The binary form is compact: at most 1.3 × the canonical encodings it holds.
        let encodings: usize = h.ops.iter().map(|op| op.encode().len()).sum();
        let size = std::fs::metadata(&bin).unwrap().len() as usize;
        assert!(size * 10 <= encodings * 13 + 4000, "{}: {size} bytes for {encodings} bytes of encodings", entry.path);
        // A replay streamed from the binary file reaches the golden the whole-file replay does.
        let logic = registry.resolve(&h.identity()).unwrap();
        let whole = golden::compute(&h, logic.clone(), entry);
        let mut stream = history::open(&bin).unwrap();
        let header = stream.header().clone();
        let streamed = golden::compute_streamed(&header, stream.by_ref(), logic, HostFaults::default(), entry);
        stream.finish().unwrap();
        assert_eq!(streamed, whole, "{}: streamed replay", entry.path);
    }
}

#[test]
fn history_convert_round_trips_through_the_binary_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let example = crate::util::example();
    let bin = tmp.path().join("e.lch");
    let out = run(["history".as_ref(), "convert".as_ref(), example.as_os_str(), bin.as_os_str()]).expect(0);
    assert!(out.stdout.contains("7 ops"), "{}", out.stdout);
    let json = tmp.path().join("e.json");
    run(["history".as_ref(), "convert".as_ref(), bin.as_os_str(), json.as_os_str()]).expect(0);
    assert_eq!(std::fs::read(&json).unwrap(), std::fs::read(&example).unwrap());
    // An existing output needs --force (bad input: converting onto an existing file).
    let again = run(["history".as_ref(), "convert".as_ref(), bin.as_os_str(), json.as_os_str()]).expect(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    // `history show` reads either form and ends with the count and the file's digest.
    let show = run(["history".as_ref(), "show".as_ref(), bin.as_os_str()]).expect(0);
    let digest = blake3::hash(&std::fs::read(&bin).unwrap()).to_hex().to_string();
    assert!(show.stdout.contains("form:           lch") && show.stdout.contains(&format!("7 ops; blake3 {digest}")), "{}", show.stdout);
    assert!(show.stdout.contains("#0 ") && show.stdout.contains("greeting"), "{}", show.stdout);
}

/// A corpus of one synthetic history of `ops` ops in `form`, blessed and accepted.
fn synthetic_corpus(tmp: &Path, ops: u32, form: &str) -> (PathBuf, PathBuf) {
    let (c, g) = (tmp.join("corpus"), tmp.join("golden"));
    let ops = ops.to_string();
    run_in(tmp, ["gen", "--type", "core:kvstore", "--synthetic", "--histories", "1", "--ops", &ops, "--format", form, "--out", "corpus"])
        .expect(0);
    run_in(tmp, ["bless", "--corpus", "corpus", "--golden", "golden"]).expect(0);
    run_in(tmp, ["bless", "--corpus", "corpus", "--golden", "golden", "--accept"]).expect(0);
    (c, g)
}

#[test]
fn a_large_binary_history_streams_through_verify_and_a_late_change_is_still_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // 60,000 ops in the binary form are 8.7 MB: above the 8 MiB whole-file limit, so verify
    // streams the file and checks its digest at the end.
    let (c, _) = synthetic_corpus(tmp.path(), 60_000, "bin");
    let rel = Manifest::load(&c, false).unwrap().files[0].path.clone();
    let path = c.join(&rel);
    assert!(std::fs::metadata(&path).unwrap().len() > corpus::STREAM_ABOVE);
    let out = run_in(tmp.path(), ["verify", "--format", "json"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["results"][0]["ops"], 60_000, "{}", out.stdout);
    assert!(report["results"][0]["failure"].is_null(), "{}", out.stdout);
    run_in(tmp.path(), ["gen", "--check", "--out", "corpus"]).expect(0);
    // Bad input: one byte of the last op's payload changed after the file was listed. The op
    // still decodes; the trailing digest and the manifest digest both catch it, after the replay.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 33;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = run_in(tmp.path(), ["verify"]).expect(2);
    assert!(out.stderr.contains("does not match the blake3 of the bytes before it"), "{}", out.stderr);
    let drift = run_in(tmp.path(), ["gen", "--check", "--out", "corpus"]).expect(1);
    assert!(drift.stderr.contains("synthetic-s0-000.lch"), "{}", drift.stderr);
}

#[test]
fn a_streamed_json_verify_reports_what_the_binary_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (json_dir, bin_dir) = (tmp.path().join("json"), tmp.path().join("bin"));
    std::fs::create_dir_all(&json_dir).unwrap();
    std::fs::create_dir_all(&bin_dir).unwrap();
    synthetic_corpus(&json_dir, 3_000, "json");
    synthetic_corpus(&bin_dir, 3_000, "bin");
    // The same history in both forms: one golden (its history_blake3 aside).
    let g = |d: &Path, ext: &str| {
        let text = std::fs::read_to_string(d.join("golden/core__kvstore").join(format!("synthetic-s0-000.{ext}"))).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("history_blake3");
        v
    };
    assert_eq!(g(&json_dir, "json"), g(&bin_dir, "json"));
    // A candidate that diverges reports the same first divergent op from either form.
    let fault = ["verify", "--build", "native-fault:kv-deps-ignored", "--format", "json"];
    let a = run_in(&json_dir, fault).expect(1);
    let b = run_in(&bin_dir, fault).expect(1);
    let div = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["results"][0]["failure"]["divergence"].clone()
    };
    assert!(!div(&a.stdout).is_null(), "{}", a.stdout);
    assert_eq!(div(&a.stdout), div(&b.stdout));
}

#[test]
fn record_streams_either_form_and_apply_takes_either_form() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("corpus");
    run_in(
        tmp.path(),
        ["gen", "--type", "core:kvstore", "--synthetic", "--histories", "1", "--ops", "2000", "--format", "bin", "--out", "corpus"],
    )
    .expect(0);
    let lch = c.join("core__kvstore/synthetic-s0-000.lch");
    let store = tmp.path().join("store");
    let applied = run(["apply".as_ref(), store.as_os_str(), lch.as_os_str(), "--create".as_ref()]).expect(0);
    assert!(applied.stdout.contains("delivered 2000 ops"), "{}", applied.stdout);
    let (rec_bin, rec_json) = (tmp.path().join("r.lch"), tmp.path().join("r.json"));
    run(["record".as_ref(), store.as_os_str(), "--out".as_ref(), rec_bin.as_os_str()]).expect(0);
    run(["record".as_ref(), store.as_os_str(), "--out".as_ref(), rec_json.as_os_str()]).expect(0);
    assert_eq!(history::form_of(&rec_bin).unwrap(), history::Form::Binary);
    assert_eq!(history::form_of(&rec_json).unwrap(), history::Form::Json);
    // The recorded binary history is the applied one (no provenance), and both forms hold it.
    let applied_ops = History::load(&lch).unwrap().ops;
    assert_eq!(History::load(&rec_bin).unwrap().ops, applied_ops);
    assert_eq!(History::load(&rec_json).unwrap(), History::load(&rec_bin).unwrap());
    // A JSON copy applied to a fresh store reaches the same state hash.
    let store2 = tmp.path().join("store2");
    run(["apply".as_ref(), store2.as_os_str(), rec_json.as_os_str(), "--create".as_ref()]).expect(0);
    let hash = |d: &Path| run(["open".as_ref(), d.as_os_str(), "--json".as_ref()]).expect(0).stdout;
    let h = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap()["state_hash"].clone();
    assert_eq!(h(hash(&store)), h(hash(&store2)));
    // `record STORE --corpus c2 --golden g2 --name prod --format FORM`.
    let record_as_prod = |form: &str| {
        let (c2, g2) = (tmp.path().join("c2"), tmp.path().join("g2"));
        let args = ["--corpus".as_ref(), c2.as_os_str(), "--golden".as_ref(), g2.as_os_str(), "--name".as_ref(), "prod".as_ref()];
        run([["record".as_ref(), store.as_os_str()].as_slice(), &args, &["--format".as_ref(), form.as_ref()]].concat())
    };
    // record --corpus with --format bin lists a .lch history and its golden verifies.
    record_as_prod("bin").expect(0);
    let m = Manifest::load(&tmp.path().join("c2"), false).unwrap();
    assert_eq!(m.files[0].path, "core__kvstore/prod.lch");
    // Its goldens are pending until reviewed.
    run_in(tmp.path(), ["bless", "--corpus", "c2", "--golden", "g2", "--accept"]).expect(0);
    run_in(tmp.path(), ["bless", "--corpus", "c2", "--golden", "g2", "--migrations", "--accept"]).expect(0);
    run_in(tmp.path(), ["verify", "--corpus", "c2", "--golden", "g2"]).expect(0);
    // The same name in the other form is refused (bad input: a second form of a listed name).
    let twice = record_as_prod("json").expect(2);
    assert!(twice.stderr.contains("already listed as core__kvstore/prod.lch"), "{}", twice.stderr);
}
