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
use std::sync::{Arc, Mutex};

use crate::hash::{LtHash, RowTable, StateHash};
use crate::kernel::{RejectKind, Rejection};
use crate::op::{Op, OpId};
use crate::outside::build_file::ExecBuild;
use crate::outside::process::Process;
use crate::outside::wire::{self, Effects, Receipt, Reply, Request, View};
use crate::replay::{Counts, Delivered, Stall};
use crate::replica::{Replica, ReplicaError, ReplicaFactory, FRAME_OPS};
use crate::store::StoreIdentity;

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
                process.renew();
                pool.0.lock().expect("no panic holds the pool").push(process);
            }
            None => self.p().bye(),
        }
        Ok(())
    }
}
