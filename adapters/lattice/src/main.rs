//! lattice-build-adapter: an outside build (lattice-conform BUILD_PROTOCOL.md, version 1) that
//! runs real Lattice's kernel (`lattice-kernel`'s `ReplicationController` + `IntentionStore`,
//! state machines `SystemLayer<KvState>` / `SystemLayer<LogState>`) on files in a temp dir.
//!
//! Translation between lattice-conform ops and Lattice intentions:
//! * every author (32 bytes) gets its own ed25519 key, ground so that the Lattice public keys
//!   sort like the authors they stand for (so `(hlc, author)` ties break the same way);
//! * `prev` and `causal_deps` (our op ids) become intention hashes. An op naming an id the
//!   adapter has not received yet cannot be built (its intention hash is unknown), so it is
//!   kept in the adapter's own *pending* set until every id it names is known; an op naming an
//!   unknown id could not be witnessed by Lattice either, so this changes no outcome;
//! * the payload is wrapped in `UniversalOp { app_data }`, as Lattice's own writer does.
//! Rows, tips and views are translated back (intention hashes → op ids, keys → authors).

use lattice_build_protocol as wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use lattice_kernel::weaver::IntentionStore;
use lattice_kernel::{ReplicationController, ReplicationControllerCmd};
use lattice_model::hlc::HLC;
use lattice_model::types::{Hash, PubKey};
use lattice_model::weaver::{Condition, Intention, SignedIntention};
use lattice_model::{NodeIdentity, Openable, StateMachine, StorageConfig, StoreIdentity, Uuid};
use lattice_storage::{TABLE_DATA, TABLE_META};
use prost::Message;
use redb::ReadableTable;
use wire::{Change, Effects, Receipt, Reply, Request, StallMsg, View};

type Id = [u8; 32];
const ZERO: Id = [0u8; 32];
/// lattice-storage/src/state_db.rs (not re-exported by the crate).
const KEY_LAST_APPLIED_WITNESS: &[u8] = b"last_applied_witness";
const PREFIX_TIP: &[u8] = b"tip/";

// ------------------------------------------------------------------ ops (FORMAT.md §2, §3)

#[derive(Clone, Debug)]
struct Op {
    author: Id,
    wall_ms: u64,
    counter: u32,
    prev: Id,
    deps: Vec<Id>,
    payload: Vec<u8>,
}

fn decode_op(b: &[u8]) -> Result<Op, String> {
    let mut p = 0usize;
    let take = |p: &mut usize, n: usize, what: &str| -> Result<std::ops::Range<usize>, String> {
        if b.len() - *p < n {
            return Err(format!("truncated ({what})"));
        }
        let r = *p..*p + n;
        *p += n;
        Ok(r)
    };
    if b.is_empty() {
        return Err("truncated (version)".into());
    }
    if b[0] != 1 {
        return Err("unknown version".into());
    }
    p += 1;
    let author: Id = b[take(&mut p, 32, "author")?].try_into().unwrap();
    let wall_ms = u64::from_le_bytes(b[take(&mut p, 8, "wall_ms")?].try_into().unwrap());
    let counter = u32::from_le_bytes(b[take(&mut p, 4, "counter")?].try_into().unwrap());
    let prev: Id = b[take(&mut p, 32, "prev")?].try_into().unwrap();
    let n = u32::from_le_bytes(b[take(&mut p, 4, "dep count")?].try_into().unwrap()) as usize;
    if n > 1024 {
        return Err(format!("too many deps ({n} > 1024)"));
    }
    let mut deps = Vec::with_capacity(n);
    for _ in 0..n {
        deps.push(b[take(&mut p, 32, "causal dep")?].try_into().unwrap());
    }
    let plen = u32::from_le_bytes(b[take(&mut p, 4, "payload length")?].try_into().unwrap()) as usize;
    if plen > 1_048_572 {
        return Err(format!("payload too large ({plen} > 1048572)"));
    }
    let payload = b[take(&mut p, plen, "payload")?].to_vec();
    if p != b.len() {
        return Err("trailing bytes".into());
    }
    if deps.windows(2).any(|w: &[Id]| w[0] >= w[1]) {
        return Err("deps not ascending".into());
    }
    Ok(Op { author, wall_ms, counter, prev, deps, payload })
}

fn op_id(store_id: &[u8; 16], enc: &[u8]) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform/op-id/v1\0");
    h.update(store_id);
    h.update(enc);
    *h.finalize().as_bytes()
}

// ------------------------------------------------------------------ stall reasons (tracing)

/// The `error` of the last "Projection stalled" warning Lattice logged
/// (lattice-kernel/src/store/actor.rs, `project_new_entries`): Lattice returns no error for a
/// stall, it only logs it.
static STALL_ERROR: Mutex<Option<String>> = Mutex::new(None);

struct Capture;

#[derive(Default)]
struct Fields {
    message: String,
    error: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "error" => self.error = value.to_string(),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields::default();
        e.record(&mut f);
        if f.message.contains("Projection stalled") {
            *STALL_ERROR.lock().unwrap() = Some(f.error.clone());
        } else {
            eprintln!("lattice {}: {} {}", e.metadata().level(), f.message, f.error);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// FORMAT.md §4.4 reject kind of a Lattice projection error (its Display text).
fn reject_kind(err: &str) -> &'static str {
    if err.contains("Broken chain") {
        "broken_chain"
    } else if err.contains("Invalid genesis") {
        "bad_genesis"
    } else if err.contains("Duplicate timestamp") {
        "refused"
    } else if err.contains("Decode error") || err.contains("invalid UniversalOp") {
        "malformed_payload"
    } else if err.contains("DAG lookup") || err.contains("Conversion") {
        "corrupt_state"
    } else {
        "host_failure"
    }
}

// ------------------------------------------------------------------ author keys

/// Lattice signing keys for our authors; public keys sort like the authors.
#[derive(Default)]
struct Keys {
    by_author: BTreeMap<Id, (SigningKey, Id)>,
    author_of: HashMap<Id, Id>,
    /// (author, seed) in the order they were made, for the sidecar.
    made: Vec<(Id, [u8; 32])>,
}

impl Keys {
    fn insert(&mut self, author: Id, seed: [u8; 32]) {
        let sk = SigningKey::from_bytes(&seed);
        let pk = sk.verifying_key().to_bytes();
        self.by_author.insert(author, (sk, pk));
        self.author_of.insert(pk, author);
        self.made.push((author, seed));
    }

    fn get(&mut self, author: &Id) -> Result<&SigningKey, String> {
        if !self.by_author.contains_key(author) {
            let lo = self.by_author.range(..*author).next_back().map(|(_, (_, pk))| *pk);
            let hi = self.by_author.range(*author..).next().map(|(_, (_, pk))| *pk);
            let fits = |pk: &Id| lo.map_or(true, |l| l < *pk) && hi.map_or(true, |h| *pk < h);
            let mut found = None;
            for i in 0u64..4_000_000 {
                let mut h = blake3::Hasher::new();
                h.update(b"lattice-build-adapter/author-key/v1\0");
                h.update(author);
                h.update(&i.to_le_bytes());
                let seed = *h.finalize().as_bytes();
                let pk = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                // Prefer a key whose first byte is the author's (leaves room for later authors).
                if fits(&pk) && (i >= 20_000 || pk[0] == author[0]) {
                    found = Some(seed);
                    break;
                }
            }
            let seed = found.ok_or_else(|| format!("no order-preserving key found for author {}", hex(author)))?;
            self.insert(*author, seed);
        }
        Ok(&self.by_author[author].0)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------ the Lattice replica

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kv,
    Log,
}

/// A running Lattice store: the kernel's actor over an IntentionStore and a SystemLayer state.
struct Lattice {
    tx: tokio::sync::mpsc::Sender<ReplicationControllerCmd>,
    istore: Arc<tokio::sync::RwLock<IntentionStore>>,
    db: Arc<redb::Database>,
    join: tokio::task::JoinHandle<()>,
}

fn node_identity() -> NodeIdentity {
    let seed = *blake3::hash(b"lattice-build-adapter/node-identity/v1").as_bytes();
    NodeIdentity::from_signing_key(SigningKey::from_bytes(&seed))
}

fn spawn_lattice<S>(rt: &tokio::runtime::Runtime, store_id: Uuid, dir: &PathBuf) -> Result<Lattice, String>
where
    S: StateMachine + StoreIdentity + Openable + Send + Sync + 'static,
    S: HasDb,
{
    let config = StorageConfig::File(dir.clone());
    let state = Arc::new(S::open(store_id, &config).map_err(|e| format!("open state: {e}"))?);
    let db = state.db_shared();
    let istore = IntentionStore::open(store_id, &config).map_err(|e| format!("open intention store: {e}"))?;
    let istore = Arc::new(tokio::sync::RwLock::new(istore));
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    let (intention_tx, _) = tokio::sync::broadcast::channel(64);
    let ctrl = ReplicationController::new(store_id, state, istore.clone(), node_identity(), rx, intention_tx)
        .map_err(|e| format!("controller: {e}"))?;
    let token = tokio_util::sync::CancellationToken::new();
    let join = rt.spawn(async move { ctrl.run(token).await });
    Ok(Lattice { tx, istore, db, join })
}

trait HasDb {
    fn db_shared(&self) -> Arc<redb::Database>;
}
impl<L: lattice_storage::StateLogic> HasDb for lattice_systemstore::SystemLayer<L> {
    fn db_shared(&self) -> Arc<redb::Database> {
        self.backend().db_shared()
    }
}

type KvLayer = lattice_systemstore::SystemLayer<lattice_kvstore::KvState>;
type LogLayer = lattice_systemstore::SystemLayer<lattice_logstore::LogState>;

/// Lattice's stored kv row value (lattice-kvtable `Value`), decoded to translate its heads.
#[derive(Clone, PartialEq, prost::Message)]
struct KvValue {
    #[prost(oneof = "KvKind", tags = "1, 2")]
    kind: Option<KvKind>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    heads: Vec<Vec<u8>>,
}
#[derive(Clone, PartialEq, prost::Oneof)]
enum KvKind {
    #[prost(bytes, tag = "1")]
    Value(Vec<u8>),
    #[prost(bool, tag = "2")]
    Tombstone(bool),
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Replica {
    kind: Kind,
    store_id: Uuid,
    dir: tempfile::TempDir,
    lat: Option<Lattice>,
    keys: Keys,
    /// op id → intention hash, and back, for every op handed to Lattice.
    hash_of: HashMap<Id, Hash>,
    id_of: HashMap<Hash, Id>,
    /// Ops received but not handed to Lattice yet (they name an id not known yet), in arrival order.
    pending: Vec<(Id, Vec<u8>, Op)>,
    pending_ids: HashSet<Id>,
    stall_reported: bool,
    /// Our translated rows (table, key) → value, as last reported.
    mirror: BTreeMap<(u8, Vec<u8>), Vec<u8>>,
}

impl Replica {
    fn open(rt: &tokio::runtime::Runtime, kind: Kind, store_id: Uuid) -> Result<Replica, String> {
        let dir = tempfile::Builder::new().prefix("lattice-adapter-").tempdir().map_err(|e| e.to_string())?;
        let mut r = Replica {
            kind,
            store_id,
            dir,
            lat: None,
            keys: Keys::default(),
            hash_of: HashMap::new(),
            id_of: HashMap::new(),
            pending: Vec::new(),
            pending_ids: HashSet::new(),
            stall_reported: false,
            mirror: BTreeMap::new(),
        };
        r.start(rt)?;
        Ok(r)
    }

    fn start(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        let dir = self.dir.path().join("store");
        let _g = rt.enter();
        self.lat = Some(match self.kind {
            Kind::Kv => spawn_lattice::<KvLayer>(rt, self.store_id, &dir)?,
            Kind::Log => spawn_lattice::<LogLayer>(rt, self.store_id, &dir)?,
        });
        // Startup projection runs in the actor before it reads a command; wait for it.
        self.sync(rt)?;
        Ok(())
    }

    /// Round-trips a command so that everything the actor started is finished.
    fn sync(&self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        let lat = self.lat.as_ref().unwrap();
        rt.block_on(async {
            let (resp, rx) = tokio::sync::oneshot::channel();
            lat.tx.send(ReplicationControllerCmd::WitnessCount { resp }).await.map_err(|_| "actor gone".to_string())?;
            rx.await.map_err(|_| "actor gone".to_string())?;
            Ok::<(), String>(())
        })
    }

    fn stop(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(lat) = self.lat.take() {
            rt.block_on(async {
                let _ = lat.tx.send(ReplicationControllerCmd::Shutdown).await;
                let _ = lat.join.await;
            });
            drop(lat.db);
            drop(lat.istore);
        }
    }

    fn received(&self, id: &Id) -> bool {
        self.hash_of.contains_key(id) || self.pending_ids.contains(id)
    }

    fn add_pending(&mut self, id: Id, enc: Vec<u8>, op: Op) {
        self.pending_ids.insert(id);
        self.pending.push((id, enc, op));
    }

    /// Builds the intentions of every pending op whose ids are all known now (to a fixpoint).
    fn resolvable(&mut self) -> Result<Vec<SignedIntention>, String> {
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < self.pending.len() {
                let op = &self.pending[i].2;
                let ok = (op.prev == ZERO || self.hash_of.contains_key(&op.prev))
                    && op.deps.iter().all(|d| self.hash_of.contains_key(d));
                if !ok {
                    i += 1;
                    continue;
                }
                let (id, _enc, op) = self.pending.remove(i);
                self.pending_ids.remove(&id);
                let prev = if op.prev == ZERO { Hash::ZERO } else { self.hash_of[&op.prev] };
                let deps: Vec<Hash> = op.deps.iter().map(|d| self.hash_of[d]).collect();
                let sk = self.keys.get(&op.author)?.clone();
                let pk = sk.verifying_key().to_bytes();
                let universal = lattice_proto::storage::UniversalOp {
                    op: Some(lattice_proto::storage::universal_op::Op::AppData(op.payload.clone())),
                };
                let intention = Intention {
                    author: PubKey(pk),
                    timestamp: HLC { wall_time: op.wall_ms, counter: op.counter },
                    store_id: self.store_id,
                    store_prev: prev,
                    condition: Condition::v1(deps),
                    ops: universal.encode_to_vec(),
                };
                let signed = SignedIntention::sign(intention, &sk);
                let h = signed.intention.hash();
                self.hash_of.insert(id, h);
                self.id_of.insert(h, id);
                out.push(signed);
                progressed = true;
            }
            if !progressed {
                return Ok(out);
            }
        }
    }

    /// Hands every resolvable pending op to Lattice as one ingest (`Store::ingest_batch`'s
    /// command), and reports what it did.
    fn ingest(&mut self, rt: &tokio::runtime::Runtime) -> Result<Effects, String> {
        let batch = self.resolvable()?;
        if batch.is_empty() {
            return Ok(Effects::default());
        }
        let (old_head, old_applied) = self.seqs(rt)?;
        *STALL_ERROR.lock().unwrap() = None;
        let lat = self.lat.as_ref().unwrap();
        let res = rt.block_on(async {
            let (resp, rx) = tokio::sync::oneshot::channel();
            lat.tx
                .send(ReplicationControllerCmd::IngestBatch { intentions: batch, resp })
                .await
                .map_err(|_| "actor gone".to_string())?;
            rx.await.map_err(|_| "actor gone".to_string())
        })?;
        res.map_err(|e| format!("Lattice refused the ingest: {e}"))?;
        let (new_head, new_applied) = self.seqs(rt)?;
        let witnessed = self.log_ids(rt, old_head + 1, new_head)?;
        let applied = if new_applied > old_applied { self.log_ids(rt, old_applied + 1, new_applied)? } else { vec![] };
        let mut stall = None;
        if new_applied < new_head && !self.stall_reported {
            let at = self.log_ids(rt, new_applied + 1, new_applied + 1)?;
            let err = STALL_ERROR.lock().unwrap().clone().unwrap_or_else(|| "projection stopped (no reason logged)".into());
            stall = Some(StallMsg { op_id: at[0], kind: reject_kind(&err).into(), reason: err });
            self.stall_reported = true;
        }
        let (changes, views) = if applied.is_empty() { (vec![], vec![]) } else { self.refresh()? };
        Ok(Effects { witnessed, applied, stall, changes, views })
    }

    /// (witness log head seq, projection cursor seq).
    fn seqs(&self, rt: &tokio::runtime::Runtime) -> Result<(u64, u64), String> {
        let lat = self.lat.as_ref().unwrap();
        let cursor = {
            let txn = lat.db.begin_read().map_err(|e| e.to_string())?;
            let t = txn.open_table(TABLE_META).map_err(|e| e.to_string())?;
            let v = t.get(KEY_LAST_APPLIED_WITNESS).map_err(|e| e.to_string())?;
            v.map(|v| Hash::try_from(v.value()).unwrap_or(Hash::ZERO)).unwrap_or(Hash::ZERO)
        };
        rt.block_on(async {
            let s = lat.istore.read().await;
            let head = s.witness_head().0;
            let applied = if cursor == Hash::ZERO {
                0
            } else {
                s.get_content_seq_for(&cursor).map_err(|e| e.to_string())?.ok_or("cursor not in witness log")?
            };
            Ok((head, applied))
        })
    }

    /// Our op ids of witness log entries `from..=to`.
    fn log_ids(&self, rt: &tokio::runtime::Runtime, from: u64, to: u64) -> Result<Vec<Id>, String> {
        if to < from {
            return Ok(vec![]);
        }
        let lat = self.lat.as_ref().unwrap();
        let entries = rt.block_on(async {
            let s = lat.istore.read().await;
            s.scan_witness_log(from, (to - from + 1) as usize).map_err(|e| e.to_string())
        })?;
        entries
            .iter()
            .map(|e| {
                let c = lattice_proto::weaver::WitnessContent::decode(e.content.as_slice()).map_err(|e| e.to_string())?;
                let h = Hash::try_from(c.intention_hash.as_slice()).map_err(|_| "bad intention hash in witness")?;
                self.id_of.get(&h).copied().ok_or_else(|| format!("witness log names intention {h} that no op of ours made (an auto-ack?)"))
            })
            .collect()
    }

    /// Reads every data row and tip from Lattice's state.db, in our terms.
    fn read_rows(&self) -> Result<BTreeMap<(u8, Vec<u8>), Vec<u8>>, String> {
        let lat = self.lat.as_ref().unwrap();
        let txn = lat.db.begin_read().map_err(|e| e.to_string())?;
        let mut rows = BTreeMap::new();
        if let Ok(t) = txn.open_table(TABLE_DATA) {
            for e in t.iter().map_err(|e| e.to_string())? {
                let (k, v) = e.map_err(|e| e.to_string())?;
                let (k, v) = self.translate_row(k.value(), v.value())?;
                rows.insert((wire::TABLE_DATA, k), v);
            }
        }
        let t = txn.open_table(TABLE_META).map_err(|e| e.to_string())?;
        for e in t.iter().map_err(|e| e.to_string())? {
            let (k, v) = e.map_err(|e| e.to_string())?;
            let k = k.value();
            if let Some(pk) = k.strip_prefix(PREFIX_TIP) {
                let pk: Id = pk.try_into().map_err(|_| "bad tip key")?;
                let author = *self.keys.author_of.get(&pk).ok_or("tip of an unknown author key")?;
                let h = Hash::try_from(v.value()).map_err(|_| "bad tip value")?;
                let id = *self.id_of.get(&h).ok_or_else(|| format!("tip {h} is no op of ours"))?;
                rows.insert((wire::TABLE_TIP, author.to_vec()), id.to_vec());
            }
        }
        Ok(rows)
    }

    fn translate_row(&self, k: &[u8], v: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        match self.kind {
            Kind::Kv => {
                let val = KvValue::decode(v).map_err(|e| format!("kv row does not decode: {e}"))?;
                let mut out = Vec::with_capacity(v.len());
                match &val.kind {
                    Some(KvKind::Value(b)) => {
                        out.push(0x0a);
                        varint(&mut out, b.len() as u64);
                        out.extend_from_slice(b);
                    }
                    Some(KvKind::Tombstone(t)) => {
                        out.push(0x10);
                        out.push(*t as u8);
                    }
                    None => {}
                }
                for h in &val.heads {
                    let h = Hash::try_from(h.as_slice()).map_err(|_| "head is not 32 bytes")?;
                    let id = self.id_of.get(&h).ok_or_else(|| format!("head {h} is no op of ours"))?;
                    out.extend_from_slice(&[0x1a, 0x20]);
                    out.extend_from_slice(id);
                }
                Ok((k.to_vec(), out))
            }
            Kind::Log => {
                if k.len() != 40 {
                    return Ok((k.to_vec(), v.to_vec()));
                }
                let pk: Id = k[8..].try_into().unwrap();
                let author = self.keys.author_of.get(&pk).ok_or("log row of an unknown author key")?;
                let mut key = k[..8].to_vec();
                key.extend_from_slice(author);
                Ok((key, v.to_vec()))
            }
        }
    }

    fn view(&self, v: &[u8]) -> View {
        match self.kind {
            Kind::Kv => {
                let Ok(val) = KvValue::decode(v) else { return View::Unviewable("row does not decode".into()) };
                let mut heads: Vec<&Vec<u8>> = val.heads.iter().collect();
                if heads.iter().any(|h| h.len() != 32) {
                    return View::Unviewable("a head is not 32 bytes".into());
                }
                heads.sort();
                let mut out = Vec::new();
                match &val.kind {
                    Some(KvKind::Value(b)) => {
                        out.push(1);
                        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                        out.extend_from_slice(b);
                    }
                    Some(KvKind::Tombstone(_)) => out.push(2),
                    None => out.push(0),
                }
                out.push((heads.len() > 1) as u8);
                out.extend_from_slice(&(heads.len() as u32).to_le_bytes());
                for h in heads {
                    out.extend_from_slice(h);
                }
                View::Value(out)
            }
            Kind::Log => {
                if v.len() < 8 {
                    return View::Unviewable("shorter than 8 bytes".into());
                }
                let n = u64::from_le_bytes(v[..8].try_into().unwrap());
                if (v.len() as u64 - 8) < n {
                    return View::Unviewable("shorter than its length".into());
                }
                View::Value(v[8..8 + n as usize].to_vec())
            }
        }
    }

    /// Re-reads the rows, diffs them against the mirror, and returns the changes and the views
    /// of the data keys that changed.
    fn refresh(&mut self) -> Result<(Vec<Change>, Vec<(Vec<u8>, View)>), String> {
        let rows = self.read_rows()?;
        let mut changes = Vec::new();
        let mut views = Vec::new();
        for ((t, k), v) in &rows {
            if self.mirror.get(&(*t, k.clone())) != Some(v) {
                changes.push(Change { table: *t, key: k.clone(), value: Some(v.clone()) });
                if *t == wire::TABLE_DATA {
                    views.push((k.clone(), self.view(v)));
                }
            }
        }
        for (t, k) in self.mirror.keys() {
            if !rows.contains_key(&(*t, k.clone())) {
                changes.push(Change { table: *t, key: k.clone(), value: None });
                if *t == wire::TABLE_DATA {
                    views.push((k.clone(), View::Absent));
                }
            }
        }
        self.mirror = rows;
        Ok((changes, views))
    }

    fn dump(&mut self, rt: &tokio::runtime::Runtime) -> Result<Reply, String> {
        let rows = self.read_rows()?;
        let mut out_rows = Vec::new();
        let mut views = Vec::new();
        for ((t, k), v) in &rows {
            out_rows.push((*t, k.clone(), v.clone()));
            if *t == wire::TABLE_DATA {
                let view = self.view(v);
                if view != View::Absent {
                    views.push((k.clone(), view));
                }
            }
        }
        let lat = self.lat.as_ref().unwrap();
        let floating = rt.block_on(async {
            let s = lat.istore.read().await;
            s.floating().map_err(|e| e.to_string())
        })?;
        let mut fl = Vec::new();
        for f in floating {
            let h = f.signed.intention.hash();
            fl.push(*self.id_of.get(&h).ok_or_else(|| format!("floating intention {h} is no op of ours"))?);
        }
        fl.extend(self.pending.iter().map(|(id, _, _)| *id));
        Ok(Reply::Dumped { rows: out_rows, views, floating: fl })
    }

    // ---- RESTART: the adapter's own bookkeeping goes to a sidecar file next to Lattice's
    // files, everything is dropped, and both are reopened from disk.

    fn save_sidecar(&self) -> Result<(), String> {
        let mut o = wire::Out(Vec::new());
        o.count(self.keys.made.len());
        for (a, s) in &self.keys.made {
            o.raw(a).raw(s);
        }
        o.count(self.hash_of.len());
        let mut known: Vec<_> = self.hash_of.iter().collect();
        known.sort();
        for (id, h) in known {
            o.raw(id).raw(h.as_bytes());
        }
        o.count(self.pending.len());
        for (id, enc, _) in &self.pending {
            o.raw(id).bytes(enc);
        }
        std::fs::write(self.dir.path().join("adapter-sidecar.bin"), &o.0).map_err(|e| e.to_string())
    }

    fn load_sidecar(&mut self) -> Result<(), String> {
        let buf = std::fs::read(self.dir.path().join("adapter-sidecar.bin")).map_err(|e| e.to_string())?;
        let mut i = wire::In::new(&buf, "sidecar");
        let e = |e: wire::WireError| e.to_string();
        self.keys = Keys::default();
        for _ in 0..i.count("keys", 0).map_err(e)? {
            let a: Id = i.array("author").map_err(e)?;
            let s: [u8; 32] = i.array("seed").map_err(e)?;
            self.keys.insert(a, s);
        }
        self.hash_of.clear();
        self.id_of.clear();
        for _ in 0..i.count("known", 0).map_err(e)? {
            let id: Id = i.array("id").map_err(e)?;
            let h: [u8; 32] = i.array("hash").map_err(e)?;
            self.hash_of.insert(id, Hash(h));
            self.id_of.insert(Hash(h), id);
        }
        self.pending.clear();
        self.pending_ids.clear();
        for _ in 0..i.count("pending", 0).map_err(e)? {
            let id: Id = i.array("id").map_err(e)?;
            let enc = i.bytes("enc").map_err(e)?;
            let op = decode_op(&enc)?;
            self.add_pending(id, enc, op);
        }
        i.end().map_err(e)
    }

    fn restart(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        self.save_sidecar()?;
        self.stop(rt);
        self.keys = Keys::default();
        self.hash_of.clear();
        self.id_of.clear();
        self.pending.clear();
        self.pending_ids.clear();
        self.mirror.clear();
        self.load_sidecar()?;
        self.start(rt)?;
        let (head, applied) = self.seqs(rt)?;
        self.stall_reported = applied < head;
        self.mirror = self.read_rows()?;
        Ok(())
    }
}

// ------------------------------------------------------------------ the protocol loop

struct Session {
    rt: tokio::runtime::Runtime,
    store: Option<Replica>,
}

impl Session {
    fn handle(&mut self, req: Request) -> Reply {
        match self.handle_inner(req) {
            Ok(r) => r,
            Err(message) => Reply::Error { message },
        }
    }

    fn handle_inner(&mut self, req: Request) -> Result<Reply, String> {
        Ok(match req {
            Request::Hello { version } => {
                if version != wire::VERSION {
                    return Err(format!("protocol version {version} is not supported (this build speaks 1)"));
                }
                Reply::HelloOk {
                    version: wire::VERSION,
                    name: "lattice-build-adapter (real Lattice kernel)".into(),
                    build_version: format!("{} lattice {}", env!("CARGO_PKG_VERSION"), option_env!("LATTICE_REV").unwrap_or("?")),
                    types: vec![("core:kvstore".into(), 1), ("core:logstore".into(), 1)],
                }
            }
            Request::Open { store_id, store_type, schema_version } => {
                if let Some(mut old) = self.store.take() {
                    old.stop(&self.rt);
                }
                let kind = match (store_type.as_str(), schema_version) {
                    ("core:kvstore", 1) => Kind::Kv,
                    ("core:logstore", 1) => Kind::Log,
                    _ => return Err(format!("`{store_type}` schema {schema_version} is not served")),
                };
                self.store = Some(Replica::open(&self.rt, kind, Uuid::from_bytes(store_id))?);
                Reply::Opened
            }
            Request::Deliver { mode, ops } => {
                let rt = &self.rt;
                let r = self.store.as_mut().ok_or("DELIVER before OPEN")?;
                let sid = *r.store_id.as_bytes();
                let mut decoded = Vec::with_capacity(ops.len());
                for (i, (id, enc)) in ops.into_iter().enumerate() {
                    if op_id(&sid, &enc) != id {
                        return Err(format!("op {i} of the frame: the op id does not match its encoding"));
                    }
                    let d = decode_op(&enc);
                    decoded.push((id, enc, d));
                }
                match mode {
                    wire::MODE_EACH => {
                        let mut receipts = Vec::new();
                        let mut effects = Vec::new();
                        for (id, enc, d) in decoded {
                            match d {
                                Err(reason) => {
                                    receipts.push(Receipt::Refused { kind: "malformed_op".into(), reason });
                                    effects.push(Effects::default());
                                }
                                Ok(_) if r.received(&id) => {
                                    receipts.push(Receipt::Redelivered);
                                    effects.push(Effects::default());
                                }
                                Ok(op) => {
                                    r.add_pending(id, enc, op);
                                    receipts.push(Receipt::Received);
                                    effects.push(r.ingest(rt)?);
                                }
                            }
                        }
                        Reply::Delivered { receipts, effects }
                    }
                    wire::MODE_BATCH => {
                        let mut receipts = Vec::new();
                        let mut aborted = false;
                        for (id, enc, d) in decoded {
                            if aborted {
                                receipts.push(Receipt::Skipped);
                                continue;
                            }
                            match d {
                                Err(reason) => {
                                    receipts.push(Receipt::Refused { kind: "malformed_op".into(), reason });
                                    aborted = true;
                                }
                                Ok(_) if r.received(&id) => receipts.push(Receipt::Redelivered),
                                Ok(op) => {
                                    r.add_pending(id, enc, op);
                                    receipts.push(Receipt::Received);
                                }
                            }
                        }
                        let effects = if aborted { Effects::default() } else { r.ingest(rt)? };
                        Reply::Delivered { receipts, effects: vec![effects] }
                    }
                    m => return Err(format!("DELIVER mode {m} (expected 0 or 1)")),
                }
            }
            Request::Restart => {
                let rt = &self.rt;
                let r = self.store.as_mut().ok_or("RESTART before OPEN")?;
                r.restart(rt)?;
                Reply::Restarted
            }
            Request::Dump => {
                let rt = &self.rt;
                self.store.as_mut().ok_or("DUMP before OPEN")?.dump(rt)?
            }
            Request::Close => {
                if let Some(mut old) = self.store.take() {
                    old.stop(&self.rt);
                }
                Reply::Closed
            }
            Request::Bye => unreachable!(),
        })
    }
}

fn main() {
    let _ = tracing::subscriber::set_global_default(Capture);
    // A paused clock: the kernel's auto-ack timer (AUTO_ACK_DEBOUNCE, 5 s of wall time) would
    // otherwise commit ack intentions of the node's own at times the host does not control.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    let mut s = Session { rt, store: None };
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut output = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    loop {
        let (ty, body) = match wire::read_frame(&mut input) {
            Ok(f) => f,
            Err(wire::WireError::Eof) => break,
            Err(e) => {
                eprintln!("lattice-build-adapter: {e}");
                std::process::exit(2);
            }
        };
        let reply = match Request::decode(ty, &body) {
            Ok(Request::Bye) => break,
            Ok(req) => s.handle(req),
            Err(e) => Reply::Error { message: format!("cannot decode the request: {e}") },
        };
        if let Reply::Error { message } = &reply {
            eprintln!("lattice-build-adapter: ERROR {message}");
        }
        let (ty, body) = reply.encode();
        if wire::write_frame(&mut output, ty, &body).and_then(|_| output.flush()).is_err() {
            break;
        }
    }
    if let Some(mut st) = s.store.take() {
        st.stop(&s.rt);
    }
}
