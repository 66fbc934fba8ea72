//! History files: a store's identity and its ops in JSON, every field explicit.
//!
//! One format serves `apply`, the corpus and recorded histories (`format_version` 1, normative in
//! docs/FORMAT.md, "History file"). A corpus history also records its provenance (how to
//! regenerate it), and small payloads carry a decoded form beside the hex for readers, which must
//! agree with the hex. Loading reports bad JSON with line and column, and a bad op with its index
//! and field; a file written by a newer format version is refused as such.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::op::{op_id, Hlc, Op, OpId};
use crate::store::StoreIdentity;

/// The `format` tag every history file carries.
pub const FORMAT_TAG: &str = "lattice-conform/history";
/// The history format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A loaded, checked history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
    /// How the history was made; `None` for hand-written ones.
    pub provenance: Option<Provenance>,
    pub ops: Vec<Op>,
}

/// How a generated history was made: enough to regenerate it byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Generator name and version, e.g. `lattice-conform-gen/1`.
    pub generator: String,
    pub seed: u64,
    pub scenario: String,
    /// Position of this history in its `gen` run.
    pub index: u32,
    /// The `--ops` argument it was generated with.
    pub ops: u32,
    /// What the history exercises, for coverage tables.
    pub tags: Vec<String>,
}

/// Payloads up to this size carry a decoded form in the file.
pub const DECODED_MAX_PAYLOAD: usize = 4096;

/// Why a history file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("{path}: op {index}, field `{field}`: {reason}")]
    BadOp { path: PathBuf, index: usize, field: &'static str, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    format: String,
    format_version: u32,
    store_id: Uuid,
    store_type: String,
    schema_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provenance: Option<Provenance>,
    ops: Vec<OpJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    author: String,
    hlc: HlcJson,
    prev: String,
    #[serde(default)]
    causal_deps: Vec<String>,
    payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decoded: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HlcJson {
    wall_ms: u64,
    counter: u32,
}

impl History {
    /// A history of the store `id` (no provenance).
    pub fn new(id: &StoreIdentity, ops: Vec<Op>) -> History {
        History { store_id: id.store_id, store_type: id.store_type.clone(), schema_version: id.schema_version, provenance: None, ops }
    }

    /// The identity of the store this history belongs to.
    pub fn identity(&self) -> StoreIdentity {
        StoreIdentity { store_id: self.store_id, store_type: self.store_type.clone(), schema_version: self.schema_version }
    }

    /// Loads and checks a history file.
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| HistoryError::Io { path: path.to_path_buf(), source })?;
        History::parse(&text, path)
    }

    /// Parses history JSON; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<History, HistoryError> {
        // Check the version before the strict parse, so a newer file with new fields says "too new".
        crate::versioned::check(text, path, FORMAT_TAG, FORMAT_VERSION)?;
        let file: FileJson = serde_json::from_str(text).map_err(|e| crate::versioned::json_error(path, &e))?;
        let ops =
            file.ops.iter().enumerate().map(|(i, op)| parse_op(op, &file.store_id, &file.store_type, i, path)).collect::<Result<_, _>>()?;
        Ok(History {
            store_id: file.store_id,
            store_type: file.store_type,
            schema_version: file.schema_version,
            provenance: file.provenance,
            ops,
        })
    }

    /// Pretty JSON (two-space indent, trailing newline), with each op's id written out.
    pub fn to_json(&self) -> String {
        let ops = self.ops.iter().map(|op| op_json(op, op_id(&self.store_id, op), &self.store_type)).collect();
        let file = FileJson {
            format: FORMAT_TAG.into(),
            format_version: FORMAT_VERSION,
            store_id: self.store_id,
            store_type: self.store_type.clone(),
            schema_version: self.schema_version,
            provenance: self.provenance.clone(),
            ops,
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a history always serializes");
        s.push('\n');
        s
    }
}

fn parse_op(j: &OpJson, store_id: &Uuid, store_type: &str, index: usize, path: &Path) -> Result<Op, HistoryError> {
    let bad = |field, reason| HistoryError::BadOp { path: path.to_path_buf(), index, field, reason };
    let deps = j.causal_deps.iter().map(|d| hash32(d)).collect::<Result<Vec<_>, _>>().map_err(|r| bad("causal_deps", r))?;
    let op = Op {
        author: hash32(&j.author).map_err(|r| bad("author", r))?,
        hlc: Hlc { wall_ms: j.hlc.wall_ms, counter: j.hlc.counter },
        prev: hash32(&j.prev).map_err(|r| bad("prev", r))?,
        causal_deps: deps,
        payload: hex::decode(&j.payload).map_err(|e| bad("payload", format!("not hex: {e}")))?,
    };
    op.validate().map_err(|e| bad("op", e.to_string()))?;
    if let Some(stated) = j.decoded.as_ref().filter(|_| crate::decode::has_payload_decoder(store_type)) {
        if decoded_payload(store_type, &op.payload).as_ref() != Some(stated) {
            return Err(bad("decoded", "does not agree with `payload` (the hex is authoritative; fix or drop `decoded`)".into()));
        }
    }
    if let Some(stated) = &j.id {
        let computed = hex::encode(op_id(store_id, &op));
        if stated.to_ascii_lowercase() != computed {
            return Err(bad("id", format!("states {stated} but the op's contents hash to {computed}")));
        }
    }
    Ok(op)
}

/// The decoded form written beside a payload: present for payloads up to
/// [`DECODED_MAX_PAYLOAD`] bytes that decode for the store type.
fn decoded_payload(store_type: &str, payload: &[u8]) -> Option<serde_json::Value> {
    if payload.len() > DECODED_MAX_PAYLOAD {
        return None;
    }
    crate::decode::decode_payload(store_type, payload)
}

fn op_json(op: &Op, id: OpId, store_type: &str) -> OpJson {
    OpJson {
        id: Some(hex::encode(id)),
        author: hex::encode(op.author),
        hlc: HlcJson { wall_ms: op.hlc.wall_ms, counter: op.hlc.counter },
        prev: hex::encode(op.prev),
        causal_deps: op.causal_deps.iter().map(hex::encode).collect(),
        payload: hex::encode(&op.payload),
        decoded: decoded_payload(store_type, &op.payload),
    }
}

/// Decodes 64 lowercase-or-uppercase hex digits into 32 bytes.
pub fn hash32(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 {
        return Err(format!("expected 64 hex digits (32 bytes), found {} characters", s.len()));
    }
    let bytes = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    Ok(bytes.try_into().expect("64 hex digits are 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versioned::VersionError;

    fn sample() -> History {
        let op = Op { author: [3; 32], hlc: Hlc { wall_ms: 5, counter: 1 }, prev: [0; 32], causal_deps: vec![], payload: vec![0xab] };
        History {
            store_id: Uuid::from_bytes([9; 16]),
            store_type: "core:logstore".into(),
            schema_version: 1,
            provenance: None,
            ops: vec![op],
        }
    }

    #[test]
    fn json_round_trips() {
        let h = sample();
        assert_eq!(History::parse(&h.to_json(), Path::new("h.json")).unwrap(), h);
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = History::parse("{\n  \"format\": ,\n}", Path::new("h.json")).unwrap_err();
        assert!(matches!(err, HistoryError::Version(VersionError::Json { line: 2, column: 13, .. })), "{err}");
    }

    #[test]
    fn wrong_length_hash_names_op_and_field() {
        let text = sample().to_json().replace(&"00".repeat(32), &"00".repeat(31));
        let err = History::parse(&text, Path::new("h.json")).unwrap_err().to_string();
        assert_eq!(err, "h.json: op 0, field `prev`: expected 64 hex digits (32 bytes), found 62 characters");
    }

    #[test]
    fn stated_id_must_match_and_newer_formats_are_refused() {
        let text = sample().to_json();
        let tampered = text.replace("\"payload\": \"ab\"", "\"payload\": \"ac\"");
        assert!(matches!(History::parse(&tampered, Path::new("h")), Err(HistoryError::BadOp { field: "decoded", .. })));
        let mut v: serde_json::Value = serde_json::from_str(&tampered).unwrap();
        v["ops"][0].as_object_mut().unwrap().remove("decoded");
        assert!(matches!(History::parse(&v.to_string(), Path::new("h")), Err(HistoryError::BadOp { field: "id", .. })));
        let newer = text.replace("\"format_version\": 1", "\"format_version\": 2, \"new_field\": true");
        assert!(matches!(History::parse(&newer, Path::new("h")), Err(HistoryError::Version(VersionError::TooNew { found: 2, .. }))));
        let id = op_id(&Uuid::from_bytes([9; 16]), &sample().ops[0]);
        let upper = text.replace(&hex::encode(id), &hex::encode_upper(id));
        assert_eq!(History::parse(&upper, Path::new("h")).unwrap(), sample(), "hex is case-insensitive, `id` included");
    }
}
