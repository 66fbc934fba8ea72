//! Issue #32, items 2–5: nothing lost, nothing half-written. A SIGKILL of `gen` or `record --out`
//! left `.tmpXXXX` files that every rerun kept; a `gen` whose write failed left histories and no
//! manifest; a killed rebuild left `state.db.rebuild`; `corpus add` of a history whose state
//! cannot be migrated (one value of about 1 MiB) exited 2 after copying, listing and half-blessing
//! it, and its retry said it was already in the corpus; `record --corpus` killed after listing left
//! its goldens missing; a rebuild through a symlinked `state.db` replaced the link. Each test names
//! its bad input, runs the real binary, and compares the tree with what an uninterrupted run makes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{digests, example, example_store, run};

/// Every file under `dir` (relative path → blake3).
fn tree(dir: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, [u8; 32]>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(path.strip_prefix(base).unwrap().to_path_buf(), *blake3::hash(&std::fs::read(&path).unwrap()).as_bytes());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Our temporary files under `dir`, by name only (a writer may create and rename them meanwhile).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if e.file_name().to_string_lossy().starts_with(".lattice-tmp.") {
                out.push(path);
            }
        }
    }
    out
}

fn spawn(args: &[&OsStr]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lattice-conform")).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Runs `args` and SIGKILLs it while a temporary file of ours is in `watch` (retrying a few times
/// when the kill lands between two files); returns once one is left behind.
fn kill_mid_write(args: &[&OsStr], watch: &Path) {
    for _ in 0..20 {
        let mut child = spawn(args);
        let start = Instant::now();
        while temp_files(watch).is_empty() && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(120), "no temporary file appeared");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if !temp_files(watch).is_empty() {
            return;
        }
    }
    panic!("20 kills, and none landed while a temporary file was open");
}

#[test]
fn gen_killed_mid_write_leaves_a_temporary_file_that_the_rerun_removes_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (killed, clean) = (tmp.path().join("killed"), tmp.path().join("clean"));
    let gen = |out: &Path| -> Vec<std::ffi::OsString> {
        ["gen", "--type", "core:kvstore", "--histories", "40", "--ops", "2000", "--out"]
            .iter()
            .map(Into::into)
            .chain([out.into()])
            .collect()
    };
    let args = gen(&killed);
    kill_mid_write(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(), &killed);
    let left = temp_files(&killed);
    let out = run(&args).expect(0);
    assert!(out.stderr.contains("note: removed ") && out.stderr.contains("left by an interrupted run"), "{}", out.stderr);
    assert!(out.stderr.contains(&left[0].file_name().unwrap().to_string_lossy().to_string()), "the note names the file:\n{}", out.stderr);
    run(gen(&clean)).expect(0);
    assert_eq!(tree(&killed), tree(&clean), "the rerun's tree differs from an uninterrupted run's");
}

#[test]
fn record_out_killed_mid_write_leaves_a_temporary_file_that_the_rerun_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::util::long_store(tmp.path(), 20_000);
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("recorded.json");
    let args = [OsStr::new("record"), store.as_os_str(), "--out".as_ref(), out.as_os_str()];
    kill_mid_write(&args, &outdir);
    assert!(!out.exists(), "the kill landed before the rename");
    let r = run(args).expect(0);
    assert!(r.stderr.contains("note: removed "), "{}", r.stderr);
    let names: Vec<_> = tree(&outdir).into_keys().collect();
    assert_eq!(names, vec![PathBuf::from("recorded.json")], "only the recorded history is left");
    let again = tmp.path().join("again.json");
    run([OsStr::new("record"), store.as_os_str(), "--out".as_ref(), again.as_os_str()]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn gen_whose_third_write_fails_takes_back_the_histories_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let gen = |out: &Path| {
        run([
            OsStr::new("gen"),
            "--type".as_ref(),
            "core:kvstore".as_ref(),
            "--histories".as_ref(),
            "5".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
    };
    gen(&clean).expect(0);
    // The third history's path is taken by a directory: its write fails, as on a full disk.
    let third = tree(&clean).into_keys().find(|p| p.to_string_lossy().ends_with("-s0-002.json")).unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(corpus.join(&third)).unwrap();
    let out = gen(&corpus).expect(2);
    assert!(out.stderr.contains(&third.display().to_string()), "the error names the file:\n{}", out.stderr);
    assert!(tree(&corpus).is_empty(), "a failed gen left files: {:?}", tree(&corpus).keys().collect::<Vec<_>>());
    std::fs::remove_dir(corpus.join(&third)).unwrap();
    gen(&corpus).expect(0);
    assert_eq!(tree(&corpus), tree(&clean));
}

#[test]
fn rebuild_killed_mid_way_leaves_state_db_rebuild_which_the_next_rebuild_removes_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::util::long_store(tmp.path(), 20_000);
    let stale = store.join("state.db.rebuild");
    for _ in 0..20 {
        let mut child = spawn(&[OsStr::new("rebuild"), store.as_os_str()]);
        while !stale.exists() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if stale.exists() {
            break;
        }
    }
    assert!(stale.exists(), "no kill landed during a rebuild");
    run([OsStr::new("open"), store.as_os_str()]).expect(0);
    let out = run([OsStr::new("rebuild"), store.as_os_str()]).expect(0);
    assert!(out.stderr.contains(&format!("note: removed {}, left by an interrupted rebuild", stale.display())), "{}", out.stderr);
    assert!(!stale.exists());
    run([OsStr::new("open"), store.as_os_str(), "--verify".as_ref()]).expect(0);
}

#[test]
fn rebuild_through_a_symlinked_state_db_is_refused_and_the_link_and_its_file_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let store = example_store(tmp.path());
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(store.join("state.db"), elsewhere.join("state.db")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("state.db"), store.join("state.db")).unwrap();
    let (before, before_file) = (tree(&store), tree(&elsewhere));
    for force in [false, true] {
        let mut args = vec![OsStr::new("rebuild"), store.as_os_str()];
        if force {
            args.push("--force".as_ref());
        }
        let out = run(&args).expect(2);
        assert!(out.stderr.contains("state.db: a symbolic link (to ") && out.stderr.contains("so it refuses"), "{}", out.stderr);
        assert!(std::fs::symlink_metadata(store.join("state.db")).unwrap().file_type().is_symlink(), "the link was replaced");
        assert_eq!((tree(&store), tree(&elsewhere)), (before.clone(), before_file.clone()), "rebuild --force={force} wrote");
    }
    // Everything else writes through the link, into the file it names.
    run([OsStr::new("apply"), store.as_os_str(), example().as_os_str()]).expect(0);
    run([OsStr::new("open"), store.as_os_str(), "--verify".as_ref()]).expect(0);
}

/// A `core:kvstore` history of one put whose value (1,048,554 bytes) fits an op but whose
/// `core:kvstore-v2` entry does not: its state cannot be migrated.
fn unmigratable_history(tmp: &Path) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    let value: Vec<u8> = (0..1_048_554u32).map(|i| b'a' + (i % 26) as u8).collect();
    let varint = |mut n: usize| {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    };
    let field = |tag: u8, data: &[u8]| [vec![tag], varint(data.len()), data.to_vec()].concat();
    let inner = [field(0x0a, b"big"), field(0x12, &value)].concat();
    let payload = field(0x0a, &field(0x0a, &inner));
    let op = v["ops"][0].as_object_mut().unwrap();
    op.remove("id");
    op.remove("decoded");
    op.insert("payload".into(), hex::encode(payload).into());
    let first = v["ops"][0].clone();
    v["ops"] = serde_json::json!([first]);
    let path = tmp.join("big.json");
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

fn empty_corpus(tmp: &Path) -> (PathBuf, PathBuf) {
    let (corpus, golden) = (tmp.join("corpus"), tmp.join("golden"));
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(corpus.join("MANIFEST.json"), r#"{"format":"lattice-conform/corpus-manifest","format_version":1,"files":[]}"#).unwrap();
    (corpus, golden)
}

#[test]
fn corpus_add_of_a_history_that_cannot_be_migrated_succeeds_whole_with_a_not_migratable_golden() {
    let tmp = tempfile::tempdir().unwrap();
    let history = unmigratable_history(tmp.path());
    let (corpus, golden) = empty_corpus(tmp.path());
    let add = |c: &Path| {
        run([
            OsStr::new("corpus"),
            "add".as_ref(),
            history.as_os_str(),
            "--corpus".as_ref(),
            c.as_os_str(),
            "--golden".as_ref(),
            golden.as_os_str(),
        ])
    };
    let out = add(&corpus).expect(0);
    assert!(
        out.stdout.contains(
            "→ not migratable: key \"big\", migration op 0 refused on arrival: payload of 1048574 bytes exceeds the limit of 1048572"
        ),
        "{}",
        out.stdout
    );
    let pending = golden.join("migrations/core__kvstore-to-core__kvstore-v2/big.json.pending");
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pending).unwrap()).unwrap();
    assert_eq!(g["not_migratable"]["key"], hex::encode("big"));
    assert!(g.get("target_state_hash").is_none(), "{g}");
    // The whole run: history copied and listed, both goldens pending; accepted, they verify.
    assert!(add(&corpus).expect(2).stderr.contains("is already in the corpus"));
    let c = [OsStr::new("--corpus"), corpus.as_os_str(), "--golden".as_ref(), golden.as_os_str()];
    run([&[OsStr::new("bless"), "--accept".as_ref()][..], &c].concat()).expect(0);
    run([&[OsStr::new("bless"), "--migrations".as_ref(), "--accept".as_ref()][..], &c].concat()).expect(0);
    run([&[OsStr::new("verify")][..], &c].concat()).expect(0);
    run([&[OsStr::new("verify"), "--migrations".as_ref()][..], &c].concat()).expect(0);
    // `bless --migrations` over it goes through (unchanged), it does not stop.
    let b = run([&[OsStr::new("bless"), "--migrations".as_ref()][..], &c].concat()).expect(0);
    assert!(b.stdout.contains("bless --migrations: 1 unchanged"), "{}", b.stdout);
}

#[test]
fn corpus_add_that_cannot_write_its_goldens_leaves_nothing_and_can_be_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, golden) = empty_corpus(tmp.path());
    // The migration golden's directory is taken by a file: writing that golden fails.
    std::fs::create_dir_all(golden.join("migrations")).unwrap();
    std::fs::write(golden.join("migrations/core__kvstore-to-core__kvstore-v2"), b"in the way").unwrap();
    let before = (tree(&corpus), tree(&golden));
    let add = || {
        run([
            OsStr::new("corpus"),
            "add".as_ref(),
            example().as_os_str(),
            "--corpus".as_ref(),
            corpus.as_os_str(),
            "--golden".as_ref(),
            golden.as_os_str(),
        ])
    };
    add().expect(2);
    assert_eq!((tree(&corpus), tree(&golden)), before, "a failed corpus add left files");
    std::fs::remove_file(golden.join("migrations/core__kvstore-to-core__kvstore-v2")).unwrap();
    add().expect(0);
    assert!(golden.join("core__kvstore/kv-example.json.pending").exists());
}

#[test]
fn record_corpus_killed_before_listing_is_completed_by_its_rerun_and_never_lists_a_history_without_goldens() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::util::long_store(tmp.path(), 5_000);
    let (corpus, golden) = empty_corpus(tmp.path());
    let args = [
        OsStr::new("record"),
        store.as_os_str(),
        "--corpus".as_ref(),
        corpus.as_os_str(),
        "--golden".as_ref(),
        golden.as_os_str(),
        "--name".as_ref(),
        "long".as_ref(),
    ];
    // Kill at many points; whenever the manifest lists the history, its goldens are there.
    for delay in [30u64, 100, 300, 900] {
        let mut child = spawn(&args);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let manifest = std::fs::read_to_string(corpus.join("MANIFEST.json")).unwrap();
        if manifest.contains("\"long") {
            assert!(
                golden.join("core__kvstore/long.lch.pending").exists() || golden.join("core__kvstore/long.json.pending").exists(),
                "listed without its golden after {delay} ms"
            );
            std::fs::remove_dir_all(&corpus).unwrap();
            std::fs::remove_dir_all(&golden).unwrap();
            empty_corpus(tmp.path());
        }
    }
    // Whatever the last kill left, the rerun completes it and leaves what a clean run does.
    run(args).expect(0);
    let (clean_corpus, clean_golden) = (tmp.path().join("clean/corpus"), tmp.path().join("clean/golden"));
    std::fs::create_dir_all(tmp.path().join("clean")).unwrap();
    empty_corpus(&tmp.path().join("clean"));
    let mut clean_args = args.to_vec();
    clean_args[3] = clean_corpus.as_os_str();
    clean_args[5] = clean_golden.as_os_str();
    run(clean_args).expect(0);
    assert_eq!((tree(&corpus), tree(&golden)), (tree(&clean_corpus), tree(&clean_golden)));
    assert!(digests(&store).len() == 2);
}
