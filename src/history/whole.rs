//! A [`History`] whole in memory: loaded or parsed from either form, and written out as the
//! whole-file bytes of either form.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::shapes::{op_json, OpJson};
use super::{binary, open, version_for, Delivery, ExpectedRead, Header, History, HistoryError, OpStream, Provenance, FORMAT_TAG};
use crate::op::{op_id, Op};
use crate::store::StoreIdentity;

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
    #[serde(default, skip_serializing_if = "Delivery::is_plain")]
    delivery: Delivery,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expect: Vec<ExpectedRead>,
    ops: Vec<OpJson>,
}

impl History {
    /// A history of the store `id` (no provenance).
    pub fn new(id: &StoreIdentity, ops: Vec<Op>) -> History {
        History {
            store_id: id.store_id,
            store_type: id.store_type.clone(),
            schema_version: id.schema_version,
            provenance: None,
            delivery: Default::default(),
            expect: Vec::new(),
            ops,
        }
    }

    /// The identity of the store this history belongs to.
    pub fn identity(&self) -> StoreIdentity {
        StoreIdentity { store_id: self.store_id, store_type: self.store_type.clone(), schema_version: self.schema_version }
    }

    /// The header: everything but the ops.
    pub fn header(&self) -> Header {
        Header {
            store_id: self.store_id,
            store_type: self.store_type.clone(),
            schema_version: self.schema_version,
            provenance: self.provenance.clone(),
            delivery: self.delivery.clone(),
            expect: self.expect.clone(),
        }
    }

    /// Loads and checks a history file of either form, whole.
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        History::collect(open(path))
    }

    /// Parses history JSON; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<History, HistoryError> {
        History::collect(OpStream::json(std::io::Cursor::new(text.as_bytes().to_vec()), path))
    }

    /// Parses a history of either form from its bytes; `path` is only used in messages.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<History, HistoryError> {
        History::collect(OpStream::from_bytes(bytes, path))
    }

    fn collect(stream: Result<OpStream, HistoryError>) -> Result<History, HistoryError> {
        let mut stream = stream?;
        let ops: Vec<Op> = stream.by_ref().collect();
        let header = stream.finish()?.header;
        Ok(History {
            store_id: header.store_id,
            store_type: header.store_type,
            schema_version: header.schema_version,
            provenance: header.provenance,
            delivery: header.delivery,
            expect: header.expect,
            ops,
        })
    }

    /// The binary form (§10.6).
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = binary::header_bytes(&self.header(), self.ops.len() as u64);
        for op in &self.ops {
            binary::write_op(&mut out, op).expect("writing to memory");
        }
        let digest = blake3::hash(&out);
        out.extend_from_slice(digest.as_bytes());
        out
    }

    /// Pretty JSON (two-space indent, trailing newline), with each op's id written out.
    pub fn to_json(&self) -> String {
        let ops = self.ops.iter().map(|op| op_json(op, op_id(&self.store_id, op), &self.store_type)).collect();
        let file = FileJson {
            format: FORMAT_TAG.into(),
            format_version: version_for(&self.delivery, &self.expect),
            store_id: self.store_id,
            store_type: self.store_type.clone(),
            schema_version: self.schema_version,
            provenance: self.provenance.clone(),
            delivery: self.delivery.clone(),
            expect: self.expect.clone(),
            ops,
        };
        let mut s = serde_json::to_string_pretty(&file).expect("a history always serializes");
        s.push('\n');
        s
    }
}
