//! Fault injection: the CLI is SIGKILLed in the middle of `apply` and of `rebuild`, at several
//! points. After each kill the store must open and verify (the open repairs a file left unclean
//! and catches `state.db` up with `log.db`), must hold exactly a prefix of the history — its state
//! hash is the in-memory replay's hash after that many ops — and a rerun must converge to the
//! hash of the whole history.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lattice_conform::corpus::synthetic::{ops, Kind};
use lattice_conform::hash::StateHash;
use lattice_conform::history::History;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::op::Op;
use lattice_conform::replay::MemStore;
use lattice_conform::store::{StoreIdentity, StoreReader};
use uuid::Uuid;

use crate::util::run;

/// Long enough that a debug-build `apply` takes a few seconds (40 batches of 1024 ops).
const OPS: u64 = 40_000;

fn spawn(args: &[&std::ffi::OsStr]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lattice-conform")).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// The state hash after each prefix of `ops` (index i = after i ops), by in-memory replay.
fn prefix_hashes(identity: &StoreIdentity, ops: &[Op]) -> Vec<StateHash> {
    let mut store = MemStore::new(identity.clone(), Arc::new(KvStore));
    let mut hashes = vec![store.state_hash()];
    for op in ops {
        store.deliver(op);
        assert!(store.stall().is_none(), "the synthetic history is valid");
        hashes.push(store.state_hash());
    }
    hashes
}

/// Logged ops as a read-only reader sees them right now, if it can read the store at this moment.
fn progress(dir: &Path) -> Option<u64> {
    StoreReader::open(dir).ok().map(|r| r.log_len())
}

/// `open` (which repairs what the kill left) and then `open --verify --json` must succeed;
/// returns (ops, state hash). `open --verify` alone only reads, so it refuses a store that needs
/// a repair (docs/FORMAT.md §9.8).
fn open_verified(dir: &Path) -> (u64, String) {
    run([std::ffi::OsStr::new("open"), dir.as_os_str()]).expect(0);
    let out = run([std::ffi::OsStr::new("open"), dir.as_os_str(), "--verify".as_ref(), "--json".as_ref()]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    (v["ops"].as_u64().unwrap(), v["state_hash"].as_str().unwrap().to_string())
}

#[test]
fn sigkill_during_apply_and_rebuild_leaves_a_store_that_opens_verifies_and_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = StoreIdentity { store_id: Uuid::from_u128(0x6b11), store_type: "core:kvstore".into(), schema_version: 1 };
    let history_ops: Vec<Op> = ops(OPS, Kind::KvStore, identity.store_id).collect();
    let hashes = prefix_hashes(&identity, &history_ops);
    let history = tmp.path().join("long.json");
    std::fs::write(&history, History::new(&identity, history_ops).to_json()).unwrap();
    let dir = tmp.path().join("store");
    let final_hash = hashes[OPS as usize].to_string();

    // apply: kill once the log holds at least 10%, 40% and 75% of the history.
    let mut killed_mid_apply = 0;
    for fraction in [10, 40, 75] {
        let threshold = OPS * fraction / 100;
        let mut child = spawn(&[std::ffi::OsStr::new("apply"), dir.as_os_str(), history.as_os_str(), "--create".as_ref()]);
        let start = Instant::now();
        while progress(&dir).is_none_or(|n| n < threshold) && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(300), "apply made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (n, hash) = open_verified(&dir);
        assert!(n <= OPS, "{n} ops logged from a history of {OPS}");
        assert_eq!(hash, hashes[n as usize].to_string(), "after a kill at {fraction}%, the store is not the {n}-op prefix");
        if !finished && n < OPS {
            killed_mid_apply += 1;
        }
    }
    assert!(killed_mid_apply >= 2, "only {killed_mid_apply} of 3 kills landed before apply finished; lengthen the history");
    run([std::ffi::OsStr::new("apply"), dir.as_os_str(), history.as_os_str()]).expect(0);
    assert_eq!(open_verified(&dir), (OPS, final_hash.clone()));

    // rebuild: time one uninterrupted run, then kill at several fractions of that time.
    let start = Instant::now();
    run([std::ffi::OsStr::new("rebuild"), dir.as_os_str()]).expect(0);
    let full = start.elapsed();
    for fraction in [5u32, 30, 60, 90] {
        let mut child = spawn(&[std::ffi::OsStr::new("rebuild"), dir.as_os_str()]);
        std::thread::sleep(full * fraction / 100);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(open_verified(&dir), (OPS, final_hash.clone()), "after killing rebuild at {fraction}% of its time");
    }
    run([std::ffi::OsStr::new("rebuild"), dir.as_os_str()]).expect(0);
    assert_eq!(open_verified(&dir), (OPS, final_hash));
    assert!(!dir.join("state.db.rebuild").exists(), "a finished rebuild left its temporary file");
}
