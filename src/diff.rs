//! Key-level diffs between two in-memory states, decoded per store type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decode::{decode_row, Bytes};

/// One key whose row differs between the reference and the candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDiff {
    pub key: Bytes,
    /// The reference's row, decoded (`null` if the key is absent there).
    pub expected: Option<serde_json::Value>,
    /// The candidate's row, decoded (`null` if absent).
    pub actual: Option<serde_json::Value>,
    /// One-line human renderings of the two rows.
    pub expected_text: Option<String>,
    pub actual_text: Option<String>,
}

/// Every key whose row differs, in key order.
pub fn diff_rows(store_type: &str, expected: &BTreeMap<Vec<u8>, Vec<u8>>, actual: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<KeyDiff> {
    let mut keys: Vec<&Vec<u8>> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .map(|k| {
            let render = |v: Option<&Vec<u8>>| v.map(|v| decode_row(store_type, k, v));
            let (e, a) = (render(expected.get(k)), render(actual.get(k)));
            KeyDiff {
                key: Bytes::new(k),
                expected: e.as_ref().map(|r| serde_json::to_value(r).expect("rows serialize")),
                actual: a.as_ref().map(|r| serde_json::to_value(r).expect("rows serialize")),
                expected_text: e.map(|r| r.to_string()),
                actual_text: a.map(|r| r.to_string()),
            }
        })
        .collect()
}
