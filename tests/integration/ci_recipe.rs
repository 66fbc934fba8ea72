//! The CI recipe of docs/CI.md, run locally through the real binary: the `run:` steps of the
//! committed workflow (docs/ci/github-actions.yml) — 4 verify shards, the merge into JSON and
//! JUnit, certify of a hot fix — executed with `sh` in a temp "checkout", so that the document and
//! this test cannot drift. Then the refusals a CI relies on: mixed inputs, a missing or duplicate
//! shard, an empty shard that passes, an unknown `--type`, and fail-fast JUnit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lattice_conform::corpus::{self, Manifest, ManifestEntry};
use lattice_conform::golden;
use lattice_conform::verify::{shard_of, Report};

use crate::util::{fixtures, run_in, Run};

const WORKFLOW: &str = "docs/ci/github-actions.yml";
const KV: &str = "core:kvstore";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- the workflow file ------------------------------------------------------------------------

/// What the test needs of the workflow: its `env`, the verify matrix and every job's `run:`
/// scripts, in file order. A reader of exactly the YAML subset the workflow uses (block mappings,
/// `- ` step lists, `run: |` blocks, flow lists of numbers); it fails loudly on anything else it
/// is asked for.
#[derive(Debug, Default)]
struct Workflow {
    env: BTreeMap<String, String>,
    shards: Vec<u32>,
    /// Job name → its `run:` scripts.
    runs: BTreeMap<String, Vec<String>>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string()
}

fn parse_workflow(text: &str) -> Workflow {
    let lines: Vec<&str> = text.lines().collect();
    let mut w = Workflow::default();
    let (mut section, mut job) = (String::new(), String::new());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match indent(line) {
            0 => section = t.trim_end_matches(':').to_string(),
            2 if section == "env" => {
                let (k, v) = t.split_once(':').expect("env: KEY: value");
                w.env.insert(k.to_string(), unquote(v.split(" #").next().unwrap()));
            }
            2 if section == "jobs" => job = t.trim_end_matches(':').to_string(),
            n if section == "jobs" => {
                let t = t.strip_prefix("- ").unwrap_or(t);
                if let Some(list) = t.strip_prefix("shard: [") {
                    w.shards = list.trim_end_matches(']').split(',').map(|s| s.trim().parse().unwrap()).collect();
                } else if let Some(script) = t.strip_prefix("run:") {
                    let script = if script.trim() == "|" {
                        let mut block = Vec::new();
                        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > n) {
                            block.push(lines[i].trim());
                            i += 1;
                        }
                        block.join("\n")
                    } else {
                        script.trim().to_string()
                    };
                    w.runs.entry(job.clone()).or_default().push(script);
                }
            }
            _ => {}
        }
    }
    w
}

fn workflow() -> Workflow {
    parse_workflow(&std::fs::read_to_string(root().join(WORKFLOW)).unwrap())
}

/// Runs one `run:` script the way the runner does (`sh -e`), in `dir`, with the workflow's env
/// and `${{ matrix.shard }}` = `shard`.
fn run_step(dir: &Path, w: &Workflow, script: &str, shard: Option<u32>) -> Run {
    let script = match shard {
        Some(i) => script.replace("${{ matrix.shard }}", &i.to_string()),
        None => script.to_string(),
    };
    assert!(!script.contains("${{"), "an expression the test does not provide: {script}");
    let out = Command::new("sh").arg("-e").arg("-c").arg(&script).current_dir(dir).envs(&w.env).env("CI", "true").output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---- a small checkout -------------------------------------------------------------------------

/// A temp "checkout": a small corpus of real `core:kvstore` histories of the bundled corpus (two
/// of each scenario, at most 200 ops, none in shard 7/100) with their goldens, the committed
/// guests (a link), and `bin/lattice-conform` (a link to the binary under test).
fn checkout() -> (tempfile::TempDir, Vec<ManifestEntry>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let real = Manifest::load(&fixtures().join("corpus"), false).unwrap();
    let mut per_scenario: BTreeMap<String, usize> = BTreeMap::new();
    let mut picked = Vec::new();
    for e in real.files.iter().filter(|e| e.store_type == KV && e.ops <= 200 && shard_of(&e.id(), 100) != 7) {
        let scenario = e.name().split("-s1-").next().unwrap().to_string();
        let n = per_scenario.entry(scenario).or_default();
        if *n < 2 {
            *n += 1;
            picked.push(e.clone());
        }
    }
    let mut m = Manifest::load(&dir.join("corpus"), true).unwrap();
    for e in &picked {
        add_to(dir, &mut m, e);
    }
    m.save(&dir.join("corpus")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lattice-conform"), dir.join("bin/lattice-conform")).unwrap();
    std::os::unix::fs::symlink(root().join("guests"), dir.join("guests")).unwrap();
    (tmp, picked)
}

/// Copies a bundled history and its golden into the checkout `dir` and lists it in `m`.
fn add_to(dir: &Path, m: &mut Manifest, e: &ManifestEntry) {
    let copy = |from: PathBuf, to: PathBuf| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    copy(fixtures().join("corpus").join(&e.path), dir.join("corpus").join(&e.path));
    copy(golden::path_for(&fixtures().join("golden"), e), golden::path_for(&dir.join("golden"), e));
    m.upsert(e.clone());
}

fn load(path: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `verify` of the small corpus (native unless `args` says otherwise), as `report-<name>.json`.
fn shard_report(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = format!("report-{name}.json");
    let base = ["verify", "--type", KV, "--keep-going", "--format", "json", "--output", &out];
    run_in(dir, base.iter().chain(args)).expect(0);
    dir.join(out)
}

fn merge(dir: &Path, reports: &[&Path]) -> Run {
    run_in(dir, ["report", "merge"].iter().map(|s| s.as_ref()).chain(reports.iter().map(|p| p.as_os_str())))
}

/// Every `<testcase>` of a JUnit document: (name, time attribute, child element if any), and
/// the `tests`, `failures` and `skipped` of the first `<testsuite>`.
#[derive(Debug, Default)]
struct Junit {
    cases: Vec<(String, Option<String>, Option<String>)>,
    suite: BTreeMap<String, String>,
}

fn parse_junit(xml: &str) -> Junit {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut j = Junit::default();
    let mut suites = 0;
    let attrs = |e: &quick_xml::events::BytesStart| -> BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.unwrap();
                (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), a.unescape_value().unwrap().into_owned())
            })
            .collect()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => {
                    suites += 1;
                    if suites == 1 {
                        j.suite = attrs(&e);
                    }
                }
                b"testcase" => {
                    let a = attrs(&e);
                    j.cases.push((a["name"].clone(), a.get("time").cloned(), None));
                }
                child @ (b"failure" | b"skipped") => {
                    let msg = attrs(&e).get("message").cloned().unwrap_or_default();
                    let last = j.cases.last_mut().expect("inside a testcase");
                    last.2 = Some(format!("{}: {msg}", String::from_utf8_lossy(child)));
                }
                _ => {}
            },
            _ => {}
        }
    }
    j
}

fn name_of(id: &str) -> String {
    id.split_once('/').unwrap().1.to_string()
}

// ---- the tests --------------------------------------------------------------------------------

#[test]
fn the_workflow_runs_locally_shards_merge_into_valid_junit_and_the_hot_fix_certifies() {
    let w = workflow();
    // The commands this test runs are the workflow's, and they are the documented ones.
    let verify = w.runs["verify"].join("\n");
    for needle in
        ["bin/lattice-conform verify", "--shard ${{ matrix.shard }}/4", "--format json", "--output report-${{ matrix.shard }}.json"]
    {
        assert!(verify.contains(needle), "the verify step lacks {needle:?}: {verify}");
    }
    let merge_steps = w.runs["merge"].join("\n");
    for needle in ["bin/lattice-conform report merge reports/report-*.json", "--format junit --output junit.xml"] {
        assert!(merge_steps.contains(needle), "the merge job lacks {needle:?}: {merge_steps}");
    }
    let certify = w.runs["certify"].join("\n");
    for needle in ["bin/lattice-conform certify --type", "--baseline", "--candidate", "bin/lattice-conform certify --check"] {
        assert!(certify.contains(needle), "the certify job lacks {needle:?}: {certify}");
    }
    assert_eq!(w.shards, [1, 2, 3, 4]);
    let doc = std::fs::read_to_string(root().join("docs/CI.md")).unwrap();
    let yaml = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    assert!(doc.contains(yaml.trim_end()), "docs/CI.md must show {WORKFLOW} verbatim");

    let (tmp, picked) = checkout();
    let dir = tmp.path();
    // Job `verify`, once per matrix entry; then the reports are "downloaded" into reports/.
    std::fs::create_dir_all(dir.join("reports")).unwrap();
    let mut in_shards = 0;
    for &i in &w.shards {
        for script in &w.runs["verify"] {
            run_step(dir, &w, script, Some(i)).expect(0);
        }
        let report = format!("report-{i}.json");
        let r = load(&dir.join(&report));
        assert_eq!(r.shards, [format!("{i}/4")]);
        assert_eq!(r.selection.total, picked.len() as u64);
        assert_eq!(r.selection.selected as usize, r.results.len());
        assert!(r.build_identity.starts_with("wasm ") && r.build_identity.ends_with(&digest_of(&root().join(&w.env["BUILD"]))));
        in_shards += r.results.len();
        std::fs::rename(dir.join(&report), dir.join("reports").join(&report)).unwrap();
    }
    assert_eq!(in_shards, picked.len(), "every selected history is in exactly one shard");
    // Job `merge`.
    for script in &w.runs["merge"] {
        run_step(dir, &w, script, None).expect(0);
    }
    let merged = load(&dir.join("merged.json"));
    assert_eq!(merged.shards, ["1/4", "2/4", "3/4", "4/4"]);
    let mut ids: Vec<String> = picked.iter().map(|e| e.id()).collect();
    ids.sort();
    assert_eq!(merged.results.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!((merged.passed(), merged.selection.selected, merged.durations_us.len()), (ids.len(), ids.len() as u64, ids.len()));
    let junit = parse_junit(&std::fs::read_to_string(dir.join("junit.xml")).unwrap());
    assert_eq!(junit.suite["tests"], ids.len().to_string());
    assert_eq!((junit.suite["failures"].as_str(), junit.suite["skipped"].as_str()), ("0", "0"));
    assert_eq!(junit.cases.iter().map(|c| c.0.clone()).collect::<Vec<_>>(), ids.iter().map(|id| name_of(id)).collect::<Vec<_>>());
    for (name, time, child) in &junit.cases {
        let time = time.as_deref().unwrap_or_else(|| panic!("testcase {name} has no time"));
        assert!(time.parse::<f64>().is_ok(), "{name}: time {time:?}");
        assert_eq!(child, &None, "{name} passed");
    }
    // Job `certify`: the hot fix is certified against its predecessor, and the certificate holds.
    // (Fewer generated cases than the workflow's, to keep the test short; the steps are the same.)
    let mut w = w;
    w.env.insert("CASES".into(), "20".into());
    for script in &w.runs["certify"] {
        run_step(dir, &w, script, None).expect(0);
    }
    let cert: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(cert["candidate"]["blake3"].as_str().unwrap(), digest_of(&root().join(&w.env["CANDIDATE"])));
}

fn digest_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

#[test]
fn merge_refuses_shards_of_other_inputs_naming_both_files_and_the_field() {
    let (tmp, picked) = checkout();
    let dir = tmp.path();
    let shards: Vec<PathBuf> = (1..=4).map(|i| shard_report(dir, &i.to_string(), &["--shard", &format!("{i}/4")])).collect();
    merge(dir, &shards.iter().map(PathBuf::as_path).collect::<Vec<_>>()).expect(0);
    let refused = |other: &Path, field: &str| {
        let parts: Vec<&Path> = [shards[0].as_path(), other, &shards[2], &shards[3]].to_vec();
        let out = merge(dir, &parts).expect(2);
        assert!(out.stdout.is_empty(), "nothing is printed: {}", out.stdout);
        for needle in [format!("differ in `{field}`"), other.display().to_string(), shards[0].display().to_string()] {
            assert!(out.stderr.contains(&needle), "expected {needle:?} in {}", out.stderr);
        }
    };

    // A golden rewritten (the same value, other bytes: verify still passes) after shard 1 ran.
    let some = &picked[0];
    let g = golden::path_for(&dir.join("golden"), some);
    let original = std::fs::read(&g).unwrap();
    std::fs::write(&g, [original.as_slice(), b"\n"].concat()).unwrap();
    refused(&shard_report(dir, "2-golden", &["--shard", "2/4"]), "golden_blake3");
    std::fs::write(&g, &original).unwrap();

    // The corpus gained a history.
    let real = Manifest::load(&fixtures().join("corpus"), false).unwrap();
    let extra = real.files.iter().find(|e| e.store_type == KV && e.ops <= 200 && !picked.contains(e)).unwrap();
    let manifest_before = std::fs::read(dir.join("corpus").join(corpus::MANIFEST)).unwrap();
    let mut m = Manifest::load(&dir.join("corpus"), false).unwrap();
    add_to(dir, &mut m, extra);
    m.save(&dir.join("corpus")).unwrap();
    refused(&shard_report(dir, "2-corpus", &["--shard", "2/4"]), "corpus_manifest_blake3");
    std::fs::write(dir.join("corpus").join(corpus::MANIFEST), manifest_before).unwrap();
    // Its golden would now be an orphan, which `verify` refuses.
    std::fs::remove_file(golden::path_for(&dir.join("golden"), extra)).unwrap();

    // Another build: by name, and under the same name with other bytes.
    refused(&shard_report(dir, "2-wasm", &["--shard", "2/4", "--build", "guests/dist/core-kvstore.wasm"]), "build");
    let guest = dir.join("guest.wasm");
    std::fs::copy(root().join("guests/dist/core-kvstore.wasm"), &guest).unwrap();
    let a: Vec<PathBuf> =
        (1..=4).map(|i| shard_report(dir, &format!("{i}-a"), &["--shard", &format!("{i}/4"), "--build", "guest.wasm"])).collect();
    std::fs::copy(root().join("guests/dist/core-kvstore-small.wasm"), &guest).unwrap();
    let b2 = shard_report(dir, "2-b", &["--shard", "2/4", "--build", "guest.wasm"]);
    let out = merge(dir, &[&a[0], &b2, &a[2], &a[3]]).expect(2);
    assert!(out.stderr.contains("differ in `build_identity`") && out.stderr.contains(&digest_of(&guest)), "{}", out.stderr);

    // Another selection.
    refused(&shard_report(dir, "2-filter", &["--shard", "2/4", "--filter", "*"]), "selection.filter");
    refused(&shard_report(dir, "2-of-5", &["--shard", "2/5"]), "selection.shard_count");
}

#[test]
fn merge_requires_every_shard_exactly_once() {
    let (tmp, _) = checkout();
    let dir = tmp.path();
    let s: Vec<PathBuf> = (1..=4).map(|i| shard_report(dir, &i.to_string(), &["--shard", &format!("{i}/4")])).collect();
    let out = merge(dir, &[&s[0], &s[1], &s[3]]).expect(2);
    assert!(out.stderr.contains("shard 3/4 missing"), "{}", out.stderr);
    let copy = dir.join("report-2-again.json");
    std::fs::copy(&s[1], &copy).unwrap();
    let out = merge(dir, &[&s[0], &s[1], &copy, &s[2], &s[3]]).expect(2);
    assert!(out.stderr.contains("shard 2/4 appears twice") && out.stderr.contains(&copy.display().to_string()), "{}", out.stderr);
}

#[test]
fn a_shard_that_selects_nothing_passes_in_every_format() {
    let (tmp, picked) = checkout();
    let dir = tmp.path();
    let args = ["verify", "--type", KV, "--shard", "7/100"];
    let human = run_in(dir, args).expect(0);
    assert!(human.stdout.contains("0 histories in this shard") && human.stdout.contains("0 passed, 0 failed"), "{}", human.stdout);
    let json = run_in(dir, args.iter().chain(&["--format", "json"])).expect(0);
    assert!(json.stderr.contains("0 histories in this shard"), "{}", json.stderr);
    let r: Report = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!((r.results.len(), r.not_run.len(), r.selection.selected, r.selection.total), (0, 0, 0, picked.len() as u64));
    let junit = run_in(dir, args.iter().chain(&["--format", "junit"])).expect(0);
    let j = parse_junit(&junit.stdout);
    assert_eq!((j.suite["tests"].as_str(), j.cases.len()), ("0", 0));
    // A filter that selects nothing in any shard is still a mistake, sharded or not.
    let none = run_in(dir, ["verify", "--filter", "*no-such-history*", "--shard", "7/100"]).expect(2);
    assert!(none.stderr.contains("no history selected"), "{}", none.stderr);
}

#[test]
fn an_unknown_type_is_refused_naming_the_known_types() {
    let (tmp, _) = checkout();
    let out = run_in(tmp.path(), ["verify", "--type", "core:kvstroe"]).expect(2);
    for needle in ["core:kvstroe", "unknown store type", "core:kvstore, core:kvstore-v2, core:logstore"] {
        assert!(out.stderr.contains(needle), "expected {needle:?} in {}", out.stderr);
    }
}

#[test]
fn fail_fast_junit_lists_the_histories_not_run_as_skipped() {
    let (tmp, picked) = checkout();
    let dir = tmp.path();
    let args = ["verify", "--type", KV, "--build", "native-fault:forget-one-head", "--jobs", "1"];
    let json = run_in(dir, args.iter().chain(&["--format", "json"])).expect(1);
    let r: Report = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(r.failed(), 1, "fail-fast stops at the first failure");
    assert!(!r.not_run.is_empty(), "the first failure is not the last history");
    assert_eq!(r.results.len() + r.not_run.len(), picked.len());
    let xml = run_in(dir, args.iter().chain(&["--format", "junit"])).expect(1);
    let j = parse_junit(&xml.stdout);
    assert_eq!(j.suite["tests"], picked.len().to_string());
    assert_eq!((j.suite["failures"].as_str(), j.suite["skipped"].clone()), ("1", r.not_run.len().to_string()));
    assert_eq!(j.cases.len(), picked.len());
    let skipped: Vec<&String> =
        j.cases.iter().filter(|c| c.2.as_deref().is_some_and(|s| s.starts_with("skipped: not run"))).map(|c| &c.0).collect();
    assert_eq!(skipped, r.not_run.iter().map(|n| name_of(&n.id)).collect::<Vec<_>>().iter().collect::<Vec<_>>());
    assert!(j.cases.iter().all(|c| c.1.is_some()), "every testcase has a time");
}

#[test]
fn every_report_names_its_inputs_and_only_durations_differ_between_runs() {
    let (tmp, picked) = checkout();
    let dir = tmp.path();
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&run_in(dir, args).expect(0).stdout).unwrap() };
    let args = ["verify", "--type", KV, "--filter", "*", "--shard", "1/3", "--format", "json"];
    let (mut a, mut b) = (json(&args), json(&args));
    let manifest = digest_of(&dir.join("corpus").join(corpus::MANIFEST));
    assert_eq!(a["tool"], format!("lattice-conform {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(a["build_identity"], format!("native lattice-conform {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(a["corpus_manifest_blake3"], manifest);
    assert_eq!(a["golden_blake3"].as_str().unwrap().len(), 64);
    let sel = &a["selection"];
    assert_eq!((sel["kind"].as_str(), sel["store_type"].as_str(), sel["filter"].as_str()), (Some("histories"), Some(KV), Some("*")));
    assert_eq!((sel["shard_count"].as_u64(), sel["total"].as_u64()), (Some(3), Some(picked.len() as u64)));
    assert_eq!(sel["selected"].as_u64().unwrap() as usize, a["results"].as_array().unwrap().len());
    assert_eq!(a["durations_us"].as_object().unwrap().len(), a["results"].as_array().unwrap().len());
    a.as_object_mut().unwrap().remove("durations_us");
    b.as_object_mut().unwrap().remove("durations_us");
    assert_eq!(a, b, "without its durations a report is the same for the same inputs");
    // A Wasm build is identified by its module's blake3; `verify --migrations` reports carry
    // their inputs too.
    let wasm = json(&["verify", "--type", KV, "--build", "guests/dist/core-kvstore-small.wasm", "--format", "json"]);
    assert_eq!(wasm["build_identity"], format!("wasm {}", digest_of(&root().join("guests/dist/core-kvstore-small.wasm"))));
    let m: serde_json::Value =
        serde_json::from_str(&run_in(fixtures(), ["verify", "--migrations", "--format", "json"]).expect(0).stdout).unwrap();
    assert_eq!(m["selection"]["kind"], "migrations");
    assert_eq!(m["selection"]["total"].as_u64().unwrap() as usize, m["results"].as_array().unwrap().len());
    assert_eq!(m["corpus_manifest_blake3"], digest_of(&fixtures().join("corpus").join(corpus::MANIFEST)));
    assert_eq!(m["golden_blake3"].as_str().unwrap().len(), 64);
}
