//! The corpus, goldens and `verify` on the bundled fixtures and on edited copies of them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lattice_conform::corpus::{self, Manifest};
use lattice_conform::golden;
use lattice_conform::lattice_logic::kvstore::{self, KvStore};
use lattice_conform::registry::Registry;
use lattice_conform::replay::MemStore;
use lattice_conform::verify::{self, Report, VerifyOptions};

use crate::util::{copy_dir, fixtures, run, run_in};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the bundled corpus and goldens in a temp dir, to edit.
fn copy_fixtures() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["corpus", "golden"] {
        copy_dir(&fixtures().join(d), &tmp.path().join(d));
    }
    tmp
}

fn manifest() -> Manifest {
    Manifest::load(&fixtures().join("corpus"), false).unwrap()
}

fn entry_path(dir: &Path, scenario_prefix: &str) -> (String, PathBuf) {
    let m = Manifest::load(&dir.join("corpus"), false).unwrap();
    let e = m.files.iter().find(|e| e.name().starts_with(scenario_prefix)).unwrap();
    (e.id(), PathBuf::from(&e.path))
}

#[test]
fn the_bundled_corpus_covers_every_scenario_with_40_histories_per_type_in_under_20_mib() {
    let m = manifest();
    for ty in ["core:kvstore", "core:logstore"] {
        assert!(m.files.iter().filter(|e| e.store_type == ty).count() >= 40, "{ty}");
    }
    let cov = corpus::stats(&fixtures().join("corpus")).unwrap();
    for s in corpus::gen::scenarios() {
        assert!(cov.contains_key(&(s.store_type.to_string(), s.name.to_string())), "scenario {} not covered", s.name);
    }
    let bytes: u64 = m.files.iter().map(|e| std::fs::metadata(fixtures().join("corpus").join(&e.path)).unwrap().len()).sum();
    assert!(bytes <= 20 << 20, "{bytes} bytes");
}

/// Issue #33: a fixture added (or a golden blessed) in the working tree while the tests run must
/// not fail them. Every test reads one private copy of `corpus/` and `golden/`, made when the test
/// process first asks for it: outside the repository, whole (every listed history with its digest
/// and its golden), and where `run` runs the binary, so the commands' default `corpus` and `golden`
/// are the copy too. No test source reaches for the working tree's fixtures by another way.
#[test]
fn tests_read_a_private_copy_of_the_corpus_and_goldens_never_the_working_tree() {
    let copy = fixtures().canonicalize().unwrap();
    let repo = crate::util::repo().canonicalize().unwrap();
    assert!(!copy.starts_with(&repo), "the copy {} is inside the repository", copy.display());
    assert!(copy.join("corpus/known-divergences.json").is_file() && copy.join("corpus/lattice-tests.json").is_file());
    let m = Manifest::load(&copy.join("corpus"), false).unwrap();
    for e in &m.files {
        corpus::load_checked(&copy.join("corpus"), e).unwrap();
        assert!(golden::path_for(&copy.join("golden"), e).is_file(), "{}: no golden in the copy", e.id());
    }
    // The binary, run as the tests run it, selects exactly the copy's histories.
    let listed = run(["verify", "--list"]).expect(0).stdout;
    assert_eq!(listed.lines().collect::<Vec<_>>(), m.files.iter().map(|e| e.id()).collect::<Vec<_>>());
    // The test sources: only the helpers that make the copies name the repository's fixtures.
    let reaches = reaches_for_the_working_tree();
    assert!(reaches.is_empty(), "tests that read the working tree's corpus or goldens:\n{}", reaches.join("\n"));
}

/// Lines of the test sources (integration tests, and the library's unit tests) that read the
/// repository's `corpus`/`golden` or run the binary in the repository, outside the two helpers
/// that make the private copies (`tests/integration/util.rs`, `corpus::repository_corpus_copy`).
fn reaches_for_the_working_tree() -> Vec<String> {
    let repo = crate::util::repo();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("tests/integration")).unwrap().map(|e| e.unwrap().path()).collect();
    let mut dirs = vec![repo.join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                dirs.push(e);
            } else {
                files.push(e);
            }
        }
    }
    files.sort();
    let allowed = [repo.join("tests/integration/util.rs"), repo.join("src/corpus/mod.rs")];
    let mut out = Vec::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|x| x == "rs") && !allowed.contains(f)) {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.strip_prefix(repo).unwrap().display().to_string();
        for (i, line) in text.lines().enumerate() {
            let to_fixtures = ["corpus", "golden"]
                .iter()
                .any(|d| ["root()", "repo()", "CARGO_MANIFEST_DIR\"))"].iter().any(|r| line.contains(&format!("{r}.join(\"{d}"))));
            if to_fixtures {
                out.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
        // The binary run in the repository (its defaults are the working tree's `corpus` and
        // `golden`), or a library run rooted there; a call may span lines.
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for call in ["run_in(", "current_dir(", "Options::new("] {
            for r in ["root()", "repo()"] {
                if flat.contains(&format!("{call}{r}")) {
                    out.push(format!("{name}: {call}{r}"));
                }
            }
        }
    }
    out
}

#[test]
fn verify_passes_on_the_bundled_corpus() {
    let out = run_in(fixtures(), ["verify"]).expect(0);
    let n = manifest().files.len();
    assert!(out.stdout.ends_with(&format!("build native: {n} passed, 0 failed\n")), "{}", out.stdout);
}

#[test]
fn committed_goldens_are_what_the_code_computes_now() {
    // A golden change must show up here as a reviewable snapshot diff (and fail CI) before anyone
    // accepts it with `bless --accept`.
    let registry = Registry::with_reference_types();
    let dir = fixtures().join("corpus");
    let mut summary = String::new();
    for e in manifest().files {
        let h = corpus::load_checked(&dir, &e).unwrap();
        let logic = registry.opener(&h.store_type).unwrap().logic();
        let computed = golden::compute(&h, logic, &e);
        let committed = golden::load(&golden::path_for(&fixtures().join("golden"), &e), &e.id()).unwrap();
        assert_eq!(computed, committed, "{}", e.id());
        let stall = computed.stall.as_ref().map_or("-".to_string(), |h| format!("{}@{}", h.kind.as_str(), h.op_index));
        let floating = computed.floating.len();
        summary.push_str(&format!("{} {} floating={} {}\n", e.id(), stall, floating, &computed.final_state_hash[..16]));
    }
    insta::assert_snapshot!("golden_summary", summary);
}

#[test]
fn gen_is_deterministic_and_check_catches_an_edited_history() {
    let tmp = tempfile::tempdir().unwrap();
    for out in ["a", "b"] {
        let args = ["gen", "--type", "core:kvstore", "--seed", "9", "--histories", "13", "--ops", "40", "--out", out];
        run_in(tmp.path(), args).expect(0);
    }
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let files: Vec<_> = Manifest::load(&a, false).unwrap().files.into_iter().map(|e| e.path).collect();
    assert_eq!(files.len(), 13);
    for f in files.iter().chain([&corpus::MANIFEST.to_string()]) {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    run_in(fixtures(), ["gen", "--check"]).expect(0);
    let fixtures = copy_fixtures();
    let (_, rel) = entry_path(fixtures.path(), "batches");
    let file = fixtures.path().join("corpus").join(&rel);
    let text = std::fs::read_to_string(&file).unwrap().replacen("\"wall_ms\": 17", "\"wall_ms\": 27", 1);
    std::fs::write(&file, text).unwrap();
    let out = run_in(fixtures.path(), ["gen", "--check"]).expect(1);
    assert!(out.stderr.contains(&format!("drift: corpus/{}", rel.display())), "{}", out.stderr);
}

#[test]
fn a_golden_with_one_changed_hash_fails_naming_the_history() {
    let fixtures = copy_fixtures();
    let (id, rel) = entry_path(fixtures.path(), "concurrent-writers");
    let file = fixtures.path().join("golden").join(&rel);
    let g = golden::load(&file, &id).unwrap();
    let text = std::fs::read_to_string(&file).unwrap().replace(&g.final_state_hash, &"0".repeat(64));
    std::fs::write(&file, text).unwrap();
    let out = run_in(fixtures.path(), ["verify", "--keep-going"]).expect(1);
    assert!(out.stdout.contains(&format!("FAIL {id} ")), "{}", out.stdout);
    assert!(out.stdout.contains("the golden is what changed"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("FAIL ").count(), 1);
}

/// The op index where `forget-one-head` must first diverge: the first op that supersedes two or
/// more heads of one of its keys — found here with the reference logic, independently of verify.
fn first_multi_head_merge(h: &lattice_conform::history::History) -> Option<u64> {
    let id = h.identity();
    let mut s = MemStore::new(id, Arc::new(KvStore));
    for (i, op) in h.ops.iter().enumerate() {
        let entries = kvstore::decode_payload(&op.payload).ok()?;
        let merges = entries.iter().any(|e| {
            let seen = kvstore::inspect(s.rows().get(e.key()).map(Vec::as_slice)).unwrap_or_default();
            seen.heads.iter().filter(|hd| op.causal_deps.binary_search(hd).is_ok()).count() >= 2
        });
        if merges {
            return Some(i as u64);
        }
        s.deliver(op);
        if s.stall().is_some() {
            return None;
        }
    }
    None
}

#[test]
fn a_faulty_build_fails_at_the_first_divergent_op_with_the_changed_key() {
    let m = manifest();
    let dir = fixtures().join("corpus");
    let (e, h, expected) = m
        .files
        .iter()
        .filter(|e| e.name().starts_with("concurrent-writers"))
        .find_map(|e| {
            let h = corpus::load_checked(&dir, e).unwrap();
            first_multi_head_merge(&h).map(|i| (e.clone(), h, i))
        })
        .expect("some concurrent-writers history merges two heads");
    let filter = format!("*{}", e.name());
    let out = run_in(fixtures(), ["verify", "--build", "native-fault:forget-one-head", "--filter", &filter, "--format", "json"]).expect(1);
    let report: Report = serde_json::from_str(&out.stdout).unwrap();
    let d = report.results[0].failure.as_ref().unwrap().divergence.as_ref().unwrap();
    assert_eq!(d.op_index, expected);
    let keys: Vec<Vec<u8>> = kvstore::decode_payload(&h.ops[expected as usize].payload).unwrap().iter().map(|x| x.key().to_vec()).collect();
    assert!(!d.diff.is_empty());
    for k in &d.diff {
        assert!(keys.contains(&hex::decode(&k.key.hex).unwrap()), "diff names key {} not written by the op", k.key);
    }
    let human = run_in(fixtures(), ["verify", "--build", "native-fault:forget-one-head", "--filter", &filter]).expect(1);
    assert!(human.stdout.contains(&format!("first divergent op: #{expected} ")), "{}", human.stdout);
}

#[test]
fn a_history_whose_digest_does_not_match_the_manifest_is_exit_2() {
    let fixtures = copy_fixtures();
    let (_, rel) = entry_path(fixtures.path(), "single-author");
    let file = fixtures.path().join("corpus").join(&rel);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(b'\n');
    std::fs::write(&file, bytes).unwrap();
    let out = run_in(fixtures.path(), ["verify", "--keep-going"]).expect(2);
    assert!(out.stderr.contains(&rel.display().to_string()) && out.stderr.contains("the manifest says"), "{}", out.stderr);
}

#[test]
fn junit_is_well_formed_with_one_testcase_per_history_and_json_round_trips() {
    let out = run_in(fixtures(), ["verify", "--format", "junit", "--type", "core:logstore"]).expect(0);
    let mut reader = quick_xml::Reader::from_str(&out.stdout);
    let mut testcases = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e) if e.name().as_ref() == b"testcase" => testcases += 1,
            _ => {}
        }
    }
    assert_eq!(testcases, manifest().files.iter().filter(|e| e.store_type == "core:logstore").count());
    let json = run_in(fixtures(), ["verify", "--format", "json", "--type", "core:logstore"]).expect(0).stdout;
    let report: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(format!("{}\n", serde_json::to_string_pretty(&report).unwrap()), json);
}

#[test]
fn shards_cover_every_history_once_and_merge_into_the_unsharded_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 1..=3 {
        let json = run_in(fixtures(), ["verify", "--keep-going", "--format", "json", "--shard", &format!("{i}/3")]).expect(0).stdout;
        let f = tmp.path().join(format!("shard{i}.json"));
        std::fs::write(&f, json).unwrap();
        files.push(f);
    }
    let merged = run([OsStr::new("report"), OsStr::new("merge"), OsStr::new("--format"), OsStr::new("json")]
        .into_iter()
        .chain(files.iter().map(|f| f.as_os_str())))
    .expect(0);
    let merged: Report = serde_json::from_str(&merged.stdout).unwrap();
    let whole: Report = serde_json::from_str(&run_in(fixtures(), ["verify", "--keep-going", "--format", "json"]).expect(0).stdout).unwrap();
    let mut whole_results = whole.results.clone();
    whole_results.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(merged.results, whole_results);
    assert_eq!(merged.shards, ["1/3", "2/3", "3/3"]);
}

#[test]
fn bless_never_overwrites_an_accepted_golden_until_accept() {
    let fixtures = copy_fixtures();
    let (id, rel) = entry_path(fixtures.path(), "hlc-ties");
    let file = fixtures.path().join("golden").join(&rel);
    let original = std::fs::read_to_string(&file).unwrap();
    let g = golden::load(&file, &id).unwrap();
    let edited = original.replace(&g.final_state_hash, &"1".repeat(64));
    std::fs::write(&file, &edited).unwrap();
    let out = run_in(fixtures.path(), ["bless"]).expect(0);
    assert!(out.stdout.contains(&format!("changed   {id}")), "{}", out.stdout);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited, "bless must not touch the accepted golden");
    let mut pending = file.clone().into_os_string();
    pending.push(".pending");
    assert_eq!(std::fs::read_to_string(&pending).unwrap(), original);
    run_in(fixtures.path(), ["bless", "--accept"]).expect(0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!Path::new(&pending).exists());
}

#[test]
fn bad_history_files_in_a_corpus_are_exit_2_naming_the_problem() {
    // Each case: a corpus of one history, listed with its true digest, so only the content is bad.
    let good = std::fs::read_to_string(root().join("examples/kv-example.json")).unwrap();
    let first_prev = "\"prev\": \"0000000000000000000000000000000000000000000000000000000000000000\"";
    let cases = [
        ("malformed JSON", good.replacen("\"ops\": [", "\"ops\": [,", 1), "invalid JSON at line 7, column"),
        ("unknown store_type", good.replace("core:kvstore", "acme:unknown"), "no opener for store type `acme:unknown`"),
        ("op with a missing field", good.replacen(&format!("{first_prev},"), "", 1), "missing field `prev`"),
        (
            "hex with odd length",
            good.replacen("\"payload\": \"0a", "\"payload\": \"a", 1),
            "op 0, field `payload`: not hex: Odd number of digits",
        ),
        ("a history without a golden", good.clone(), "golden/core__kvstore/case.json: missing golden for history `core:kvstore/case`"),
    ];
    for (what, text, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let store_type = if what == "unknown store_type" { "acme:unknown" } else { "core:kvstore" };
        let rel = format!("{}/case.json", corpus::type_dir(store_type).unwrap());
        corpus::write_atomic(&tmp.path().join("corpus").join(&rel), text.as_bytes()).unwrap();
        let mut m = Manifest::load(&tmp.path().join("corpus"), true).unwrap();
        m.upsert(corpus::ManifestEntry {
            path: rel,
            store_type: store_type.into(),
            ops: 7,
            blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
        });
        m.save(&tmp.path().join("corpus")).unwrap();
        let out = run_in(tmp.path(), ["verify"]).expect(2);
        assert!(out.stderr.contains(needle), "{what}: expected {needle:?} in {}", out.stderr);
    }
}

#[test]
fn a_users_own_test_can_call_verify_as_a_library() {
    let mut opts = VerifyOptions::new(fixtures());
    opts.store_type = Some("core:logstore".into());
    opts.filter = Some("*log-ties*".into());
    let report = verify::verify(&opts, &Registry::with_reference_types()).unwrap();
    let listed = manifest().files.iter().filter(|e| e.store_type == "core:logstore" && e.name().contains("log-ties")).count();
    assert!(listed >= 4, "the corpus has {listed} log-ties histories");
    assert_eq!((report.passed(), report.failed()), (listed, 0));
}
