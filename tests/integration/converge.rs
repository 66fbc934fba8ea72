//! Observed state and convergence through the binary: a build that changes only reads is caught
//! by the observed hash; every delivery order of a convergent type agrees; Lattice's write-time
//! winner divergence is found, shrunk, written as a counterexample and listed as known.

use std::path::Path;

use crate::util::{fixtures, run_in};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_build_that_changes_only_reads_fails_on_the_observed_hash_with_a_read_diff() {
    let out = run_in(
        fixtures(),
        [
            "verify",
            "--build",
            "native-fault:read-flips-conflicted",
            "--type",
            "core:kvstore",
            "--filter",
            "*concurrent-writers*",
            "--format",
            "json",
        ],
    )
    .expect(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failure = &report["results"][0]["failure"];
    assert!(failure["summary"].as_str().unwrap().contains("the state hashes agree: this build changes what readers see"), "{failure}");
    let d = &failure["divergence"];
    assert_eq!(d["reference_state_hash"], d["candidate_state_hash"], "stored rows are the same");
    assert_ne!(d["reference_observed_hash"], d["candidate_observed_hash"]);
    assert!(d["diff"].as_array().unwrap().is_empty(), "no stored row differs");
    let read = &d["read_diff"][0];
    assert_ne!(read["expected"]["conflicted"], read["actual"]["conflicted"], "{read}");
}

#[test]
fn every_delivery_order_of_a_convergent_type_agrees() {
    let out = run_in(fixtures(), ["verify", "--type", "core:logstore", "--orders", "64"]).expect(0);
    assert!(out.stdout.contains("0 known divergences, 0 unknown divergences"), "{}", out.stdout);
    assert!(!out.stdout.contains("DIVERGES"), "{}", out.stdout);
}

#[test]
fn lattices_write_time_winner_divergence_is_known_found_and_shrunk() {
    // With the committed known-divergences file: reported as known, exit 0.
    let out = run_in(fixtures(), ["verify", "--type", "core:kvstore", "--filter", "*convergence*", "--orders", "16"]).expect(0);
    assert!(out.stdout.contains("known divergence `kvstore-write-time-winner`"), "{}", out.stdout);
    // Without it (an empty list): found, shrunk to at most 4 ops, and written as two histories.
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("known.json");
    std::fs::write(&empty, r#"{"format":"lattice-conform/known-divergences","format_version":2,"divergences":[]}"#).unwrap();
    let cx = tmp.path().join("cx");
    let args = [
        "verify",
        "--type",
        "core:kvstore",
        "--orders",
        "16",
        "--known",
        empty.to_str().unwrap(),
        "--counterexamples",
        cx.to_str().unwrap(),
    ];
    let out = run_in(fixtures(), args).expect(1);
    assert!(out.stdout.contains("DIVERGES core:kvstore/convergence-"), "{}", out.stdout);
    let written: Vec<_> = std::fs::read_dir(&cx).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(written.len() >= 2 && written.len() % 2 == 0, "{written:?}");
    for f in &written {
        let h = lattice_conform::history::History::load(f).unwrap();
        assert!(!h.ops.is_empty() && h.ops.len() <= 4, "{}: {} ops", f.display(), h.ops.len());
    }
}

#[test]
fn a_known_divergence_that_no_longer_diverges_fails() {
    // The bad input: a known-divergences entry whose two histories are the same order.
    let tmp = tempfile::tempdir().unwrap();
    let a = fixtures().join("corpus/known-divergences/kvstore-write-time-winner-a.json");
    std::fs::copy(&a, tmp.path().join("a.json")).unwrap();
    let known = tmp.path().join("known.json");
    std::fs::write(
        &known,
        r#"{"format":"lattice-conform/known-divergences","format_version":2,"divergences":[{"id":"fixed","store_type":"core:kvstore","reason":"r","history_a":"a.json","history_b":"a.json","occurrences":[]}]}"#,
    )
    .unwrap();
    let out = run_in(
        fixtures(),
        ["verify", "--type", "core:kvstore", "--filter", "*single-author*", "--orders", "2", "--known", known.to_str().unwrap()],
    )
    .expect(1);
    assert!(out.stdout.contains("STALE known divergence `fixed`"), "{}", out.stdout);
}

#[test]
fn json_and_junit_reports_carry_the_convergence_verdicts() {
    let out =
        run_in(fixtures(), ["verify", "--type", "core:kvstore", "--filter", "*convergence-s1-00*", "--orders", "8", "--format", "json"])
            .expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let c = &report["convergence"];
    assert_eq!((c["orders"].as_u64(), c["seed"].as_u64()), (Some(8), Some(0)));
    let verdicts: Vec<&str> = c["histories"].as_array().unwrap().iter().map(|h| h["verdict"].as_str().unwrap()).collect();
    assert!(verdicts.contains(&"known") && verdicts.contains(&"converges"), "{verdicts:?}");
    let known = c["histories"].as_array().unwrap().iter().find(|h| h["verdict"] == "known").unwrap();
    assert!(!known["order_a"].as_array().unwrap().is_empty() && !known["reads"].as_array().unwrap().is_empty(), "{known}");
    let xml =
        run_in(fixtures(), ["verify", "--type", "core:kvstore", "--filter", "*convergence-s1-00*", "--orders", "8", "--format", "junit"])
            .expect(0)
            .stdout;
    assert!(xml.contains("<testsuite name=\"convergence (8 orders, seed 0)\""), "{xml}");
    assert!(xml.contains("<skipped message=\"known: kvstore-write-time-winner\"/>"), "{xml}");
}

#[test]
fn certify_with_orders_compares_reordered_histories_and_catches_a_read_only_change() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.json");
    let counterexample = tmp.path().join("counterexample.json");
    let small = root().join("guests/dist/core-kvstore-small.wasm");
    let (cert_s, small_s, cx_s) = (cert.to_str().unwrap(), small.to_str().unwrap(), counterexample.to_str().unwrap());
    let base = [
        "certify",
        "--type",
        "core:kvstore",
        "--baseline",
        "native",
        "--cases",
        "0",
        "--orders",
        "2",
        "--out",
        cert_s,
        "--counterexample",
        cx_s,
    ];
    run_in(fixtures(), base.iter().copied().chain(["--candidate", small_s])).expect(0);
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    let corpus_histories = c["corpora"][0]["histories"].as_u64().unwrap();
    assert_eq!((c["orders"].as_u64(), c["histories"].as_u64()), (Some(2), Some(3 * corpus_histories)), "{c}");
    run_in(fixtures(), ["certify", "--check", cert_s]).expect(0);
    // The certificate exists now: replacing it (here: with no certificate, on divergence) needs --force.
    let refused = run_in(fixtures(), base.iter().copied().chain(["--candidate", "native-fault:read-flips-conflicted"])).expect(2);
    assert!(refused.stderr.contains("cert.json: already exists; pass --force"), "{}", refused.stderr);
    let out = run_in(fixtures(), base.iter().copied().chain(["--candidate", "native-fault:read-flips-conflicted", "--force"])).expect(1);
    assert!(counterexample.exists(), "the counterexample is written where --counterexample says");
    assert!(out.stdout.contains("read diff"), "{}", out.stdout);
}

/// A copy of the committed known-divergences file (and its counterexamples) in a temp dir, with
/// its entry's occurrences replaced by `occurrences` (JSON).
fn known_copy(tmp: &Path, occurrences: serde_json::Value) -> std::path::PathBuf {
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("corpus/known-divergences.json")).unwrap()).unwrap();
    let mut file = committed.clone();
    file["divergences"][0]["occurrences"] = occurrences;
    std::fs::create_dir_all(tmp.join("known-divergences")).unwrap();
    for side in ["a", "b"] {
        let name = format!("known-divergences/kvstore-write-time-winner-{side}.json");
        std::fs::copy(fixtures().join("corpus").join(&name), tmp.join(&name)).unwrap();
    }
    let path = tmp.join("known.json");
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    path
}

/// The histories of the committed known divergence's occurrences (a debug build replays the whole
/// kvstore corpus in 16 orders slowly).
const RECORDED: &str = "core:kvstore/{convergence-s1-00[01],witness-order-race,batch-write-time-winner-[ab]}";

fn committed_occurrences() -> serde_json::Value {
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("corpus/known-divergences.json")).unwrap()).unwrap();
    committed["divergences"][0]["occurrences"].clone()
}

#[test]
fn known_divergences_are_matched_by_their_recorded_occurrences_and_record_known_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cx = tmp.path().join("cx");
    // The bad input: the right entry with no occurrences — every kvstore divergence is unknown.
    let known = known_copy(tmp.path(), serde_json::json!([]));
    let args = |extra: &[&str]| {
        let mut a = vec!["verify", "--filter", RECORDED, "--orders", "16", "--known", known.to_str().unwrap()];
        a.extend(["--counterexamples", cx.to_str().unwrap()]);
        a.extend(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let out = run_in(fixtures(), args(&[])).expect(1);
    let recorded = committed_occurrences();
    let n = recorded.as_array().unwrap().len();
    assert!(n >= 2, "{recorded}");
    assert!(out.stdout.contains(&format!("0 known divergences, {n} unknown divergences")), "{}", out.stdout);
    // Recording them: the file gets exactly the committed occurrences, and the run passes.
    let out = run_in(fixtures(), args(&["--record-known", "kvstore-write-time-winner"])).expect(0);
    assert!(
        out.stderr.contains(&format!("recorded {n} occurrence(s) of known divergence `kvstore-write-time-winner` (seed 0)")),
        "{}",
        out.stderr
    );
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&known).unwrap()).unwrap();
    assert_eq!(written["format_version"], 2);
    assert_eq!(written["divergences"][0]["occurrences"], recorded);
    run_in(fixtures(), args(&[])).expect(0);
    // An unknown entry id is refused before anything runs, the file untouched.
    let before = std::fs::read(&known).unwrap();
    let out = run_in(fixtures(), args(&["--record-known", "nope"])).expect(2);
    assert!(out.stderr.contains("has no entry `nope`"), "{}", out.stderr);
    assert_eq!(std::fs::read(&known).unwrap(), before);
}

#[test]
fn a_divergence_that_differs_from_its_recorded_occurrence_or_a_missing_one_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let cx = tmp.path().join("cx");
    let mut occ = committed_occurrences();
    // The bad inputs: one occurrence's observed hash changed (the build diverges differently), and
    // an occurrence on a history that converges (a divergence that went away).
    let changed = occ[0]["history"].as_str().unwrap().to_string();
    occ[0]["observed_order"] = serde_json::json!("00".repeat(32));
    occ.as_array_mut().unwrap().push(serde_json::json!({
        "history": "core:kvstore/single-author-s1-000", "order_seed": 0, "order": 0,
        "observed_own": "11".repeat(32), "observed_order": "22".repeat(32)
    }));
    let known = known_copy(tmp.path(), occ);
    let out = run_in(
        fixtures(),
        [
            "verify",
            "--type",
            "core:kvstore",
            "--orders",
            "16",
            "--known",
            known.to_str().unwrap(),
            "--counterexamples",
            cx.to_str().unwrap(),
        ],
    )
    .expect(1);
    assert!(out.stdout.contains(&format!("DIVERGES {changed}")), "{}", out.stdout);
    assert!(out.stdout.contains("not a recorded occurrence: known divergence `kvstore-write-time-winner` records order"), "{}", out.stdout);
    assert!(
        out.stdout.contains("STALE known divergence `kvstore-write-time-winner (core:kvstore/single-author-s1-000, order 0, seed 0)`"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_build_with_a_new_kvstore_order_dependence_fails_verify_orders() {
    // `kv-compare-last-head` picks the winner against the latest head: which head is latest
    // depends on arrival order, on histories where the reference does not.
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(
        fixtures(),
        [
            "verify",
            "--filter",
            "core:kvstore/convergence-*",
            "--build",
            "native-fault:kv-compare-last-head",
            "--orders",
            "16",
            "--keep-going",
            "--format",
            "json",
            "--counterexamples",
            tmp.path().to_str().unwrap(),
        ],
    )
    .expect(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let verdicts = report["convergence"]["histories"].as_array().unwrap();
    let unknown: Vec<&str> = verdicts.iter().filter(|v| v["verdict"] == "diverges").map(|v| v["id"].as_str().unwrap()).collect();
    assert!(!unknown.is_empty(), "no unknown divergence: {verdicts:?}");
    for v in verdicts.iter().filter(|v| v["verdict"] == "diverges") {
        assert!(v["order"].is_u64() && v["observed_own"].is_string() && v["observed_order"].is_string(), "{v}");
    }
}

#[test]
fn a_version_1_known_divergences_file_is_refused_with_how_to_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let known = tmp.path().join("known.json");
    std::fs::write(&known, r#"{"format":"lattice-conform/known-divergences","format_version":1,"divergences":[]}"#).unwrap();
    let out = run_in(
        fixtures(),
        ["verify", "--type", "core:kvstore", "--filter", "*single-author*", "--orders", "2", "--known", known.to_str().unwrap()],
    )
    .expect(2);
    assert!(out.stderr.contains("matched divergences by store type only") && out.stderr.contains("--record-known"), "{}", out.stderr);
}
