//! Expected reads (docs/FORMAT.md §10.10) through the binary: written by intent with `history
//! add --expect…` or a script, checked by `verify` for native, fault and outside builds on top of
//! the goldens, and enforced by `bless`/`corpus add`, which refuse a golden the reference build
//! would make against a fixture's stated intent.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use crate::util::{run, run_in};

/// Every file under `dir` (any depth) with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A three-op fixture in `tmp/<name>.json`: alice and bob write `color` concurrently, then alice,
/// having seen both, writes `green` — with the expected read after it given by `expect` flags.
fn fixture(tmp: &Path, name: &str, expect: &[&str]) -> PathBuf {
    let file = tmp.join(format!("{name}.json"));
    let f = file.to_str().unwrap();
    run(["history", "new", f, "--type", "core:kvstore"]).expect(0);
    run(["history", "add", f, "--author", "alice", "--put", "color=red"]).expect(0);
    run(["history", "add", f, "--author", "bob", "--put", "color=blue", "--deps", "none"]).expect(0);
    let mut args = vec!["history", "add", f, "--author", "alice", "--put", "color=green"];
    args.extend_from_slice(expect);
    run(args).expect(0);
    file
}

/// An empty corpus and golden directory under `tmp`.
fn empty_corpus(tmp: &Path) -> (PathBuf, PathBuf) {
    let (c, g) = (tmp.join("corpus"), tmp.join("golden"));
    std::fs::create_dir_all(&c).unwrap();
    std::fs::create_dir_all(&g).unwrap();
    (c, g)
}

#[test]
fn an_expected_read_fails_a_buggy_build_for_every_kind_of_build_and_the_report_lists_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = fixture(tmp.path(), "bug", &["--expect", "color=green", "--expect-not-conflicted", "color", "--expect-heads", "color=1"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"format_version\": 3") && text.contains("\"after\": 3"), "{text}");
    let (c, g) = empty_corpus(tmp.path());
    let (cs, gs) = (c.to_str().unwrap(), g.to_str().unwrap());
    let added = run(["corpus", "add", file.to_str().unwrap(), "--corpus", cs, "--golden", gs]).expect(0);
    // The review of a new golden shows what a reader sees, before the hashes.
    assert!(added.stdout.contains("reads \"color\": \"green\" not conflicted 1 head"), "{}", added.stdout);
    // One accept covers the history's golden and its migration golden.
    let acc = run(["bless", "--accept", "core:kvstore/bug", "--corpus", cs, "--golden", gs]).expect(0);
    assert!(
        acc.stdout.contains("accepted  core:kvstore/bug\n") && acc.stdout.contains("accepted  migration:core:kvstore/bug\n"),
        "{}",
        acc.stdout
    );
    run(["verify", "--corpus", cs, "--golden", gs]).expect(0);

    // A build that keeps the superseded heads: the expectation says which reading is right.
    let out = tmp.path().join("r.json");
    let bad = run([
        "verify",
        "--corpus",
        cs,
        "--golden",
        gs,
        "--build",
        "native-fault:kv-deps-ignored",
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ])
    .expect(1);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["format_version"], 5);
    let unmet = &report["results"][0]["failure"]["expectations"];
    assert_eq!(unmet.as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!((unmet[0]["index"].as_u64(), unmet[0]["after"].as_u64()), (Some(0), Some(3)));
    assert_eq!(
        unmet[0]["differences"],
        serde_json::json!(["conflicted: expected false, got true", "heads: expected 1, got 3"]),
        "{bad:?}",
        bad = bad.stderr
    );
    let human = run(["verify", "--corpus", cs, "--golden", gs, "--build", "native-fault:kv-deps-ignored"]).expect(1);
    assert!(human.stdout.contains("expected after 3 ops (expect[0]): \"color\": \"green\" not conflicted 1 head"), "{}", human.stdout);
    assert!(human.stdout.contains("    conflicted: expected false, got true"), "{}", human.stdout);

    // The same through the build protocol: an outside build's views are read the same way.
    let build = tmp.path().join("served.json");
    let spec = serde_json::json!({
        "format": "lattice-conform/exec-build",
        "format_version": 1,
        "program": env!("CARGO_BIN_EXE_lattice-conform"),
        "args": ["serve-build", "--build", "native-fault:kv-deps-ignored"],
        "limits": {"op_timeout_ms": 20000, "history_timeout_s": 120},
    });
    std::fs::write(&build, spec.to_string()).unwrap();
    let exec = format!("exec:{}", build.display());
    let served = run(["verify", "--corpus", cs, "--golden", gs, "--build", &exec]).expect(1);
    assert!(served.stdout.contains("    conflicted: expected false, got true"), "{}", served.stdout);
}

#[test]
fn bless_and_corpus_add_refuse_a_golden_that_contradicts_an_expected_read_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, g) = empty_corpus(tmp.path());
    let (cs, gs) = (c.to_str().unwrap(), g.to_str().unwrap());
    // Bad input tried: a fixture whose expected read the reference build does not meet (alice saw
    // both heads, so `color` is not conflicted and reads "green", not "red").
    let wrong = fixture(tmp.path(), "wrong", &["--expect", "color=red", "--expect-conflicted", "color"]);
    let added = run(["corpus", "add", wrong.to_str().unwrap(), "--corpus", cs, "--golden", gs]).expect(1);
    assert!(added.stderr.contains("refused: the reference build contradicts the expected reads of 1 history"), "{}", added.stderr);
    assert!(
        added.stderr.contains("core:kvstore/wrong: expect[0] after 3 ops (\"color\": \"red\" conflicted): value: expected \"red\", got \"green\"; conflicted: expected true, got false"),
        "{}",
        added.stderr
    );
    assert!(tree(&c).is_empty() && tree(&g).is_empty(), "corpus add left files: {:?} {:?}", tree(&c).keys(), tree(&g).keys());

    // `bless` over a corpus that lists such a history (added by hand) writes no golden at all,
    // not even those of the histories it agrees with.
    let right = fixture(tmp.path(), "right", &["--expect", "color=green"]);
    run(["corpus", "add", right.to_str().unwrap(), "--corpus", cs, "--golden", gs]).expect(0);
    run(["bless", "--reject", "--corpus", cs, "--golden", gs]).expect(0);
    let bytes = std::fs::read(&wrong).unwrap();
    std::fs::write(c.join("core__kvstore/wrong.json"), &bytes).unwrap();
    let manifest_path = c.join("MANIFEST.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "core__kvstore/wrong.json",
        "store_type": "core:kvstore",
        "ops": 3,
        "blake3": blake3::hash(&bytes).to_hex().to_string(),
    }));
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).unwrap() + "\n").unwrap();
    let before = tree(&g);
    let b = run(["bless", "--corpus", cs, "--golden", gs]).expect(1);
    assert!(b.stderr.contains("core:kvstore/wrong: expect[0]"), "{}", b.stderr);
    assert!(!b.stderr.contains("core:kvstore/right"), "{}", b.stderr);
    assert_eq!(tree(&g), before, "a refused bless wrote files");
}

#[test]
fn expectation_flags_and_scripts_write_the_same_history_and_bad_flags_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let flags = fixture(tmp.path(), "same", &["--expect", "color=green", "--expect-heads", "color=1", "--expect-absent", "size"]);
    let script = tmp.path().join("s.json");
    std::fs::write(
        &script,
        serde_json::json!({
            "format": "lattice-conform/history-script",
            "format_version": 1,
            "store_type": "core:kvstore",
            "ops": [
                {"author": "alice", "put": ["color=red"]},
                {"author": "bob", "put": ["color=blue"], "deps": ["none"]},
                {"author": "alice", "put": ["color=green"], "expect": [
                    {"key": "color", "value": "green", "heads": 1},
                    {"key": "size", "exists": false}
                ]}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let built = tmp.path().join("built").join("same.json");
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    run(["history", "build", script.to_str().unwrap(), built.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&flags).unwrap(), std::fs::read(&built).unwrap(), "flags and script differ");
    // The binary form holds them too, and converts back to the same bytes.
    let lch = tmp.path().join("same.lch");
    run(["history", "convert", flags.to_str().unwrap(), lch.to_str().unwrap()]).expect(0);
    let back = tmp.path().join("back.json");
    run(["history", "convert", lch.to_str().unwrap(), back.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&flags).unwrap(), std::fs::read(&back).unwrap());

    // Bad inputs tried, each refused with exit 2 naming the flag, the file left as it was.
    let f = flags.to_str().unwrap();
    let v2 = tmp.path().join("v2.json");
    run(["history", "new", v2.to_str().unwrap(), "--type", "core:kvstore-v2"]).expect(0);
    let log = tmp.path().join("log.json");
    run(["history", "new", log.to_str().unwrap(), "--type", "core:logstore"]).expect(0);
    let before = std::fs::read(&flags).unwrap();
    for (file, extra, says) in [
        (f, vec!["--put", "k=1", "--expect", "color"], "--expect `color`: expected KEY=…"),
        (f, vec!["--put", "k=1", "--expect-heads", "color=two"], "--expect-heads `color=two`: `two` is not a whole number"),
        (
            f,
            vec!["--put", "k=1", "--expect", "color=a", "--expect-no-value", "color"],
            "--expect-no-value color: the key is already expected to read",
        ),
        (f, vec!["--put", "k=1", "--expect", "hex:zz=1"], "--expect hex:zz"),
        (f, vec!["--put", "k=1", "--expect-log", "x"], "expect[0]: `log` is not a read of core:kvstore"),
        (v2.to_str().unwrap(), vec!["--put", "k=1", "--expect-heads", "k=1"], "expect[0]: `heads` is not a read of core:kvstore-v2"),
        (
            log.to_str().unwrap(),
            vec!["--append", "x", "--expect", "k=1"],
            "expect[0]: `key` given, but a core:logstore read is of the whole log",
        ),
    ] {
        let mut args = vec!["history", "add", file, "--author", "carol"];
        args.extend(extra);
        let out = run(&args).expect(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    assert_eq!(std::fs::read(&flags).unwrap(), before, "a refused add changed the file");
    // A log's reads: the whole log and its length.
    let l = log.to_str().unwrap();
    run(["history", "add", l, "--author", "a", "--append", "one"]).expect(0);
    let ok = run([
        "history",
        "add",
        l,
        "--author",
        "b",
        "--append",
        "two",
        "--expect-log",
        "one",
        "--expect-log",
        "two",
        "--expect-entries",
        "2",
    ])
    .expect(0);
    assert!(
        ok.stderr.contains("the reference build meets them") || ok.stdout.contains("the reference build meets them"),
        "{ok:?}",
        ok = ok.stderr
    );
}

/// A history whose expected reads are damaged is refused on load with the read's index (JSON,
/// and a binary header cut inside them), so `verify` never runs it half-checked.
#[test]
fn damaged_expected_reads_are_named_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let file = fixture(tmp.path(), "d", &["--expect", "color=green"]);
    let text = std::fs::read_to_string(&file).unwrap();
    for (from, to, says) in [
        ("\"after\": 3", "\"after\": 9", "expect[0]: after 9 ops, but the history has 3 ops"),
        ("\"key\": \"color\",", "", "expect[0]: no `key`"),
        ("\"value\": \"green\"", "\"value\": \"green\", \"colour\": 1", "unknown field `colour`"),
    ] {
        let bad = tmp.path().join("bad.json");
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let out = run_in(tmp.path(), ["history", "show", bad.to_str().unwrap()]).expect(2);
        assert!(out.stderr.contains(says), "{from} → {to}: {}", out.stderr);
    }
}
