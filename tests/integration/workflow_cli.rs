//! #16, the lead's part: shell completions, `--type` inferred from the build, `--quiet` and
//! progress that stays off the pipes — all through the real binary.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::util::{fixtures, run_in, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guest(name: &str) -> PathBuf {
    root().join("guests/dist").join(format!("{name}.wasm"))
}

fn at_root<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Run {
    run_in(fixtures(), args)
}

/// The ids of a JSON verify report's results.
fn result_ids(stdout: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    v["results"].as_array().expect("results").iter().map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

#[test]
fn completions_are_printed_for_every_supported_shell_and_an_unknown_shell_is_refused() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = at_root(["completions", shell]).expect(0);
        for word in ["lattice-conform", "verify", "certify", "completions", "quiet", "shard", "allow-pending", "reject"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word}");
        }
        assert!(out.stderr.is_empty(), "{shell}: {}", out.stderr);
    }
    // Bad input: a shell clap_complete does not know.
    let bad = at_root(["completions", "tcsh"]).expect(2);
    assert!(bad.stderr.contains("tcsh"), "{}", bad.stderr);
}

#[test]
fn verify_runs_a_wasm_guest_on_the_type_it_declares_without_type() {
    // `*/lattice-*` selects histories of several types; a kvstore guest runs only the kvstore ones.
    let out =
        at_root(["verify", "--build", guest("core-kvstore").to_str().unwrap(), "--filter", "*/lattice-*", "--format", "json"]).expect(0);
    let ids = result_ids(&out.stdout);
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| id.starts_with("core:kvstore/")), "{ids:?}");
}

#[test]
fn verify_runs_a_store_logic_fault_on_its_own_type_without_type() {
    // Before: the logstore histories refused the kvstore fault (exit 2). Now only kvstore
    // histories run and the fault is caught (exit 1).
    let out = at_root(["verify", "--build", "native-fault:forget-one-head", "--filter", "*/lattice-*", "--keep-going", "--format", "json"])
        .expect(1);
    let ids = result_ids(&out.stdout);
    assert!(ids.iter().all(|id| id.starts_with("core:kvstore/")), "{ids:?}");
}

#[test]
fn certify_takes_the_type_from_the_builds_and_refuses_builds_of_two_types_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let gen = ["gen", "--type", "core:kvstore", "--histories", "2", "--ops", "20", "--out", corpus.to_str().unwrap()];
    run_in(tmp.path(), gen).expect(0);
    let kv = guest("core-kvstore");
    let small = guest("core-kvstore-small");
    let certify = |baseline: &Path, candidate: &Path, extra: &[&str]| {
        let mut args: Vec<&OsStr> = ["certify", "--cases", "3", "--bundled"].iter().map(OsStr::new).collect();
        args.extend([corpus.as_os_str(), OsStr::new("--baseline"), baseline.as_os_str(), OsStr::new("--candidate"), candidate.as_os_str()]);
        args.extend(extra.iter().map(OsStr::new));
        run_in(tmp.path(), args)
    };
    let out = certify(&kv, &small, &[]).expect(0);
    assert!(out.stdout.contains("equivalent on "), "{}", out.stdout);
    let cert: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["store_type"], "core:kvstore", "{cert}");
    // Bad input: a kvstore baseline and a logstore candidate.
    let two = certify(&kv, &guest("core-logstore"), &["--out", "other.json"]).expect(2);
    assert!(two.stderr.contains("a hot fix keeps its store type"), "{}", two.stderr);
    // Bad input: two native builds, which declare nothing.
    let none = certify(Path::new("native"), Path::new("native"), &["--out", "none.json"]).expect(2);
    assert!(none.stderr.contains("--type is needed"), "{}", none.stderr);
    assert!(!tmp.path().join("other.json").exists() && !tmp.path().join("none.json").exists(), "a refused certify writes nothing");
}

#[test]
fn bars_never_reach_a_pipe_and_quiet_prints_only_failures() {
    // stdout and stderr are pipes here: no bar, no escape codes.
    let out = at_root(["verify", "--filter", "core:logstore/lattice-*"]).expect(0);
    assert!(!out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'), "{}", out.stderr);
    assert!(!out.stdout.is_empty(), "a passing verify says so");
    let quiet = at_root(["verify", "--quiet", "--filter", "core:logstore/lattice-*"]).expect(0);
    assert_eq!(quiet.stdout, "", "--quiet: nothing on success");
    // A failure is still printed under --quiet.
    let failing = at_root(["--quiet", "verify", "--build", "native-fault:forget-one-head", "--filter", "core:kvstore/lattice-*"]).expect(1);
    assert!(failing.stdout.contains("FAIL") || failing.stdout.contains("fail"), "{}", failing.stdout);
}

/// Every command that takes `--json` prints one JSON document on stdout and nothing else, on
/// success and, where the command can refuse, on refusal too (the bad input tried: a build that
/// does not reproduce the store, for `open --verify-history`).
#[test]
fn json_output_is_pure_json_on_stdout_for_every_command_that_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::util::example_store(tmp.path());
    let s = store.to_str().unwrap();
    let pure = |args: &[&str], code: i32| {
        let out = run_in(tmp.path(), args).expect(code);
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&out.stdout);
        assert!(parsed.is_ok(), "`{}` printed more than JSON on stdout:\n{}", args.join(" "), out.stdout);
        parsed.unwrap()
    };
    assert!(pure(&["peek", s, "--json"], 0)["store_type"].is_string());
    assert!(pure(&["open", s, "--json"], 0)["state_hash"].is_string());
    pure(&["open", s, "--verify", "--deep", "--json"], 0);
    pure(&["open", s, "--verify-history", "--json"], 0);
    let changed = guest("core-kvstore-forget-one-head");
    pure(&["open", s, "--verify-history", "--build", changed.to_str().unwrap(), "--json"], 1);
    pure(&["dump", s, "--json"], 0);
    pure(&["faults", "--json"], 0);
    let corpus = fixtures().join("corpus");
    let golden = fixtures().join("golden");
    let adequacy = [
        "corpus",
        "adequacy",
        "--corpus",
        corpus.to_str().unwrap(),
        "--golden",
        golden.to_str().unwrap(),
        "--fault",
        "kv-strict-greater",
        "--filter",
        "*/lattice-*",
        "--orders",
        "0",
        "--min-kills",
        "1",
        "--json",
    ];
    // The fault may survive this slice (exit 1) or not; either way stdout is the JSON report.
    let out = run_in(tmp.path(), adequacy);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("adequacy --json prints only JSON");
    assert_eq!(report["format"], "lattice-conform/adequacy-report");
    // The commands that gained --json in #16 (their shapes are tested in workflow_friction).
    pure(&["migrate", "--list", "--json"], 0);
    pure(&["audit", s, "--json"], 0);
    pure(&["migrate", s, "--to-type", "core:kvstore-v2", "--dry-run", "--json"], 0);
}

/// Runs `lattice-conform ARGS` in `dir` with stderr on a fresh pseudo-terminal (80×24), stdout
/// piped and `CI` removed unless `ci`; returns (exit code, stdout, what the terminal received).
fn run_on_terminal(dir: &Path, args: &[&str], ci: bool) -> (i32, String, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: out-pointers to two ints and a valid winsize; no name or termios is asked for.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two fresh descriptors that nothing else owns.
    let (mut master, slave) = unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lattice-conform"));
    cmd.current_dir(dir).args(args).stdout(std::process::Stdio::piped()).stderr(slave);
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    let mut child = cmd.spawn().expect("the binary runs");
    drop(cmd); // closes our copy of the terminal's slave side, so reading ends with the child
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // A pty's master reads EIO once every slave descriptor is closed.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, stdout, reader.join().unwrap())
}

#[test]
fn long_runs_draw_a_bar_with_eta_on_a_terminal_but_not_in_ci_or_when_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = |out: &'static str, quiet: bool| {
        let mut a = vec!["gen", "--type", "core:kvstore", "--histories", "40", "--ops", "300", "--out", out];
        if quiet {
            a.push("--quiet");
        }
        a
    };
    let (code, stdout, terminal) = run_on_terminal(tmp.path(), &gen("a", false), false);
    assert_eq!(code, 0, "{terminal}");
    assert!(
        terminal.contains("gen") && terminal.contains("histories") && terminal.contains("ETA"),
        "no bar on the terminal:\n{terminal:?}"
    );
    assert!(!stdout.contains("ETA") && !stdout.contains('\u{1b}'), "the bar reached stdout:\n{stdout}");
    assert!(stdout.contains("core:kvstore"), "the coverage table is still printed:\n{stdout}");
    // CI set: a terminal, but no bar.
    let (code, _, terminal) = run_on_terminal(tmp.path(), &gen("b", false), true);
    assert_eq!(code, 0);
    assert!(!terminal.contains("ETA"), "a bar under CI:\n{terminal:?}");
    // --quiet: no bar and no summary.
    let (code, stdout, terminal) = run_on_terminal(tmp.path(), &gen("c", true), false);
    assert_eq!(code, 0);
    assert!(!terminal.contains("ETA") && stdout.is_empty(), "--quiet drew or printed:\n{terminal:?}\n{stdout}");
    // Same bytes whatever was drawn.
    let manifest = |d: &str| std::fs::read(tmp.path().join(d).join("MANIFEST.json")).unwrap();
    assert_eq!(manifest("a"), manifest("b"));
    assert_eq!(manifest("a"), manifest("c"));
}

/// The options the issue found without help now explain themselves in `--help` (the unit test
/// in the binary checks every option; this one reads what a user reads).
#[test]
fn help_explains_the_options_users_asked_about() {
    // clap prints an option's text after it on its line, or (long help) on the next line.
    let text_of = |help: &str, flag: &str| -> String {
        let lines: Vec<&str> = help.lines().collect();
        let i = lines.iter().position(|l| l.trim_start().starts_with(flag)).unwrap_or_else(|| panic!("{flag} not in help:\n{help}"));
        let same = lines[i].trim_start().split_once("  ").map_or("", |(_, rest)| rest.trim());
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if !same.is_empty() {
            same.to_string()
        } else if !next.starts_with('-') {
            next.to_string()
        } else {
            String::new()
        }
    };
    let certify = at_root(["certify", "--help"]).expect(0).stdout;
    for flag in ["--type", "--baseline", "--candidate", "--seed", "--json"] {
        assert!(!text_of(&certify, flag).is_empty(), "certify {flag} has no help:\n{certify}");
    }
    let verify = at_root(["verify", "--help"]).expect(0).stdout;
    for flag in ["--type", "--corpus", "--golden", "--format", "--allow-pending", "--output"] {
        assert!(!text_of(&verify, flag).is_empty(), "verify {flag} has no help:\n{verify}");
    }
}

/// `--quiet` silences the success lines of the authoring and review commands too (the history
/// is still written, and an error is still printed).
#[test]
fn quiet_authoring_prints_nothing_but_still_writes_and_still_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let quiet = |args: &[&str]| {
        let out = run_in(t, args.iter().chain(&["--quiet"])).expect(0);
        assert_eq!(out.stdout, "", "`{}` printed under --quiet", args.join(" "));
    };
    quiet(&["history", "new", "fix.json", "--type", "core:kvstore"]);
    quiet(&["history", "add", "fix.json", "--author", "alice", "--put", "k=v"]);
    quiet(&["corpus", "add", "fix.json", "--corpus", "c", "--golden", "g"]);
    assert!(t.join("g/core__kvstore/fix.json.pending").exists(), "corpus add still wrote its pending golden");
    // Bad input under --quiet: a --put without `=` is still refused, with its reason.
    let bad = run_in(t, ["history", "add", "fix.json", "--author", "bob", "--put", "novalue", "--quiet"]).expect(2);
    assert!(bad.stderr.contains("expected KEY=VALUE"), "{}", bad.stderr);
}
