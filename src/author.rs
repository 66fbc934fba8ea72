//! Fixtures from intent: histories written without hand-encoded bytes.
//!
//! `history new` writes an empty history (a header); `history add` appends one op described by
//! intent — an author's name, the keys it puts or deletes (or the text it appends to a log), what
//! it has seen (`--deps`) and optionally its HLC — with the payload encoded by the store type's
//! own codec (`lattice_logic`), `prev` chained to that author's previous op in the file, the
//! `causal_deps` resolved and the op id computed. `history build` does the same for a JSON script
//! of intents and gives the bytes the equivalent `history new` + `history add` sequence gives
//! (both go through [`Authoring::add`] and the one history writer).
//! Normative: docs/FORMAT.md, "Authored histories".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lattice_logic::{kvstore, kvstore_v2, logstore};
use serde::Deserialize;
use uuid::Uuid;

use crate::corpus::lattice::{author_key, bytes, missing_id};
use crate::history::{History, HistoryError};
use crate::op::{op_id, Hlc, Op, OpId, ZERO_HASH};
use crate::replay::MemStore;

/// The store types with a payload codec: the ones `history add` can write ops for.
pub const TYPES: [&str; 3] = [kvstore::STORE_TYPE, logstore::STORE_TYPE, kvstore_v2::STORE_TYPE];
/// The wall clock (ms) of the first op of a history when `--hlc` is not given
/// (2023-11-14T22:13:20Z, as the generator's).
pub const BASE_WALL_MS: u64 = 1_700_000_000_000;
const SCRIPT_TAG: &str = "lattice-conform/history-script";
const SCRIPT_VERSION: u32 = 1;
const STORE_ID_DOMAIN: &[u8] = b"lattice-conform authored history\0";

/// Why an intent could not become an op, or a script a history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorError {
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("store type `{0}` has no payload codec here; `history new`/`add`/`build` write {types}", types = TYPES.join(", "))]
    UnknownType(String),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One op described by intent (a `history add` or one element of a script's `ops`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// The author's name (1 to 32 bytes); its key is the name's bytes followed by zeros.
    pub author: String,
    /// `KEY=VALUE` entries (kvstore, kvstore-v2); a key or value may be `hex:…`.
    #[serde(default)]
    pub put: Vec<String>,
    /// Keys to delete (kvstore, kvstore-v2).
    #[serde(default)]
    pub delete: Vec<String>,
    /// The text of a log entry (logstore); may be `hex:…`.
    #[serde(default)]
    pub append: Option<String>,
    /// `auto` (default), `none`, or op ids (64 hex digits), author names (that author's latest op
    /// in the history) and `missing:NAME` (an op that never arrives).
    #[serde(default)]
    pub deps: Vec<String>,
    /// `WALL[.COUNTER]`; default: one ms after the greatest HLC in the history.
    #[serde(default)]
    pub hlc: Option<String>,
    /// Deliver this op in one batch with the op before it (FORMAT §4.5, §10.9): it joins that
    /// op's batch, or the two become one.
    #[serde(default)]
    pub batch: bool,
    /// The replica restarts (closes and reopens from its files) before this op is delivered.
    #[serde(default)]
    pub restart: bool,
    /// Reads a reader must see once this op has been delivered (docs/FORMAT.md §10.10): read
    /// objects without `after`, which is this op's position.
    #[serde(default)]
    pub expect: Vec<crate::expect::Read>,
}

/// The expected-read flags of `history add`, each naming a key (or the log); [`ExpectFlags::reads`]
/// merges them into one read per key, keys in the order the flags below are listed.
#[derive(Clone, Debug, Default)]
pub struct ExpectFlags {
    /// `KEY=VALUE`: the value read.
    pub value: Vec<String>,
    /// `KEY`: no value (no row, a tombstone, a removed key).
    pub no_value: Vec<String>,
    /// `KEY`: no row a reader sees.
    pub absent: Vec<String>,
    /// `KEY`: a tombstone (core:kvstore).
    pub tombstone: Vec<String>,
    /// `KEY`: more than one head (core:kvstore).
    pub conflicted: Vec<String>,
    /// `KEY`: one head at most (core:kvstore).
    pub not_conflicted: Vec<String>,
    /// `KEY=N`: the number of heads (core:kvstore).
    pub heads: Vec<String>,
    /// `KEY=N`: the conflict counter (core:kvstore-v2).
    pub conflicts: Vec<String>,
    /// The whole log, entry by entry (core:logstore).
    pub log: Vec<String>,
    /// The number of log entries (core:logstore).
    pub entries: Option<u64>,
}

impl ExpectFlags {
    /// The reads the flags ask for; a key given two different answers for one field is an error.
    pub fn reads(&self) -> Result<Vec<crate::expect::Read>, String> {
        use crate::expect::Read;
        /// The read of `key` (the same bytes however written), added when new.
        fn slot<'a>(reads: &'a mut Vec<Read>, flag: &str, key: &str) -> Result<&'a mut Read, String> {
            let want = crate::expect::bytes(key).map_err(|e| format!("{flag} {key}: {e}"))?;
            let same = |r: &Read| r.key.as_deref().and_then(|k| crate::expect::bytes(k).ok()).as_deref() == Some(&want[..]);
            let i = match reads.iter().position(same) {
                Some(i) => i,
                None => {
                    reads.push(Read { key: Some(key.to_string()), ..Read::default() });
                    reads.len() - 1
                }
            };
            Ok(&mut reads[i])
        }
        fn put<T: PartialEq + std::fmt::Debug>(slot: &mut Option<T>, v: T, flag: &str, key: &str) -> Result<(), String> {
            match slot {
                Some(old) if *old != v => Err(format!("{flag} {key}: the key is already expected to read {old:?} there")),
                _ => {
                    *slot = Some(v);
                    Ok(())
                }
            }
        }
        fn split<'s>(flag: &str, spec: &'s str) -> Result<(&'s str, &'s str), String> {
            spec.split_once('=').ok_or_else(|| format!("{flag} `{spec}`: expected KEY=…"))
        }
        let mut reads: Vec<Read> = Vec::new();
        for spec in &self.value {
            let (k, v) = split("--expect", spec)?;
            put(&mut slot(&mut reads, "--expect", k)?.value, Some(v.to_string()), "--expect", k)?;
        }
        type Apply = fn(&mut Read, &str, &str) -> Result<(), String>;
        let keyed: [(&str, &Vec<String>, Apply); 5] = [
            ("--expect-no-value", &self.no_value, |r, f, k| put(&mut r.value, None, f, k)),
            ("--expect-absent", &self.absent, |r, f, k| put(&mut r.exists, false, f, k)),
            ("--expect-tombstone", &self.tombstone, |r, f, k| put(&mut r.tombstone, true, f, k)),
            ("--expect-conflicted", &self.conflicted, |r, f, k| put(&mut r.conflicted, true, f, k)),
            ("--expect-not-conflicted", &self.not_conflicted, |r, f, k| put(&mut r.conflicted, false, f, k)),
        ];
        for (flag, keys, apply) in keyed {
            for k in keys {
                apply(slot(&mut reads, flag, k)?, flag, k)?;
            }
        }
        for (flag, specs) in [("--expect-heads", &self.heads), ("--expect-conflicts", &self.conflicts)] {
            for spec in specs {
                let (k, n) = split(flag, spec)?;
                let n: u32 = n.parse().map_err(|_| format!("{flag} `{spec}`: `{n}` is not a whole number"))?;
                let r = slot(&mut reads, flag, k)?;
                put(if flag == "--expect-heads" { &mut r.heads } else { &mut r.conflicts }, n, flag, k)?;
            }
        }
        if !self.log.is_empty() || self.entries.is_some() {
            reads.push(Read { log: (!self.log.is_empty()).then(|| self.log.clone()), entries: self.entries, ..Read::default() });
        }
        Ok(reads)
    }
}

/// A script of intents (`history build`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub format: String,
    pub format_version: u32,
    pub store_type: String,
    /// Default: [`default_store_id`] of the type and the output file's stem.
    #[serde(default)]
    pub store_id: Option<Uuid>,
    pub ops: Vec<Intent>,
}

impl Script {
    /// Reads and checks a script file (format tag and version first, then the strict parse).
    pub fn load(path: &Path) -> Result<Script, AuthorError> {
        let bad = |reason: &str| Err(AuthorError::Bad { path: path.to_path_buf(), reason: reason.into() });
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return bad("a directory, not a `history build` script"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return bad("no such script file"),
            _ => {}
        }
        let text = std::fs::read_to_string(path).map_err(|source| AuthorError::Io { path: path.to_path_buf(), source })?;
        crate::versioned::check(&text, path, SCRIPT_TAG, SCRIPT_VERSION)?;
        Ok(serde_json::from_str(&text).map_err(|e| crate::versioned::json_error(path, &e))?)
    }
}

/// The store id of an authored history when none is given: the version-8 UUID made from the
/// first 16 bytes of `blake3("lattice-conform authored history\0" ‖ store_type ‖ 0x00 ‖ name)`,
/// `name` being the output file's stem.
pub fn default_store_id(store_type: &str, name: &str) -> Uuid {
    let mut h = blake3::Hasher::new();
    h.update(STORE_ID_DOMAIN);
    h.update(store_type.as_bytes());
    h.update(&[0]);
    h.update(name.as_bytes());
    Uuid::new_v8(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"))
}

pub use crate::corpus::file_stem;

/// An empty history of `store_type` (schema 1, no provenance).
pub fn empty(store_type: &str, store_id: Uuid) -> Result<History, AuthorError> {
    if !TYPES.contains(&store_type) {
        return Err(AuthorError::UnknownType(store_type.to_string()));
    }
    Ok(History {
        store_id,
        store_type: store_type.to_string(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops: vec![],
    })
}

/// A history being authored: the ops so far and, for `core:kvstore`, their replay (whose rows
/// give the heads `--deps auto` names).
pub struct Authoring {
    history: History,
    replay: Option<MemStore>,
}

impl Authoring {
    /// Starts from `history` (either an empty one or one read from a file).
    pub fn new(history: History) -> Result<Authoring, AuthorError> {
        if !TYPES.contains(&history.store_type.as_str()) {
            return Err(AuthorError::UnknownType(history.store_type.clone()));
        }
        let replay = (history.store_type == kvstore::STORE_TYPE).then(|| {
            let logic: crate::store::Logic = Arc::new(kvstore::KvStore);
            MemStore::replayed(history.identity(), logic, &history.ops)
        });
        Ok(Authoring { history, replay })
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn into_history(self) -> History {
        self.history
    }

    /// Appends the op `intent` describes and returns it with its id; the error says what is
    /// wrong with the intent (the caller names the file or script op).
    pub fn add(&mut self, intent: &Intent) -> Result<(OpId, Op), String> {
        let h = &self.history;
        let author = author_key(&intent.author)?;
        let (payload, keys) = payload(&h.store_type, intent)?;
        let hlc = match &intent.hlc {
            Some(text) => parse_hlc(text)?,
            None => match h.ops.iter().map(|op| op.hlc).max() {
                Some(max) => Hlc { wall_ms: max.wall_ms.checked_add(1).ok_or("the greatest HLC's wall_ms is u64::MAX")?, counter: 0 },
                None => Hlc { wall_ms: BASE_WALL_MS, counter: 0 },
            },
        };
        let prev = h.ops.iter().rev().find(|op| op.author == author).map_or(ZERO_HASH, |op| op_id(&h.store_id, op));
        let causal_deps = self.deps(&intent.deps, &keys)?;
        let op = Op { author, hlc, prev, causal_deps, payload };
        op.validate().map_err(|e| format!("the op is not valid: {e}"))?;
        let id = op_id(&self.history.store_id, &op);
        let delivery = self.planned(intent)?;
        let after = self.history.ops.len() as u64 + 1;
        let mut expect = self.history.expect.clone();
        for (i, e) in intent.expect.iter().enumerate() {
            if e.after.is_some() {
                return Err(format!("expect[{i}]: `after` is implied (the reads are taken after this op)"));
            }
            e.check_shape(&self.history.store_type).map_err(|why| format!("expect[{i}]: {why}"))?;
            expect.push(crate::expect::Read { after: Some(after), ..e.canonical() });
        }
        if let Some(r) = &mut self.replay {
            r.deliver(&op);
        }
        self.history.ops.push(op.clone());
        self.history.delivery = delivery;
        self.history.expect = expect;
        Ok((id, op))
    }

    /// The history's delivery plan with the next op's `batch` and `restart` taken in.
    fn planned(&self, intent: &Intent) -> Result<crate::history::Delivery, String> {
        let n = self.history.ops.len() as u64;
        let mut plan = self.history.delivery.clone();
        if intent.restart {
            if intent.batch {
                return Err(
                    "--restart and --batch: a restart cannot fall inside a batch (the op joins the batch of the op before it)".into()
                );
            }
            plan.restarts.push(n);
        }
        if intent.batch {
            if n == 0 {
                return Err("--batch: the first op has no op before it to share a batch with".into());
            }
            match plan.batches.last_mut() {
                Some(b) if b.start + b.len == n => b.len += 1,
                _ => plan.batches.push(crate::history::Batch { start: n - 1, len: 2 }),
            }
        }
        plan.check()?;
        Ok(plan)
    }

    /// The `causal_deps` of a new op touching `keys`, sorted and without repeats.
    fn deps(&self, spec: &[String], keys: &[Vec<u8>]) -> Result<Vec<OpId>, String> {
        let h = &self.history;
        let spec: Vec<&str> = if spec.is_empty() { vec!["auto"] } else { spec.iter().map(String::as_str).collect() };
        if spec.contains(&"none") && spec.len() > 1 {
            return Err("--deps none cannot be combined with other deps".into());
        }
        let mut out = BTreeSet::new();
        for d in spec {
            match d {
                "none" => {}
                "auto" => out.extend(self.heads(keys)?),
                _ if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    let id = crate::history::hash32(d)?;
                    if !h.ops.iter().any(|op| op_id(&h.store_id, op) == id) {
                        return Err(format!(
                            "--deps {d}: no op of the history has this id (`missing:NAME` names an op that never arrives)"
                        ));
                    }
                    out.insert(id);
                }
                _ => match d.strip_prefix("missing:") {
                    Some(name) => {
                        out.insert(missing_id(name));
                    }
                    None => {
                        let key = author_key(d).map_err(|e| format!("--deps {d}: {e}"))?;
                        let last = h.ops.iter().rev().find(|op| op.author == key).ok_or_else(|| {
                            format!("--deps {d}: unknown author `{d}`: no op of the history is by it (authors: {})", self.authors())
                        })?;
                        out.insert(op_id(&h.store_id, last));
                    }
                },
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The current heads of `keys` (kvstore: from the replay's rows; other types have none).
    fn heads(&self, keys: &[Vec<u8>]) -> Result<Vec<OpId>, String> {
        let Some(r) = &self.replay else { return Ok(vec![]) };
        let mut out = Vec::new();
        for k in keys {
            let seen = kvstore::inspect(r.rows().get(k).map(Vec::as_slice)).map_err(|e| format!("the row of key {k:02x?}: {e:?}"))?;
            out.extend(seen.heads);
        }
        Ok(out)
    }

    /// The authors of the history, by name where the key is one (for messages).
    fn authors(&self) -> String {
        let names: BTreeSet<String> = self
            .history
            .ops
            .iter()
            .map(|op| {
                let name = op.author.iter().position(|&b| b == 0).map_or(&op.author[..], |end| &op.author[..end]);
                match std::str::from_utf8(name) {
                    Ok(s) if !s.is_empty() && author_key(s).ok() == Some(op.author) => s.to_string(),
                    _ => hex::encode(op.author),
                }
            })
            .collect();
        if names.is_empty() {
            "none yet".into()
        } else {
            names.into_iter().collect::<Vec<_>>().join(", ")
        }
    }
}

/// `WALL[.COUNTER]`.
pub fn parse_hlc(text: &str) -> Result<Hlc, String> {
    let bad = || format!("--hlc `{text}`: expected WALL_MS or WALL_MS.COUNTER (whole numbers, e.g. 1700000000001.0)");
    let (wall, counter) = text.split_once('.').unwrap_or((text, "0"));
    Ok(Hlc { wall_ms: wall.parse().map_err(|_| bad())?, counter: counter.parse().map_err(|_| bad())? })
}

/// The payload of `intent` in the type's encoding, and the keys it touches.
fn payload(store_type: &str, intent: &Intent) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let mut puts = Vec::with_capacity(intent.put.len());
    for p in &intent.put {
        let (k, v) = p.split_once('=').ok_or_else(|| format!("--put `{p}`: expected KEY=VALUE (write a key holding `=` as hex:…)"))?;
        puts.push((bytes(k).map_err(|e| format!("--put key {e}"))?, bytes(v).map_err(|e| format!("--put value {e}"))?));
    }
    let deletes = intent.delete.iter().map(|k| bytes(k).map_err(|e| format!("--delete {e}"))).collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<Vec<u8>> = puts.iter().map(|(k, _)| k.clone()).chain(deletes.iter().cloned()).collect();
    if store_type == logstore::STORE_TYPE {
        if !keys.is_empty() {
            return Err("core:logstore has no keys: use --append TEXT instead of --put/--delete".into());
        }
        let text = intent.append.as_deref().ok_or("core:logstore: --append TEXT is required")?;
        return Ok((bytes(text).map_err(|e| format!("--append {e}"))?, vec![]));
    }
    if intent.append.is_some() {
        return Err(format!("{store_type} has no log: use --put KEY=VALUE and --delete KEY instead of --append"));
    }
    if keys.is_empty() {
        return Err(format!("{store_type}: give at least one --put KEY=VALUE or --delete KEY"));
    }
    let payload = if store_type == kvstore_v2::STORE_TYPE {
        let entries: Vec<kvstore_v2::Entry> = puts
            .into_iter()
            .map(|(key, value)| kvstore_v2::Entry::Set { key, value, conflicts: 0 })
            .chain(deletes.into_iter().map(|key| kvstore_v2::Entry::Remove { key }))
            .collect();
        kvstore_v2::encode_payload(&entries)
    } else {
        let entries: Vec<kvstore::Entry> = puts
            .into_iter()
            .map(|(key, value)| kvstore::Entry::Put { key, value })
            .chain(deletes.into_iter().map(|key| kvstore::Entry::Delete { key }))
            .collect();
        kvstore::encode_payload(&entries)
    };
    Ok((payload, keys))
}

/// The history a script describes, for the output file `out` (whose stem gives the default
/// store id). Errors name the script and the op.
pub fn build(script: &Script, script_path: &Path, out: &Path) -> Result<History, AuthorError> {
    let id = script.store_id.unwrap_or_else(|| default_store_id(&script.store_type, &file_stem(out)));
    let mut a = Authoring::new(empty(&script.store_type, id)?)?;
    for (i, intent) in script.ops.iter().enumerate() {
        a.add(intent).map_err(|reason| AuthorError::Bad { path: script_path.to_path_buf(), reason: format!("op {i}: {reason}") })?;
    }
    Ok(a.into_history())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(author: &str, kv: &str, deps: &[&str]) -> Intent {
        Intent { author: author.into(), put: vec![kv.into()], deps: deps.iter().map(|d| d.to_string()).collect(), ..Intent::default() }
    }

    #[test]
    fn auto_deps_name_the_heads_of_the_keys_and_prev_chains_per_author() {
        let mut a = Authoring::new(empty(kvstore::STORE_TYPE, Uuid::from_u128(1)).unwrap()).unwrap();
        let (x, _) = a.add(&put("alice", "k=1", &[])).unwrap();
        let (y, op_y) = a.add(&put("bob", "k=2", &["none"])).unwrap();
        assert_eq!((op_y.prev, op_y.causal_deps.clone()), (ZERO_HASH, vec![]));
        let (_, op_z) = a.add(&put("alice", "k=3", &["auto"])).unwrap();
        let mut both = vec![x, y];
        both.sort();
        assert_eq!(op_z.causal_deps, both, "auto names both heads of the conflicted key");
        assert_eq!(op_z.prev, x);
        assert_eq!(op_z.hlc, Hlc { wall_ms: BASE_WALL_MS + 2, counter: 0 });
        assert!(a.add(&put("carol", "k=4", &["dave"])).unwrap_err().contains("unknown author `dave`"));
        assert!(a.add(&put("carol", "k4", &[])).unwrap_err().contains("expected KEY=VALUE"));
        assert!(a.add(&put("carol", "k=4", &["none", "alice"])).unwrap_err().contains("cannot be combined"));
    }
}
