//! The host side of the build protocol: an outside build (`--build exec:…`) run as a child
//! process, one per replica, driven through [`ExecReplica`] behind the [`Replica`] seam.
//!
//! The host keeps its own mirror of what the build reports — every row written, every view, the
//! ops still floating — and computes the state hash (docs/FORMAT.md §8) and the observed hash
//! from it, so a build is hash-equivalent in exactly the sense the goldens record. At the end of
//! a history ([`Replica::finish`]) the build's whole stored state is asked for (DUMP) and
//! compared with the mirror: a build whose reports and rows disagree is unusable.
//!
//! Bounds: every answer has a deadline ([`ExecLimits`]: per op of the frame, and per history);
//! a build that misses it, exits, closes its output or answers anything but a well-formed frame
//! of the protocol is killed and reaped, and the error carries its exit status and the tail of
//! its stderr. Nothing an outside build does can make the host pass a history.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::hash::{LtHash, RowTable, StateHash};
use crate::kernel::{RejectKind, Rejection};
use crate::op::{Op, OpId};
use crate::outside::wire::{self, Effects, Receipt, Reply, Request, View};
use crate::replay::{Counts, Delivered, Stall};
use crate::replica::{Replica, ReplicaError, ReplicaFactory};
use crate::store::StoreIdentity;

const BUILD_FILE_TAG: &str = "lattice-conform/exec-build";
const BUILD_FILE_VERSION: u32 = 1;
/// Bytes of a build's stderr kept for error messages (the last ones).
pub const STDERR_TAIL: usize = 2048;

/// Time bounds of an outside build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecLimits {
    /// Milliseconds allowed per op of a frame (and for each other message).
    pub op_timeout_ms: u64,
    /// Seconds allowed for one whole history (one process).
    pub history_timeout_s: u64,
}

impl Default for ExecLimits {
    fn default() -> ExecLimits {
        ExecLimits { op_timeout_ms: 10_000, history_timeout_s: 1_800 }
    }
}

impl ExecLimits {
    /// The defaults, overridden by `LATTICE_EXEC_OP_TIMEOUT_MS` and `LATTICE_EXEC_HISTORY_TIMEOUT_S`.
    pub fn from_env() -> Result<ExecLimits, String> {
        let mut l = ExecLimits::default();
        for (var, slot) in
            [("LATTICE_EXEC_OP_TIMEOUT_MS", &mut l.op_timeout_ms), ("LATTICE_EXEC_HISTORY_TIMEOUT_S", &mut l.history_timeout_s)]
        {
            if let Ok(v) = std::env::var(var) {
                *slot = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("{var}={v:?}: expected a positive integer"))?;
            }
        }
        Ok(l)
    }
}

/// An outside build: the program to run and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecBuild {
    /// What `--build` said after `exec:`.
    pub spec: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Limits from the build file, if it sets them (else the environment's or the defaults).
    pub limits: Option<ExecLimits>,
}

/// The build file (`exec:FILE.json`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildFile {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    format_version: u32,
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    limits: Option<ExecLimits>,
}

impl ExecBuild {
    /// `exec:PROGRAM` (run with no arguments) or `exec:FILE.json` (a build file naming the
    /// program, its arguments and limits; a relative program path is relative to the file).
    pub fn parse(spec: &str) -> Result<ExecBuild, String> {
        if spec.is_empty() {
            return Err("exec: needs a program or a build file (exec:PROGRAM or exec:FILE.json)".into());
        }
        if !spec.ends_with(".json") {
            return Ok(ExecBuild { spec: spec.into(), program: PathBuf::from(spec), args: vec![], limits: None });
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| format!("exec:{spec}: cannot read the build file: {e}"))?;
        crate::versioned::check(&text, path, BUILD_FILE_TAG, BUILD_FILE_VERSION).map_err(|e| format!("exec:{spec}: {e}"))?;
        let file: BuildFile =
            serde_json::from_str(&text).map_err(|e| format!("exec:{spec}: {}", crate::versioned::json_error(path, &e)))?;
        let mut program = PathBuf::from(&file.program);
        if file.program.contains('/') && program.is_relative() {
            program = path.parent().unwrap_or(Path::new(".")).join(program);
        }
        Ok(ExecBuild { spec: spec.into(), program, args: file.args, limits: file.limits })
    }

    /// The limits in force: the build file's, else the environment's, else the defaults.
    pub fn limits(&self) -> Result<ExecLimits, String> {
        match self.limits {
            Some(l) => Ok(l),
            None => ExecLimits::from_env(),
        }
    }

    /// The program file's blake3 (found on `PATH` if it is a bare name) and the arguments: what
    /// reports and certificates record of the build.
    pub fn identity(&self) -> Result<String, String> {
        let path = self.resolved_program()?;
        let bytes = std::fs::read(&path).map_err(|e| format!("exec:{}: cannot read {}: {e}", self.spec, path.display()))?;
        Ok(format!("exec:{} program blake3 {} args {:?}", self.spec, blake3::hash(&bytes), self.args))
    }

    fn resolved_program(&self) -> Result<PathBuf, String> {
        if self.program.components().count() > 1 || self.program.is_absolute() {
            return Ok(self.program.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join(&self.program))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("exec:{}: `{}` is not on PATH", self.spec, self.program.display()))
    }

    /// Starts the build and shakes hands: the store types it serves, its name and version.
    pub fn hello(&self) -> Result<Hello, ReplicaError> {
        let mut p = Process::spawn(self)?;
        let hello = p.hello()?;
        p.bye();
        Ok(hello)
    }
}

/// What a build said of itself in its handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub name: String,
    pub version: String,
    pub types: Vec<(String, u64)>,
}

/// The tail of a build's stderr, drained on its own thread so a chatty build never blocks.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    total: u64,
}

/// One running build process.
struct Process {
    spec: String,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    replies: Receiver<Result<(u8, Vec<u8>), wire::WireError>>,
    stderr: Arc<Mutex<Tail>>,
    limits: ExecLimits,
    started: Instant,
    hello: Option<Hello>,
}

impl Process {
    fn spawn(build: &ExecBuild) -> Result<Process, ReplicaError> {
        let limits = build.limits().map_err(ReplicaError)?;
        let mut child = Command::new(&build.program)
            .args(&build.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ReplicaError(format!("exec:{}: cannot start {}: {e}", build.spec, build.program.display())))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, replies) = mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::with_capacity(1 << 16, &mut stdout);
            loop {
                let frame = wire::read_frame(&mut r);
                let end = frame.is_err();
                if tx.send(frame).is_err() || end {
                    return;
                }
            }
        });
        let tail = Arc::new(Mutex::new(Tail::default()));
        let t = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let mut t = t.lock().expect("the stderr thread never panics holding it");
                t.total += n as u64;
                t.bytes.extend_from_slice(&buf[..n]);
                if t.bytes.len() > 2 * STDERR_TAIL {
                    let cut = t.bytes.len() - STDERR_TAIL;
                    t.bytes.drain(..cut);
                }
            }
        });
        let stdin = Some(BufWriter::with_capacity(1 << 16, child.stdin.take().expect("piped")));
        Ok(Process { spec: build.spec.clone(), child, stdin, replies, stderr: tail, limits, started: Instant::now(), hello: None })
    }

    /// Sends `req` and waits for the answer within `ops` op allowances (and the history's).
    fn call(&mut self, req: &Request, ops: usize) -> Result<Reply, ReplicaError> {
        self.post(req)?;
        self.answer(ops)
    }

    /// Sends a request without waiting for its answer (the build answers in order, and the
    /// reader thread drains its output, so a few requests may be in flight).
    fn post(&mut self, req: &Request) -> Result<(), ReplicaError> {
        let (ty, body) = req.encode();
        let sent = match &mut self.stdin {
            Some(w) => wire::write_frame(w, ty, &body).and_then(|_| w.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if sent.is_err() {
            return Err(self.dead("closed its input before the request was sent"));
        }
        Ok(())
    }

    /// The answer to the oldest request in flight, within `ops` op allowances.
    fn answer(&mut self, ops: usize) -> Result<Reply, ReplicaError> {
        let per_op = Duration::from_millis(self.limits.op_timeout_ms.saturating_mul(ops.max(1) as u64));
        let history_left = Duration::from_secs(self.limits.history_timeout_s).saturating_sub(self.started.elapsed());
        let wait = per_op.min(history_left);
        match self.replies.recv_timeout(wait) {
            Ok(Ok((ty, body))) => match Reply::decode(ty, &body) {
                Ok(Reply::Error { message }) => Err(self.fail(format!("reported an error: {message}"))),
                Ok(reply) => Ok(reply),
                Err(e) => Err(self.fail(format!("answered a malformed message ({e})"))),
            },
            Ok(Err(wire::WireError::Eof)) | Err(RecvTimeoutError::Disconnected) => Err(self.dead("closed its output")),
            Ok(Err(e)) => Err(self.fail(format!("answered bytes that are not a protocol frame ({e})"))),
            Err(RecvTimeoutError::Timeout) if wait == history_left => Err(self.fail(format!(
                "did not finish the history within {} s (LATTICE_EXEC_HISTORY_TIMEOUT_S or the build file's limits.history_timeout_s)",
                self.limits.history_timeout_s
            ))),
            Err(RecvTimeoutError::Timeout) => Err(self.fail(format!(
                "did not answer within {} ms ({} ms per op × {} ops; LATTICE_EXEC_OP_TIMEOUT_MS or the build file's limits.op_timeout_ms)",
                wait.as_millis(),
                self.limits.op_timeout_ms,
                ops.max(1)
            ))),
        }
    }

    /// The handshake, once per process (a reused process answers from what it said first).
    fn hello(&mut self) -> Result<Hello, ReplicaError> {
        if let Some(h) = &self.hello {
            return Ok(h.clone());
        }
        match self.call(&Request::Hello { version: wire::VERSION }, 1)? {
            Reply::HelloOk { version, name, build_version, types } if version == wire::VERSION => {
                let h = Hello { name, version: build_version, types };
                self.hello = Some(h.clone());
                Ok(h)
            }
            Reply::HelloOk { version, .. } => {
                Err(self.fail(format!("speaks build protocol version {version}; this host speaks version {}", wire::VERSION)))
            }
            other => Err(self.unexpected("HELLO", &other)),
        }
    }

    fn unexpected(&mut self, to: &str, got: &Reply) -> ReplicaError {
        let name = match got {
            Reply::HelloOk { .. } => "HELLO_OK",
            Reply::Opened => "OPENED",
            Reply::Delivered { .. } => "DELIVERED",
            Reply::Restarted => "RESTARTED",
            Reply::Dumped { .. } => "DUMPED",
            Reply::Closed => "CLOSED",
            Reply::Error { .. } => "ERROR",
        };
        self.fail(format!("answered {to} with {name}"))
    }

    /// Kills the build and describes why, with its exit status and stderr tail.
    fn fail(&mut self, what: String) -> ReplicaError {
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        ReplicaError(format!("outside build exec:{}: {what}; killed ({status}){}", self.spec, self.stderr_tail()))
    }

    /// The build went away: waits a moment for its status before killing it.
    fn dead(&mut self, what: &str) -> ReplicaError {
        let deadline = Instant::now() + Duration::from_millis(500);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        match status {
            Some(s) => ReplicaError(format!("outside build exec:{}: {what}: it exited ({s}){}", self.spec, self.stderr_tail())),
            None => self.fail(what.to_string()),
        }
    }

    fn stderr_tail(&self) -> String {
        std::thread::sleep(Duration::from_millis(20));
        let t = self.stderr.lock().expect("the stderr thread never panics holding it");
        if t.total == 0 {
            return "; it wrote nothing to stderr".into();
        }
        let start = t.bytes.len().saturating_sub(STDERR_TAIL);
        let text = String::from_utf8_lossy(&t.bytes[start..]);
        let text = text.trim_end();
        let more =
            if t.total as usize > text.len() { format!("last {} of {} bytes", text.len(), t.total) } else { format!("{} bytes", t.total) };
        format!("; its stderr ({more}):\n{text}")
    }

    /// Says BYE and reaps the process (killing it if it lingers).
    fn bye(&mut self) {
        if let Some(mut w) = self.stdin.take() {
            let (ty, body) = Request::Bye.encode();
            let _ = wire::write_frame(&mut w, ty, &body).and_then(|_| w.flush());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stdin.take();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Ops per DELIVER frame the host sends (BUILD_PROTOCOL.md §4).
pub const FRAME_OPS: usize = 64;
/// DELIVER frames in flight at once in [`Replica::deliver_checkpointed`].
const PIPELINE: usize = 2;

/// A DELIVERED answer: the receipts, the effects records, and the ids of the frame's ops.
type Answer = (Vec<Receipt>, Vec<Effects>, Vec<OpId>);

/// A DELIVER frame sent and not yet answered.
struct Frame {
    mode: u8,
    ids: Vec<OpId>,
    first: u64,
}

impl Frame {
    /// `e` with the ops of this frame named.
    fn at(&self, e: ReplicaError) -> ReplicaError {
        match self.ids.len() {
            1 => ReplicaError(format!("delivering op {}: {}", self.first, e.0)),
            n => ReplicaError(format!("delivering ops {} to {}: {}", self.first, self.first + n as u64 - 1, e.0)),
        }
    }
}

/// Replicas of an outside build. A pooled factory hands a process that ended its last history
/// cleanly (CLOSE answered, DUMP matched) to the next replica, a new OPEN on the same process
/// (BUILD_PROTOCOL.md §2); a fresh one ([`ExecFactory::fresh`], used by `verify --repeat`)
/// starts a new process per replica. Idle processes are told BYE and reaped when the factory is
/// dropped.
pub struct ExecFactory {
    build: ExecBuild,
    pool: Option<Arc<Pool>>,
}

/// Processes waiting for their next OPEN.
#[derive(Default)]
struct Pool(Mutex<Vec<Process>>);

impl Drop for Pool {
    fn drop(&mut self) {
        for mut p in self.0.get_mut().map(std::mem::take).unwrap_or_default() {
            p.bye();
        }
    }
}

impl ExecFactory {
    /// Replicas that reuse processes.
    pub fn pooled(build: ExecBuild) -> ExecFactory {
        ExecFactory { build, pool: Some(Arc::default()) }
    }

    /// A new process for every replica.
    pub fn fresh(build: ExecBuild) -> ExecFactory {
        ExecFactory { build, pool: None }
    }
}

impl ReplicaFactory for ExecFactory {
    fn open(&self, identity: &StoreIdentity) -> Result<Box<dyn Replica>, ReplicaError> {
        let idle = self.pool.as_ref().and_then(|p| p.0.lock().expect("no panic holds the pool").pop());
        let process = match idle {
            Some(p) => p,
            None => Process::spawn(&self.build)?,
        };
        Ok(Box::new(ExecReplica::open_on(process, &self.build, identity, self.pool.clone())?))
    }
}

/// An outside build's replica of one store, and the host's mirror of what it stores.
pub struct ExecReplica {
    /// `None` once a finished replica handed its process back to the pool.
    process: Option<Process>,
    /// Where the process goes after a clean end of the history (none: it is told BYE).
    pool: Option<Arc<Pool>>,
    identity: StoreIdentity,
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    tips: BTreeMap<[u8; 32], OpId>,
    acc: LtHash,
    views: BTreeMap<Vec<u8>, Vec<u8>>,
    unviewable: BTreeMap<Vec<u8>, String>,
    observed: LtHash,
    /// Received ops not yet witnessed → arrival index (looked up only, never iterated for output
    /// but through a sort).
    floating: HashMap<OpId, u64>,
    counts: Counts,
    stall: Option<Stall>,
    finished: bool,
    /// The mirror was checked against a DUMP since the last delivery.
    dumped: bool,
}

impl ExecReplica {
    /// Starts the build, checks that it serves the store's type and schema, and opens the store.
    pub fn open(build: &ExecBuild, identity: &StoreIdentity) -> Result<ExecReplica, ReplicaError> {
        ExecReplica::open_on(Process::spawn(build)?, build, identity, None)
    }

    fn open_on(
        mut process: Process,
        build: &ExecBuild,
        identity: &StoreIdentity,
        pool: Option<Arc<Pool>>,
    ) -> Result<ExecReplica, ReplicaError> {
        let hello = process.hello()?;
        if !hello.types.iter().any(|(t, s)| *t == identity.store_type && *s == identity.schema_version) {
            let served: Vec<String> = hello.types.iter().map(|(t, s)| format!("`{t}` schema {s}")).collect();
            let served = if served.is_empty() { "no store type".to_string() } else { served.join(", ") };
            process.bye();
            return Err(ReplicaError(format!(
                "outside build exec:{} serves {served}, not `{}` schema {}",
                build.spec, identity.store_type, identity.schema_version
            )));
        }
        let open = Request::Open {
            store_id: *identity.store_id.as_bytes(),
            store_type: identity.store_type.clone(),
            schema_version: identity.schema_version,
        };
        match process.call(&open, 1)? {
            Reply::Opened => {}
            other => return Err(process.unexpected("OPEN", &other)),
        }
        Ok(ExecReplica {
            process: Some(process),
            pool,
            identity: identity.clone(),
            rows: BTreeMap::new(),
            tips: BTreeMap::new(),
            acc: LtHash::default(),
            views: BTreeMap::new(),
            unviewable: BTreeMap::new(),
            observed: LtHash::default(),
            floating: HashMap::new(),
            counts: Counts::default(),
            stall: None,
            finished: false,
            dumped: false,
        })
    }

    fn p(&mut self) -> &mut Process {
        self.process.as_mut().expect("a replica is not used after it is finished")
    }

    fn violation(&mut self, what: String) -> ReplicaError {
        self.p().fail(format!("broke the protocol: {what}"))
    }

    fn send(&mut self, mode: u8, ops: &[Op]) -> Result<Answer, ReplicaError> {
        let frame = self.post_frame(mode, ops, self.counts.delivered)?;
        self.collect(frame)
    }

    /// Sends a DELIVER frame of `ops`, the first of which will have arrival index `first`.
    fn post_frame(&mut self, mode: u8, ops: &[Op], first: u64) -> Result<Frame, ReplicaError> {
        let encoded: Vec<(OpId, Vec<u8>)> = ops
            .iter()
            .map(|op| {
                let enc = op.encode();
                (crate::op::op_id_of_encoding(&self.identity.store_id, &enc), enc)
            })
            .collect();
        let ids = encoded.iter().map(|(id, _)| *id).collect();
        self.dumped = false;
        let frame = Frame { mode, ids, first };
        self.p().post(&Request::Deliver { mode, ops: encoded }).map_err(|e| frame.at(e))?;
        Ok(frame)
    }

    /// The answer to a DELIVER frame, checked for shape.
    fn collect(&mut self, frame: Frame) -> Result<Answer, ReplicaError> {
        let n = frame.ids.len();
        match self.p().answer(n).map_err(|e| frame.at(e))? {
            Reply::Delivered { receipts, effects } => {
                let want = if frame.mode == wire::MODE_EACH { n } else { 1 };
                if receipts.len() != n || effects.len() != want {
                    return Err(self.violation(format!(
                        "DELIVERED has {} receipts and {} effects records for {n} ops (expected {n} and {want})",
                        receipts.len(),
                        effects.len(),
                    )));
                }
                Ok((receipts, effects, frame.ids))
            }
            other => Err(self.p().unexpected("DELIVER", &other)),
        }
    }

    /// Takes the answer to a mode-0 frame into the mirror: each op's result.
    fn take_each(&mut self, receipts: Vec<Receipt>, effects: Vec<Effects>, ids: Vec<OpId>) -> Result<Vec<Delivered>, ReplicaError> {
        let mut out = Vec::with_capacity(ids.len());
        for ((r, e), id) in receipts.into_iter().zip(effects).zip(ids) {
            match self.receive(r, id)? {
                Some(d) if e == Effects::default() => out.push(d),
                Some(_) => {
                    return Err(
                        self.violation(format!("op {} was not received, yet its delivery reports effects", self.counts.delivered - 1))
                    )
                }
                None => out.push(self.apply(e)?),
            }
        }
        Ok(out)
    }

    /// Takes one receipt into the mirror; `Some` is the op's result when it is final already.
    fn receive(&mut self, r: Receipt, id: OpId) -> Result<Option<Delivered>, ReplicaError> {
        let arrival = self.counts.delivered;
        self.counts.delivered += 1;
        Ok(match r {
            Receipt::Received => {
                if self.floating.insert(id, arrival).is_some() {
                    return Err(
                        self.violation(format!("op {arrival} ({}) received twice: a second delivery is a redelivery", hex::encode(id)))
                    );
                }
                None
            }
            Receipt::Redelivered => {
                self.counts.redelivered += 1;
                Some(Delivered::Redelivered)
            }
            Receipt::Refused { kind, reason } => {
                let kind = self.reject_kind(&kind)?;
                self.counts.refused += 1;
                Some(Delivered::Refused(Rejection { op_id: id, kind, reason }))
            }
            Receipt::Skipped => Some(Delivered::Skipped),
        })
    }

    fn reject_kind(&mut self, name: &str) -> Result<RejectKind, ReplicaError> {
        match serde_json::from_value(serde_json::Value::String(name.to_string())) {
            Ok(k) => Ok(k),
            Err(_) => Err(self.violation(format!("`{name}` is not a reject kind (docs/FORMAT.md §4.4)"))),
        }
    }

    /// Takes one effects record into the mirror; the ingest's result.
    fn apply(&mut self, e: Effects) -> Result<Delivered, ReplicaError> {
        let mut arrivals = HashMap::with_capacity(e.witnessed.len());
        for id in &e.witnessed {
            match self.floating.remove(id) {
                Some(a) => {
                    arrivals.insert(*id, a);
                }
                None => {
                    return Err(self
                        .violation(format!("witnessed op {} that is not floating (never received, or witnessed before)", hex::encode(id))))
                }
            }
        }
        self.counts.witnessed += e.witnessed.len() as u64;
        self.counts.applied += e.applied.len() as u64;
        if let Some(s) = e.stall.as_ref().filter(|_| self.stall.is_none()) {
            let kind = self.reject_kind(&s.kind)?;
            let Some(&op_index) = arrivals.get(&s.op_id) else {
                return Err(self.violation(format!("stalled at op {}, which this delivery did not witness", hex::encode(s.op_id))));
            };
            self.stall = Some(Stall { op_index, op_id: s.op_id, kind, reason: s.reason.clone() });
        }
        for c in e.changes {
            self.change(c)?;
        }
        for (key, view) in e.views {
            self.set_view(key, view);
        }
        Ok(Delivered::Received { witnessed: e.witnessed.len() as u64, applied: e.applied.len() as u64, stalled: e.stall.is_some() })
    }

    fn change(&mut self, c: wire::Change) -> Result<(), ReplicaError> {
        match c.table {
            wire::TABLE_DATA => {
                if let Some(old) = self.rows.remove(&c.key) {
                    self.acc.remove(RowTable::Data, &c.key, &old);
                }
                if let Some(v) = c.value {
                    self.acc.insert(RowTable::Data, &c.key, &v);
                    self.rows.insert(c.key, v);
                }
            }
            wire::TABLE_TIP => {
                let Ok(author) = <[u8; 32]>::try_from(c.key.as_slice()) else {
                    return Err(self.violation(format!("a tip row's key has {} bytes (an author is 32)", c.key.len())));
                };
                let value = match c.value.map(|v| <[u8; 32]>::try_from(v.as_slice())) {
                    None => None,
                    Some(Ok(id)) => Some(id),
                    Some(Err(_)) => return Err(self.violation("a tip row's value is not a 32-byte op id".into())),
                };
                if let Some(old) = self.tips.remove(&author) {
                    self.acc.remove(RowTable::Tip, &author, &old);
                }
                if let Some(id) = value {
                    self.acc.insert(RowTable::Tip, &author, &id);
                    self.tips.insert(author, id);
                }
            }
            t => return Err(self.violation(format!("row table {t} (expected 0 for data or 1 for tips)"))),
        }
        Ok(())
    }

    /// Fails unless a DUMP's rows, tips and views are the mirror's.
    fn compare_dump(
        &mut self,
        when: &str,
        data: BTreeMap<Vec<u8>, Vec<u8>>,
        tips: BTreeMap<[u8; 32], OpId>,
        views: Vec<(Vec<u8>, View)>,
    ) -> Result<(), ReplicaError> {
        if let Some(k) = first_difference(&self.rows, &data) {
            return Err(self.violation(format!("{when}, its stored rows differ from the writes it reported: key {}", hex::encode(k))));
        }
        if let Some(a) = first_difference(&self.tips, &tips) {
            return Err(
                self.violation(format!("{when}, its stored author tips differ from the tips it reported: author {}", hex::encode(a)))
            );
        }
        let mut seen = BTreeMap::new();
        for (k, v) in views {
            match v {
                View::Value(v) => {
                    seen.insert(k, Some(v));
                }
                View::Unviewable(_) => {
                    seen.insert(k, None);
                }
                View::Absent => {}
            }
        }
        let mirror: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            self.views.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).chain(self.unviewable.keys().map(|k| (k.clone(), None))).collect();
        if let Some(k) = first_difference(&mirror, &seen) {
            return Err(self.violation(format!("{when}, its views differ from the views it reported: key {}", hex::encode(k))));
        }
        Ok(())
    }

    /// Replaces the mirror's rows, tips and views with a DUMP's, accumulators recomputed.
    fn adopt(&mut self, data: BTreeMap<Vec<u8>, Vec<u8>>, tips: BTreeMap<[u8; 32], OpId>, views: Vec<(Vec<u8>, View)>) {
        self.acc = LtHash::default();
        for (k, v) in &data {
            self.acc.insert(RowTable::Data, k, v);
        }
        for (a, t) in &tips {
            self.acc.insert(RowTable::Tip, a, t);
        }
        (self.rows, self.tips) = (data, tips);
        self.views.clear();
        self.unviewable.clear();
        self.observed = LtHash::default();
        for (k, v) in views {
            self.set_view(k, v);
        }
    }

    fn set_view(&mut self, key: Vec<u8>, view: View) {
        if let Some(old) = self.views.remove(&key) {
            self.observed.remove(RowTable::Observed, &key, &old);
        }
        if self.unviewable.remove(&key).is_some() {
            self.observed.remove(RowTable::Unviewable, &key, &[]);
        }
        match view {
            View::Absent => {}
            View::Value(v) => {
                self.observed.insert(RowTable::Observed, &key, &v);
                self.views.insert(key, v);
            }
            View::Unviewable(why) => {
                self.observed.insert(RowTable::Unviewable, &key, &[]);
                self.unviewable.insert(key, why);
            }
        }
    }

    /// Asks for the build's whole stored state and compares it with the mirror.
    /// With `adopt` (after a restart), what the build stores is taken as its state — a build that
    /// loses rows when it reopens then diverges (exit 1) rather than being unusable.
    fn check_dump(&mut self, when: &str, adopt: bool) -> Result<(), ReplicaError> {
        let allowance = 1 + self.rows.len() / 1024;
        let (rows, views, floating) = match self.p().call(&Request::Dump, allowance)? {
            Reply::Dumped { rows, views, floating } => (rows, views, floating),
            other => return Err(self.p().unexpected("DUMP", &other)),
        };
        let mut data = BTreeMap::new();
        let mut tips = BTreeMap::new();
        for (t, k, v) in rows {
            match (t, <[u8; 32]>::try_from(k.as_slice()), <[u8; 32]>::try_from(v.as_slice())) {
                (wire::TABLE_DATA, ..) => {
                    data.insert(k, v);
                }
                (wire::TABLE_TIP, Ok(a), Ok(id)) => {
                    tips.insert(a, id);
                }
                _ => return Err(self.violation(format!("DUMP {when}: a row of table {t} that is not a data row or a 32-byte tip row"))),
            }
        }
        if adopt {
            self.adopt(data, tips, views);
        } else {
            self.compare_dump(when, data, tips, views)?;
        }
        // The build's own floating set is what it stores: an op it said it received but did not
        // keep (dropped) leaves the host's set too, so the golden's `floating` is the build's.
        let mut kept = HashMap::with_capacity(floating.len());
        for id in floating {
            match self.floating.get(&id) {
                Some(&arrival) => {
                    kept.insert(id, arrival);
                }
                None => {
                    return Err(self.violation(format!(
                        "{when}, it lists as floating op {}, which it never received or has witnessed",
                        hex::encode(id)
                    )))
                }
            }
        }
        self.floating = kept;
        self.dumped = true;
        Ok(())
    }
}

fn first_difference<K: Ord + Clone, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> Option<K> {
    a.iter().find(|(k, v)| b.get(k) != Some(v)).map(|(k, _)| k.clone()).or_else(|| b.keys().find(|k| !a.contains_key(k)).cloned())
}

impl Replica for ExecReplica {
    fn deliver(&mut self, op: &Op) -> Result<Delivered, ReplicaError> {
        Ok(self.deliver_each(std::slice::from_ref(op))?.remove(0))
    }

    fn deliver_each(&mut self, ops: &[Op]) -> Result<Vec<Delivered>, ReplicaError> {
        if ops.is_empty() {
            return Ok(vec![]);
        }
        let (receipts, effects, ids) = self.send(wire::MODE_EACH, ops)?;
        self.take_each(receipts, effects, ids)
    }

    /// Frames of at most [`FRAME_OPS`] ops, ending on the checkpoints, with the next frame sent
    /// before the answer to the last is taken in: the build and the host work at the same time.
    fn deliver_checkpointed(&mut self, ops: &[Op], every: u64) -> Result<Vec<crate::replica::Checkpoint>, ReplicaError> {
        let mut frames = Vec::new();
        let mut at = self.counts.delivered;
        let mut rest = ops;
        while !rest.is_empty() {
            let to_checkpoint = (every - at % every) as usize;
            let (head, tail) = rest.split_at(rest.len().min(FRAME_OPS).min(to_checkpoint));
            frames.push((head, at));
            at += head.len() as u64;
            rest = tail;
        }
        let mut out = Vec::new();
        let mut in_flight = std::collections::VecDeque::new();
        let mut next = frames.into_iter();
        for _ in 0..PIPELINE {
            if let Some((ops, first)) = next.next() {
                in_flight.push_back(self.post_frame(wire::MODE_EACH, ops, first)?);
            }
        }
        while let Some(frame) = in_flight.pop_front() {
            if let Some((ops, first)) = next.next() {
                in_flight.push_back(self.post_frame(wire::MODE_EACH, ops, first)?);
            }
            let (receipts, effects, ids) = self.collect(frame)?;
            self.take_each(receipts, effects, ids)?;
            if self.counts.delivered.is_multiple_of(every) {
                out.push((self.counts.delivered, self.state_hash()?, self.observed_hash()?));
            }
        }
        Ok(out)
    }

    fn deliver_batch(&mut self, ops: &[Op]) -> Result<(Vec<Delivered>, Delivered), ReplicaError> {
        let (receipts, mut effects, ids) = self.send(wire::MODE_BATCH, ops)?;
        let mut each = Vec::with_capacity(ops.len());
        let mut aborted = false;
        for (r, id) in receipts.into_iter().zip(ids) {
            aborted |= matches!(r, Receipt::Skipped);
            each.push(self.receive(r, id)?.unwrap_or(Delivered::Received { witnessed: 0, applied: 0, stalled: false }));
        }
        let e = effects.remove(0);
        if aborted {
            if e != Effects::default() {
                return Err(self.violation("an aborted batch reports effects".into()));
            }
            return Ok((each, Delivered::Skipped));
        }
        let whole = self.apply(e)?;
        Ok((each, whole))
    }

    fn restart(&mut self) -> Result<(), ReplicaError> {
        let allowance = 1 + self.rows.len() / 1024;
        match self.p().call(&Request::Restart, allowance)? {
            Reply::Restarted => self.check_dump("after a restart", true),
            other => Err(self.p().unexpected("RESTART", &other)),
        }
    }

    fn state_hash(&mut self) -> Result<StateHash, ReplicaError> {
        Ok(self.acc.state_hash(&self.identity.store_type, self.identity.schema_version))
    }

    fn observed_hash(&mut self) -> Result<StateHash, ReplicaError> {
        Ok(self.observed.observed_hash(&self.identity.store_type, self.identity.schema_version))
    }

    fn stall(&self) -> Option<Stall> {
        self.stall.clone()
    }

    fn counts(&self) -> Counts {
        self.counts
    }

    /// The build's floating set (asked for with DUMP, which also checks the mirror).
    fn floating(&mut self) -> Result<Vec<u64>, ReplicaError> {
        if !self.dumped {
            self.check_dump("when asked for its floating ops", false)?;
        }
        let mut out: Vec<u64> = self.floating.values().copied().collect();
        out.sort_unstable();
        Ok(out)
    }

    fn rows(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError> {
        Ok(self.rows.clone())
    }

    fn views(&mut self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReplicaError> {
        Ok(self.views.clone())
    }

    fn finish(&mut self) -> Result<(), ReplicaError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if !self.dumped {
            self.check_dump("at the end of the history", false)?;
        }
        match self.p().call(&Request::Close, 1)? {
            Reply::Closed => {}
            other => return Err(self.p().unexpected("CLOSE", &other)),
        }
        match &self.pool {
            Some(pool) => {
                let mut process = self.process.take().expect("a replica has its process until it is finished");
                process.started = Instant::now();
                pool.0.lock().expect("no panic holds the pool").push(process);
            }
            None => self.p().bye(),
        }
        Ok(())
    }
}
