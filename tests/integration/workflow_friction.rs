//! Issue #16, "Friction", through the real binary: `--json` of `migrate`, `audit`, `certify`,
//! `certify --check` and `open --verify-history` is pure JSON on standard output; `certify --check`
//! finds moved builds relative to the certificate or by digest in the Wasm cache, exits 2 for a
//! missing input and 1 naming what changed; `cas:` takes a unique prefix; `migrate --dry-run`
//! needs no DST; the migration summary accounts for every source key; a `--verify-history`
//! refusal blames the build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lattice_conform::history::History;
use lattice_conform::op::{op_id, Hlc, Op, ZERO_HASH};
use lattice_logic::kvstore as kv;
use serde_json::Value;
use uuid::Uuid;

use crate::util::{example_store, fixtures, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guest(name: &str) -> PathBuf {
    root().join("guests/dist").join(format!("{name}.wasm"))
}

/// Runs the binary in `cwd` with `LATTICE_WASM_CACHE` set to `cache` (or unset).
fn run_at<S: AsRef<OsStr>>(cwd: &Path, cache: Option<&Path>, args: &[S]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lattice-conform"));
    cmd.current_dir(cwd).args(args).env_remove("LATTICE_WASM_CACHE");
    if let Some(c) = cache {
        cmd.env("LATTICE_WASM_CACHE", c);
    }
    let out = cmd.output().expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    run_at(Path::new("."), None, args)
}

/// Standard output parsed as exactly one JSON value (anything else on it fails the parse).
fn json(out: &Run) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not pure JSON ({e}):\n{}\nstderr:\n{}", out.stdout, out.stderr))
}

fn digest(file: &Path) -> String {
    blake3::hash(&std::fs::read(file).unwrap()).to_hex().to_string()
}

/// A small corpus of generated `core:kvstore` histories at `dir`.
fn small_corpus(dir: &Path) {
    let d = dir.display().to_string();
    run(&["gen", "--type", "core:kvstore", "--histories", "3", "--ops", "20", "--out", &d]).expect(0);
}

#[test]
fn certify_check_finds_moved_builds_beside_the_certificate_or_in_the_cache_and_names_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let corpus = t.join("corpus");
    small_corpus(&corpus);
    let bundle = t.join("bundle");
    let work = t.join("work");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(guest("core-kvstore"), bundle.join("cand.wasm")).unwrap();
    // Certify from `work`, with the builds and the certificate in `bundle`.
    let c = corpus.display().to_string();
    let args = [
        "certify",
        "--type",
        "core:kvstore",
        "--baseline",
        "native",
        "--candidate",
        "../bundle/cand.wasm",
        "--bundled",
        &c,
        "--cases",
        "2",
        "--out",
        "../bundle/cert.json",
        "--json",
    ];
    let made = run_at(&work, None, &args).expect(0);
    let v = json(&made);
    assert_eq!((v["format"].as_str(), v["format_version"].as_u64()), (Some("lattice-conform/certify-result"), Some(1)));
    assert_eq!((v["verdict"].as_str(), v["certificate"].as_str()), (Some("equivalent"), Some("../bundle/cert.json")));
    assert_eq!(v["candidate"].as_str(), Some("cand.wasm"), "recorded relative to the certificate");
    assert!(v["histories"].as_u64().unwrap() >= 3 && v["counterexample"].is_null(), "{v}");
    let cert: Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("cert.json")).unwrap()).unwrap();
    assert_eq!((cert["format_version"].as_u64(), cert["candidate"]["build"].as_str()), (Some(3), Some("cand.wasm")));
    assert_eq!(cert["corpora"][0]["path"].as_str(), Some("../corpus"), "recorded relative to the certificate");

    // Move the certificate, its build and its corpus elsewhere, keeping their relative places;
    // check from a third directory.
    let moved = t.join("elsewhere/deeper");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&bundle, &moved).unwrap();
    let corpus = t.join("elsewhere/corpus");
    std::fs::rename(t.join("corpus"), &corpus).unwrap();
    let c = corpus.display().to_string();
    let cert_path = moved.join("cert.json");
    let cp = cert_path.display().to_string();
    let check = |cache: Option<&Path>| run_at(t, cache, &["certify", "--check", &cp, "--json"]);
    let ok = check(None).expect(0);
    let v = json(&ok);
    assert_eq!((v["format"].as_str(), v["holds"].as_bool()), (Some("lattice-conform/certificate-check"), Some(true)));
    assert_eq!(v["changes"], serde_json::json!([]));
    assert_eq!(v["inputs"][1]["found"].as_str(), Some(moved.join("cand.wasm").display().to_string().as_str()), "{v}");
    assert!(run_at(t, None, &["certify", "--check", &cp]).expect(0).stdout.contains("still holds"));

    // The build deleted: exit 2, naming it and where it was looked for; nothing on stdout.
    let cand_digest = digest(&moved.join("cand.wasm"));
    let cache = t.join("cache");
    let cd = cache.display().to_string();
    let cand = moved.join("cand.wasm").display().to_string();
    run(&["wasm", "add", &cand, "--cache", &cd]).expect(0);
    std::fs::remove_file(moved.join("cand.wasm")).unwrap();
    let gone = check(None).expect(2);
    assert!(gone.stdout.is_empty(), "{}", gone.stdout);
    assert!(
        gone.stderr.contains("candidate build `cand.wasm` cannot be found")
            && gone.stderr.contains(&moved.join("cand.wasm").display().to_string())
            && gone.stderr.contains("LATTICE_WASM_CACHE"),
        "{}",
        gone.stderr
    );
    // … but the cache holds the same bytes: found by digest, still holds.
    let v = json(&check(Some(&cache)).expect(0));
    assert!(v["inputs"][1]["found"].as_str().unwrap().starts_with("Wasm cache "), "{v}");
    assert!(v["inputs"][1]["found"].as_str().unwrap().contains(&cand_digest), "{v}");
    // An empty cache: exit 2 naming the cache looked in.
    let empty = t.join("empty-cache");
    let out = check(Some(&empty)).expect(2);
    assert!(out.stderr.contains(&format!("in the Wasm cache {} (no blob of digest {cand_digest})", empty.display())), "{}", out.stderr);

    // Another build in its place: exit 1, the change named in words, not a line diff.
    std::fs::copy(guest("core-kvstore-small"), moved.join("cand.wasm")).unwrap();
    let new_digest = digest(&moved.join("cand.wasm"));
    assert_ne!(new_digest, cand_digest);
    let changed = check(Some(&cache)).expect(1);
    let v = json(&changed);
    let want = format!("candidate build digest changed: {cand_digest} -> {new_digest}");
    assert_eq!((v["holds"].as_bool(), v["changes"][0].as_str()), (Some(false), Some(want.as_str())), "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "only the candidate changed: {v}");
    let human = run_at(t, None, &["certify", "--check", &cp]).expect(1);
    assert!(human.stderr.contains(&want) && !human.stderr.contains("line "), "{}", human.stderr);

    // The corpus changed: named as such.
    std::fs::copy(guest("core-kvstore"), moved.join("cand.wasm")).unwrap();
    let manifest = corpus.join("MANIFEST.json");
    let old_manifest = digest(&manifest);
    run(&["gen", "--type", "core:kvstore", "--histories", "4", "--ops", "20", "--out", &c]).expect(0);
    let v = json(&check(None).expect(1));
    let want = format!("corpus manifest digest changed: ../corpus: {old_manifest} -> {}", digest(&manifest));
    assert_eq!(v["changes"][0].as_str(), Some(want.as_str()), "{v}");
}

#[test]
fn certify_json_reports_a_divergence_as_pure_json() {
    let tmp = tempfile::tempdir().unwrap();
    let faulty = guest("core-kvstore-forget-one-head").display().to_string();
    let corpus = fixtures().join("corpus").display().to_string();
    let args = [
        "certify",
        "--type",
        "core:kvstore",
        "--baseline",
        "native",
        "--candidate",
        &faulty,
        "--bundled",
        &corpus,
        "--cases",
        "0",
        "--json",
    ];
    let out = run_at(tmp.path(), None, &args).expect(1);
    let v = json(&out);
    assert_eq!(v["verdict"].as_str(), Some("diverged"));
    assert_eq!(v["counterexample"].as_str(), Some("certify-counterexample.json"));
    let history = History::load(&tmp.path().join("certify-counterexample.json")).unwrap();
    assert_eq!(v["counterexample_ops"].as_u64(), Some(history.ops.len() as u64));
    assert_eq!(v["divergent_op"].as_u64(), Some(history.ops.len() as u64 - 1), "the counterexample diverges at its last op");
    assert!(v["certificate"].is_null() && v["histories"].is_null(), "{v}");
    assert!(out.stderr.contains("first divergent op: #"), "the divergence text goes to stderr: {}", out.stderr);
}

#[test]
fn cas_builds_take_a_unique_prefix_and_name_ambiguous_or_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let store = example_store(t);
    let cache = t.join("cache");
    let (cd, sd) = (cache.display().to_string(), store.display().to_string());
    let g = guest("core-kvstore").display().to_string();
    run(&["wasm", "add", &g, "--cache", &cd]).expect(0);
    let full = digest(&guest("core-kvstore"));
    let open = |build: &str| run_at(t, Some(&cache), &["open", &sd, "--verify-history", "--build", build, "--json"]);
    // Unique: 8 digits are enough (uppercase too); the store opens, stdout is the open JSON.
    let v = json(&open(&format!("cas:{}", &full[..8])).expect(0));
    assert_eq!(v["store_type"].as_str(), Some("core:kvstore"));
    json(&open(&format!("cas:{}", full[..12].to_uppercase())).expect(0));
    // Too short.
    let short = open(&format!("cas:{}", &full[..7])).expect(2);
    assert!(short.stderr.contains("a digest prefix needs at least 8 hex digits (it has 7)"), "{}", short.stderr);
    // No match.
    let other = if full.starts_with('0') { "11111111" } else { "00000000" };
    let none = open(&format!("cas:{other}")).expect(2);
    assert!(none.stderr.contains(&format!("no module in the Wasm cache {cd} has a digest starting with `{other}`")), "{}", none.stderr);
    // Ambiguous: a second blob whose name shares the first 8 digits (two real modules with
    // equal 8-digit prefixes would take ~2^32 tries to make), so both are candidates.
    let ninth = if full.as_bytes()[8] == b'0' { "1" } else { "0" };
    let twin = format!("{}{}", &full[..8], ninth.repeat(56));
    std::fs::write(cache.join("blobs").join(format!("{twin}.wasm")), b"not looked at").unwrap();
    let amb = open(&format!("cas:{}", &full[..8])).expect(2);
    assert!(amb.stderr.contains("ambiguous, 2 modules") && amb.stderr.contains(&full) && amb.stderr.contains(&twin), "{}", amb.stderr);
    // More digits pick one again.
    json(&open(&format!("cas:{}", &full[..9])).expect(0));
}

/// A `core:kvstore` store whose keys are: `a` and `b` deleted (tombstones), `c` written
/// concurrently by two authors (conflicted) — 3 source keys, 1 live.
fn store_with_deletes(tmp: &Path) -> PathBuf {
    let id = Uuid::from_u128(0x16);
    let put = |k: &str, v: &str| kv::Entry::Put { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() };
    let del = |k: &str| kv::Entry::Delete { key: k.as_bytes().to_vec() };
    let first = Op {
        author: [1; 32],
        hlc: Hlc { wall_ms: 1, counter: 0 },
        prev: ZERO_HASH,
        causal_deps: vec![],
        payload: kv::encode_payload(&[put("a", "1"), put("b", "2"), put("c", "3")]),
    };
    let first_id = op_id(&id, &first);
    let deletes = Op {
        hlc: Hlc { wall_ms: 2, counter: 0 },
        prev: first_id,
        causal_deps: vec![first_id],
        payload: kv::encode_payload(&[del("a"), del("b")]),
        ..first.clone()
    };
    let concurrent = Op {
        author: [2; 32],
        hlc: Hlc { wall_ms: 3, counter: 0 },
        prev: ZERO_HASH,
        causal_deps: vec![],
        payload: kv::encode_payload(&[put("c", "4")]),
    };
    let h = History {
        store_id: id,
        store_type: kv::STORE_TYPE.into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: vec![first, deletes, concurrent],
    };
    let file = tmp.join("deletes.json");
    std::fs::write(&file, h.to_json()).unwrap();
    let dir = tmp.join("with-deletes");
    run(&[OsStr::new("apply"), dir.as_os_str(), file.as_os_str(), OsStr::new("--create")]).expect(0);
    dir
}

#[test]
fn migrate_dry_run_needs_no_destination_and_its_summary_accounts_for_every_source_key() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = store_with_deletes(t);
    let s = src.display().to_string();
    let human = run(&["migrate", &s, "--to-type", "core:kvstore-v2", "--dry-run"]).expect(0);
    assert!(
        human.stdout.contains(
            "keys: 1 of 3 source keys migrated (1 conflicted, kept with their conflict count); 2 tombstones (deleted keys) dropped; 0 unreadable rows dropped"
        ),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("1 live key compared, each reads the same")
            && human.stdout.contains("(2 tombstones dropped, 0 unreadable rows dropped)"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("in 1 op;") && human.stdout.ends_with("dry run: nothing was written\n"), "{}", human.stdout);
    let names: Vec<String> = std::fs::read_dir(t).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "only the source and its history: {names:?}");

    let out = run(&["migrate", &s, "--to-type", "core:kvstore-v2", "--dry-run", "--json"]).expect(0);
    let v = json(&out);
    assert_eq!((v["format"].as_str(), v["format_version"].as_u64()), (Some("lattice-conform/migrate-result"), Some(1)));
    let k = &v["keys"];
    let n = |f: &str| k[f].as_u64().unwrap();
    assert_eq!((n("source_keys"), n("migrated"), n("conflicted"), n("tombstones_dropped"), n("unreadable_dropped")), (3, 1, 1, 2, 0));
    assert_eq!(n("source_keys"), n("migrated") + n("tombstones_dropped") + n("unreadable_dropped"), "the numbers add up");
    // The documented field order, in the text itself (a parsed object forgets it).
    let at = |f: &str| out.stdout.find(&format!("\"{f}\":")).unwrap_or_else(|| panic!("{f} missing"));
    let order = ["format", "format_version", "source", "target", "target_state_hash", "ops", "keys", "source_keys", "migrated"];
    let order = order.iter().chain(&["conflicted", "tombstones_dropped", "unreadable_dropped", "destination", "checks", "passed"]);
    let positions: Vec<usize> = order.map(|f| at(f)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "fields out of the documented order:\n{}", out.stdout);
    assert!(v["destination"].is_null() && v["passed"].as_bool() == Some(true), "{v}");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 5);
    assert!(checks.iter().all(|c| c["ok"].as_bool() == Some(true)), "{v}");
    assert!(checks[2]["detail"].as_str().unwrap().starts_with("1 live key compared"), "{v}");

    // Without --dry-run a DST is required: a usage error.
    let usage = run(&["migrate", &s, "--to-type", "core:kvstore-v2"]).expect(2);
    assert!(usage.stderr.contains("<DST>"), "{}", usage.stderr);
    assert!(!t.join("dst").exists());

    // A real migration, as JSON; then audit the target, as JSON.
    let dst = t.join("dst").display().to_string();
    let v = json(&run(&["migrate", &s, &dst, "--to-type", "core:kvstore-v2", "--json"]).expect(0));
    assert_eq!((v["destination"].as_str(), v["checks"].is_null(), v["ops"].as_u64()), (Some(dst.as_str()), true, Some(1)));
    assert_eq!(v["target"]["store_type"].as_str(), Some("core:kvstore-v2"));
    let v = json(&run(&["audit", &dst, "--json"]).expect(0));
    assert_eq!(
        (v["format"].as_str(), v["clean"].as_bool(), v["findings"].as_array().map(Vec::len)),
        (Some("lattice-conform/audit"), Some(true), Some(0))
    );
    let v = json(&run(&["migrate", "--list", "--json"]).expect(0));
    assert_eq!(v["migrations"][0]["target_type"].as_str(), Some("core:kvstore-v2"));
}

#[test]
fn audit_json_lists_the_findings_of_a_swapped_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    crate::util::tamper_str_table(&dir.join("state.db"), "meta", "store_type", Some(b"core:kvstore-v2"));
    let d = dir.display().to_string();
    let out = run(&["audit", &d, "--json"]).expect(1);
    let v = json(&out);
    assert_eq!(v["clean"].as_bool(), Some(false));
    let findings = v["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f.as_str().unwrap().contains("the type was changed in place")), "{v}");
    assert!(out.stderr.contains("finding(s): the store does not match its history"), "{}", out.stderr);
}

#[test]
fn verify_history_json_is_pure_and_a_refusal_blames_the_build_not_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let history = fixtures().join("corpus/core__kvstore/concurrent-writers-s1-001.json");
    run(&[OsStr::new("apply"), dir.as_os_str(), history.as_os_str(), OsStr::new("--create")]).expect(0);
    let d = dir.display().to_string();
    let faulty = guest("core-kvstore-forget-one-head").display().to_string();
    let refused = run(&["open", &d, "--verify-history", "--build", &faulty, "--json"]).expect(1);
    let v = json(&refused);
    assert_eq!((v["format"].as_str(), v["reproduces"].as_bool()), (Some("lattice-conform/history-refusal"), Some(false)));
    assert_eq!(v["build"].as_str(), Some(faulty.as_str()));
    assert_ne!(v["stored_state_hash"], v["replayed_state_hash"]);
    assert!(v["divergence"]["op_index"].is_u64(), "{v}");
    assert!(refused.stderr.contains(&format!("build {faulty} does not reproduce this store's history")), "{}", refused.stderr);
    assert!(!refused.stderr.contains("corrupt"), "the store is not corrupt: {}", refused.stderr);
    let human = run(&["open", &d, "--verify-history", "--build", &faulty]).expect(1);
    assert!(!human.stderr.contains("corrupt") && human.stdout.contains("first divergent op: #"), "{}{}", human.stdout, human.stderr);
    // Passing: the open JSON alone.
    let v = json(&run(&["open", &d, "--verify-history", "--json"]).expect(0));
    assert_eq!(v["store_type"].as_str(), Some("core:kvstore"));
}

#[test]
fn a_version_1_certificate_is_still_checked_with_its_build_relative_to_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let corpus = t.join("corpus");
    small_corpus(&corpus);
    std::fs::create_dir_all(t.join("bundle")).unwrap();
    std::fs::create_dir_all(t.join("certs")).unwrap();
    std::fs::copy(guest("core-kvstore"), t.join("bundle/cand.wasm")).unwrap();
    let c = corpus.display().to_string();
    let args = ["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "bundle/cand.wasm", "--bundled", &c];
    let args: Vec<&str> = args.into_iter().chain(["--cases", "1", "--out", "certs/cert.json"]).collect();
    run_at(t, None, &args).expect(0);
    let text = std::fs::read_to_string(t.join("certs/cert.json")).unwrap();
    assert!(text.contains("\"build\": \"../bundle/cand.wasm\""), "{text}");
    // What version 1 wrote: the same fields, the path as given (relative to the working directory).
    let v1 = text
        .replace("\"format_version\": 3", "\"format_version\": 1")
        .replace("../bundle/cand.wasm", "bundle/cand.wasm")
        .replace("\"path\": \"../corpus\"", &format!("\"path\": \"{c}\""));
    assert!(v1.contains("\"format_version\": 1") && v1.contains(&c), "{v1}");
    std::fs::write(t.join("certs/cert.json"), &v1).unwrap();
    let v = json(&run_at(t, None, &["certify", "--check", "certs/cert.json", "--json"]).expect(0));
    assert_eq!(v["inputs"][1]["found"].as_str(), Some("bundle/cand.wasm"), "{v}");
    // From elsewhere the version-1 path does not resolve: exit 2, both places named.
    let gone = run_at(&t.join("certs"), None, &["certify", "--check", "cert.json"]).expect(2);
    assert!(gone.stderr.contains("cannot be found: looked at bundle/cand.wasm; in no Wasm cache"), "{}", gone.stderr);
}
