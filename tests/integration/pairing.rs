//! Issue #32, item 1: a `state.db` and a `log.db` that do not belong together. Before the log
//! chain (docs/FORMAT.md §9.11), a `state.db` copied from another replica of the same store (same
//! id, same op count) was accepted beside a `log.db` it was not built from: `open --verify` passed,
//! `apply` appended the other replica's ops to the log a second time and later `record` and
//! `rebuild` failed; a `log.db` cut to 99.9 % of its length passed `open --verify` and `migrate`.
//! Each test names the bad pair, runs the real binary, and checks that every command refuses it
//! (`open --verify` with exit 1, naming both files) and that nothing was written.
//!
//! Item 6 is here too: `open --verify` on a store that needs a repair (what a full disk or a kill
//! leaves) only reads — it refuses, writing nothing, where it used to repair and so need space.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::util::{digests, example, example_store, run, tamper_str_table, EXAMPLE_ID};

/// A history of the example's store id with `n` puts of its own (the example logs 6 ops).
fn other_history(tmp: &Path, n: usize) -> PathBuf {
    let file = tmp.join(format!("other-{n}.json"));
    run([
        OsStr::new("history"),
        "new".as_ref(),
        file.as_os_str(),
        "--type".as_ref(),
        "core:kvstore".as_ref(),
        "--id".as_ref(),
        EXAMPLE_ID.as_ref(),
    ])
    .expect(0);
    for i in 0..n {
        let put = format!("other{i}=value{i}");
        run([OsStr::new("history"), "add".as_ref(), file.as_os_str(), "--author".as_ref(), "bob".as_ref(), "--put".as_ref(), put.as_ref()])
            .expect(0);
    }
    file
}

/// `tmp/<name>`: the log.db of a store built from `history`, with the example store's state.db.
fn foreign_pair(tmp: &Path, name: &str, history: &Path) -> PathBuf {
    let a = example_store(tmp);
    let dir = tmp.join(name);
    run([OsStr::new("apply"), dir.as_os_str(), history.as_os_str(), "--create".as_ref()]).expect(0);
    std::fs::copy(a.join("state.db"), dir.join("state.db")).unwrap();
    std::fs::remove_dir_all(a).unwrap();
    dir
}

/// Every reading and writing command refuses `dir`, leaving its files byte-identical and making
/// no other file; `open --verify` with exit 1 naming both files and the mismatch.
fn refused_everywhere(tmp: &Path, dir: &Path, history: &Path, mismatch: &str) {
    let before = digests(dir);
    let v = run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(1);
    let (state, log) = (dir.join("state.db"), dir.join("log.db"));
    let named = format!("{} and {} do not belong together", state.display(), log.display());
    assert!(v.stderr.contains(&named), "open --verify does not name both files:\n{}", v.stderr);
    assert!(v.stderr.contains(mismatch), "open --verify does not say {mismatch:?}:\n{}", v.stderr);
    let (dst, recorded) = (tmp.join("migrated"), tmp.join("recorded.json"));
    let os = |v: &[&OsStr]| v.iter().map(|a| a.to_os_string()).collect::<Vec<_>>();
    let cases = [
        (os(&["apply".as_ref(), dir.as_os_str(), history.as_os_str()]), 1),
        (os(&["open".as_ref(), dir.as_os_str(), "--deep".as_ref()]), 1),
        (os(&["migrate".as_ref(), dir.as_os_str(), dst.as_os_str(), "--to-type".as_ref(), "core:kvstore-v2".as_ref()]), 2),
        (os(&["record".as_ref(), dir.as_os_str(), "--out".as_ref(), recorded.as_os_str()]), 1),
        (os(&["rebuild".as_ref(), dir.as_os_str()]), 2),
    ];
    for (a, code) in cases {
        let out = run(&a).expect(code);
        assert!(
            out.stderr.contains("do not belong together") || out.stderr.contains("is not the state of this log.db"),
            "{a:?}:\n{}",
            out.stderr
        );
        assert_eq!(digests(dir), before, "{a:?} wrote into the refused pair");
    }
    assert!(!dst.exists() && !recorded.exists(), "a refused command wrote its output");
}

#[test]
fn a_state_db_of_another_replica_with_as_many_ops_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    // The example logs 6 ops; so does this history of the same store id, with other ops.
    let history = other_history(tmp.path(), 6);
    let dir = foreign_pair(tmp.path(), "foreign-state", &history);
    refused_everywhere(tmp.path(), &dir, &history, "both reflect 6 log entries, but the entries state.db was built from chain to");
    // The way out the message names: rebuild from this log.db, keeping the foreign state.db.
    run([OsStr::new("rebuild"), dir.as_os_str(), "--force".as_ref()]).expect(0);
    run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(0);
    assert!(dir.join("state.db.before-rebuild").exists());
}

#[test]
fn a_state_db_of_another_replica_behind_the_log_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    // 7 ops: the log is one entry ahead of the example's state.db, as after a crash between the
    // two commits; catching up from it would mix the two replicas.
    let history = other_history(tmp.path(), 7);
    let dir = foreign_pair(tmp.path(), "foreign-behind", &history);
    refused_everywhere(tmp.path(), &dir, &history, "but log.db's entries 6..7 do not chain from there");
}

#[test]
fn a_log_db_cut_short_fails_open_verify_with_exit_1_and_nothing_writes_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::util::long_store(tmp.path(), 20_000);
    for (name, permille) in [("cut-900", 900u64), ("cut-999", 999)] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for f in ["state.db", "log.db"] {
            std::fs::copy(store.join(f), dir.join(f)).unwrap();
        }
        let log = std::fs::OpenOptions::new().write(true).open(dir.join("log.db")).unwrap();
        let len = log.metadata().unwrap().len();
        log.set_len(len * permille / 1000).unwrap();
        drop(log);
        let before = digests(&dir);
        let out = run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(1);
        assert!(
            out.stderr.contains("do not belong together: state.db reflects 20000 log entries, but log.db cannot give them back"),
            "{name}:\n{}",
            out.stderr
        );
        let dst = tmp.path().join(format!("{name}-migrated"));
        let out = run([OsStr::new("migrate"), dir.as_os_str(), dst.as_os_str(), "--to-type".as_ref(), "core:kvstore-v2".as_ref()]);
        assert_ne!(out.code, 0, "{name}: migrate accepted a cut log.db");
        assert!(out.stderr.contains("log.db"), "{name}: migrate does not name log.db:\n{}", out.stderr);
        let out = run([OsStr::new("apply"), dir.as_os_str(), example().as_os_str()]);
        assert_ne!(out.code, 0, "{name}: apply accepted a cut log.db");
        assert_eq!(digests(&dir), before, "{name}: a refused command wrote into it");
        assert!(!dst.exists());
    }
}

#[test]
fn a_store_written_before_the_log_chain_opens_verifies_and_gets_the_chain_on_its_next_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    // What an older build wrote: no `log_chain` in either file.
    tamper_str_table(&dir.join("state.db"), "meta", "log_chain", None);
    tamper_str_table(&dir.join("log.db"), "log_meta", "log_chain", None);
    let before = digests(&dir);
    run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(0);
    assert_eq!(digests(&dir), before, "open --verify wrote");
    // A read-write open upgrades it; from then on a foreign state.db is caught.
    run([OsStr::new("apply"), dir.as_os_str(), example().as_os_str()]).expect(0);
    let history = other_history(tmp.path(), 6);
    let other = tmp.path().join("other");
    run([OsStr::new("apply"), other.as_os_str(), history.as_os_str(), "--create".as_ref()]).expect(0);
    std::fs::copy(dir.join("state.db"), other.join("state.db")).unwrap();
    run([OsStr::new("open"), other.as_os_str(), "--verify".as_ref()]).expect(1);
}

#[test]
fn open_verify_on_a_store_that_needs_repair_writes_nothing_and_says_how_to_repair() {
    let tmp = tempfile::tempdir().unwrap();
    // What a crash between the two commits of a batch leaves (and an apply stopped by a full disk
    // after its log.db commit): the state.db of an earlier commit beside the log of a later one.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    v["ops"].as_array_mut().unwrap().truncate(3);
    let prefix = tmp.path().join("first-3.json");
    std::fs::write(&prefix, v.to_string()).unwrap();
    let dir = tmp.path().join("lagging");
    run([OsStr::new("apply"), dir.as_os_str(), prefix.as_os_str(), "--create".as_ref()]).expect(0);
    let earlier = std::fs::read(dir.join("state.db")).unwrap();
    run([OsStr::new("apply"), dir.as_os_str(), example().as_os_str()]).expect(0);
    std::fs::write(dir.join("state.db"), earlier).unwrap();
    let before = digests(&dir);
    let out = run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(2);
    assert!(out.stderr.contains("a crash interrupted an apply between its two commits"), "{}", out.stderr);
    assert!(out.stderr.contains("`open --verify` and `--deep` only read, so they do not repair"), "{}", out.stderr);
    assert_eq!(digests(&dir), before, "open --verify wrote (a repair needs space a full disk does not have)");
    // A plain open repairs (catches state.db up, its tail checked against the log chain); then
    // the check passes.
    run([OsStr::new("open"), dir.as_os_str()]).expect(0);
    let out = run([OsStr::new("open"), dir.as_os_str(), "--verify".as_ref()]).expect(0);
    assert!(out.stdout.contains("log.db gives back the 6 entries state.db reflects"), "{}", out.stdout);
}
