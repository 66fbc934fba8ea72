//! Readers against a concurrent writer: every reading command, run as its own process while
//! another thread keeps committing ops to the same store, must give the verdict a quiet store
//! gives (exit 0). A false "corrupt", a false "crash" or a refusal to read is a false verdict.
//! The figures are rendered into the concurrency section of docs/BAD_INPUTS.md by the
//! `bad_inputs` test, which runs [`run_all`].

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lattice_conform::corpus::synthetic;
use lattice_conform::registry::Registry;
use lattice_conform::store::Store;
use uuid::Uuid;

use crate::util::run;

/// Rounds each reader must run while the writer commits (a round that saw no commit is run again,
/// up to [`MAX_ATTEMPTS`] in all, and still counts towards the false verdicts).
pub const ROUNDS: usize = 10;
/// Attempts per reader before the harness gives up on reaching [`ROUNDS`] overlapped rounds.
const MAX_ATTEMPTS: usize = 12 * ROUNDS;
/// Ops per writer commit (each `apply_ops` call is one commit of `log.db`, then of `state.db`).
const OPS_PER_COMMIT: usize = 4;

/// One reader command and how it fared.
pub struct PairResult {
    /// The reader command, with the store shown as `S`.
    pub reader: String,
    /// Rounds run in all (overlapped or not).
    pub rounds: usize,
    /// Rounds during which the writer committed at least once: [`ROUNDS`] unless the harness
    /// gave up after [`MAX_ATTEMPTS`].
    pub overlapped: usize,
    /// Each false verdict: exit code and first line of standard error.
    pub false_verdicts: Vec<String>,
}

/// The reader commands, each as arguments after the binary with `S` for the store and `T` for a
/// scratch directory.
fn readers() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("peek S", vec!["peek", "S"]),
        ("open --verify S", vec!["open", "--verify", "S"]),
        ("open --deep S", vec!["open", "--deep", "S"]),
        ("open --verify-history --build native S", vec!["open", "--verify-history", "--build", "native", "S"]),
        ("record S --out T/h.json --force", vec!["record", "S", "--out", "T/h.json", "--force"]),
        ("dump S", vec!["dump", "S"]),
        ("audit S", vec!["audit", "S"]),
        ("migrate S T/m<round> --to-type core:kvstore-v2", vec!["migrate", "S", "T/m<round>", "--to-type", "core:kvstore-v2"]),
    ]
}

/// Runs every reader against a store that a writer thread keeps committing to, until [`ROUNDS`]
/// of its runs overlapped a commit.
pub fn run_all() -> Vec<PairResult> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let id = Uuid::from_u128(0x6c61_7474_6963_4500_8000_0000_0000_00c0);
    let logic = Registry::with_reference_types().opener("core:kvstore").unwrap().logic();
    let mut store = Store::create(&dir, id, logic).unwrap();
    let mut ops = synthetic::ops(u64::MAX, synthetic::Kind::KvStore, id);
    // A first few hundred ops, so readers have rows to read from the start.
    let first: Vec<_> = ops.by_ref().take(400).collect();
    store.apply_ops(&first, 0).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, commits) = (stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let mut index = 400u64;
            while !stop.load(Ordering::Relaxed) {
                let chunk: Vec<_> = ops.by_ref().take(OPS_PER_COMMIT).collect();
                let summary = store.apply_ops(&chunk, index).expect("the writer's apply");
                assert_eq!(summary.received, chunk.len() as u64, "every writer op is received");
                index += chunk.len() as u64;
                commits.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        })
    };

    let mut results = Vec::new();
    for (name, args) in readers() {
        let mut r = PairResult { reader: name.to_string(), rounds: 0, overlapped: 0, false_verdicts: Vec::new() };
        for round in 0..MAX_ATTEMPTS {
            if r.overlapped == ROUNDS {
                break;
            }
            let args: Vec<OsString> = args
                .iter()
                .map(|a| match *a {
                    "S" => dir.clone().into_os_string(),
                    a if a.starts_with("T/") => scratch.join(a[2..].replace("<round>", &round.to_string())).into_os_string(),
                    a => OsString::from(a),
                })
                .collect();
            let before = commits.load(Ordering::Relaxed);
            let out = run(&args);
            if commits.load(Ordering::Relaxed) > before {
                r.overlapped += 1;
            }
            r.rounds += 1;
            if out.code != 0 {
                r.false_verdicts.push(format!("exit {}: {}", out.code, out.stderr.lines().next().unwrap_or("")));
            }
        }
        results.push(r);
    }
    // The migration checks need a source nobody writes: beside the writer they refuse, naming
    // the reason, rather than failing the migration.
    let checked = run([
        OsString::from("migrate"),
        dir.clone().into_os_string(),
        scratch.join("checked").into_os_string(),
        "--to-type".into(),
        "core:kvstore-v2".into(),
        "--dry-run".into(),
    ]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    assert!(checked.stderr.contains("another process holds the store for writing"), "{}", checked.stderr);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer thread");
    results
}
