//! Hostile Wasm builds, run through the real binary the way a release gate runs them, each with
//! its verdict, exit code, reason, and a wall-time and peak-RSS bound measured from the child
//! process (`wait4`'s rusage), not from a timer inside the test.
//!
//! The battery that prompted it (issue #14) found nine wrong verdicts: host calls were not
//! charged fuel (a `put` loop ran ~1000 s per op, a `get` loop 13–43 s through `verify`, over
//! 120 s through `certify`), host memory and disk were not bounded by the guest's caps (6 GiB RSS
//! in 4 s; `state.db` grown to 16 GiB by one rejected op), a schema-2 build was certified against
//! schema-1 histories, replays reused an instance so a stateful guest's first divergent op was
//! wrong and its counterexample did not reproduce alone, the limit variables did not reach
//! `--build`, and reports said `host_failure` without the reason. One test per class below.
//!
//! Every run has the watchdog raised to 120 s (`LATTICE_WASM_WATCHDOG_MS`), so what stops an op
//! is the deterministic guard under test; the watchdog's own test sets it with the flag.
//! The bounds are generous (a debug binary on a loaded 2-core machine); the release figures are
//! in BENCHMARKS.md. `HOSTILE_BIN=target/release/lattice-conform cargo test --test integration
//! hostile -- --nocapture --test-threads 1` prints them (one `hostile:` line per command).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lattice_conform::history::History;
use lattice_conform::store::StoreIdentity;
use lattice_conform::wasm::{Limits, WasmModule, WasmOpener};
use uuid::Uuid;

use crate::gen::{author, Chains};

use crate::util::fixtures;

/// Generous bounds for one command of a debug binary: every hostile op must stop far sooner.
const WALL_BOUND: Duration = Duration::from_secs(60);
const RSS_BOUND_MIB: u64 = 1024;

/// One measured run of the binary.
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
    cpu: Duration,
    max_rss_mib: u64,
}

impl Measured {
    /// Asserts the exit code, that `needle` is in the output, and the time and memory bounds.
    fn expect(self, code: i32, needle: &str) -> Measured {
        let out = format!("{}{}", self.stdout, self.stderr);
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "the binary panicked:\n{}", self.stderr);
        assert!(out.contains(needle), "expected {needle:?} in the output:\n{out}");
        assert!(self.wall < WALL_BOUND, "took {:?} (bound {WALL_BOUND:?})", self.wall);
        assert!(self.max_rss_mib < RSS_BOUND_MIB, "peak RSS {} MiB (bound {RSS_BOUND_MIB} MiB)", self.max_rss_mib);
        self
    }
}

/// The peak resident set of process `pid` (`VmHWM` in /proc/PID/status), in KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn binary() -> PathBuf {
    std::env::var_os("HOSTILE_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lattice-conform")), PathBuf::from)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary in the repository root with `args` and `env` (no other `LATTICE_WASM_*`
/// variable), and measures it with `wait4`.
fn measure(name: &str, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Measured {
    let tmp = tempfile::tempdir().unwrap();
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut cmd = Command::new(binary());
    cmd.current_dir(fixtures()).args(args).stdin(Stdio::null());
    cmd.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    for var in ["LATTICE_WASM_CACHE", "LATTICE_WASM_FUEL", "LATTICE_WASM_MEMORY_MIB", "LATTICE_WASM_WRITE_MIB"] {
        cmd.env_remove(var);
    }
    // The deterministic guards are under test: the wall-clock watchdog (5 s by default) is raised
    // so a debug binary on a loaded machine — whose host code is far slower than a release
    // build's — is stopped by fuel or a cap, not by the clock. Its own test passes the flag.
    cmd.env_remove("LATTICE_WASM_ROW_WRITES").env("LATTICE_WASM_WATCHDOG_MS", "120000");
    cmd.envs(env.iter().map(|(k, v)| (*k, *v)));
    let start = Instant::now();
    // Reaped by the `wait4` loop below, which also reads its rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("the binary runs");
    let pid = child.id() as libc::pid_t;
    // The rusage of a spawned child counts the parent's own peak (the memory it shared or copied
    // before exec), so the child's peak is read from its own `VmHWM` while it runs; it misses at
    // most the last millisecond before exit.
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    let mut hwm_kib = 0u64;
    loop {
        // SAFETY: polls our own child; `status` and `usage` are valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        assert_eq!(done, 0, "wait4 failed");
        hwm_kib = hwm_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = start.elapsed();
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let m = Measured {
        code,
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_mib: hwm_kib / 1024,
    };
    eprintln!(
        "hostile: {name:<28} {:<10} exit {} wall {:>6} ms cpu {:>6} ms peak RSS {:>4} MiB",
        args[0].to_string_lossy(),
        m.code,
        m.wall.as_millis(),
        m.cpu.as_millis(),
        m.max_rss_mib
    );
    m
}

/// A guest module: `store_type` at `schema`, 4 pages of memory, the ABI's exports, every import,
/// a mutable global `$calls`, and `apply` = `body` (locals `$ptr`, `$len`, `$i`).
pub(crate) fn guest(store_type: &str, schema: u64, body: &str, extra: &str) -> Vec<u8> {
    let packed = ((store_type.len() as u64) << 32) | 16;
    let text = format!(
        r#"(module
  (import "lattice_table" "get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "lattice_table" "put" (func $put (param i32 i32 i32 i32)))
  (import "lattice_table" "delete" (func $delete (param i32 i32)))
  (import "lattice_dag" "op_info" (func $op_info (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "{store_type}")
  {extra}
  (func (export "lattice_abi_version") (result i32) (i32.const 3))
  (func (export "lattice_store_type") (result i64) (i64.const {packed}))
  (func (export "lattice_schema_version") (result i64) (i64.const {schema}))
  (func (export "lattice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "lattice_apply") (param $ptr i32) (param $len i32) (result i32) (local $i i32) {body})
  (func (export "lattice_observe") (param i32 i32) (result i32) (i32.const 1))
  (func (export "lattice_message") (result i64) (i64.const 0)))"#
    );
    wat::parse_str(text).expect("test WAT parses")
}

/// Puts a 64 KiB row (key: 4 bytes at 0, value: memory from 64 KiB) in a loop; `new_key` makes
/// every key new.
fn put_loop(new_key: bool) -> String {
    let next = if new_key { "(local.set $i (i32.add (local.get $i) (i32.const 1)))" } else { "" };
    format!("(loop $l (i32.store (i32.const 0) (local.get $i)) (call $put (i32.const 0) (i32.const 4) (i32.const 65536) (i32.const 65536)) {next} (br $l)) (i32.const 0)")
}

const GET_LOOP: &str = "(call $put (i32.const 0) (i32.const 4) (i32.const 65536) (i32.const 65536)) \
    (loop $l (drop (call $get (i32.const 0) (i32.const 4) (i32.const 131072) (i32.const 65536))) (br $l)) (i32.const 0)";
/// A 200 MiB value: the memory grown to hold it, then one `put`.
const HUGE_PUT: &str =
    "(drop (memory.grow (i32.const 3200))) (call $put (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 209715200)) (i32.const 0)";
const TINY_ROWS: &str =
    "(loop $l (i32.store (i32.const 0) (local.get $i)) (call $put (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)) \
    (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)) (i32.const 0)";
const OP_INFO_LOOP: &str = "(loop $l (drop (call $op_info (local.get $ptr) (i32.const 2048))) (br $l)) (i32.const 0)";
const SPIN: &str = "(loop $l (br $l)) (i32.const 0)";
const MEMORY_BOMB: &str = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 64)) (i32.const -1)))) (i32.const 0)";
const OOB_PUT: &str = "(call $put (i32.const 0xfffffff0) (i32.const 100) (local.get $ptr) (i32.const 0)) (i32.const 0)";
const RECURSE: &str = "(call $deep) (i32.const 0)";
const RECURSE_FN: &str = "(func $deep (call $deep))";
/// The well-behaved `test:ids` logic: put the op id with an empty value.
pub(crate) const PUT_ID: &str = "(call $put (local.get $ptr) (i32.const 32) (local.get $ptr) (i32.const 0)) (i32.const 0)";
/// `test:ids`, except that from its 20th `lattice_apply` call on, the instance puts a 1-byte value:
/// a guest that keeps state between calls (against the ABI).
const STATEFUL: &str = "(global.set $calls (i32.add (global.get $calls) (i32.const 1))) \
    (call $put (local.get $ptr) (i32.const 32) (local.get $ptr) (i32.ge_u (global.get $calls) (i32.const 20))) (i32.const 0)";

const LOGSTORE: &str = "core:logstore";
const HISTORY: &str = "core:logstore/log-ties-s1-000";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `verify` of one bundled logstore history with a hostile logstore build: exit 1, the reason in
/// the report.
fn verify_hostile(name: &str, body: &str, extra: &str, flags: &[&str], needle: &str) -> Measured {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = write(tmp.path(), &format!("{name}.wasm"), &guest(LOGSTORE, 1, body, extra));
    let mut args: Vec<&OsStr> = ["verify", "--type", LOGSTORE, "--filter", HISTORY, "--build"].map(OsStr::new).to_vec();
    args.push(wasm.as_os_str());
    args.extend(flags.iter().map(OsStr::new));
    let m = measure(name, &args, &[]).expect(1, needle);
    assert!(m.stdout.contains("host_failure:"), "the divergence names the failure:\n{}", m.stdout);
    m
}

#[test]
fn host_call_loops_stop_on_fuel_or_the_write_caps_within_bounds() {
    verify_hostile("put-loop-same-64k", &put_loop(false), "", &[], "write cap: lattice_table.put of 65540 bytes after");
    verify_hostile("put-loop-new-64k", &put_loop(true), "", &[], "cap of 67108864 bytes per op");
    verify_hostile("spin", SPIN, "", &[], "out of fuel: the call needed more than the limit of 1000000000 units");
    verify_hostile("get-loop-64k", GET_LOOP, "", &[], "out of fuel: lattice_table.get needs");
    verify_hostile("op-info-loop", OP_INFO_LOOP, "", &[], "out of fuel: lattice_dag.op_info needs");
    verify_hostile("tiny-rows", TINY_ROWS, "", &[], "out of fuel: lattice_table.put needs");
}

#[test]
fn a_200_mib_value_is_refused_before_the_host_copies_it() {
    verify_hostile("put-200mib", HUGE_PUT, "", &[], "out of fuel: lattice_table.put needs 1677731632 units");
    // With fuel to spare, the write cap refuses it (still before any copy).
    verify_hostile("put-200mib-fuel", HUGE_PUT, "", &["--wasm-fuel", "100000000000"], "write cap: lattice_table.put of 209715204 bytes");
    verify_hostile("tiny-rows-row-cap", TINY_ROWS, "", &["--wasm-row-writes", "1000"], "the cap is 1000 writes per op");
}

#[test]
fn traps_bounds_stack_and_the_watchdog_are_named() {
    verify_hostile("unreachable", "(unreachable)", "", &[], "trap: wasm `unreachable` instruction executed");
    verify_hostile("oob-put", OOB_PUT, "", &[], "out-of-bounds host call: the guest passed an out-of-range key");
    verify_hostile("stack-overflow", RECURSE, RECURSE_FN, &[], "trap: call stack exhausted");
    // With fuel for hours, only the wall-clock watchdog stops a spin.
    let flags = ["--wasm-fuel", "1000000000000000", "--wasm-watchdog-ms", "300"];
    verify_hostile("spin-watchdog", SPIN, "", &flags, "watchdog: interrupted after about 300 ms");
}

#[test]
fn certify_replays_and_shrinks_a_hostile_build_within_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = write(tmp.path(), "get.wasm", &guest(LOGSTORE, 1, GET_LOOP, ""));
    let (out, cx) = (tmp.path().join("cert.json"), tmp.path().join("cx.json"));
    let m = measure(
        "certify-get-loop-64k",
        &[
            "certify".as_ref(),
            "--type".as_ref(),
            LOGSTORE.as_ref(),
            "--baseline".as_ref(),
            "native".as_ref(),
            "--candidate".as_ref(),
            wasm.as_os_str(),
            "--cases".as_ref(),
            "0".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--counterexample".as_ref(),
            cx.as_os_str(),
        ],
        &[],
    )
    .expect(1, "out of fuel: lattice_table.get needs");
    assert!(m.stdout.contains("DIVERGED"), "{}", m.stdout);
    assert!(!out.exists(), "no certificate for a diverging build");
    assert_eq!(History::load(&cx).unwrap().ops.len(), 1, "shrunk to the one op that runs out of fuel");
}

/// A Wasm-only type's history of `n` ops (payload = the op's index), in a fresh cache with `wasm`.
fn cache_with(tmp: &Path, wasm: &[u8], store_type: &str, n: u8) -> (PathBuf, PathBuf) {
    let cache = tmp.join("cache");
    lattice_conform::wasm::WasmCache::new(&cache).add(wasm, "hostile.wasm").unwrap();
    let id = Uuid::from_u128(0x686f_7374);
    let mut c = Chains::new(id);
    let ops = (0..n).map(|i| c.next(author(1), i as u64 + 1, vec![], vec![i]).0).collect();
    let h = History {
        store_id: id,
        store_type: store_type.into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    };
    (cache.clone(), write(tmp, "history.json", h.to_json().as_bytes()))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
fn apply_refuses_a_hostile_op_without_growing_the_store_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, history) = cache_with(tmp.path(), &guest("test:hostile", 1, &put_loop(true), ""), "test:hostile", 2);
    let store = tmp.path().join("store");
    let args = ["apply".as_ref(), store.as_os_str(), history.as_os_str(), "--create".as_ref()];
    measure("apply-put-loop-new-64k", &args, &[("LATTICE_WASM_CACHE", cache.as_os_str())]).expect(
        2,
        "write cap: lattice_table.put of 65540 bytes after 67047420 bytes written would exceed the cap of 67108864 bytes per op",
    );
    // The op wrote 64 MiB before the cap stopped it; none of it reached either file.
    assert!(dir_bytes(&store) < 4 << 20, "the store holds {} bytes after a refused op", dir_bytes(&store));

    let tmp = tempfile::tempdir().unwrap();
    let (cache, history) = cache_with(tmp.path(), &guest("test:hostile", 1, MEMORY_BOMB, ""), "test:hostile", 2);
    let store = tmp.path().join("store");
    let args = ["apply".as_ref(), store.as_os_str(), history.as_os_str(), "--create".as_ref()];
    let m = measure("apply-memory-bomb", &args, &[("LATTICE_WASM_CACHE", cache.as_os_str())])
        .expect(2, "memory cap: the guest tried to grow its memory");
    assert!(!m.stderr.contains("storage failed"), "{}", m.stderr);
}

#[test]
fn a_build_of_another_schema_is_refused_everywhere_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let v2 = write(tmp.path(), "v2.wasm", &guest(LOGSTORE, 2, PUT_ID, ""));
    let named = "implements `core:logstore` schema 2, but";
    let verify =
        measure("schema-2-verify", &["verify".as_ref(), "--type".as_ref(), LOGSTORE.as_ref(), "--build".as_ref(), v2.as_os_str()], &[]);
    verify.expect(2, "`core:logstore` schema 1");
    let out = tmp.path().join("cert.json");
    let certify = measure(
        "schema-2-certify",
        &[
            "certify".as_ref(),
            "--type".as_ref(),
            LOGSTORE.as_ref(),
            "--baseline".as_ref(),
            "native".as_ref(),
            "--candidate".as_ref(),
            v2.as_os_str(),
            "--cases".as_ref(),
            "0".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &[],
    );
    let certify = certify.expect(2, named);
    assert!(certify.stderr.contains("--baseline native is `core:logstore` schema 1"), "{}", certify.stderr);
    assert!(!out.exists());

    let store = tmp.path().join("store");
    let h = fixtures().join("corpus/core__logstore/log-ties-s1-000.json");
    crate::util::run(["apply".as_ref(), store.as_os_str(), h.as_os_str(), "--create".as_ref()]).expect(0);
    let args = ["open".as_ref(), store.as_os_str(), "--verify-history".as_ref(), "--build".as_ref(), v2.as_os_str()];
    let m = measure("schema-2-verify-history", &args, &[]).expect(2, named);
    assert!(m.stderr.contains(&format!("the store {} is `core:logstore` schema 1", store.display())), "{}", m.stderr);
}

/// `dir/corpus`, holding one `test:ids` history `name` of `n` ops (store id `id`): three authors
/// taking turns, each op's payload its index and `1 2 3`.
fn ids_corpus(dir: &Path, id: u128, name: &str, n: u64) -> PathBuf {
    let corpus = dir.join("corpus");
    let id = Uuid::from_u128(id);
    let mut c = Chains::new(id);
    let ops = (0..n).map(|i| c.next(author(1 + (i % 3) as u8), i + 1, vec![], vec![i as u8, 1, 2, 3]).0).collect();
    let h = History {
        store_id: id,
        store_type: "test:ids".into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    };
    lattice_conform::corpus::add_history(&corpus, name, &h).unwrap();
    corpus
}

#[test]
fn a_guest_keeping_state_between_calls_gets_a_fresh_instance_per_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.wasm", &guest("test:ids", 1, PUT_ID, ""));
    let stateful = write(tmp.path(), "stateful.wasm", &guest("test:ids", 1, STATEFUL, ""));
    // A corpus of one 30-op history; the instance's 20th apply is op #19 of any fresh replay (an
    // instance reused from an earlier replay would reach it sooner).
    let corpus = ids_corpus(tmp.path(), 0x7374_6174, "long", 30);
    let cx = tmp.path().join("cx.json");
    let args: Vec<OsString> = vec![
        "certify".into(),
        "--type".into(),
        "test:ids".into(),
        "--baseline".into(),
        good.clone().into(),
        "--candidate".into(),
        stateful.clone().into(),
        "--bundled".into(),
        corpus.clone().into(),
        "--cases".into(),
        "0".into(),
        "--out".into(),
        tmp.path().join("cert.json").into(),
        "--counterexample".into(),
        cx.clone().into(),
    ];
    let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let m = measure("stateful-certify", &args, &[]).expect(1, "first divergent op: #19");
    assert!(m.stdout.contains(&format!("DIVERGED on {}: test:ids/long;", corpus.display())), "{}", m.stdout);
    // The counterexample reproduces alone, with fresh instances, at its last op.
    let shrunk = History::load(&cx).unwrap();
    let logic = |p: &Path| WasmOpener::new(WasmModule::from_file(p).unwrap(), Limits::default()).wasm_logic();
    let (good, stateful) = (logic(&good), logic(&stateful));
    let d = lattice_conform::verify::first_divergence(&shrunk, good.clone(), stateful.clone(), 0).expect("still diverges alone");
    assert_eq!(d.op_index as usize, shrunk.ops.len() - 1, "diverges at its last op");
    assert_eq!(shrunk.ops.len(), 20, "every op before it is needed to reach the 20th call");
    // And again, with the same logics: nothing carried over from the first replay.
    let again = lattice_conform::verify::first_divergence(&shrunk, good, stateful, 0).unwrap();
    assert_eq!(again.op_index, d.op_index);
    let ident = StoreIdentity { store_id: shrunk.store_id, store_type: "test:ids".into(), schema_version: 1 };
    assert_eq!(ident, shrunk.identity());
}

#[test]
fn limits_reach_every_command_and_bad_values_are_usage_errors() {
    let logstore = root().join("guests/dist/core-logstore.wasm");
    let verify = |name: &str, extra: &[&str], env: &[(&str, &OsStr)]| {
        let mut args: Vec<&OsStr> = ["verify", "--type", LOGSTORE, "--filter", HISTORY, "--build"].map(OsStr::new).to_vec();
        args.push(logstore.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        measure(name, &args, env)
    };
    verify("fuel-abc-env", &[], &[("LATTICE_WASM_FUEL", "abc".as_ref())])
        .expect(2, "$LATTICE_WASM_FUEL = \"abc\": expected a whole number from 1 to");
    verify("fuel-abc-flag", &["--wasm-fuel", "abc"], &[]).expect(2, "invalid value 'abc' for '--wasm-fuel <UNITS>'");
    verify("fuel-zero-flag", &["--wasm-fuel", "0"], &[]).expect(2, "--wasm-fuel <UNITS>");
    verify("memory-env-range", &[], &[("LATTICE_WASM_MEMORY_MIB", "5000".as_ref())])
        .expect(2, "$LATTICE_WASM_MEMORY_MIB = \"5000\": expected a whole number from 1 to 4096");
    // The reference guest needs more than 1000 units per op: the limit reaches `--build`.
    let m = verify("tiny-fuel-env", &[], &[("LATTICE_WASM_FUEL", "1000".as_ref())]).expect(1, "out of fuel");
    assert!(m.stdout.contains("wasm limits: fuel 1000 per op"), "the report records the limits:\n{}", m.stdout);
    verify("tiny-fuel-flag", &["--wasm-fuel", "1000", "--format", "json"], &[("LATTICE_WASM_FUEL", "7".as_ref())])
        .expect(1, "\"fuel_per_op\": 1000");

    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let h = fixtures().join("corpus/core__logstore/log-ties-s1-000.json");
    crate::util::run(["apply".as_ref(), store.as_os_str(), h.as_os_str(), "--create".as_ref()]).expect(0);
    let args = ["open".as_ref(), store.as_os_str(), "--verify-history".as_ref(), "--build".as_ref(), logstore.as_os_str()];
    measure("verify-history-default", &args, &[]).expect(0, "history verified");
    measure("verify-history-tiny-fuel", &args, &[("LATTICE_WASM_FUEL", "1000".as_ref())]).expect(1, "out of fuel");
}

#[test]
fn shard_reports_run_under_different_limits_do_not_merge() {
    use lattice_conform::verify::Report;
    let part = |shard: &str, fuel: u64| {
        let mut r = Report::new("guest.wasm".into(), vec![shard.into()]);
        r.selection.shard_count = Some(2);
        r.wasm_limits = Some(Limits { fuel_per_op: fuel, ..Limits::default() });
        (PathBuf::from(format!("{shard}.json").replace('/', "-")), r)
    };
    let merged = Report::merge(vec![part("1/2", 7), part("2/2", 7)]).unwrap();
    assert_eq!(merged.wasm_limits.map(|l| l.fuel_per_op), Some(7), "the merged report keeps the shards' limits");
    let e = Report::merge(vec![part("1/2", 7), part("2/2", 8)]).unwrap_err().to_string();
    assert!(e.contains("2-2.json and 1-2.json differ in `wasm_limits` (`fuel 8 per op, memory 256 MiB"), "{e}");
    assert!(e.contains("vs `fuel 7 per op"), "{e}");
}

/// `test:ids`, leaking 2 MiB of memory per call (a `memory.grow` of 32 pages it never gives back).
pub(crate) const LEAK: &str = "(drop (memory.grow (i32.const 32))) \
    (call $put (local.get $ptr) (i32.const 32) (local.get $ptr) (i32.const 0)) (i32.const 0)";

/// Issue #32, item 7: certify of a guest that leaks memory per op until its cap took about seven
/// minutes, because every shrinking replay starts a fresh guest that grows back to the cap. The
/// leak needs every op before the cap, so no removal shrinks it and every replay is spent: the run
/// stops at the replay cap and says so.
#[test]
fn certify_of_a_leaking_guest_stops_shrinking_at_the_replay_cap_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.wasm", &guest("test:ids", 1, PUT_ID, ""));
    let leaky = write(tmp.path(), "leaky.wasm", &guest("test:ids", 1, LEAK, ""));
    let corpus = ids_corpus(tmp.path(), 0x6c65_616b, "leak", 100);
    let cx = tmp.path().join("cx.json");
    let args: Vec<OsString> = vec![
        "certify".into(),
        "--type".into(),
        "test:ids".into(),
        "--baseline".into(),
        good.into(),
        "--candidate".into(),
        leaky.into(),
        "--bundled".into(),
        corpus.into(),
        "--cases".into(),
        "0".into(),
        "--out".into(),
        tmp.path().join("cert.json").into(),
        "--counterexample".into(),
        cx.clone().into(),
        "--json".into(),
    ];
    let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    // 4 pages to start, 32 more per op, a 64 MiB cap: the 31st op is the first that cannot grow.
    let m = measure("leaky-certify", &args, &[("LATTICE_WASM_MEMORY_MIB", "64".as_ref())]).expect(1, "memory cap");
    let json: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
    assert_eq!(json["shrinking"]["replays"], 64, "{json}");
    assert_eq!(json["shrinking"]["stopped"], "the cap of 64 replays", "{json}");
    assert!(m.stderr.contains("in 64 replays") && m.stderr.contains("(shrinking stopped at the cap of 64 replays"), "{}", m.stderr);
    // What was written still diverges: every op up to the one the cap refused.
    let shrunk = History::load(&cx).unwrap();
    assert_eq!(json["counterexample_ops"], shrunk.ops.len(), "{json}");
    assert_eq!(json["divergent_op"].as_u64(), Some(shrunk.ops.len() as u64 - 1), "{json}");
    assert!(m.wall < Duration::from_secs(120), "certify took {:?}", m.wall);
}
