//! Outside builds (`--build exec:…`, docs/BUILD_PROTOCOL.md) end to end through the real binary:
//! the reference adapter (`serve-build`) passes the corpus and certifies against `native`; every
//! served fault fails exactly where the in-process fault build fails; a nondeterministic build is
//! caught by `--repeat`; bad builds (hang, crash, garbage, wrong version) are verdicts, not hangs
//! or passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lattice_conform::fault::{Layer, CATALOGUE};

use crate::util::{fixtures, run, run_in};

/// A build file at `dir/<name>.json` running `serve-build ARGS…` of this binary.
fn build_file(dir: &Path, name: &str, args: &[&str], op_timeout_ms: u64) -> String {
    let mut all = vec!["serve-build"];
    all.extend_from_slice(args);
    let file = serde_json::json!({
        "format": "lattice-conform/exec-build",
        "format_version": 1,
        "program": env!("CARGO_BIN_EXE_lattice-conform"),
        "args": all,
        "limits": {"op_timeout_ms": op_timeout_ms, "history_timeout_s": 120},
    });
    let path: PathBuf = dir.join(format!("{name}.json"));
    std::fs::write(&path, file.to_string()).unwrap();
    format!("exec:{}", path.display())
}

/// Each failing history of a `verify --keep-going --format json` run: id → (first divergent op,
/// what the build did there, the failure summary without the build-specific tail).
type Failures = BTreeMap<String, (Option<u64>, Option<String>, String)>;

/// Over the histories `filter` selects (all: `None`), and the ids of those that passed.
fn failures_among(build: &str, store_type: Option<&str>, filter: Option<&str>) -> (Failures, Vec<String>) {
    let corpus = fixtures().join("corpus");
    let golden = fixtures().join("golden");
    let head = ["verify", "--keep-going", "--format", "json", "--build", build, "--corpus"];
    let mut args: Vec<&Path> = head.iter().map(Path::new).collect();
    args.extend([corpus.as_path(), Path::new("--golden"), golden.as_path()]);
    if let Some(t) = store_type {
        args.extend([Path::new("--type"), Path::new(t)]);
    }
    if let Some(f) = filter {
        args.extend([Path::new("--filter"), Path::new(f)]);
    }
    let out = run(args);
    assert!(out.code == 0 || out.code == 1, "{build}: exit {}\n{}", out.code, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let passed = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["failure"].is_null())
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let failed = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["failure"].is_null())
        .map(|r| {
            let d = &r["failure"]["divergence"];
            let summary = r["failure"]["summary"].as_str().unwrap().split("; the reference build agrees").next().unwrap().to_string();
            (r["id"].as_str().unwrap().to_string(), (d["op_index"].as_u64(), d["candidate"].as_str().map(String::from), summary))
        })
        .collect();
    (failed, passed)
}

#[test]
fn the_reference_adapter_passes_the_whole_corpus_and_reports_what_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build_file(tmp.path(), "ref", &[], 10_000);
    let out = run_in(fixtures(), ["verify", "--build", &b, "--format", "json"]).expect(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let native: serde_json::Value = serde_json::from_str(&run_in(fixtures(), ["verify", "--format", "json"]).expect(0).stdout).unwrap();
    let ran = report["results"].as_array().unwrap().len();
    assert_eq!(ran, native["results"].as_array().unwrap().len(), "every history of every type ran");
    assert!(ran > 150);
    assert!(report["build_identity"].as_str().unwrap().contains("program blake3 "), "{}", report["build_identity"]);
}

/// Bad input tried: each fault of the catalogue a replica can carry (delivery, projection, apply
/// and read rules), served over the protocol.
#[test]
fn every_served_fault_fails_on_the_same_histories_at_the_same_ops_as_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    // Arrival numbering is the host's over the protocol (a_hash_fault_cannot_be_served_and_says_why).
    let served: Vec<_> = CATALOGUE
        .iter()
        .filter(|f| matches!(f.layer, Layer::Delivery | Layer::Kernel | Layer::Apply | Layer::Read))
        .filter(|f| f.name != "arrival-counts-received")
        .collect();
    assert!(served.len() >= 30, "{}", served.len());
    for f in served {
        // A fault of one type's rules is run on that type's histories (others it cannot reach).
        let only = matches!(f.layer, Layer::Apply | Layer::Read).then_some(f.store_type);
        let (in_process, passed) = failures_among(&format!("native-fault:{}", f.name), only, None);
        assert!(!in_process.is_empty(), "{} fails some history in process", f.name);
        // Served, over every history it fails in process and 12 it passes (the served runs are
        // the slow half of this test): it must fail exactly those, at the same ops.
        let mut ids: Vec<&str> = in_process.keys().map(String::as_str).collect();
        ids.extend(passed.iter().step_by((passed.len() / 12).max(1)).take(12).map(String::as_str));
        let filter = format!("{{{}}}", ids.join(","));
        let b = build_file(tmp.path(), f.name, &["--build", &format!("native-fault:{}", f.name)], 10_000);
        let (served, served_passed) = failures_among(&b, only, Some(&filter));
        assert_eq!(served, in_process, "{} over the protocol", f.name);
        assert_eq!(served_passed.len(), ids.len() - in_process.len(), "{}: the sampled passing histories ran", f.name);
    }
}

#[test]
fn a_hash_fault_cannot_be_served_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let hash = CATALOGUE.iter().find(|f| f.layer == Layer::Hash).unwrap();
    let b = build_file(tmp.path(), "hash", &["--build", &format!("native-fault:{}", hash.name)], 10_000);
    let out = run_in(fixtures(), ["verify", "--build", &b, "--type", "core:kvstore", "--filter", "core:kvstore/lattice-*"]).expect(2);
    assert!(out.stderr.contains("cannot be served: over the protocol the host computes the hash"), "{}", out.stderr);
    // Nor one of arrival numbering: the host numbers the deliveries it makes.
    let b = build_file(tmp.path(), "arrival", &["--build", "native-fault:arrival-counts-received"], 10_000);
    let out = run_in(fixtures(), ["verify", "--build", &b, "--type", "core:kvstore", "--filter", "core:kvstore/lattice-*"]).expect(2);
    assert!(out.stderr.contains("cannot be served: over the protocol the host numbers the deliveries"), "{}", out.stderr);
}

#[test]
fn certify_native_against_the_adapter_certifies_and_a_faulty_adapter_gets_a_shrunk_counterexample() {
    let tmp = tempfile::tempdir().unwrap();
    let good = build_file(tmp.path(), "ref", &[], 10_000);
    let certify = |candidate: &str| {
        let corpus = fixtures().join("corpus");
        let args: Vec<std::ffi::OsString> = ["certify", "--type", "core:kvstore", "--baseline", "native", "--cases", "8", "--bundled"]
            .iter()
            .map(Into::into)
            .chain([corpus.into_os_string(), "--candidate".into(), candidate.into()])
            .collect();
        run_in(tmp.path(), args)
    };
    let out = certify(&good).expect(0);
    assert!(out.stdout.starts_with("equivalent on "), "{}", out.stdout);
    let cert: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("certificate.json")).unwrap()).unwrap();
    let exe = std::fs::read(env!("CARGO_BIN_EXE_lattice-conform")).unwrap();
    assert_eq!(cert["candidate"]["blake3"].as_str().unwrap(), blake3::hash(&exe).to_hex().as_str(), "bound to the program's digest");
    std::fs::remove_file(tmp.path().join("certificate.json")).unwrap();
    let bad = build_file(tmp.path(), "bad", &["--build", "native-fault:forget-one-head"], 10_000);
    let out = certify(&bad).expect(1);
    let cx = lattice_conform::history::History::load(&tmp.path().join("certify-counterexample.json")).unwrap();
    assert!(cx.ops.len() <= 3, "shrunk to {} ops", cx.ops.len());
    assert!(out.stdout.contains("first divergent op: #"), "{}", out.stdout);
}

#[test]
fn repeat_catches_a_build_whose_runs_differ_and_names_the_first_differing_op() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("counter");
    let b = build_file(tmp.path(), "alt", &["--misbehave", &format!("alternate:{}", counter.display())], 10_000);
    let args = ["verify", "--build", &b, "--type", "core:kvstore", "--filter", "core:kvstore/out-of-order-s1-011", "--repeat", "3"];
    let out = run_in(fixtures(), args).expect(1);
    assert!(out.stdout.contains("nondeterministic build: run 1 and run 2 of 3 differ"), "{}", out.stdout);
    assert!(out.stdout.contains("first differing op 10 (witnessed 2, applied 2 vs witnessed 1, applied 1)"), "{}", out.stdout);
    // The reference adapter is deterministic: three runs agree.
    let good = build_file(tmp.path(), "ref", &[], 10_000);
    run_in(fixtures(), ["verify", "--build", &good, "--type", "core:kvstore", "--filter", "core:kvstore/out-of-order-*", "--repeat", "3"])
        .expect(0);
}

/// Bad inputs tried: a build that hangs, one that crashes, one that prints garbage, one that
/// speaks another protocol version, one that floods stderr (which must still pass), one that
/// stores rows it does not report (a lying build), and a program that exits at once. Each is a verdict within its bound, never a pass.
#[test]
fn misbehaving_builds_get_a_verdict_naming_the_history_and_the_ops_within_their_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let filter = ["--type", "core:kvstore", "--filter", "core:kvstore/out-of-order-s1-011"];
    let cases: [(&str, &[&str], i32, &[&str]); 7] = [
        (
            "hang",
            &["--misbehave", "hang-at:70"],
            2,
            &["history `core:kvstore/out-of-order-s1-011`", "delivering ops 64 to 127", "did not answer within 6400 ms", "SIGKILL"],
        ),
        (
            "crash",
            &["--misbehave", "crash-at:70"],
            2,
            &["delivering ops 64 to 127", "exited (exit status: 3)", "crashing on purpose at op 70"],
        ),
        ("garbage", &["--misbehave", "garbage"], 2, &["not a protocol frame"]),
        ("v2", &["--misbehave", "version:2"], 2, &["speaks build protocol version 2; this host speaks version 1"]),
        ("flood", &["--misbehave", "stderr-flood:4000000"], 0, &[]),
        ("lie", &["--misbehave", "lie"], 2, &["broke the protocol", "its stored rows differ from the writes it reported: key "]),
        ("unknown-arg", &["--no-such-flag"], 2, &["it exited (exit status: 2)", "--no-such-flag"]),
    ];
    for (name, args, code, says) in cases {
        let b = build_file(tmp.path(), name, args, 100);
        let started = Instant::now();
        let mut all = vec!["verify", "--build", &b];
        all.extend(filter);
        let out = run_in(fixtures(), all).expect(code);
        assert!(started.elapsed() < Duration::from_secs(60), "{name} took {:?}", started.elapsed());
        for s in says {
            assert!(out.stderr.contains(s), "{name}: expected {s:?} in\n{}", out.stderr);
        }
    }
    let out = run_in(fixtures(), ["verify", "--build", "exec:/bin/true", "--type", "core:kvstore"]).expect(2);
    assert!(out.stderr.contains("it exited (exit status: 0)"), "{}", out.stderr);
}

/// Bad builds tried: one that delivers a batch's ops one by one (no batch ingest) and one that
/// forgets its store when it restarts. Both run cleanly and disagree: exit 1 on the histories
/// whose delivery plans batch and restart, naming the first divergent op.
#[test]
fn batches_and_restarts_in_histories_catch_builds_without_batch_ingest_or_persistence() {
    let tmp = tempfile::tempdir().unwrap();
    let each = build_file(tmp.path(), "each", &["--misbehave", "batch-as-each"], 10_000);
    let out = run_in(fixtures(), ["verify", "--build", &each, "--keep-going", "--filter", "*batch-write-time-winner-a"]).expect(1);
    assert!(out.stdout.contains("reference: batch of 3 (received, received, received): witnessed 3, applied 3"), "{}", out.stdout);
    let amnesia = build_file(tmp.path(), "amnesia", &["--misbehave", "amnesia"], 10_000);
    let out = run_in(fixtures(), ["verify", "--build", &amnesia, "--keep-going", "--filter", "*batch-restart-*"]).expect(1);
    assert!(
        out.stdout.contains("FAIL core:kvstore/batch-restart-kv") && out.stdout.contains("FAIL core:logstore/batch-restart-log"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("first divergent op: #3 "), "the op after the first restart\n{}", out.stdout);
    // The reference adapter passes the same histories, batches and restarts included.
    let good = build_file(tmp.path(), "ref", &[], 10_000);
    run_in(fixtures(), ["verify", "--build", &good, "--filter", "*batch-*"]).expect(0);
}

/// `verify --orders` drives any build through the replica seam: each seeded delivery order of each
/// history is a fresh store of the outside build, and the convergence verdicts (converges, known
/// or unknown divergence, skipped) are those of the same build in process.
#[test]
fn verify_orders_through_the_protocol_gives_the_in_process_convergence_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build_file(tmp.path(), "ref", &[], 10_000);
    let cx = tmp.path().join("cx");
    let convergence = |build: &str| {
        let args = ["verify", "--build", build, "--orders", "2", "--format", "json", "--filter", "*out-of-order*", "--counterexamples"];
        let out = run_in(fixtures(), args.iter().map(std::ffi::OsStr::new).chain([cx.as_os_str()])).expect(0);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["convergence"].clone()
    };
    let native = convergence("native");
    assert!(native["histories"].as_array().is_some_and(|h| h.len() >= 4), "{native}");
    assert_eq!(convergence(&b), native);
}
