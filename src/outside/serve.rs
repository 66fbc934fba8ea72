//! The reference adapter (`lattice-conform serve-build`): this crate's own in-memory replica —
//! native logic, or native with a seeded fault — served over the build protocol on standard
//! input and output, so the protocol is tested end to end without any outside build.
//!
//! `--misbehave` makes it a bad build on purpose (hang, crash, garbage, a wrong version, a flood
//! of stderr, a nondeterministic outcome), for the tests of the host's bounds and verdicts.

use std::io::{Read, Write};

use crate::op::{op_id, Op};
use crate::outside::wire::{self, Change, Effects, Receipt, Reply, Request, StallMsg, View};
use crate::replay::{Delivered, HostFaults, MemStore};
use crate::store::Logic;
use crate::store::StoreIdentity;

/// A deliberate misbehaviour of the reference adapter (for tests of the host's verdicts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Stops answering (sleeps) when asked to deliver op N (0-based, counted per store).
    HangAt(u64),
    /// Exits with status 3 when asked to deliver op N.
    CrashAt(u64),
    /// Answers HELLO with bytes that are not a frame.
    Garbage,
    /// Answers HELLO with this protocol version.
    Version(u32),
    /// Writes this many bytes to stderr before answering HELLO, then works normally.
    StderrFlood(u64),
    /// Delivers a batch's ops each on its own (witnessing after each), reporting one effects
    /// record: a build without Lattice's batch ingest.
    BatchAsEach,
    /// Leaves the last data row of every delivery out of what it reports (it stores it all): a
    /// build whose reports do not match its rows.
    Lie,
    /// Forgets everything on RESTART (reopens as an empty store): a build whose persistence is
    /// broken.
    Amnesia,
    /// Reads and bumps the counter in FILE: a run that found an odd number witnesses in one pass
    /// only (`no-cascade`), so runs alternate between two outcomes (a nondeterministic build).
    Alternate(std::path::PathBuf),
}

impl std::str::FromStr for Misbehave {
    type Err = String;

    fn from_str(s: &str) -> Result<Misbehave, String> {
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("--misbehave {s}: `{v}` is not a number"));
        match s.split_once(':') {
            Some(("hang-at", n)) => Ok(Misbehave::HangAt(num(n)?)),
            Some(("crash-at", n)) => Ok(Misbehave::CrashAt(num(n)?)),
            Some(("version", n)) => Ok(Misbehave::Version(num(n)? as u32)),
            Some(("stderr-flood", n)) => Ok(Misbehave::StderrFlood(num(n)?)),
            Some(("alternate", path)) => Ok(Misbehave::Alternate(path.into())),
            None if s == "garbage" => Ok(Misbehave::Garbage),
            None if s == "batch-as-each" => Ok(Misbehave::BatchAsEach),
            None if s == "amnesia" => Ok(Misbehave::Amnesia),
            None if s == "lie" => Ok(Misbehave::Lie),
            _ => Err(format!("--misbehave {s}: expected hang-at:N, crash-at:N, garbage, version:V, stderr-flood:BYTES or alternate:FILE")),
        }
    }
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serve-build: {0}")]
    Wire(#[from] wire::WireError),
    #[error("serve-build: {0}")]
    Io(#[from] std::io::Error),
}

/// What the adapter serves: its name for reports, the store types it declares, and the logic and
/// host faults of each (the binary resolves them from a `--build`).
pub struct Served<'a> {
    pub build: String,
    pub types: Vec<(String, u64)>,
    pub resolve: &'a Resolve<'a>,
}

/// A store type's logic and host faults, or why the type is not served.
pub type Resolve<'r> = dyn Fn(&str) -> Result<(Logic, HostFaults), String> + 'r;

struct Session<'a> {
    served: &'a Served<'a>,
    misbehave: Option<Misbehave>,
    /// This run is an odd one of `Alternate`.
    lossy: bool,
    store: Option<(StoreIdentity, MemStore)>,
    delivered: u64,
}

/// Serves over `input`/`output` until BYE or the end of input.
pub fn serve(served: &Served, misbehave: Option<Misbehave>, input: impl Read, output: impl Write) -> Result<(), ServeError> {
    let mut input = std::io::BufReader::with_capacity(1 << 16, input);
    let mut output = std::io::BufWriter::with_capacity(1 << 16, output);
    let lossy = match &misbehave {
        Some(Misbehave::Alternate(path)) => bump_counter(path)? % 2 == 1,
        _ => false,
    };
    let mut s = Session { served, misbehave, lossy, store: None, delivered: 0 };
    loop {
        let (ty, body) = match wire::read_frame(&mut input) {
            Ok(f) => f,
            Err(wire::WireError::Eof) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let reply = match Request::decode(ty, &body) {
            Ok(Request::Bye) => return Ok(()),
            Ok(req) => s.handle(req, &mut output)?,
            Err(e) => Reply::Error { message: format!("cannot decode the request: {e}") },
        };
        let (ty, body) = reply.encode();
        wire::write_frame(&mut output, ty, &body)?;
        output.flush()?;
    }
}

fn bump_counter(path: &std::path::Path) -> std::io::Result<u64> {
    let n = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
    std::fs::write(path, format!("{}\n", n + 1))?;
    Ok(n)
}

impl Session<'_> {
    fn handle(&mut self, req: Request, out: &mut impl Write) -> Result<Reply, ServeError> {
        Ok(match req {
            Request::Hello { version } => return self.hello(version, out),
            Request::Open { store_id, store_type, schema_version } => {
                let identity = StoreIdentity { store_id: uuid::Uuid::from_bytes(store_id), store_type, schema_version };
                match self.open(&identity) {
                    Ok(store) => {
                        self.store = Some((identity, store));
                        self.delivered = 0;
                        Reply::Opened
                    }
                    Err(message) => Reply::Error { message },
                }
            }
            Request::Deliver { mode, ops } => {
                let mut reply = self.deliver(mode, ops);
                if let (Some(Misbehave::Lie), Reply::Delivered { effects, .. }) = (&self.misbehave, &mut reply) {
                    effects.iter_mut().for_each(leave_out_last_row);
                }
                reply
            }
            Request::Restart => match self.store.as_ref().map(|(identity, _)| identity.clone()) {
                Some(identity) => {
                    if self.misbehave == Some(Misbehave::Amnesia) {
                        match self.open(&identity) {
                            Ok(fresh) => self.store = Some((identity, fresh)),
                            Err(message) => return Ok(Reply::Error { message }),
                        }
                    }
                    Reply::Restarted
                }
                None => Reply::Error { message: "RESTART before OPEN".into() },
            },
            Request::Dump => match &mut self.store {
                Some((_, store)) => dump(store),
                None => Reply::Error { message: "DUMP before OPEN".into() },
            },
            Request::Close => {
                self.store = None;
                Reply::Closed
            }
            Request::Bye => unreachable!("BYE ends the loop before it is handled"),
        })
    }

    fn hello(&mut self, version: u32, out: &mut impl Write) -> Result<Reply, ServeError> {
        match self.misbehave {
            Some(Misbehave::Garbage) => {
                out.write_all(b"Hello! This is not a frame.\n")?;
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
            Some(Misbehave::StderrFlood(n)) => {
                let line = [b'x'; 1023];
                let mut err = std::io::stderr().lock();
                for _ in 0..n / 1024 {
                    err.write_all(&line)?;
                    err.write_all(b"\n")?;
                }
            }
            _ => {}
        }
        if version != wire::VERSION {
            return Ok(Reply::Error {
                message: format!("protocol version {version} is not supported (this build speaks {})", wire::VERSION),
            });
        }
        let version = match self.misbehave {
            Some(Misbehave::Version(v)) => v,
            _ => wire::VERSION,
        };
        Ok(Reply::HelloOk {
            version,
            name: "lattice-conform serve-build".into(),
            build_version: format!("{} {}", env!("CARGO_PKG_VERSION"), self.served.build),
            types: self.served.types.clone(),
        })
    }

    fn open(&self, identity: &StoreIdentity) -> Result<MemStore, String> {
        let (logic, mut faults) = (self.served.resolve)(&identity.store_type)?;
        if self.lossy {
            faults.delivery = Some(crate::delivery::DeliveryFault::NoCascade);
        }
        if faults.hash.is_some() {
            return Err(format!(
                "{}: a fault of the state-hash encoding cannot be served: over the protocol the host computes the hash",
                self.served.build
            ));
        }
        if faults.delivery == Some(crate::delivery::DeliveryFault::ArrivalCountsReceived) {
            return Err(format!(
                "{}: a fault of arrival numbering cannot be served: over the protocol the host numbers the deliveries",
                self.served.build
            ));
        }
        if logic.schema_version() != identity.schema_version {
            return Err(format!(
                "`{}` schema {} is not served (this build has schema {})",
                identity.store_type,
                identity.schema_version,
                logic.schema_version()
            ));
        }
        Ok(MemStore::new(identity.clone(), logic).with_faults(faults).with_journal())
    }

    fn deliver(&mut self, mode: u8, ops: Vec<([u8; 32], Vec<u8>)>) -> Reply {
        let Some((identity, store)) = &mut self.store else { return Reply::Error { message: "DELIVER before OPEN".into() } };
        for i in 0..ops.len() as u64 {
            match self.misbehave {
                Some(Misbehave::HangAt(n)) if n == self.delivered + i => std::thread::sleep(std::time::Duration::from_secs(3600)),
                Some(Misbehave::CrashAt(n)) if n == self.delivered + i => {
                    eprintln!("serve-build: crashing on purpose at op {n}");
                    std::process::exit(3)
                }
                _ => {}
            }
        }
        self.delivered += ops.len() as u64;
        let mut decoded = Vec::with_capacity(ops.len());
        for (i, (id, enc)) in ops.iter().enumerate() {
            match Op::decode(enc) {
                Ok(op) if op_id(&identity.store_id, &op) == *id => decoded.push(Ok(op)),
                Ok(_) => return Reply::Error { message: format!("op {i} of the frame: the op id does not match its encoding") },
                Err(e) => decoded.push(Err(e.to_string())),
            }
        }
        match mode {
            wire::MODE_EACH => {
                let mut receipts = Vec::with_capacity(ops.len());
                let mut effects = Vec::with_capacity(ops.len());
                for op in decoded {
                    let d = match op {
                        Ok(op) => store.deliver(&op),
                        Err(reason) => store.refuse_undecodable(reason),
                    };
                    receipts.push(receipt(&d));
                    effects.push(effects_of(store, &d));
                }
                Reply::Delivered { receipts, effects }
            }
            wire::MODE_BATCH => {
                let Some(ops) = decoded.into_iter().collect::<Result<Vec<Op>, String>>().ok() else {
                    return Reply::Error { message: "a batch holds an op that does not decode".into() };
                };
                let (each, effect) = if self.misbehave == Some(Misbehave::BatchAsEach) {
                    let each: Vec<Delivered> = ops.iter().map(|op| store.deliver(op)).collect();
                    let stalled = each.iter().any(|d| matches!(d, Delivered::Received { stalled: true, .. }));
                    (
                        each.iter()
                            .map(|d| {
                                if matches!(d, Delivered::Received { .. }) {
                                    Delivered::Received { witnessed: 0, applied: 0, stalled: false }
                                } else {
                                    d.clone()
                                }
                            })
                            .collect(),
                        Delivered::Received { witnessed: 0, applied: 0, stalled },
                    )
                } else {
                    store.deliver_batch(&ops)
                };
                let receipts = each.iter().map(receipt).collect();
                Reply::Delivered { receipts, effects: vec![effects_of(store, &effect)] }
            }
            m => Reply::Error { message: format!("DELIVER mode {m} (expected 0 or 1)") },
        }
    }
}

fn receipt(d: &Delivered) -> Receipt {
    match d {
        Delivered::Refused(r) => Receipt::Refused { kind: r.kind.as_str().into(), reason: r.reason.clone() },
        Delivered::Redelivered => Receipt::Redelivered,
        Delivered::Skipped => Receipt::Skipped,
        Delivered::Received { .. } => Receipt::Received,
    }
}

/// The effects of one ingest, from the store's journal: witnessed and applied ops, the stall it
/// caused, every row written (final values), the views of the data keys written.
fn effects_of(store: &mut MemStore, d: &Delivered) -> Effects {
    let j = store.take_journal();
    let stall = match d {
        Delivered::Received { stalled: true, .. } => {
            store.stall().map(|s| StallMsg { op_id: s.op_id, kind: s.kind.as_str().into(), reason: s.reason.clone() })
        }
        _ => None,
    };
    let mut changes: Vec<Change> =
        j.keys.iter().map(|k| Change { table: wire::TABLE_DATA, key: k.clone(), value: store.rows().get(k).cloned() }).collect();
    changes.extend(j.authors.iter().map(|a| Change { table: wire::TABLE_TIP, key: a.to_vec(), value: store.tip(a).map(|t| t.to_vec()) }));
    let views = views_of(store, j.keys.iter());
    Effects { witnessed: j.witnessed, applied: j.applied, stall, changes, views }
}

/// `Misbehave::Lie`: the last data row written is stored but not reported.
fn leave_out_last_row(e: &mut Effects) {
    if let Some(i) = e.changes.iter().rposition(|c| c.table == wire::TABLE_DATA) {
        let key = e.changes.remove(i).key;
        e.views.retain(|(k, _)| *k != key);
    }
}

fn dump(store: &mut MemStore) -> Reply {
    let mut rows: Vec<(u8, Vec<u8>, Vec<u8>)> = store.rows().iter().map(|(k, v)| (wire::TABLE_DATA, k.clone(), v.clone())).collect();
    rows.extend(store.tips().iter().map(|(a, t)| (wire::TABLE_TIP, a.to_vec(), t.to_vec())));
    let keys: Vec<Vec<u8>> = store.rows().keys().cloned().collect();
    let views = views_of(store, keys.iter()).into_iter().filter(|(_, v)| *v != View::Absent).collect();
    Reply::Dumped { rows, views, floating: store.floating_ids() }
}

/// The views of `keys` now, as the protocol reports them (§6): a view, none, or unviewable with
/// the logic's reason.
fn views_of<'k>(store: &mut MemStore, keys: impl Iterator<Item = &'k Vec<u8>>) -> Vec<(Vec<u8>, View)> {
    store.views();
    keys.map(|k| {
        let view = match store.views().get(k).cloned() {
            Some(v) => View::Value(v),
            None if store.is_unviewable(k) => View::Unviewable(store.view_failure().unwrap_or("unviewable").to_string()),
            None => View::Absent,
        };
        (k.clone(), view)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lattice_logic::kvstore::{encode_payload, Entry, KvStore};

    use super::*;
    use crate::op::{Hlc, ZERO_HASH};

    /// The frames of one session, both ways, as lines of hex: what docs/BUILD_PROTOCOL.md §10
    /// shows byte for byte.
    fn transcript() -> String {
        let store_id = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let op = Op {
            author: [1; 32],
            hlc: Hlc { wall_ms: 5, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload: encode_payload(&[Entry::Put { key: b"k".to_vec(), value: b"v".to_vec() }]),
        };
        let enc = op.encode();
        let id = crate::op::op_id_of_encoding(&uuid::Uuid::from_bytes(store_id), &enc);
        let requests = [
            Request::Hello { version: 1 },
            Request::Open { store_id, store_type: "core:kvstore".into(), schema_version: 1 },
            Request::Deliver { mode: wire::MODE_EACH, ops: vec![(id, enc)] },
            Request::Dump,
            Request::Close,
            Request::Bye,
        ];
        let mut input = Vec::new();
        let mut lines = Vec::new();
        for r in &requests {
            let (ty, body) = r.encode();
            let mut frame = Vec::new();
            wire::write_frame(&mut frame, ty, &body).unwrap();
            lines.push(format!("host  → {}", hex::encode(&frame)));
            input.extend(frame);
        }
        let resolve = |t: &str| match t {
            "core:kvstore" => Ok((Arc::new(KvStore) as Logic, HostFaults::default())),
            other => Err(format!("{other} is not served")),
        };
        let served = Served { build: "native".into(), types: vec![("core:kvstore".into(), 1)], resolve: &resolve };
        let mut output = Vec::new();
        serve(&served, None, input.as_slice(), &mut output).unwrap();
        let mut out = output.as_slice();
        let mut replies = Vec::new();
        while let Ok((ty, body)) = wire::read_frame(&mut out) {
            let mut frame = Vec::new();
            wire::write_frame(&mut frame, ty, &body).unwrap();
            replies.push(format!("build → {}", hex::encode(&frame)));
        }
        // Interleave: each request but BYE is answered by one reply.
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            text.push_str(l);
            text.push('\n');
            if let Some(r) = replies.get(i) {
                text.push_str(r);
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn the_worked_example_in_build_protocol_md_is_what_the_code_sends_and_answers() {
        let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BUILD_PROTOCOL.md");
        let doc = std::fs::read_to_string(&doc_path).unwrap();
        let (start, end) = ("<!-- transcript: begin -->\n```\n", "```\n<!-- transcript: end -->");
        let t = transcript();
        if std::env::var_os("UPDATE_PROTOCOL_TRANSCRIPT").is_some() {
            let a = doc.find(start).unwrap() + start.len();
            let b = doc.find(end).unwrap();
            std::fs::write(&doc_path, format!("{}{}{}", &doc[..a], t, &doc[b..])).unwrap();
            return;
        }
        assert!(
            doc.contains(&format!("{start}{t}{end}")),
            "docs/BUILD_PROTOCOL.md §10 differs from:\n{t}\n(UPDATE_PROTOCOL_TRANSCRIPT=1 rewrites it)"
        );
    }
}
