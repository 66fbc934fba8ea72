//! One running outside build: the child process, its handshake, and every request and answer
//! with its deadline. Standard output is read on a thread of its own (frames into a channel) and
//! standard error drained on another (its tail kept for messages), so a build that floods either
//! never blocks the host; a build that misses a deadline, exits or answers garbage is killed and
//! reaped, and the error carries its exit status and stderr tail.

use std::io::{BufWriter, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::outside::wire::{self, Reply, Request};
use crate::outside::{ExecBuild, ExecLimits};
use crate::replica::ReplicaError;

/// The least time any request but DELIVER is allowed (HELLO covers the build's start-up).
pub const CONTROL_MIN: Duration = Duration::from_secs(10);

/// Bytes of a build's stderr kept for error messages (the last ones).
pub const STDERR_TAIL: usize = 2048;

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
pub(super) struct Process {
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
    /// Starts the history clock again (a pooled process begins another history).
    pub(super) fn renew(&mut self) {
        self.started = Instant::now();
    }

    pub(super) fn spawn(build: &ExecBuild) -> Result<Process, ReplicaError> {
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
    /// A request other than DELIVER: answered within its op allowances, and never less than
    /// [`CONTROL_MIN`] (a build's start-up, opening or dumping a store is not one op's work).
    pub(super) fn call(&mut self, req: &Request, ops: usize) -> Result<Reply, ReplicaError> {
        self.post(req)?;
        self.answer_within(ops, CONTROL_MIN)
    }

    /// Sends a request without waiting for its answer (the build answers in order, and the
    /// reader thread drains its output, so a few requests may be in flight).
    pub(super) fn post(&mut self, req: &Request) -> Result<(), ReplicaError> {
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
    pub(super) fn answer(&mut self, ops: usize) -> Result<Reply, ReplicaError> {
        self.answer_within(ops, Duration::ZERO)
    }

    fn answer_within(&mut self, ops: usize, floor: Duration) -> Result<Reply, ReplicaError> {
        let per_op = Duration::from_millis(self.limits.op_timeout_ms.saturating_mul(ops.max(1) as u64)).max(floor);
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
            Err(RecvTimeoutError::Timeout) if wait == floor => {
                Err(self.fail(format!("did not answer within {} ms (the least any request but DELIVER is allowed)", wait.as_millis())))
            }
            Err(RecvTimeoutError::Timeout) => Err(self.fail(format!(
                "did not answer within {} ms ({} ms per op × {} ops; LATTICE_EXEC_OP_TIMEOUT_MS or the build file's limits.op_timeout_ms)",
                wait.as_millis(),
                self.limits.op_timeout_ms,
                ops.max(1)
            ))),
        }
    }

    /// The handshake, once per process (a reused process answers from what it said first).
    pub(super) fn hello(&mut self) -> Result<Hello, ReplicaError> {
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

    pub(super) fn unexpected(&mut self, to: &str, got: &Reply) -> ReplicaError {
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
    pub(super) fn fail(&mut self, what: String) -> ReplicaError {
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        ReplicaError(format!("outside build exec:{}: {what}; killed ({status}){}", self.spec, self.stderr_tail()))
    }

    /// The build went away: waits a moment for its status before killing it.
    pub(super) fn dead(&mut self, what: &str) -> ReplicaError {
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

    pub(super) fn stderr_tail(&self) -> String {
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
    pub(super) fn bye(&mut self) {
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
