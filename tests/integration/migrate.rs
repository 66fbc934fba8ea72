//! Migrations on real store files: the five checks on every bundled kvstore history, injected
//! failures and SIGKILL, a lossy migration, the in-place type swap audit, and bad inputs.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use lattice_conform::corpus::{self, Manifest};
use lattice_conform::golden::{migration_golden_path, MigrationGolden};
use lattice_conform::lattice_logic::kvstore::{encode_payload, Entry, KvStore};
use lattice_conform::migrate::{self, FailPoint, KvToV2, MigrateError, MigrateOptions};
use lattice_conform::op::{op_id, Hlc, Op, ZERO_HASH};
use lattice_conform::registry::Registry;
use lattice_conform::replay::MemStore;
use lattice_conform::store::Store;
use uuid::Uuid;

use crate::util::{digests, example_store, fixtures, fresh_store, run, tamper_str_table, Run};

const V2: &str = "core:kvstore-v2";

/// A store on disk holding the valid prefix of a bundled history (negative histories stop
/// before the op projection stalls at, so the source is not stalled).
fn source_from(entry: &corpus::ManifestEntry, dir: &Path) -> PathBuf {
    let h = corpus::load_checked(&fixtures().join("corpus"), entry).unwrap();
    let id = h.identity();
    let mut probe = MemStore::new(id, Arc::new(KvStore));
    for op in &h.ops {
        probe.deliver(op);
    }
    let valid = probe.stall().map_or(h.ops.len(), |s| s.op_index as usize);
    let src = dir.join("src");
    Store::create(&src, h.store_id, Arc::new(KvStore)).unwrap().apply_ops(&h.ops[..valid], 0).unwrap();
    src
}

#[test]
fn all_five_checks_pass_on_every_bundled_kvstore_history_and_match_the_migration_goldens() {
    let registry = Registry::with_reference_types();
    let manifest = Manifest::load(&fixtures().join("corpus"), false).unwrap();
    let entries: Vec<_> = manifest.files.iter().filter(|e| e.store_type == "core:kvstore").collect();
    assert!(entries.len() >= 40);
    for e in entries {
        let tmp = tempfile::tempdir().unwrap();
        let src = source_from(e, tmp.path());
        let mut opts = MigrateOptions::new(V2);
        opts.target_id = Some(migrate::golden_target_id());
        let (outcome, checks) = migrate::migrate_checked(&src, &tmp.path().join("dst"), &opts, None, &registry).unwrap();
        assert_eq!(checks.len(), 5);
        for c in &checks {
            assert!(c.ok, "{}: check `{}` failed: {}", e.id(), c.name, c.detail);
        }
        let golden_path = migration_golden_path(&fixtures().join("golden"), &KvToV2::default(), e).unwrap();
        let golden: MigrationGolden = serde_json::from_str(&std::fs::read_to_string(golden_path).unwrap()).unwrap();
        // A history that batches ops (FORMAT §10.9) reaches its golden only when delivered by its
        // plan; `apply` delivers each op on its own, so its store is another store.
        let planned =
            !lattice_conform::history::History::load(&fixtures().join("corpus").join(&e.path)).unwrap().delivery.batches.is_empty();
        if planned {
            continue;
        }
        assert_eq!(Some(outcome.target_state_hash), golden.target_state_hash, "{}: on-disk migration vs its golden", e.id());
    }
}

/// A kvstore with `keys` keys, 100 per op, so the migration has several ops (256 keys each).
fn big_source(dir: &Path, keys: usize) -> PathBuf {
    let id = Uuid::from_u128(77);
    let src = dir.join("src");
    let mut prev = ZERO_HASH;
    let ops: Vec<Op> = (0..keys.div_ceil(100))
        .map(|n| {
            let entries: Vec<Entry> = (n * 100..((n + 1) * 100).min(keys))
                .map(|i| Entry::Put { key: format!("k{i:06}").into_bytes(), value: vec![b'v'; 8] })
                .collect();
            let op = Op {
                author: [3; 32],
                hlc: Hlc { wall_ms: n as u64, counter: 0 },
                prev,
                causal_deps: vec![],
                payload: encode_payload(&entries),
            };
            prev = op_id(&id, &op);
            op
        })
        .collect();
    Store::create(&src, id, Arc::new(KvStore)).unwrap().apply_ops(&ops, 0).unwrap();
    src
}

fn leftovers(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".migrating-")).count()
}

#[test]
fn injected_failures_leave_no_target_and_the_source_untouched_and_reruns_converge() {
    let registry = Registry::with_reference_types();
    let tmp = tempfile::tempdir().unwrap();
    let src = big_source(tmp.path(), 1000);
    let before = digests(&src);
    let mut opts = MigrateOptions::new(V2);
    opts.target_id = Some(Uuid::from_u128(5));
    let expected = migrate::migrate(&src, &tmp.path().join("reference"), &opts, None, &registry).unwrap().target_state_hash;
    for point in [FailPoint::AfterOp(0), FailPoint::AfterOp(1), FailPoint::AfterOp(3), FailPoint::BeforeRename, FailPoint::AfterRename] {
        let dst = tmp.path().join(format!("dst-{point:?}"));
        let failing = MigrateOptions { fail_at: Some(point), ..opts.clone() };
        assert!(matches!(migrate::migrate(&src, &dst, &failing, None, &registry), Err(MigrateError::Injected(_))));
        assert_eq!(dst.exists(), point == FailPoint::AfterRename, "{point:?}");
        assert_eq!(digests(&src), before, "{point:?}: source changed");
        let hash = if dst.exists() {
            registry.open(&dst).unwrap().verify().unwrap().to_string()
        } else {
            migrate::migrate(&src, &dst, &opts, None, &registry).unwrap().target_state_hash
        };
        assert_eq!(hash, expected, "{point:?}");
        assert_eq!(leftovers(tmp.path()), 0, "{point:?}: temporary build directories left behind");
    }
}

#[test]
fn sigkill_mid_migration_leaves_no_target_and_a_rerun_reaches_the_same_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let src = big_source(tmp.path(), 1000);
    let before = digests(&src);
    let dst = tmp.path().join("dst");
    let id = "00000000-0000-4000-8000-000000000009";
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "migrate".into(),
            src.display().to_string(),
            dst.display().to_string(),
            "--to-type".into(),
            V2.into(),
            "--id".into(),
            id.into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_lattice-conform")).args(args(&["--stall-after", "2"])).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "stalled after 2 ops\n");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dst.exists(), "a killed migration must not leave a destination");
    assert_eq!(digests(&src), before);
    assert_eq!(leftovers(tmp.path()), 1, "the killed run's build directory is still there");
    let out = run(args(&[])).expect(0);
    let mut opts = MigrateOptions::new(V2);
    opts.target_id = Some(id.parse().unwrap());
    let expected =
        migrate::migrate(&src, &tmp.path().join("reference"), &opts, None, &Registry::with_reference_types()).unwrap().target_state_hash;
    assert!(out.stdout.lines().next().unwrap().ends_with(&format!("; state hash {expected}")), "{}", out.stdout);
    assert_eq!(leftovers(tmp.path()), 0, "the rerun cleans up the stale build directory");
}

#[test]
fn a_lossy_migration_fails_the_equivalence_check_naming_the_dropped_key() {
    let tmp = tempfile::tempdir().unwrap();
    let src = example_store(tmp.path());
    let lossy: Arc<dyn migrate::Migration> = Arc::new(KvToV2 { fault: Some(migrate::MigrationFault::DropsFirstKey) });
    let registry = Registry::with_reference_types();
    let (_, checks) = migrate::migrate_checked(&src, &tmp.path().join("dst"), &MigrateOptions::new(V2), Some(lossy), &registry).unwrap();
    let eq = &checks[2];
    assert_eq!((eq.name.as_str(), eq.ok), ("equivalence", false));
    assert_eq!(eq.diff.len(), 1);
    assert_eq!(eq.diff[0].key.utf8.as_deref(), Some("color"), "the first live key in key order");
    assert!(eq.diff[0].actual.is_none());
    assert!(checks.iter().filter(|c| c.name != "equivalence").all(|c| c.ok));
}

#[test]
fn audit_catches_a_type_rewritten_in_place_and_passes_a_clean_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let clean = run([OsStr::new("audit"), dir.as_os_str()]).expect(0);
    assert!(clean.stdout.contains("clean"));
    tamper_str_table(&dir.join("state.db"), "meta", "store_type", Some(V2.as_bytes()));
    let out = run([OsStr::new("audit"), dir.as_os_str()]).expect(1);
    assert!(
        out.stdout.contains("state.db says (") && out.stdout.contains("created as `core:kvstore` schema 1, now `core:kvstore-v2`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("the stored state hash was not computed for `core:kvstore-v2`"), "{}", out.stdout);
    // Rewriting both meta tables consistently is still caught by the creation record and the hash.
    tamper_str_table(&dir.join("log.db"), "log_meta", "store_type", Some(V2.as_bytes()));
    let both = run([OsStr::new("audit"), dir.as_os_str()]).expect(1);
    assert!(!both.stdout.contains("state.db says (") && both.stdout.contains("created as `core:kvstore`"), "{}", both.stdout);
}

fn migrate_cli(src: &Path, dst: &Path, ty: &str) -> Run {
    run([OsStr::new("migrate"), src.as_os_str(), dst.as_os_str(), OsStr::new("--to-type"), OsStr::new(ty)])
}

#[test]
fn bad_migration_inputs_are_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = example_store(tmp.path());
    let before = digests(&src);
    let dst = tmp.path().join("dst");
    let cases = [
        ("missing source", tmp.path().join("nope"), dst.clone(), V2, "no such store directory"),
        ("unknown target type", src.clone(), dst.clone(), "acme:nothing", "no migration from `core:kvstore` to `acme:nothing`"),
        ("no migration between the types", src.clone(), dst.clone(), "core:logstore", "available: core:kvstore -> core:kvstore-v2"),
        ("destination exists", src.clone(), src.clone(), V2, "already exists"),
    ];
    for (what, s, d, ty, needle) in cases {
        let out = migrate_cli(&s, &d, ty).expect(2);
        assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
        assert!(!dst.exists(), "{what}: wrote a destination");
        assert_eq!(digests(&src), before, "{what}: touched the source");
    }
    let corrupt = tmp.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::copy(src.join("log.db"), corrupt.join("log.db")).unwrap();
    std::fs::write(corrupt.join("state.db"), b"garbage").unwrap();
    assert!(migrate_cli(&corrupt, &dst, V2).expect(2).stderr.contains("not a redb database"));
    // A source whose data no longer hashes to its stored state hash.
    let tampered = tmp.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    for f in ["state.db", "log.db"] {
        std::fs::copy(src.join(f), tampered.join(f)).unwrap();
    }
    crate::util::tamper_first_data_row(&tampered.join("state.db"));
    assert!(migrate_cli(&tampered, &dst, V2).expect(2).stderr.contains("corrupt: stored state hash"));
    // A source whose state.db lags its log.db (a crash between the two commits): migrating the
    // stale state would silently lose keys, so it is refused until an open catches it up.
    let lagging = tmp.path().join("lagging");
    std::fs::create_dir(&lagging).unwrap();
    let fresh = fresh_store(tmp.path(), "fresh");
    std::fs::copy(fresh.join("state.db"), lagging.join("state.db")).unwrap();
    std::fs::copy(src.join("log.db"), lagging.join("log.db")).unwrap();
    let out = migrate_cli(&lagging, &dst, V2).expect(2);
    assert!(out.stderr.contains("state.db reflects 0 log entries but log.db holds 6"), "{}", out.stderr);
    run([OsStr::new("open"), lagging.as_os_str()]).expect(0);
    migrate_cli(&lagging, &dst, V2).expect(0);
    std::fs::remove_dir_all(&dst).unwrap();
    let paused = crate::util::paused_store(tmp.path(), 2);
    let out = migrate_cli(&paused, &dst, V2).expect(2);
    assert!(out.stderr.contains("store is paused since op 2"), "{}", out.stderr);
    assert!(!dst.exists());
}

#[test]
fn dry_run_runs_every_check_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let src = example_store(tmp.path());
    let dst = tmp.path().join("dst");
    let args = [OsStr::new("migrate"), src.as_os_str(), dst.as_os_str(), OsStr::new("--to-type"), OsStr::new(V2), OsStr::new("--dry-run")];
    let out = run(args).expect(0);
    assert_eq!(out.stdout.matches(" ok ").count(), 5, "{}", out.stdout);
    assert!(!dst.exists());
    let names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["store"], "only the source remains");
}

#[test]
fn verify_migrations_passes_on_the_bundled_goldens_and_fails_on_an_edited_one() {
    let (corpus, golden) = (fixtures().join("corpus"), fixtures().join("golden"));
    let args = |g: &Path| {
        [
            OsStr::new("verify"),
            OsStr::new("--migrations"),
            OsStr::new("--corpus"),
            corpus.as_os_str(),
            OsStr::new("--golden"),
            g.as_os_str(),
        ]
        .map(|s| s.to_os_string())
    };
    run(args(&golden)).expect(0);
    // A seeded migration fault (chunks of 128 entries instead of 256) fails the bundled goldens,
    // and the report names the build.
    let faulty: Vec<_> = args(&golden)
        .into_iter()
        .chain(["--build".into(), "native-fault:migrate-chunk-128".into(), "--format".into(), "json".into()])
        .collect();
    let out = run(&faulty).expect(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["build"], "native-fault:migrate-chunk-128", "{}", out.stdout);
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("golden");
    let manifest = Manifest::load(&corpus, false).unwrap();
    let e = manifest.files.iter().find(|e| e.store_type == "core:kvstore").unwrap();
    for entry in manifest.files.iter().filter(|e| e.store_type == "core:kvstore") {
        let from = migration_golden_path(&golden, &KvToV2::default(), entry).unwrap();
        let to = migration_golden_path(&copy, &KvToV2::default(), entry).unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let edited = migration_golden_path(&copy, &KvToV2::default(), e).unwrap();
    let g: MigrationGolden = serde_json::from_str(&std::fs::read_to_string(&edited).unwrap()).unwrap();
    std::fs::write(&edited, std::fs::read_to_string(&edited).unwrap().replace(g.target_state_hash.as_deref().unwrap(), &"0".repeat(64)))
        .unwrap();
    let out = run(args(&copy)).expect(1);
    assert!(out.stdout.contains(&format!("FAIL migration:{}", e.id())), "{}", out.stdout);
    // The reference migration agrees with the build: the golden changed, and no op is named.
    assert!(
        out.stdout.contains("the reference migration agrees with this build on every migration op, so the golden is what changed"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("first divergent"), "{}", out.stdout);
}

/// `verify --migrations` of a build whose migration loses a key: the failure names the first
/// migration op where it differs from the reference migration, with the decoded key diff of the two
/// target stores; the run stops at the first failing case unless --keep-going.
#[test]
fn verify_migrations_shows_the_key_diff_of_a_broken_migration_and_stops_at_the_first_failure() {
    let (corpus, golden) = (fixtures().join("corpus"), fixtures().join("golden"));
    let cases = Manifest::load(&corpus, false).unwrap().files.iter().filter(|e| e.store_type == "core:kvstore").count();
    let args = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> =
            ["verify", "--migrations", "--build", "native-fault:migrate-drops-first-key"].map(Into::into).to_vec();
        a.extend([OsStr::new("--corpus"), corpus.as_os_str(), OsStr::new("--golden"), golden.as_os_str()].map(Into::into));
        a.extend(extra.iter().map(Into::into));
        a
    };
    let out = run(args(&["--format", "json"])).expect(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "fail-fast: the run stops at the first failing case");
    assert_eq!(report["not_run"].as_array().unwrap().len(), cases - 1);
    assert_eq!(report["selection"]["selected"].as_u64(), Some(cases as u64));
    assert!(out.stderr.contains(&format!("1 of 1 cases failed ({} more not run", cases - 1)), "{}", out.stderr);
    let failure = &results[0]["failure"];
    assert!(failure["summary"].as_str().unwrap().contains("first differ at migration op 0"), "{failure}");
    let d = &failure["divergence"];
    assert_eq!(d["op_index"], 0, "{d}");
    assert_ne!(d["reference_state_hash"], d["candidate_state_hash"]);
    // The first live key is gone from the target: present in the reference, absent here.
    let diff = d["diff"].as_array().unwrap();
    assert_eq!(diff.len(), 1, "{d}");
    assert_eq!(diff[0]["expected"]["kind"], "kv_v2_key", "{d}");
    assert!(diff[0]["actual"].is_null(), "{d}");
    assert_eq!(d["read_diff"][0]["expected"]["kind"], "kv_v2_read", "{d}");
    assert!(d["read_diff"][0]["actual"].is_null(), "{d}");
    let key = diff[0]["key"]["utf8"].as_str().unwrap().to_string();
    // The human report says the same in words.
    let human = run(args(&[])).expect(1);
    assert!(human.stdout.contains("first divergent migration op: #0"), "{}", human.stdout);
    assert!(human.stdout.contains(&format!("key diff (reference → this build):\n    {key:?}")), "{}", human.stdout);
    assert!(human.stdout.contains("stopped after the first failure: ") && human.stdout.contains(" cases not run"), "{}", human.stdout);
    // --keep-going checks every case; in each that fails, the first key of the diff (the first
    // live key) is one the reference's target has and this build's lacks (a migration of several
    // ops also shows the key its first op now carries in the dropped key's place).
    let all: serde_json::Value = serde_json::from_str(&run(args(&["--keep-going", "--format", "json"])).expect(1).stdout).unwrap();
    assert_eq!(all["results"].as_array().unwrap().len(), cases);
    assert!(all["not_run"].as_array().unwrap().is_empty());
    let failed: Vec<_> = all["results"].as_array().unwrap().iter().filter(|r| !r["failure"].is_null()).collect();
    assert!(failed.len() > 1, "{}", failed.len());
    for r in failed {
        let first = &r["failure"]["divergence"]["diff"][0];
        assert!(first["expected"]["kind"] == "kv_v2_key" && first["actual"].is_null(), "{r}");
    }
}
