//! The JSON shape of one op in a history file, and the conversions between it and an [`Op`]
//! (checked: hex fields, the stated id, the decoded payload beside the hex).

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{HistoryError, DECODED_MAX_PAYLOAD};
use crate::op::{op_id, Hlc, Op, OpId};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpJson {
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

pub(super) fn parse_op(j: &OpJson, store_id: &Uuid, store_type: &str, index: usize, path: &Path) -> Result<Op, HistoryError> {
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

pub(super) fn op_json(op: &Op, id: OpId, store_type: &str) -> OpJson {
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
