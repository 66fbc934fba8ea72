//! Hot-fix certification, recorded histories, and `open --verify-history`, with the committed
//! Wasm guests as baseline-identical and behaviour-changing candidates.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use lattice_conform::history::History;

use crate::util::{fixtures, run, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guest(name: &str) -> PathBuf {
    root().join("guests/dist").join(format!("{name}.wasm"))
}

fn run_in(dir: &Path, args: &[&OsStr]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lattice-conform")).current_dir(dir).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn certify_args<'a>(bundled: &'a Path, candidate: &'a Path, cases: &'a str) -> Vec<&'a OsStr> {
    ["certify", "--type", "core:kvstore", "--baseline", "native", "--cases", cases, "--bundled"]
        .into_iter()
        .map(OsStr::new)
        .chain([bundled.as_os_str(), OsStr::new("--candidate"), candidate.as_os_str()])
        .collect()
}

#[test]
fn the_identical_guest_certifies_and_any_edit_to_certificate_or_candidate_breaks_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let candidate = tmp.path().join("candidate.wasm");
    std::fs::copy(guest("core-kvstore-small"), &candidate).unwrap();
    let corpus = fixtures().join("corpus");
    let out = run_in(tmp.path(), &certify_args(&corpus, &candidate, "20")).expect(0);
    assert!(out.stdout.starts_with("equivalent on "), "{}", out.stdout);
    let cert = tmp.path().join("certificate.json");
    let text = std::fs::read_to_string(&cert).unwrap();
    let refused = run_in(tmp.path(), &certify_args(&corpus, &candidate, "20")).expect(2);
    assert!(refused.stderr.contains("certificate.json: already exists; pass --force to replace it"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), text, "a refused certify leaves the certificate alone");
    let force: Vec<&OsStr> = certify_args(&corpus, &candidate, "20").into_iter().chain([OsStr::new("--force")]).collect();
    let again = run_in(tmp.path(), &force).expect(0);
    assert!(again.stdout.starts_with("equivalent"));
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), text, "same inputs, byte-identical certificate");
    let check = |dir: &Path| run_in(dir, &[OsStr::new("certify"), OsStr::new("--check"), cert.as_os_str()]);
    assert!(check(tmp.path()).expect(0).stdout.contains("still holds"));
    // One byte of the certificate: a digest hex digit.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let digest = v["candidate"]["blake3"].as_str().unwrap();
    let flipped = format!("{}{}", if digest.starts_with('0') { '1' } else { '0' }, &digest[1..]);
    std::fs::write(&cert, text.replace(digest, &flipped)).unwrap();
    let out = check(tmp.path()).expect(1);
    assert!(out.stderr.contains("no longer holds"), "{}", out.stderr);
    // One byte of the candidate module.
    std::fs::write(&cert, &text).unwrap();
    let mut bytes = std::fs::read(&candidate).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&candidate, bytes).unwrap();
    check(tmp.path()).expect(1);
}

#[test]
fn the_behaviour_changing_guest_is_rejected_with_a_small_counterexample_that_verify_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let faulty = guest("core-kvstore-forget-one-head");
    let out = run_in(tmp.path(), &certify_args(&fixtures().join("corpus"), &faulty, "20")).expect(1);
    let cx = tmp.path().join("certify-counterexample.json");
    let history = History::load(&cx).unwrap();
    assert!(history.ops.len() <= 3, "shrunk to {} ops; the bound is 3 (two concurrent puts and the merge)", history.ops.len());
    let reported: u64 = out.stdout.split("first divergent op: #").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    // Put the counterexample in a corpus with a golden from the native build, and verify the guest.
    let (corpus, golden) = (tmp.path().join("c"), tmp.path().join("g"));
    lattice_conform::corpus::add_history(&corpus, "counterexample", &history).unwrap();
    run_in(tmp.path(), &[OsStr::new("bless"), OsStr::new("--corpus"), corpus.as_os_str(), OsStr::new("--golden"), golden.as_os_str()])
        .expect(0);
    run_in(
        tmp.path(),
        &[
            OsStr::new("bless"),
            OsStr::new("--accept"),
            OsStr::new("--corpus"),
            corpus.as_os_str(),
            OsStr::new("--golden"),
            golden.as_os_str(),
        ],
    )
    .expect(0);
    let verify = [
        OsStr::new("verify"),
        OsStr::new("--corpus"),
        corpus.as_os_str(),
        OsStr::new("--golden"),
        golden.as_os_str(),
        OsStr::new("--build"),
        faulty.as_os_str(),
    ];
    let v = run_in(tmp.path(), &verify).expect(1);
    assert!(v.stdout.contains(&format!("first divergent op: #{reported} ")), "{}", v.stdout);
}

/// A store built by the baseline from a bundled history the faulty guest gets wrong.
fn baseline_store(tmp: &Path) -> PathBuf {
    let dir = tmp.join("store");
    let history = fixtures().join("corpus/core__kvstore/concurrent-writers-s1-001.json");
    run([OsStr::new("apply"), dir.as_os_str(), history.as_os_str(), OsStr::new("--create")]).expect(0);
    dir
}

#[test]
fn open_verify_history_refuses_a_changed_logic_and_accepts_an_identical_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = baseline_store(tmp.path());
    let open =
        |build: &Path| run([OsStr::new("open"), dir.as_os_str(), OsStr::new("--verify-history"), OsStr::new("--build"), build.as_os_str()]);
    let refused = open(&guest("core-kvstore-forget-one-head")).expect(1);
    assert!(
        refused.stderr.contains("does not reproduce this store's history") && refused.stdout.contains("first divergent op: #"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    let accepted = open(&guest("core-kvstore-small")).expect(0);
    assert!(accepted.stdout.contains("history verified"), "{}", accepted.stdout);
}

#[test]
fn record_then_verify_passes_a_stalled_store_records_and_a_corrupt_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = baseline_store(tmp.path());
    let (corpus, golden) = (tmp.path().join("c"), tmp.path().join("g"));
    let rec = [
        OsStr::new("record"),
        dir.as_os_str(),
        OsStr::new("--corpus"),
        corpus.as_os_str(),
        OsStr::new("--golden"),
        golden.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("prod-1"),
    ];
    run(rec).expect(0);
    // The recorded history's goldens are pending until reviewed.
    let dirs = [OsStr::new("--corpus"), corpus.as_os_str(), OsStr::new("--golden"), golden.as_os_str()];
    run([[OsStr::new("verify")].as_slice(), &dirs].concat()).expect(1);
    run([[OsStr::new("bless"), OsStr::new("--accept")].as_slice(), &dirs].concat()).expect(0);
    run([[OsStr::new("bless"), OsStr::new("--migrations"), OsStr::new("--accept")].as_slice(), &dirs].concat()).expect(0);
    run([OsStr::new("verify"), OsStr::new("--corpus"), corpus.as_os_str(), OsStr::new("--golden"), golden.as_os_str()]).expect(0);
    let out = tmp.path().join("h.json");
    // A stalled store's log holds every received op, the refused one included: it records as a
    // history that stalls at the same op.
    let stalled = crate::util::paused_store(tmp.path(), 1);
    run([OsStr::new("record"), stalled.as_os_str(), OsStr::new("--out"), out.as_os_str()]).expect(0);
    let h = lattice_conform::history::History::load(&out).unwrap();
    let replayed =
        lattice_conform::replay::replay(h.identity(), std::sync::Arc::new(lattice_conform::lattice_logic::kvstore::KvStore), &h.ops);
    assert_eq!(replayed.stall.map(|s| s.op_index), Some(1));
    std::fs::remove_file(&out).unwrap();
    crate::util::tamper_first_data_row(&dir.join("state.db"));
    let c = run([OsStr::new("record"), dir.as_os_str(), OsStr::new("--out"), out.as_os_str()]).expect(1);
    assert!(c.stderr.contains("corrupt"), "{}", c.stderr);
    assert!(!out.exists());
}

#[test]
fn record_refuses_names_that_leave_the_corpus_and_certify_copes_with_an_empty_recorded_history() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("empty");
    run([OsStr::new("create"), store.as_os_str(), OsStr::new("--type"), OsStr::new("core:kvstore")]).expect(0);
    let (corpus, golden) = (tmp.path().join("c"), tmp.path().join("g"));
    let rec = |name: &str| {
        run([
            OsStr::new("record"),
            store.as_os_str(),
            OsStr::new("--corpus"),
            corpus.as_os_str(),
            OsStr::new("--golden"),
            golden.as_os_str(),
            OsStr::new("--name"),
            OsStr::new(name),
        ])
    };
    let bad = rec("../escape").expect(2);
    assert!(bad.stderr.contains("history name \"../escape\""), "{}", bad.stderr);
    assert!(!tmp.path().join("escape.json").exists());
    rec("empty-store").expect(0);
    let args = ["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native", "--cases", "6", "--bundled"];
    let args: Vec<&OsStr> = args.into_iter().map(OsStr::new).chain([corpus.as_os_str()]).collect();
    let out = run_in(tmp.path(), &args).expect(0);
    assert!(out.stdout.starts_with("equivalent on 7 histories"), "{}", out.stdout);
}

/// `certify --corpus DIR` names the corpus, as in `verify`, and `--extra-corpus DIR` the corpora
/// replayed after it; the old `--bundled DIR` still names the corpus; and argument lists written
/// in the old sense of `--corpus` (an extra corpus after ./corpus) are refused with a hint
/// instead of certifying on other histories.
#[test]
fn certify_corpus_names_the_corpus_as_verify_does_and_old_extra_corpus_usage_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let gen = |dir: &str, seed: &str| {
        let a = ["gen", "--type", "core:kvstore", "--histories", "2", "--ops", "8", "--seed", seed, "--out", dir];
        run_in(t, &a.map(OsStr::new)).expect(0);
    };
    gen("main", "1");
    gen("recorded", "2");
    let certify = |cwd: &Path, extra: &[&str]| {
        let mut a = vec!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native", "--cases", "1", "--force"];
        a.extend(extra);
        run_in(cwd, &a.into_iter().map(OsStr::new).collect::<Vec<_>>())
    };
    let corpora = |cert: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(t.join(cert)).unwrap()).unwrap();
        v["corpora"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap().to_string()).collect()
    };
    // No ./corpus here: --corpus is the corpus, alone; --extra-corpus adds one after it.
    certify(t, &["--corpus", "main", "--out", "a.json"]).expect(0);
    assert_eq!(corpora("a.json"), ["main"]);
    certify(t, &["--corpus", "main", "--extra-corpus", "recorded", "--out", "b.json"]).expect(0);
    assert_eq!(corpora("b.json"), ["main", "recorded"]);
    // The former name of --corpus means what it always meant.
    certify(t, &["--bundled", "main", "--out", "c.json"]).expect(0);
    assert_eq!(corpora("c.json"), ["main"]);
    // The old sense: `--corpus A --corpus B` (./corpus, A, B), `--bundled M --corpus X` (M, X).
    let twice = certify(t, &["--corpus", "main", "--corpus", "recorded", "--out", "d.json"]).expect(2);
    assert!(twice.stderr.contains("write `--corpus corpus --extra-corpus main --extra-corpus recorded`"), "{}", twice.stderr);
    let both = certify(t, &["--bundled", "main", "--corpus", "recorded", "--out", "d.json"]).expect(2);
    assert!(both.stderr.contains("write `--corpus main --extra-corpus recorded`"), "{}", both.stderr);
    // With a ./corpus of its own, `--corpus recorded` alone used to mean ./corpus then recorded:
    // ambiguous, refused with both spellings; naming ./corpus itself, or adding --extra-corpus, is not.
    std::fs::rename(t.join("main"), t.join("corpus")).unwrap();
    let ambiguous = certify(t, &["--corpus", "recorded", "--out", "d.json"]).expect(2);
    assert!(ambiguous.stderr.contains("--corpus recorded: ambiguous here"), "{}", ambiguous.stderr);
    assert!(ambiguous.stderr.contains("`--corpus corpus --extra-corpus recorded`"), "{}", ambiguous.stderr);
    assert!(ambiguous.stderr.contains("`--bundled recorded` to replay recorded alone"), "{}", ambiguous.stderr);
    assert!(!t.join("d.json").exists(), "nothing certified");
    certify(t, &["--out", "e.json"]).expect(0);
    assert_eq!(corpora("e.json"), ["corpus"], "the default is ./corpus, as in verify");
    certify(t, &["--corpus", "corpus", "--extra-corpus", "recorded", "--out", "f.json"]).expect(0);
    assert_eq!(corpora("f.json"), ["corpus", "recorded"]);
    certify(t, &["--bundled", "recorded", "--out", "g.json"]).expect(0);
    assert_eq!(corpora("g.json"), ["recorded"]);
    run_in(t, &["certify", "--check", "f.json"].map(OsStr::new)).expect(0);
}
