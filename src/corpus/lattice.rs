//! Lattice's own kvstore and logstore tests, as corpus histories with expected reads.
//!
//! `corpus/lattice-tests.json` translates each test of Lattice's `lattice-kvstore`,
//! `lattice-kvtable` and `lattice-logstore` crates that reads state into a scenario: the ops the
//! test makes (authors by name, HLCs, `prev` and `causal_deps` by label, payloads as kv entries or
//! log text), an optional delivery order, and the reads the test asserts. [`histories`] turns each
//! scenario into the history `lattice-<name>` (written by `gen --lattice-tests`, re-checked by
//! `gen --check`), and [`check`] compares what a replay of it reads with what the test asserts.
//! The tests that read no state are listed, with the reason, under `untranslatable`.
//! Normative: docs/FORMAT.md, "Lattice test scenarios"; the table is docs/LATTICE.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lattice_logic::kvstore::{self, encode_payload, Entry};
use lattice_logic::logstore;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::history::{History, Provenance};
use crate::op::{op_id, Hlc, Op, OpId, ZERO_HASH};
use crate::replay::MemStore;

/// The scenario file's name inside a corpus directory.
pub const FILE: &str = "lattice-tests.json";
/// The provenance `generator` of a history made from a scenario.
pub const GENERATOR: &str = "lattice-conform-lattice-tests/1";
const TAG: &str = "lattice-conform/lattice-tests";
const VERSION: u32 = 1;
/// History names are this prefix and the scenario name.
pub const PREFIX: &str = "lattice-";

/// The whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    pub format: String,
    pub format_version: u32,
    /// The Lattice commit the tests were read at.
    pub lattice_commit: String,
    pub scenarios: Vec<Scenario>,
    pub untranslatable: Vec<Untranslatable>,
}

/// A Lattice test that reads no state, and why it is not a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Untranslatable {
    pub source: String,
    pub reason: String,
}

/// One translated test (or one half of a test that reads state twice).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// `<crate path>::<test function>` in Lattice.
    pub source: String,
    pub store_type: String,
    /// What was translated and how (clock values substituted, asserts dropped…).
    pub note: String,
    pub ops: Vec<OpSpec>,
    /// Labels in delivery order (repeats are redeliveries); by default the ops in list order.
    #[serde(default)]
    pub deliver: Option<Vec<String>>,
    pub expect: Vec<Expect>,
}

/// One op of a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    pub label: String,
    /// A name of at most 32 bytes; the author key is its UTF-8 bytes followed by zeros.
    pub author: String,
    pub wall_ms: u64,
    pub counter: u32,
    /// `auto` (the author's previous op in the list, or all-zero), `zero`, or a label.
    pub prev: String,
    /// Labels, or `missing:NAME` for an op that never arrives.
    pub deps: Vec<String>,
    #[serde(default)]
    pub kv: Option<Vec<KvEntry>>,
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub payload_hex: Option<String>,
}

/// A kvstore batch entry; keys and values are text, or `hex:` and hex digits for bytes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KvEntry {
    Put { key: String, value: String },
    Delete { key: String },
}

/// One asserted read. A field left out is not checked.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A kvstore key to inspect.
    #[serde(default)]
    pub get: Option<String>,
    /// The value read (`null`: none).
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Option<String>>,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub tombstone: Option<bool>,
    #[serde(default)]
    pub conflicted: Option<bool>,
    /// The heads by label, in stored order (winner first).
    #[serde(default)]
    pub heads: Option<Vec<String>>,
    /// The logstore's entries in read order.
    #[serde(default)]
    pub log: Option<Vec<String>>,
    /// The label of the op projection stalled at (`null`: no stall).
    #[serde(default, deserialize_with = "present")]
    pub stalled_at: Option<Option<String>>,
    /// Labels of the ops still floating, in delivery order.
    #[serde(default)]
    pub floating: Option<Vec<String>>,
}

impl Expect {
    /// The part of this read a reader sees (docs/FORMAT.md §10.10), as the history's expected
    /// read after its last op: the key's value, existence, tombstone, conflict and head count, or
    /// the log. The head order, the stall and the floating set are not reads; the test suite
    /// checks them ([`check`]). `None` when nothing is left.
    pub fn as_read(&self, after: u64) -> Option<crate::expect::Read> {
        let canon = |t: &String| bytes(t).map(|b| crate::expect::text(&b)).unwrap_or_else(|_| t.clone());
        let read = crate::expect::Read {
            after: Some(after),
            key: self.get.as_ref().map(canon),
            exists: self.get.as_ref().and(self.exists),
            value: self.get.as_ref().and(self.value.as_ref()).map(|v| v.as_ref().map(canon)),
            tombstone: self.get.as_ref().and(self.tombstone),
            conflicted: self.get.as_ref().and(self.conflicted),
            heads: self.get.as_ref().and(self.heads.as_ref()).map(|h| h.len() as u32),
            log: self.log.as_ref().map(|l| l.iter().map(canon).collect()),
            ..crate::expect::Read::default()
        };
        let checks = crate::expect::Read { after: None, key: None, ..read.clone() } != crate::expect::Read::default();
        checks.then_some(read)
    }
}

/// `Some(x)` for a field that is present, even as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A scenario file that cannot be used, naming the file, the scenario and the op or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatticeTestsError {
    #[error("{0}: cannot read")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
}

impl TestFile {
    /// Loads and checks the scenario file at `path`.
    pub fn load(path: &Path) -> Result<TestFile, LatticeTestsError> {
        let text = std::fs::read_to_string(path).map_err(|e| LatticeTestsError::Io(path.to_path_buf(), e))?;
        let bad = |reason: String| LatticeTestsError::Bad { path: path.to_path_buf(), reason };
        crate::versioned::check(&text, path, TAG, VERSION)?;
        let file: TestFile = serde_json::from_str(&text).map_err(|e| crate::versioned::json_error(path, &e))?;
        let mut names = std::collections::BTreeSet::new();
        for s in &file.scenarios {
            if !names.insert(&s.name) {
                return Err(bad(format!("scenario `{}` appears twice", s.name)));
            }
            s.build().map_err(|e| bad(format!("scenario `{}`: {e}", s.name)))?;
        }
        Ok(file)
    }
}

/// A scenario's ops, built: the history and each op's label by id.
pub struct Built {
    pub history: History,
    pub labels: BTreeMap<OpId, String>,
}

impl Scenario {
    /// The store id of the scenario's history: blake3 of the name, as a UUID v8.
    pub fn store_id(&self) -> Uuid {
        let mut h = blake3::Hasher::new();
        h.update(b"lattice-conform lattice-test\0");
        h.update(self.name.as_bytes());
        Uuid::new_v8(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"))
    }

    /// The history name: `lattice-<name>`.
    pub fn history_name(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }

    /// Builds the scenario's history; the error names the op and what is wrong with it.
    pub fn build(&self) -> Result<Built, String> {
        if ![kvstore::STORE_TYPE, logstore::STORE_TYPE].contains(&self.store_type.as_str()) {
            return Err(format!("store type `{}` is not core:kvstore or core:logstore", self.store_type));
        }
        let store_id = self.store_id();
        let mut ids: BTreeMap<&str, OpId> = BTreeMap::new();
        let mut last: BTreeMap<[u8; 32], OpId> = BTreeMap::new();
        let mut ops: BTreeMap<&str, Op> = BTreeMap::new();
        for spec in &self.ops {
            let op = self.op(spec, &ids, &last).map_err(|e| format!("op `{}`: {e}", spec.label))?;
            let id = op_id(&store_id, &op);
            if ids.insert(&spec.label, id).is_some() {
                return Err(format!("op label `{}` appears twice", spec.label));
            }
            last.insert(op.author, id);
            ops.insert(&spec.label, op);
        }
        let order: Vec<&str> = match &self.deliver {
            Some(labels) => labels.iter().map(String::as_str).collect(),
            None => self.ops.iter().map(|s| s.label.as_str()).collect(),
        };
        let mut delivered = Vec::with_capacity(order.len());
        for label in order {
            let op = ops.get(label).ok_or_else(|| format!("delivery order names `{label}`, which is no op"))?;
            delivered.push(op.clone());
        }
        let provenance = Provenance {
            generator: GENERATOR.to_string(),
            seed: 0,
            scenario: self.name.clone(),
            index: 0,
            ops: delivered.len() as u32,
            tags: vec!["lattice-test".to_string()],
        };
        let after = delivered.len() as u64;
        let history = History {
            store_id,
            store_type: self.store_type.clone(),
            schema_version: 1,
            provenance: Some(provenance),
            delivery: Default::default(),
            expect: self.expect.iter().filter_map(|e| e.as_read(after)).collect(),
            ops: delivered,
        };
        let labels = ids.into_iter().map(|(label, id)| (id, label.to_string())).collect();
        Ok(Built { history, labels })
    }

    fn op(&self, spec: &OpSpec, ids: &BTreeMap<&str, OpId>, last: &BTreeMap<[u8; 32], OpId>) -> Result<Op, String> {
        let author = author_key(&spec.author)?;
        let earlier = |label: &str| ids.get(label).copied().ok_or_else(|| format!("`{label}` is not an earlier op's label"));
        let prev = match spec.prev.as_str() {
            "auto" => last.get(&author).copied().unwrap_or(ZERO_HASH),
            "zero" => ZERO_HASH,
            label => earlier(label)?,
        };
        let mut deps = Vec::with_capacity(spec.deps.len());
        for d in &spec.deps {
            deps.push(match d.strip_prefix("missing:") {
                Some(name) => missing_id(name),
                None => earlier(d)?,
            });
        }
        deps.sort_unstable();
        deps.dedup();
        let payload = match (&spec.kv, &spec.log, &spec.payload_hex) {
            (Some(entries), None, None) if self.store_type == kvstore::STORE_TYPE => {
                let entries: Result<Vec<Entry>, String> = entries
                    .iter()
                    .map(|e| match e {
                        KvEntry::Put { key, value } => Ok(Entry::Put { key: bytes(key)?, value: bytes(value)? }),
                        KvEntry::Delete { key } => Ok(Entry::Delete { key: bytes(key)? }),
                    })
                    .collect();
                encode_payload(&entries?)
            }
            (None, Some(text), None) if self.store_type == logstore::STORE_TYPE => bytes(text)?,
            (None, None, Some(h)) => hex::decode(h).map_err(|e| format!("payload_hex: {e}"))?,
            _ => {
                return Err(format!(
                    "needs exactly one of `kv` (core:kvstore), `log` (core:logstore) or `payload_hex`, for {}",
                    self.store_type
                ))
            }
        };
        let op = Op { author, hlc: Hlc { wall_ms: spec.wall_ms, counter: spec.counter }, prev, causal_deps: deps, payload };
        op.validate().map_err(|e| e.to_string())?;
        Ok(op)
    }
}

/// An author key: the name's UTF-8 bytes followed by zeros, so keys sort as names do.
pub fn author_key(name: &str) -> Result<[u8; 32], String> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 32 {
        return Err(format!("author name `{name}` must be 1 to 32 bytes"));
    }
    let mut key = [0u8; 32];
    key[..b.len()].copy_from_slice(b);
    Ok(key)
}

/// The id standing for an op that never arrives: blake3("lattice-conform missing op\0" ‖ name).
pub fn missing_id(name: &str) -> OpId {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform missing op\0");
    h.update(name.as_bytes());
    *h.finalize().as_bytes()
}

pub use crate::expect::bytes;

/// Every scenario's history with its name, in file order.
pub fn histories(file: &TestFile) -> Vec<(String, History)> {
    file.scenarios.iter().map(|s| (s.history_name(), s.build().expect("checked by TestFile::load").history)).collect()
}

/// Replays `built` with `store` (fresh) and returns every asserted read that does not hold, as
/// `read: expected X, got Y`.
pub fn check(s: &Scenario, built: &Built, mut store: MemStore) -> Vec<String> {
    for op in &built.history.ops {
        store.deliver(op);
    }
    let label = |id: &OpId| built.labels.get(id).cloned().unwrap_or_else(|| format!("unknown op {}", hex::encode(&id[..8])));
    let mut out = Vec::new();
    let mut differ = |what: String, expected: String, got: String| {
        if expected != got {
            out.push(format!("{what}: expected {expected}, got {got}"));
        }
    };
    for e in &s.expect {
        if let Some(key) = &e.get {
            let k = bytes(key).unwrap_or_default();
            let seen = match kvstore::inspect(store.rows().get(&k).map(Vec::as_slice)) {
                Ok(seen) => seen,
                Err(err) => {
                    differ(format!("get {key}"), "a readable row".into(), format!("{err:?}"));
                    continue;
                }
            };
            if let Some(v) = &e.value {
                let expected = v.as_deref().map(|t| bytes(t).unwrap_or_default());
                differ(format!("get {key}: value"), show(expected.as_deref()), show(seen.value.as_deref()));
            }
            for (what, expected, got) in [
                ("exists", e.exists, seen.exists),
                ("tombstone", e.tombstone, seen.tombstone),
                ("conflicted", e.conflicted, seen.conflicted),
            ] {
                if let Some(x) = expected {
                    differ(format!("get {key}: {what}"), x.to_string(), got.to_string());
                }
            }
            if let Some(heads) = &e.heads {
                let got: Vec<String> = seen.heads.iter().map(label).collect();
                differ(format!("get {key}: heads"), format!("{heads:?}"), format!("{got:?}"));
            }
        }
        if let Some(log) = &e.log {
            let expected: Vec<String> = log.iter().map(|t| show(Some(&bytes(t).unwrap_or_default()))).collect();
            let got: Vec<String> = store.rows().values().map(|v| show(logstore::decode_entry(v))).collect();
            differ("log".into(), format!("{expected:?}"), format!("{got:?}"));
        }
        if let Some(at) = &e.stalled_at {
            let got = store.stall().map(|st| label(&st.op_id));
            differ("stalled at".into(), format!("{at:?}"), format!("{got:?}"));
        }
        if let Some(floating) = &e.floating {
            let order: Vec<OpId> = built.history.ops.iter().map(|op| op_id(&built.history.store_id, op)).collect();
            let got: Vec<String> = store.floating().iter().map(|&i| label(&order[i as usize])).collect();
            differ("floating".into(), format!("{floating:?}"), format!("{got:?}"));
        }
    }
    out
}

/// Bytes for a message: text when printable UTF-8, else `hex:…`; `none` for no value.
fn show(b: Option<&[u8]>) -> String {
    match b {
        None => "none".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
            _ => format!("hex:{}", hex::encode(b)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_keys_sort_as_names_and_bytes_read_hex() {
        assert!(author_key("A").unwrap() < author_key("B").unwrap());
        assert!(author_key("A").unwrap() < author_key("AA").unwrap());
        assert!(author_key(&"x".repeat(33)).is_err());
        assert_eq!(bytes("hex:00ff").unwrap(), vec![0, 0xff]);
        assert_eq!(bytes("k").unwrap(), b"k".to_vec());
        assert!(bytes("hex:0").unwrap_err().contains("`hex:0`"));
    }
}
