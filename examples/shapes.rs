//! Release-mode benchmark of in-memory replay by history shape (issue #31): time per op at each
//! size, so a regression to super-linear cost shows as a ratio (µs/op at the largest size ÷ at
//! the smallest), not as a hang.
//!
//! Every history is made on the fly from fixed seeds and delivered to a fresh
//! [`MemStore`] (the engine `verify` replays with) with the native logic. Nothing is written to
//! disk. The shapes:
//!
//! * `synthetic` — `corpus::synthetic` kvstore: 8 authors round-robin, 10,000 keys, each op
//!   superseding the key's head. Streamed.
//! * `deep-floating` — the same ops with each author's genesis (its first op) delivered last: every
//!   other op floats until the end and is witnessed in one cascade. The generator holds back only
//!   the 8 geneses; the store holds every floating op until the cascade.
//! * `late-genesis` — 8 authors, each writing its own slice of the 10,000 keys (deps stay within
//!   the author), one author's genesis delivered last: the other 7 proceed, that author's ops
//!   (1/8) float and are witnessed at the end. (With `synthetic`'s shared keys, the other authors
//!   would soon name the late author's ops as deps and float too: that is `deep-floating`.)
//! * `distinct-keys` — kvstore, every op puts a key never written before (n rows at the end).
//! * `hot-key` — one key, 64 authors round-robin, no causal deps: every op stays a head of the
//!   row (Lattice keeps every head), so each write rewrites a row of all earlier heads — quadratic
//!   by Lattice's design. Expect it to stop at the budget.
//! * `hot-key-floor` — the same ops given straight to the kvstore logic's `apply` over a bare
//!   `MemTable` (no delivery, op index, LtHash or views): what Lattice's own row rewrite costs, the
//!   floor for `hot-key`.
//! * `logstore` — `corpus::synthetic` logstore (each op appends an entry). Streamed.
//! * `batches-700` — kvstore ops each carrying a 700-put batch (a `KvPayload` holds a batch):
//!   op j puts keys `(700 j + t) · 7919 mod 10,000`, t < 700 (700 distinct keys), naming the
//!   current heads of those keys as its deps. Here the size counts **puts**, so 100k = 143 ops.
//!
//! Each (shape, size) runs in a child process (this example with `--child`), so peak RSS (VmHWM)
//! is per measurement. A watchdog thread in the child stops it at the budget and reports how far
//! it got (ops delivered, µs/op so far); the parent kills a child that outlives budget + 60 s.
//!
//! Run: `cargo run --release --example shapes -- [--sizes 100000,1000000] [--shapes a,b,...]
//! [--budget-secs 120]`

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lattice_conform::corpus::synthetic::{self, Kind};
use lattice_conform::lattice_logic::kvstore::{encode_payload, inspect, Entry, KvStore};
use lattice_conform::lattice_logic::logstore::LogStore;
use lattice_conform::lattice_logic::{Dag, HostError, MemTable, StoreLogic};
use lattice_conform::op::{op_id, Hlc, Op, OpId, ZERO_HASH};
use lattice_conform::replay::MemStore;
use lattice_conform::store::{Logic, StoreIdentity};
use uuid::Uuid;

const SHAPES: [&str; 8] =
    ["synthetic", "deep-floating", "late-genesis", "distinct-keys", "hot-key", "hot-key-floor", "logstore", "batches-700"];
/// Puts per op of `batches-700`.
const BATCH: u64 = 700;
/// Authors of `hot-key`.
const HOT_AUTHORS: u64 = 64;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok());
    kb.map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn author_key(a: u64) -> [u8; 32] {
    *blake3::hash(&a.to_le_bytes()).as_bytes()
}

fn put(key: String, value: u64) -> Entry {
    Entry::Put { key: key.into_bytes(), value: value.to_le_bytes().to_vec() }
}

/// Chains ops per author (`prev` = the author's last op) and ids them.
struct Chains {
    store_id: Uuid,
    tips: HashMap<u64, OpId>,
}

impl Chains {
    fn new(store_id: Uuid) -> Chains {
        Chains { store_id, tips: HashMap::new() }
    }

    fn next(&mut self, a: u64, wall_ms: u64, mut deps: Vec<OpId>, payload: Vec<u8>) -> (Op, OpId) {
        deps.sort_unstable();
        deps.dedup();
        let op = Op {
            author: author_key(a),
            hlc: Hlc { wall_ms, counter: 0 },
            prev: self.tips.get(&a).copied().unwrap_or(ZERO_HASH),
            causal_deps: deps,
            payload,
        };
        let id = op_id(&self.store_id, &op);
        self.tips.insert(a, id);
        (op, id)
    }
}

/// The shape's store type, logic and ops (`n` in the shape's unit), and which of them the shape
/// holds back to deliver last (by position in the stream).
struct Plan {
    kind: Kind,
    ops: Box<dyn Iterator<Item = Op>>,
    /// Ops in the stream.
    count: u64,
    /// Puts per op (the size's unit is puts for `batches-700`).
    per_op: u64,
    held: fn(u64) -> bool,
}

fn plan(shape: &str, n: u64, store_id: Uuid) -> Plan {
    type Ops = Box<dyn Iterator<Item = Op>>;
    let never: fn(u64) -> bool = |_| false;
    let (kind, count, per_op, held, ops): (Kind, u64, u64, fn(u64) -> bool, Ops) = match shape {
        "synthetic" => (Kind::KvStore, n, 1, never, Box::new(synthetic::ops(n, Kind::KvStore, store_id))),
        "logstore" => (Kind::LogStore, n, 1, never, Box::new(synthetic::ops(n, Kind::LogStore, store_id))),
        // synthetic's authors are round-robin: ops 0..8 are the 8 geneses.
        "deep-floating" => (Kind::KvStore, n, 1, |i| i < synthetic::AUTHORS, Box::new(synthetic::ops(n, Kind::KvStore, store_id))),
        "late-genesis" => {
            let mut chains = Chains::new(store_id);
            let mut heads: HashMap<u64, OpId> = HashMap::new();
            let slice = synthetic::KEYS / 8;
            let ops = (0..n).map(move |i| {
                let a = i % 8;
                let key = a * slice + (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) % slice;
                let deps = heads.get(&key).copied().into_iter().collect();
                let (op, id) = chains.next(a, i / 4, deps, encode_payload(&[put(format!("key-{key:05}"), i)]));
                heads.insert(key, id);
                op
            });
            // Author 7's genesis is op 7.
            (Kind::KvStore, n, 1, |i| i == 7, Box::new(ops))
        }
        "distinct-keys" => {
            let mut chains = Chains::new(store_id);
            let ops = (0..n).map(move |i| chains.next(i % 8, i / 4, vec![], encode_payload(&[put(format!("key-{i:010}"), i)])).0);
            (Kind::KvStore, n, 1, never, Box::new(ops))
        }
        "hot-key" | "hot-key-floor" => {
            let mut chains = Chains::new(store_id);
            let ops = (0..n).map(move |i| chains.next(i % HOT_AUTHORS, i / HOT_AUTHORS, vec![], encode_payload(&[put("hot".into(), i)])).0);
            (Kind::KvStore, n, 1, never, Box::new(ops))
        }
        "batches-700" => {
            let mut chains = Chains::new(store_id);
            let mut heads: HashMap<u64, OpId> = HashMap::new();
            let count = n.div_ceil(BATCH);
            let ops = (0..count).map(move |j| {
                let keys: Vec<u64> = (0..BATCH).map(|t| (j * BATCH + t) * 7919 % synthetic::KEYS).collect();
                let deps = keys.iter().filter_map(|k| heads.get(k).copied()).collect();
                let entries: Vec<Entry> = keys.iter().map(|k| put(format!("key-{k:05}"), j)).collect();
                let (op, id) = chains.next(j % 8, j, deps, encode_payload(&entries));
                for k in keys {
                    heads.insert(k, id);
                }
                op
            });
            (Kind::KvStore, count, BATCH, never, Box::new(ops))
        }
        other => panic!("unknown shape {other:?}; shapes: {}", SHAPES.join(",")),
    };
    Plan { kind, ops, count, per_op, held }
}

/// What a child reports, as `key=value` words on one line starting `RESULT`.
#[derive(Clone, Debug, Default)]
struct Report {
    shape: String,
    size: u64,
    status: String,
    /// Ops delivered (in the shape's unit: puts for `batches-700`).
    reached: u64,
    wall: f64,
    cpu: f64,
    rss: f64,
    gen_us: f64,
    note: String,
}

impl Report {
    fn line(&self) -> String {
        format!(
            "RESULT shape={} size={} status={} reached={} wall={:.3} cpu={:.3} rss={:.1} gen_us={:.4} note={}",
            self.shape,
            self.size,
            self.status,
            self.reached,
            self.wall,
            self.cpu,
            self.rss,
            self.gen_us,
            self.note.replace(' ', "_")
        )
    }

    fn parse(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("RESULT ")?;
        let kv: HashMap<&str, &str> = rest.split(' ').filter_map(|w| w.split_once('=')).collect();
        let f = |k: &str| kv.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        Some(Report {
            shape: kv.get("shape")?.to_string(),
            size: kv.get("size")?.parse().ok()?,
            status: kv.get("status")?.to_string(),
            reached: kv.get("reached")?.parse().ok()?,
            wall: f("wall"),
            cpu: f("cpu"),
            rss: f("rss"),
            gen_us: f("gen_us"),
            note: kv.get("note").map(|s| s.replace('_', " ")).unwrap_or_default(),
        })
    }

    fn us_per_op(&self) -> f64 {
        if self.reached == 0 {
            f64::NAN
        } else {
            self.wall * 1e6 / self.reached as f64
        }
    }
}

/// Prints the report once: the main thread at the end, or the watchdog at the budget.
static PRINTED: AtomicBool = AtomicBool::new(false);

fn print_once(r: &Report) -> bool {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", r.line());
    let _ = out.flush();
    true
}

fn child(shape: &str, n: u64, budget: Duration) {
    // One store id for every shape, so `deep-floating` must reach `synthetic`'s state hash.
    let store_id = Uuid::from_u128(0x31);
    // The generator's own cost, measured on up to 100k ops (it is linear in n) and reported apart.
    let probe = plan(shape, n.min(100_000), store_id);
    let (probe_count, per_op) = (probe.count, probe.per_op);
    let t = Instant::now();
    let bytes = probe.ops.map(|op| op.payload.len() as u64).sum::<u64>();
    let gen_us = t.elapsed().as_secs_f64() * 1e6 / (probe_count * per_op).max(1) as f64;
    std::hint::black_box(bytes);

    let p = plan(shape, n, store_id);
    let kind = p.kind;
    let logic: Logic = match kind {
        Kind::KvStore => Arc::new(KvStore),
        Kind::LogStore => Arc::new(LogStore),
    };
    let identity = StoreIdentity { store_id, store_type: kind.store_type().into(), schema_version: 1 };
    let mut store = MemStore::new(identity, logic);

    let delivered = Arc::new(AtomicU64::new(0));
    // 0: streaming, 1: delivering the held-back ops (the final cascade).
    let phase = Arc::new(AtomicU8::new(0));
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let base = Report { shape: shape.into(), size: n, gen_us, ..Report::default() };
    {
        let (delivered, phase, base) = (delivered.clone(), phase.clone(), base.clone());
        std::thread::spawn(move || {
            while t0.elapsed() < budget {
                std::thread::sleep(Duration::from_millis(50).min(budget.saturating_sub(t0.elapsed())));
            }
            let reached = delivered.load(Ordering::SeqCst) * per_op;
            let where_ = if phase.load(Ordering::SeqCst) == 1 { "in the final cascade" } else { "streaming" };
            let r = Report {
                status: "budget".into(),
                reached,
                wall: t0.elapsed().as_secs_f64(),
                cpu: cpu_secs() - cpu0,
                rss: peak_rss_mib(),
                note: format!("stopped {where_} after {reached} of {n}"),
                ..base
            };
            if print_once(&r) {
                std::process::exit(0);
            }
        });
    }

    if shape == "hot-key-floor" {
        floor(p, &delivered, base, t0, cpu0);
        return;
    }
    let mut held = Vec::new();
    for (i, op) in p.ops.enumerate() {
        if (p.held)(i as u64) {
            held.push(op);
            continue;
        }
        store.deliver(&op);
        delivered.fetch_add(1, Ordering::Relaxed);
    }
    let before_cascade = store.counts().witnessed;
    phase.store(1, Ordering::SeqCst);
    for op in &held {
        store.deliver(op);
        delivered.fetch_add(1, Ordering::Relaxed);
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - cpu0);

    // Sanity: the whole history was applied, nothing floats, nothing stalled.
    let out = store.outcome();
    let mut problems = Vec::new();
    if let Some(s) = &out.stall {
        problems.push(format!("STALL at {}: {}", s.op_index, s.reason));
    }
    if !out.floating.is_empty() {
        problems.push(format!("{} FLOATING", out.floating.len()));
    }
    if out.counts.applied != p.count {
        problems.push(format!("APPLIED {} of {}", out.counts.applied, p.count));
    }
    let expect_before = match shape {
        "deep-floating" => Some(0),
        "late-genesis" => Some(p.count - p.count / 8),
        _ => None,
    };
    if let Some(e) = expect_before {
        if before_cascade != e {
            problems.push(format!("WITNESSED {before_cascade} before the held ops, expected {e}"));
        }
    }
    let rows = store.rows().len();
    let mut note = format!("rows {rows}, hash {}", &out.state_hash.to_string()[..12]);
    if !held.is_empty() {
        note.push_str(&format!(", witnessed before the held ops {before_cascade}"));
    }
    if shape == "hot-key" {
        let heads = store.rows().values().next().map(|r| inspect(Some(r)).map(|i| i.heads.len()).unwrap_or(0)).unwrap_or(0);
        note.push_str(&format!(", heads {heads}"));
        if heads as u64 != p.count {
            problems.push(format!("HEADS {heads} of {}", p.count));
        }
    }
    let status = if problems.is_empty() { "done".to_string() } else { "INSANE".to_string() };
    if !problems.is_empty() {
        note = format!("{}; {note}", problems.join("; "));
    }
    let r = Report { status, reached: p.count * p.per_op, wall, cpu, rss: peak_rss_mib(), note, ..base };
    print_once(&r);
}

/// Remembers every op applied, as the host's DAG does (for the winner comparison).
#[derive(Default)]
struct Infos(HashMap<OpId, (Hlc, [u8; 32])>);

impl Dag for Infos {
    fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError> {
        Ok(self.0.get(id).copied())
    }
}

/// `hot-key-floor`: the ops applied by the kvstore logic alone, over a bare table.
fn floor(p: Plan, delivered: &AtomicU64, base: Report, t0: Instant, cpu0: f64) {
    let store_id = Uuid::from_u128(0x31);
    let (mut table, mut dag) = (MemTable::default(), Infos::default());
    for op in p.ops {
        let id = op_id(&store_id, &op);
        KvStore.apply(&id, &op, &mut table, &mut dag).expect("the hot-key history applies");
        dag.0.insert(id, (op.hlc, op.author));
        delivered.fetch_add(1, Ordering::Relaxed);
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - cpu0);
    let heads = table.rows.values().next().map(|r| inspect(Some(r)).map(|i| i.heads.len()).unwrap_or(0)).unwrap_or(0);
    let status = if heads as u64 == p.count { "done" } else { "INSANE" };
    let r = Report {
        status: status.into(),
        reached: p.count,
        wall,
        cpu,
        rss: peak_rss_mib(),
        note: format!("rows {}, heads {heads}", table.rows.len()),
        ..base
    };
    print_once(&r);
}

/// The state hash prefix a report's note names.
fn hash_of(r: &Report) -> Option<&str> {
    r.note.split(", ").find_map(|w| w.strip_prefix("hash "))
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget_secs: f64 = arg_value(&args, "--budget-secs").map_or(120.0, |s| s.parse().expect("--budget-secs is a number"));
    let budget = Duration::from_secs_f64(budget_secs);
    if args.iter().any(|a| a == "--child") {
        let shape = arg_value(&args, "--shape").expect("--shape");
        let size = arg_value(&args, "--size").expect("--size").parse().expect("--size is a number");
        child(&shape, size, budget);
        return;
    }
    let sizes: Vec<u64> = arg_value(&args, "--sizes")
        .unwrap_or_else(|| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().replace('_', "").parse().expect("--sizes: numbers"))
        .collect();
    let shapes: Vec<String> = arg_value(&args, "--shapes")
        .map_or_else(|| SHAPES.iter().map(|s| s.to_string()).collect(), |s| s.split(',').map(str::to_string).collect());
    for s in &shapes {
        assert!(SHAPES.contains(&s.as_str()), "unknown shape {s:?}; shapes: {}", SHAPES.join(","));
    }
    let exe = std::env::current_exe().expect("own path");
    let mut reports = Vec::new();
    for shape in &shapes {
        for &size in &sizes {
            eprintln!("{shape} at {size} …");
            let mut c = Command::new(&exe)
                .args(["--child", "--shape", shape, "--size", &size.to_string(), "--budget-secs", &budget_secs.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn the child");
            let stdout = c.stdout.take().expect("piped");
            let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).find_map(|l| Report::parse(&l)));
            let start = Instant::now();
            let hard = budget + Duration::from_secs(60);
            let killed = loop {
                if c.try_wait().expect("wait").is_some() {
                    break false;
                }
                if start.elapsed() > hard {
                    let _ = c.kill();
                    let _ = c.wait();
                    break true;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            let r = reader.join().ok().flatten().unwrap_or_else(|| Report {
                shape: shape.clone(),
                size,
                status: if killed { "killed".into() } else { "crashed".into() },
                wall: start.elapsed().as_secs_f64(),
                cpu: f64::NAN,
                rss: f64::NAN,
                gen_us: f64::NAN,
                ..Report::default()
            });
            eprintln!("  {}", r.line());
            reports.push(r);
        }
    }
    println!("| shape | size | status | reached | wall s | CPU s | peak RSS MiB | µs/op | ops/s | gen µs/op | state |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &reports {
        let us = r.us_per_op();
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} | {} |",
            r.shape,
            r.size,
            r.status,
            r.reached,
            r.wall,
            r.cpu,
            r.rss,
            us,
            1e6 / us,
            r.gen_us,
            r.note
        );
    }
    println!();
    println!("Ratios, µs/op at the largest size ÷ at the smallest: wall (CPU):");
    println!();
    for shape in &shapes {
        let mine: Vec<&Report> = reports.iter().filter(|r| &r.shape == shape && r.reached > 0).collect();
        let (Some(lo), Some(hi)) = (mine.iter().min_by_key(|r| r.size), mine.iter().max_by_key(|r| r.size)) else { continue };
        if lo.size == hi.size {
            continue;
        }
        let cpu_ratio = (hi.cpu / hi.reached as f64) / (lo.cpu / lo.reached as f64);
        let partial = if hi.status != "done" || lo.status != "done" { " (budget-stopped: µs/op so far)" } else { "" };
        println!("- {shape}: {:.2} ({:.2}) at {} ÷ {}{partial}", hi.us_per_op() / lo.us_per_op(), cpu_ratio, hi.size, lo.size);
    }
    println!();
    for r in reports.iter().filter(|r| r.shape == "deep-floating") {
        if let Some(syn) = reports.iter().find(|s| s.shape == "synthetic" && s.size == r.size) {
            let same = hash_of(r).is_some() && hash_of(r) == hash_of(syn);
            println!("- deep-floating at {} reaches synthetic's state hash: {}", r.size, if same { "yes" } else { "NO" });
        }
    }
}
