//! Issue #33, "workflow friction", through the real binary: `certify --check` tells an unusable
//! file (exit 2) from a certificate that no longer holds (exit 1) and works from any working
//! directory; a stale counterexample is replaced; written files get the process umask; a golden
//! directory of another corpus is refused up front; the CLI's smaller fixes.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::Run;

/// Runs the binary in `cwd` (with no Wasm cache configured).
fn run_at<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
        .current_dir(cwd)
        .args(args)
        .env_remove("LATTICE_WASM_CACHE")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A small corpus of generated `core:kvstore` histories at `dir`.
fn small_corpus(dir: &Path) {
    let d = dir.display().to_string();
    run_at(Path::new("."), &["gen", "--type", "core:kvstore", "--histories", "3", "--ops", "20", "--out", &d]).expect(0);
}

/// `certify` of `candidate` against `native` on `corpus`, run in `cwd`, with `extra` arguments.
fn certify_at(cwd: &Path, corpus: &str, candidate: &str, extra: &[&str]) -> Run {
    let args = ["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", candidate, "--bundled", corpus];
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    run_at(cwd, &args)
}

#[test]
fn a_certificate_records_its_corpus_relative_to_itself_and_checks_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(&t.join("corpus"));
    std::fs::create_dir_all(t.join("elsewhere")).unwrap();
    // Relative paths as a user types them, the certificate in a subdirectory.
    certify_at(t, "corpus", "native", &["--cases", "2", "--out", "certs/cert.json"]).expect(0);
    let cert: Value = serde_json::from_slice(&std::fs::read(t.join("certs/cert.json")).unwrap()).unwrap();
    assert_eq!(cert["format_version"], 3, "{cert}");
    assert_eq!(cert["corpora"][0]["path"].as_str(), Some("../corpus"), "relative to the certificate: {cert}");
    // From the certificate's own directory, from a sibling directory and from the directory it
    // was made in: the same corpus is found, and the certificate holds.
    for (cwd, file) in [(t.join("certs"), "cert.json"), (t.join("elsewhere"), "../certs/cert.json"), (t.to_path_buf(), "certs/cert.json")] {
        let out = run_at(&cwd, &["certify", "--check", file, "--json"]).expect(0);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["holds"], true, "{v}");
        let found = Path::new(v["inputs"][2]["found"].as_str().unwrap());
        assert_eq!(cwd.join(found).canonicalize().unwrap(), t.join("corpus").canonicalize().unwrap(), "from {}", cwd.display());
    }
    // Moved together (certificate and corpus keep their relative places): still holds.
    std::fs::rename(t.join("certs"), t.join("elsewhere/certs")).unwrap();
    std::fs::rename(t.join("corpus"), t.join("elsewhere/corpus")).unwrap();
    run_at(t, &["certify", "--check", "elsewhere/certs/cert.json"]).expect(0);
}

#[test]
fn a_version_2_certificate_still_finds_its_corpus_relative_to_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(&t.join("corpus"));
    certify_at(t, "corpus", "native", &["--cases", "1", "--out", "certs/cert.json"]).expect(0);
    let text = std::fs::read_to_string(t.join("certs/cert.json")).unwrap();
    // What version 2 wrote: the corpus path as given, relative to the working directory.
    let v2 = text.replace("\"format_version\": 3", "\"format_version\": 2").replace("\"path\": \"../corpus\"", "\"path\": \"corpus\"");
    assert_ne!(v2, text);
    std::fs::write(t.join("certs/cert.json"), &v2).unwrap();
    let v: Value = serde_json::from_str(&run_at(t, &["certify", "--check", "certs/cert.json", "--json"]).expect(0).stdout).unwrap();
    assert_eq!(v["inputs"][2]["found"].as_str(), Some("corpus"), "{v}");
}

#[test]
fn check_exits_2_for_anything_that_is_not_a_certificate_this_build_reads_and_1_when_it_no_longer_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(&t.join("corpus"));
    certify_at(t, "corpus", "native", &["--cases", "1"]).expect(0);
    let good = std::fs::read_to_string(t.join("certificate.json")).unwrap();
    let history = std::fs::read_dir(t.join("corpus/core__kvstore")).unwrap().next().unwrap().unwrap().path();
    let cases: [(&str, String, &str); 5] = [
        ("plain text", "certified, honest\n".into(), "invalid JSON at line 1"),
        (
            "a newer version",
            good.replace("\"format_version\": 3", "\"format_version\": 4"),
            "format_version 4 is newer than this build reads (3)",
        ),
        ("a history file", std::fs::read_to_string(&history).unwrap(), "`format` is \"lattice-conform/history\""),
        ("a field missing", good.replace("  \"seed\": 0,\n", ""), "missing field `seed`"),
        ("the JSON cut short", good[..good.len() / 2].to_string(), "EOF while parsing"),
    ];
    for (what, text, says) in cases {
        std::fs::write(t.join("bad.json"), &text).unwrap();
        for json in [false, true] {
            let args: Vec<&str> = ["certify", "--check", "bad.json"].into_iter().chain(json.then_some("--json")).collect();
            let out = run_at(t, &args).expect(2);
            assert!(
                out.stderr.contains("not a certificate this build can check: bad.json: ") && out.stderr.contains(says),
                "{what}: {}",
                out.stderr
            );
            assert!(out.stdout.is_empty(), "{what}: no JSON on exit 2: {}", out.stdout);
        }
    }
    // A valid certificate that no longer holds stays exit 1.
    std::fs::write(t.join("bad.json"), good.replace("\"cases\": 1", "\"cases\": 2")).unwrap();
    let out = run_at(t, &["certify", "--check", "bad.json"]).expect(1);
    assert!(out.stderr.contains("no longer holds"), "{}", out.stderr);
}

#[test]
fn a_stale_counterexample_is_replaced_and_said_so_but_an_unrelated_file_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(&t.join("corpus"));
    let cx = t.join("certify-counterexample.json");
    let bad = "native-fault:forget-one-head";
    let failed = certify_at(t, "corpus", bad, &["--cases", "0"]).expect(1);
    assert!(failed.stdout.contains("DIVERGED on"), "{}", failed.stdout);
    let first = std::fs::read(&cx).unwrap();
    // The fixed build certifies although the earlier counterexample is still there.
    let good = certify_at(t, "corpus", "native", &["--cases", "2"]).expect(0);
    assert!(!good.stderr.contains("replaced"), "nothing was replaced: {}", good.stderr);
    assert_eq!(std::fs::read(&cx).unwrap(), first, "a run that does not diverge leaves it alone");
    // Another failing run replaces it, saying so on stderr.
    std::fs::copy(t.join("corpus/core__kvstore").read_dir().unwrap().next().unwrap().unwrap().path(), &cx).unwrap();
    let again = certify_at(t, "corpus", bad, &["--cases", "0", "--out", "other.json"]).expect(1);
    let note = format!("note: replaced {}, a counterexample left by an earlier run", "certify-counterexample.json");
    assert!(again.stderr.contains(&note), "{}", again.stderr);
    assert_eq!(std::fs::read(&cx).unwrap(), first, "the same run writes the same counterexample");
    // A file that is not a history is never replaced without --force.
    std::fs::write(&cx, b"my notes\n").unwrap();
    let refused = certify_at(t, "corpus", bad, &["--cases", "0", "--out", "third.json"]).expect(2);
    assert!(refused.stderr.contains("certify-counterexample.json: already exists; pass --force to replace it"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&cx).unwrap(), b"my notes\n");
}

/// Runs the binary in `cwd` under the umask `mask` (set by a shell that then execs it).
fn run_with_umask(cwd: &Path, mask: &str, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .current_dir(cwd)
        .arg("-c")
        .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lattice-conform"))
        .args(args)
        .env_remove("LATTICE_WASM_CACHE")
        .output()
        .expect("sh runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every regular file below `dir`, with its permission bits, sorted by path.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                todo.push(e.path());
            } else if kind.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, e.metadata().unwrap().permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_written_gets_the_process_umask() {
    for (mask, want) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let run = |args: &[&str], code: i32| run_with_umask(t, mask, args).expect(code);
        // Histories and MANIFEST.json (gen), pending then accepted goldens (bless), a rewritten
        // manifest and golden (corpus add), reports (human, JSON, JUnit), a certificate, a
        // counterexample, a converted history and a recorded one.
        run(&["gen", "--type", "core:kvstore", "--histories", "2", "--ops", "10", "--out", "corpus"], 0);
        run(&["bless", "--corpus", "corpus", "--golden", "golden"], 0);
        run(&["bless", "--corpus", "corpus", "--golden", "golden", "--accept"], 0);
        std::fs::create_dir(t.join("out")).unwrap();
        let example = crate::util::example().display().to_string();
        run(&["corpus", "add", &example, "--corpus", "corpus", "--golden", "golden", "--id", "example"], 0);
        run(&["bless", "--corpus", "corpus", "--golden", "golden", "--accept"], 0);
        run(&["bless", "--corpus", "corpus", "--golden", "golden", "--migrations", "--accept"], 0);
        for (format, file) in [("human", "out/report.txt"), ("json", "out/report.json"), ("junit", "out/report.xml")] {
            run(&["verify", "--corpus", "corpus", "--golden", "golden", "--format", format, "--output", file], 0);
        }
        run(
            &[
                "certify",
                "--type",
                "core:kvstore",
                "--baseline",
                "native",
                "--candidate",
                "native",
                "--bundled",
                "corpus",
                "--cases",
                "1",
                "--out",
                "out/cert.json",
            ],
            0,
        );
        let bad = ["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native-fault:forget-one-head"];
        let bad: Vec<&str> = bad.into_iter().chain(["--bundled", "corpus", "--cases", "0", "--counterexample", "out/cx.json"]).collect();
        run(&bad, 1);
        run(&["history", "convert", &example, "out/example.lch"], 0);
        run(&["apply", "out/store", &example, "--create"], 0);
        run(&["record", "out/store", "--out", "out/recorded.json"], 0);
        let mut written = modes(&t.join("corpus"));
        written.extend(modes(&t.join("golden")));
        written.extend(modes(&t.join("out")).into_iter().filter(|(p, _)| !p.starts_with("store/")));
        for f in ["MANIFEST.json", "core__kvstore/example.json"] {
            assert!(written.iter().any(|(p, _)| p == f), "{f} was written: {written:?}");
        }
        for f in ["report.txt", "report.json", "report.xml", "cert.json", "cx.json", "example.lch", "recorded.json"] {
            assert!(written.iter().any(|(p, _)| p == f), "{f} was written: {written:?}");
        }
        assert!(modes(&t.join("golden")).len() >= 3, "the accepted goldens: {:?}", modes(&t.join("golden")));
        let wrong: Vec<_> = written.iter().filter(|(_, m)| *m != want).collect();
        assert!(wrong.is_empty(), "umask {mask}: every file should be {want:o}, these are not: {wrong:?}");
    }
}

/// A tree's files and their bytes, to show nothing was written.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = modes(dir).into_iter().map(|(p, _)| (p.clone(), std::fs::read(dir.join(&p)).unwrap())).collect();
    out.sort();
    out
}

#[test]
fn a_golden_directory_of_another_corpus_or_the_corpus_itself_is_refused_up_front_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = |args: &[&str], code: i32| run_at(t, args).expect(code);
    // Corpus `a` (generated) with its goldens; corpus `b` (the example, added) with its own.
    run(&["gen", "--type", "core:kvstore", "--histories", "3", "--ops", "10", "--out", "a"], 0);
    run(&["bless", "--corpus", "a", "--golden", "ga", "--accept"], 0);
    run(&["bless", "--corpus", "a", "--golden", "ga"], 0);
    run(&["bless", "--corpus", "a", "--golden", "ga", "--accept"], 0);
    let example = crate::util::example().display().to_string();
    run(&["corpus", "add", &example, "--corpus", "b", "--golden", "gb"], 0);
    run(&["bless", "--corpus", "b", "--golden", "gb", "--accept"], 0);
    run(&["bless", "--corpus", "b", "--golden", "gb", "--migrations", "--accept"], 0);
    run(&["verify", "--corpus", "a", "--golden", "ga"], 0);
    run(&["verify", "--corpus", "b", "--golden", "gb"], 0);
    let before = snapshot(t);
    let cases: [(&[&str], &str); 8] = [
        (&["verify", "--corpus", "a", "--golden", "gb"], "gb: not a golden directory of the corpus a: none of its"),
        (&["verify", "--corpus", "a", "--golden", "gb", "--allow-pending"], "gb: not a golden directory of the corpus a"),
        (&["verify", "--corpus", "b", "--golden", "ga", "--migrations"], "ga: not a golden directory of the corpus b"),
        (&["verify", "--corpus", "a", "--golden", "a"], "a: not a golden directory of the corpus a: it holds a MANIFEST.json"),
        (&["bless", "--corpus", "a", "--golden", "gb"], "gb: not a golden directory of the corpus a"),
        (&["bless", "--corpus", "a", "--golden", "a"], "it holds a MANIFEST.json and is a corpus directory itself"),
        (&["bless", "--corpus", "a", "--golden", "gb", "--migrations", "--accept"], "gb: not a golden directory of the corpus a"),
        (&["corpus", "add", &example, "--corpus", "a", "--golden", "gb", "--id", "again"], "gb: not a golden directory of the corpus a"),
    ];
    for (args, says) in cases {
        let out = run(args, 2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: one line: {}", out.stderr);
        assert!(out.stderr.contains("(is --golden or --corpus wrong?)"), "{}", out.stderr);
        assert_eq!(snapshot(t), before, "{args:?} wrote nothing");
    }
    // The right directory with an orphan beside real goldens is still a finding (exit 1), and a
    // new, empty golden directory is still blessed into.
    let golden = modes(&t.join("ga")).into_iter().map(|(p, _)| p).find(|p| p.starts_with("core__kvstore/")).unwrap();
    std::fs::copy(t.join("ga").join(&golden), t.join("ga/core__kvstore/gone.json")).unwrap();
    let out = run(&["verify", "--corpus", "a", "--golden", "ga"], 1);
    assert!(out.stderr.contains("1 golden(s) of no history in a (orphans"), "{}", out.stderr);
    run(&["bless", "--corpus", "a", "--golden", "fresh"], 0);
    assert_eq!(modes(&t.join("fresh")).len(), 6, "three pending history goldens and their three migration goldens");
    // A golden directory holding only a pending golden of a history not listed (what a `corpus
    // add` or `record --corpus` killed before listing leaves) is not another corpus's: the rerun
    // gets in.
    std::fs::create_dir_all(t.join("half/core__kvstore")).unwrap();
    std::fs::copy(t.join("ga").join(&golden), t.join("half/core__kvstore/killed-before-listing.json.pending")).unwrap();
    run(&["bless", "--corpus", "a", "--golden", "half"], 0);
}

#[test]
fn verify_list_prints_the_selection_without_replaying_and_a_failure_hints_how_to_rerun_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = |args: &[&str], code: i32| run_at(t, args).expect(code);
    run(&["gen", "--type", "core:kvstore", "--histories", "4", "--ops", "10", "--out", "corpus"], 0);
    let manifest: Value = serde_json::from_slice(&std::fs::read(t.join("corpus/MANIFEST.json")).unwrap()).unwrap();
    let ids: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f["store_type"].as_str().unwrap(),
                Path::new(f["path"].as_str().unwrap()).file_stem().unwrap().to_str().unwrap()
            )
        })
        .collect();
    // No golden directory at all: nothing is replayed or compared, so none is needed.
    let all = run(&["verify", "--list"], 0);
    assert_eq!(all.stdout, ids.iter().map(|i| format!("{i}\n")).collect::<String>());
    assert!(all.stderr.is_empty(), "{}", all.stderr);
    let one = run(&["verify", "--list", "--filter", &ids[2]], 0);
    assert_eq!(one.stdout, format!("{}\n", ids[2]));
    // Shards partition the list.
    let mut sharded: Vec<String> = (1..=2)
        .flat_map(|i| run(&["verify", "--list", "--shard", &format!("{i}/2")], 0).stdout.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    sharded.sort();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sharded, sorted);
    // A filter that selects nothing is still refused, and --list with --migrations is a usage error.
    assert!(run(&["verify", "--list", "--filter", "nope*"], 2).stderr.contains("nope*"));
    run(&["verify", "--list", "--migrations"], 2);
    // A failing run names the first failed history as a --filter to rerun it alone.
    run(&["bless"], 0);
    run(&["bless", "--accept"], 0);
    run(&["verify"], 0);
    let failed = run(&["verify", "--build", "native-fault:forget-one-head", "--keep-going"], 1);
    let first_failed = failed.stdout.lines().find_map(|l| l.strip_prefix("FAIL ")).and_then(|l| l.split(' ').next()).unwrap();
    let hint = failed
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: rerun just this one: add `--filter '"))
        .unwrap_or_else(|| panic!("{}", failed.stderr));
    let id = hint.split('\'').nth(1).unwrap();
    assert_eq!(id, first_failed, "the hint names the first failed history");
    let alone = run(&["verify", "--build", "native-fault:forget-one-head", "--filter", id], 1);
    assert!(alone.stdout.contains(id), "{}", alone.stdout);
    assert!(run(&["verify", "--build", "native-fault:forget-one-head", "--quiet"], 1).stderr.lines().all(|l| !l.starts_with("hint:")));
}

#[test]
fn wasm_limit_flags_are_offered_by_the_commands_that_run_guests_and_only_by_them() {
    let tmp = tempfile::tempdir().unwrap();
    let help = |cmd: &[&str]| {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        run_at(tmp.path(), &args).expect(0).stdout
    };
    let runs_guests: [&[&str]; 14] = [
        &["verify"],
        &["certify"],
        &["record"],
        &["migrate"],
        &["create"],
        &["apply"],
        &["open"],
        &["rebuild"],
        &["dump"],
        &["audit"],
        &["bless"],
        &["corpus", "add"],
        &["wasm", "add"],
        &["wasm", "list"],
    ];
    for cmd in runs_guests {
        let text = help(cmd);
        let section = text.split("Wasm guest limits:").nth(1).unwrap_or_else(|| panic!("{cmd:?} has no Wasm section:\n{text}"));
        for flag in ["--wasm-fuel", "--wasm-memory-mib", "--wasm-write-mib", "--wasm-row-writes", "--wasm-watchdog-ms"] {
            assert!(section.contains(flag), "{cmd:?} lists {flag} under Wasm guest limits:\n{text}");
        }
        assert!(!section.contains("--build") && !section.contains("--json"), "only the limits are in that section: {cmd:?}\n{text}");
    }
    let runs_none: [&[&str]; 9] = [
        &["faults"],
        &["report", "merge"],
        &["gen"],
        &["peek"],
        &["history", "show"],
        &["corpus", "stats"],
        &["corpus", "adequacy"],
        &["wasm", "digest"],
        &["serve-build"],
    ];
    for cmd in runs_none {
        assert!(!help(cmd).contains("--wasm-"), "{cmd:?} offers no Wasm limit:\n{}", help(cmd));
    }
    assert!(!help(&[]).contains("--wasm-fuel"), "nor does the top level");
    // Given anyway: a usage error; and a variable a guest-less command never reads is no error.
    let out = run_at(tmp.path(), &["faults", "--wasm-fuel", "5"]).expect(2);
    assert!(out.stderr.contains("unexpected argument '--wasm-fuel'"), "{}", out.stderr);
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-conform")).arg("faults").env("LATTICE_WASM_FUEL", "abc").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
        .args(["verify", "--list"])
        .current_dir(tmp.path())
        .env("LATTICE_WASM_FUEL", "abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "verify still checks it");
    assert!(String::from_utf8_lossy(&out.stderr).contains("$LATTICE_WASM_FUEL"));
}

#[test]
fn a_run_stopped_by_its_first_failure_says_how_many_histories_it_did_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = |args: &[&str], code: i32| run_at(t, args).expect(code);
    run(&["gen", "--type", "core:kvstore", "--histories", "6", "--ops", "20", "--out", "corpus"], 0);
    run(&["bless"], 0);
    run(&["bless", "--accept"], 0);
    let fault = "native-fault:forget-one-head";
    let stopped = run(&["verify", "--build", fault, "--jobs", "1", "--format", "json"], 1);
    let v: Value = serde_json::from_str(&stopped.stdout).unwrap();
    let (results, not_run) = (v["results"].as_array().unwrap().len(), v["not_run"].as_array().unwrap().len());
    assert!(not_run > 0, "the fault fails an early history: {v}");
    let want = format!(
        "error: 1 of {results} histories failed ({not_run} more not run: verify stops at the first failure; --keep-going runs every one)"
    );
    assert!(stopped.stderr.contains(&want), "{}", stopped.stderr);
    let all = run(&["verify", "--build", fault, "--keep-going"], 1);
    assert!(!all.stderr.contains("not run"), "{}", all.stderr);
}

#[test]
fn a_checkpoint_failure_is_worded_as_a_checkpoint_not_as_the_first_divergent_op() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = |args: &[&str], code: i32| run_at(t, args).expect(code);
    run(&["gen", "--type", "core:kvstore", "--histories", "3", "--ops", "100", "--out", "corpus"], 0);
    run(&["bless"], 0);
    run(&["bless", "--accept"], 0);
    let out = run(&["verify", "--build", "native-fault:forget-one-head"], 1);
    let fail = out.stdout.lines().find(|l| l.starts_with("FAIL ")).unwrap();
    assert!(fail.contains("(100 ops): state hash at the checkpoint after 64 ops: expected "), "{fail}");
    let op: u64 = out.stdout.split("first divergent op: #").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(op < 64, "the divergent op ({op}) comes before the checkpoint the headline names");
}
