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
    diff_by(expected, actual, |k, v| {
        let row = decode_row(store_type, k, v);
        (serde_json::to_value(&row).expect("rows serialize"), row.to_string())
    })
}

/// Every key whose view (what a reader sees) differs, in key order: `expected` and `actual` map
/// keys to the views of docs/FORMAT.md "Observed state".
pub fn diff_views(store_type: &str, expected: &BTreeMap<Vec<u8>, Vec<u8>>, actual: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<KeyDiff> {
    diff_by(expected, actual, |_, v| {
        let view = crate::decode::decode_view(store_type, v);
        (serde_json::to_value(&view).expect("views serialize"), view.to_string())
    })
}

fn diff_by(
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    actual: &BTreeMap<Vec<u8>, Vec<u8>>,
    render: impl Fn(&[u8], &[u8]) -> (serde_json::Value, String),
) -> Vec<KeyDiff> {
    let mut keys: Vec<&Vec<u8>> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .map(|k| {
            let (e, a) = (expected.get(k).map(|v| render(k, v)), actual.get(k).map(|v| render(k, v)));
            KeyDiff {
                key: Bytes::new(k),
                expected: e.as_ref().map(|(j, _)| j.clone()),
                actual: a.as_ref().map(|(j, _)| j.clone()),
                expected_text: e.map(|(_, t)| t),
                actual_text: a.map(|(_, t)| t),
            }
        })
        .collect()
}
