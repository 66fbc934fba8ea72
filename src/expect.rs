//! Expected reads: what a reader of the store must see, written by intent (docs/FORMAT.md §10.10).
//!
//! A history may carry expectations — "after 3 ops, `color` reads `blue` and is not conflicted" —
//! checked by `verify` against every build's views (§8.5), independently of the goldens, and by
//! `bless`/`corpus add` against the reference build (a golden that would contradict one is not
//! written). Small goldens carry the same reads of their end state (§12.2), so a bless review
//! shows what a reader sees change.
//!
//! A read is taken from the build's **views**, not its rows: that is what a reader sees, and what
//! every kind of build — native, Wasm, outside — reports the same way.

use std::collections::BTreeMap;

use lattice_logic::{kvstore, kvstore_v2, logstore};
use serde::{Deserialize, Serialize};

/// One read: of a key (`core:kvstore`, `core:kvstore-v2`) or of the whole log (`core:logstore`).
/// In a history's `expect` list every field but `after` and `key` is a check, and a field left out
/// is not checked; in a golden's `reads` every field of the type is filled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// The number of ops delivered (by the history's plan) when the read is taken; in an
    /// expectation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The key read (text `T`: UTF-8, or `hex:` and hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether the key has a row a reader sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The value read (`T`); `null`: no value (no row, a tombstone, a removed key).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub value: Option<Option<String>>,
    /// `core:kvstore`: the row is a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<bool>,
    /// `core:kvstore`: the row has more than one head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicted: Option<bool>,
    /// `core:kvstore`: how many heads the row has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<u32>,
    /// `core:kvstore-v2`: the row's conflict counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u32>,
    /// `core:logstore`: every entry's content, in read order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<String>>,
    /// `core:logstore`: how many entries there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// `Option<Option<T>>` that tells a missing field (`None`) from `null` (`Some(None)`).
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().expect("skipped when absent").serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Goldens carry their end state's reads when it has at most this many seen rows (§12.2).
pub const GOLDEN_READS_MAX_ROWS: usize = 32;
/// … and at most this many key and value bytes in all.
pub const GOLDEN_READS_MAX_BYTES: usize = 4096;
/// … and the history at most this many ops (so a large history never asks a build for its views).
pub const GOLDEN_READS_MAX_OPS: u64 = 256;

/// Text `T` for bytes, as writers emit it: the UTF-8 text when the bytes are UTF-8 without control
/// characters and do not start with `hex:`, else `hex:` and lowercase hex digits.
pub fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.starts_with("hex:") && !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("hex:{}", hex::encode(b)),
    }
}

/// The bytes of text `T`: `hex:` followed by hex digits, or the UTF-8 text itself.
pub fn bytes(text: &str) -> Result<Vec<u8>, String> {
    match text.strip_prefix("hex:") {
        Some(h) => hex::decode(h).map_err(|e| format!("`{text}`: {e}")),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// Bytes in a message: quoted text, or `hex:…`; `none` for no value.
fn show(b: Option<&[u8]>) -> String {
    match b {
        None => "no value".into(),
        Some(b) => match text(b) {
            t if t.starts_with("hex:") && !b.starts_with(b"hex:") => t,
            t => format!("{t:?}"),
        },
    }
}

impl Read {
    /// The fields this read checks, for a message (`value, conflicted`).
    fn checks(&self) -> Vec<&'static str> {
        [
            ("exists", self.exists.is_some()),
            ("value", self.value.is_some()),
            ("tombstone", self.tombstone.is_some()),
            ("conflicted", self.conflicted.is_some()),
            ("heads", self.heads.is_some()),
            ("conflicts", self.conflicts.is_some()),
            ("log", self.log.is_some()),
            ("entries", self.entries.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }

    /// Checks the read's shape for `store_type` as an expectation (`after` aside): the fields the
    /// type reads, at least one check, text that decodes. The error says what is wrong.
    pub fn check_shape(&self, store_type: &str) -> Result<(), String> {
        let allowed: &[&str] = match store_type {
            kvstore::STORE_TYPE => &["exists", "value", "tombstone", "conflicted", "heads"],
            kvstore_v2::STORE_TYPE => &["exists", "value", "conflicts"],
            logstore::STORE_TYPE => &["log", "entries"],
            other => return Err(format!("expected reads are defined for core:kvstore, core:kvstore-v2 and core:logstore, not `{other}`")),
        };
        let keyed = store_type != logstore::STORE_TYPE;
        if self.key.is_some() && !keyed {
            return Err(format!("`key` given, but a {store_type} read is of the whole log"));
        }
        let checks = self.checks();
        if let Some(bad) = checks.iter().find(|c| !allowed.contains(c)) {
            return Err(format!("`{bad}` is not a read of {store_type} (it reads {})", allowed.join(", ")));
        }
        if self.key.is_none() && keyed {
            return Err(format!("no `key`: a {store_type} read names the key it reads"));
        }
        if checks.is_empty() {
            return Err(format!("checks nothing (give at least one of {})", allowed.join(", ")));
        }
        for t in self.key.iter().chain(self.value.iter().flatten()).chain(self.log.iter().flatten()) {
            bytes(t)?;
        }
        Ok(())
    }

    /// This read with its text in the writers' form (§10.10), so equal reads are equal bytes.
    pub fn canonical(&self) -> Read {
        let canon = |t: &String| bytes(t).map(|b| text(&b)).unwrap_or_else(|_| t.clone());
        Read {
            key: self.key.as_ref().map(canon),
            value: self.value.as_ref().map(|v| v.as_ref().map(canon)),
            log: self.log.as_ref().map(|l| l.iter().map(canon).collect()),
            ..self.clone()
        }
    }

    /// One line: what this read says (`"color": "blue", not conflicted, 1 head`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = &self.key {
            parts.push(format!("{}:", show(bytes(k).ok().as_deref())));
        }
        if self.exists == Some(false) {
            parts.push("no row".into());
        }
        if let Some(v) = &self.value {
            parts.push(show(v.as_ref().and_then(|t| bytes(t).ok()).as_deref()));
        }
        if self.tombstone == Some(true) {
            parts.push("tombstone".into());
        }
        match self.conflicted {
            Some(true) => parts.push("conflicted".into()),
            Some(false) if self.key.is_some() && self.exists != Some(false) => parts.push("not conflicted".into()),
            _ => {}
        }
        if let Some(h) = self.heads {
            parts.push(format!("{h} head{}", if h == 1 { "" } else { "s" }));
        }
        if let Some(c) = self.conflicts {
            parts.push(format!("{c} conflicts"));
        }
        if let Some(log) = &self.log {
            let shown: Vec<String> = log.iter().map(|t| show(bytes(t).ok().as_deref())).collect();
            parts.push(format!("log [{}]", shown.join(", ")));
        }
        if let Some(n) = self.entries {
            parts.push(format!("{n} entries"));
        }
        parts.join(" ")
    }
}

/// What a reader sees of one key, decoded from its view (§8.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyRead {
    exists: bool,
    value: Option<Vec<u8>>,
    tombstone: bool,
    conflicted: bool,
    heads: u32,
    conflicts: u32,
}

/// Decodes a key's view; a view that does not decode for the type is named.
fn key_read(store_type: &str, view: Option<&[u8]>) -> Result<KeyRead, String> {
    let Some(v) = view else { return Ok(KeyRead::default()) };
    let bad = || format!("a view of {} bytes that does not decode as a {store_type} view (FORMAT §8.5)", v.len());
    let u32_at = |at: usize| v.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    if store_type == kvstore_v2::STORE_TYPE {
        let len = u32_at(0).ok_or_else(bad)? as usize;
        let value = v.get(4..4 + len).ok_or_else(bad)?.to_vec();
        let conflicts = u32_at(4 + len).ok_or_else(bad)?;
        if v.len() != 8 + len {
            return Err(bad());
        }
        return Ok(KeyRead { exists: true, value: Some(value), conflicts, ..KeyRead::default() });
    }
    let (value, at) = match v.first() {
        Some(1) => {
            let len = u32_at(1).ok_or_else(bad)? as usize;
            (Some(v.get(5..5 + len).ok_or_else(bad)?.to_vec()), 5 + len)
        }
        Some(0 | 2) => (None, 1),
        _ => return Err(bad()),
    };
    let conflicted = match v.get(at) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(bad()),
    };
    let heads = u32_at(at + 1).ok_or_else(bad)?;
    if v.len() as u64 != (at + 5) as u64 + 32 * u64::from(heads) {
        return Err(bad());
    }
    Ok(KeyRead { exists: true, value, tombstone: v[0] == 2, conflicted, heads, conflicts: 0 })
}

/// Checks `expect` against the views a build shows; every field that differs, as
/// `value: expected "blue", got "red"`.
pub fn check(store_type: &str, expect: &Read, views: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, expected: String, got: String| {
        if expected != got {
            out.push(format!("{what}: expected {expected}, got {got}"));
        }
    };
    if store_type == logstore::STORE_TYPE {
        if let Some(log) = &expect.log {
            let expected: Vec<String> = log.iter().map(|t| show(bytes(t).ok().as_deref())).collect();
            let got: Vec<String> = views.values().map(|c| show(Some(c))).collect();
            differ("log", format!("[{}]", expected.join(", ")), format!("[{}]", got.join(", ")));
        }
        if let Some(n) = expect.entries {
            differ("entries", n.to_string(), views.len().to_string());
        }
        return out;
    }
    let key = expect.key.as_deref().and_then(|k| bytes(k).ok()).unwrap_or_default();
    let seen = match key_read(store_type, views.get(&key).map(Vec::as_slice)) {
        Ok(seen) => seen,
        Err(e) => return vec![e],
    };
    if let Some(x) = expect.exists {
        differ("exists", x.to_string(), seen.exists.to_string());
    }
    if let Some(v) = &expect.value {
        let expected = v.as_ref().and_then(|t| bytes(t).ok());
        differ("value", show(expected.as_deref()), show(seen.value.as_deref()));
    }
    if let Some(x) = expect.tombstone {
        differ("tombstone", x.to_string(), seen.tombstone.to_string());
    }
    if let Some(x) = expect.conflicted {
        differ("conflicted", x.to_string(), seen.conflicted.to_string());
    }
    if let Some(n) = expect.heads {
        differ("heads", n.to_string(), seen.heads.to_string());
    }
    if let Some(n) = expect.conflicts {
        differ("conflicts", n.to_string(), seen.conflicts.to_string());
    }
    out
}

/// The reads of a whole end state, for a golden (§12.2): one per seen key of a kvstore type,
/// every field of the type filled; for `core:logstore` one read of the whole log. `None` when the
/// state is over the size limits, a view does not decode, or the type is not one of the three.
pub fn reads_of(store_type: &str, views: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<Vec<Read>> {
    let size: usize = views.iter().map(|(k, v)| k.len() + v.len()).sum();
    if views.len() > GOLDEN_READS_MAX_ROWS || size > GOLDEN_READS_MAX_BYTES {
        return None;
    }
    match store_type {
        logstore::STORE_TYPE => {
            Some(vec![Read { log: Some(views.values().map(|c| text(c)).collect()), entries: Some(views.len() as u64), ..Read::default() }])
        }
        kvstore::STORE_TYPE | kvstore_v2::STORE_TYPE => views
            .iter()
            .map(|(k, v)| {
                let seen = key_read(store_type, Some(v)).ok()?;
                let v2 = store_type == kvstore_v2::STORE_TYPE;
                Some(Read {
                    key: Some(text(k)),
                    value: Some(seen.value.as_deref().map(text)),
                    tombstone: (!v2).then_some(seen.tombstone),
                    conflicted: (!v2).then_some(seen.conflicted),
                    heads: (!v2).then_some(seen.heads),
                    conflicts: v2.then_some(seen.conflicts),
                    ..Read::default()
                })
            })
            .collect(),
        _ => None,
    }
}

/// The review lines for a change of a golden's reads: one per key whose read changed, appeared
/// or went (`read "color": "blue" 1 head → "red" conflicted 2 heads`).
pub fn diff_reads(old: Option<&[Read]>, new: Option<&[Read]>) -> Vec<String> {
    let keyed = |r: Option<&[Read]>| -> BTreeMap<String, String> {
        r.unwrap_or_default().iter().map(|r| (r.key.clone().unwrap_or_else(|| "log".into()), r.describe())).collect()
    };
    let (a, b) = (keyed(old), keyed(new));
    let mut out = Vec::new();
    for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => out.push(format!("read {x} → {}", strip_key(y))),
            (Some(x), None) => out.push(format!("read {x} → (no row)")),
            (None, Some(y)) => out.push(format!("read (new) {y}")),
            _ => {}
        }
    }
    if old.is_some() != new.is_some() && out.is_empty() {
        out.push(format!("reads {}", if new.is_some() { "now recorded" } else { "no longer recorded (over the size limit)" }));
    }
    out
}

fn strip_key(described: &str) -> &str {
    described.split_once(": ").map_or(described, |(_, rest)| rest)
}

/// The expectations of a history, checked against its op count and delivery plan: `after` set,
/// at most the op count (0: a read of the empty store), ascending, not inside a batch; shapes valid for the type.
/// `batches` are the plan's batches as (start, len).
pub fn check_list(expect: &[Read], store_type: &str, batches: &[(u64, u64)], ops: Option<u64>) -> Result<(), String> {
    let mut last = 0u64;
    for (i, e) in expect.iter().enumerate() {
        let at = |why: String| format!("expect[{i}]: {why}");
        let after = e.after.ok_or_else(|| at("no `after` (the number of ops delivered before the read)".into()))?;
        if after < last {
            return Err(at(format!("`after` {after} is below the expectation before it ({last}); list them in delivery order")));
        }
        last = after;
        if let Some((start, len)) = batches.iter().find(|(start, len)| *start < after && after < start + len) {
            return Err(at(format!("after {after} ops falls inside the batch of ops {start} to {}", start + len - 1)));
        }
        if let Some(n) = ops.filter(|n| after > *n) {
            return Err(at(format!("after {after} ops, but the history has {n} ops")));
        }
        e.check_shape(store_type).map_err(at)?;
    }
    Ok(())
}

/// An expectation a build does not meet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unmet {
    /// Its index in the history's `expect` list.
    pub index: u64,
    /// Ops delivered when it was read.
    pub after: u64,
    /// What it expects (*informative*).
    pub expected: String,
    /// Each field that differs: `value: expected "blue", got "red"` (*informative*).
    pub differences: Vec<String>,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expect[{}] after {} ops ({}): {}", self.index, self.after, self.expected, self.differences.join("; "))
    }
}

/// The points (op counts) at which `expect` reads, ascending, each once.
pub fn stops(expect: &[Read]) -> Vec<u64> {
    let mut s: Vec<u64> = expect.iter().filter_map(|e| e.after).collect();
    s.dedup();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv_view(value: Option<&[u8]>, tomb: bool, heads: usize) -> Vec<u8> {
        let seen = kvstore::Inspect {
            exists: true,
            value: value.map(<[u8]>::to_vec),
            tombstone: tomb,
            conflicted: heads > 1,
            heads: (0..heads).map(|i| [i as u8; 32]).collect(),
        };
        kvstore::view(&seen)
    }

    #[test]
    fn a_kv_read_is_checked_field_by_field_from_the_view() {
        let mut views = BTreeMap::new();
        views.insert(b"color".to_vec(), kv_view(Some(b"red"), false, 2));
        views.insert(b"gone".to_vec(), kv_view(None, true, 1));
        let want = Read { key: Some("color".into()), value: Some(Some("blue".into())), conflicted: Some(false), ..Read::default() };
        assert_eq!(
            check(kvstore::STORE_TYPE, &want, &views),
            vec!["value: expected \"blue\", got \"red\"".to_string(), "conflicted: expected false, got true".to_string()]
        );
        let tomb = Read { key: Some("gone".into()), value: Some(None), tombstone: Some(true), heads: Some(1), ..Read::default() };
        assert!(check(kvstore::STORE_TYPE, &tomb, &views).is_empty());
        let absent = Read { key: Some("hex:00".into()), exists: Some(false), value: Some(None), ..Read::default() };
        assert!(check(kvstore::STORE_TYPE, &absent, &views).is_empty());
        // A view cut short is named, not read as some value.
        views.insert(b"cut".to_vec(), kv_view(Some(b"x"), false, 1)[..7].to_vec());
        let cut = Read { key: Some("cut".into()), exists: Some(true), ..Read::default() };
        assert!(check(kvstore::STORE_TYPE, &cut, &views)[0].contains("does not decode"), "{:?}", check(kvstore::STORE_TYPE, &cut, &views));
    }

    #[test]
    fn shapes_are_checked_per_store_type() {
        let r = |f: fn(&mut Read)| {
            let mut r = Read { key: Some("k".into()), ..Read::default() };
            f(&mut r);
            r
        };
        assert!(r(|r| r.heads = Some(1)).check_shape(kvstore::STORE_TYPE).is_ok());
        assert!(r(|r| r.heads = Some(1)).check_shape(kvstore_v2::STORE_TYPE).unwrap_err().contains("`heads` is not a read"));
        assert!(r(|_| {}).check_shape(kvstore::STORE_TYPE).unwrap_err().contains("checks nothing"));
        assert!(r(|r| r.entries = Some(1)).check_shape(logstore::STORE_TYPE).is_err());
        let log = Read { entries: Some(2), ..Read::default() };
        assert!(log.check_shape(logstore::STORE_TYPE).is_ok());
        assert!(log.check_shape("acme:thing").unwrap_err().contains("not `acme:thing`"));
        assert!(r(|r| r.value = Some(Some("hex:zz".into()))).check_shape(kvstore::STORE_TYPE).is_err());
    }

    #[test]
    fn null_and_missing_values_are_told_apart_and_text_round_trips() {
        let null: Read = serde_json::from_str(r#"{"after":1,"key":"k","value":null}"#).unwrap();
        assert_eq!(null.value, Some(None));
        let missing: Read = serde_json::from_str(r#"{"after":1,"key":"k","exists":true}"#).unwrap();
        assert_eq!(missing.value, None);
        assert_eq!(serde_json::to_string(&null).unwrap(), r#"{"after":1,"key":"k","value":null}"#);
        for b in [&b"blue"[..], b"hex:x", b"\n", &[0xff, 0], b""] {
            assert_eq!(bytes(&text(b)).unwrap(), b);
        }
        assert_eq!(text(b"hex:x"), "hex:6865783a78");
    }

    #[test]
    fn golden_reads_fill_every_field_and_diff_by_key() {
        let mut views = BTreeMap::new();
        views.insert(b"a".to_vec(), kv_view(Some(b"1"), false, 1));
        let old = reads_of(kvstore::STORE_TYPE, &views).unwrap();
        assert_eq!(old[0].describe(), "\"a\": \"1\" not conflicted 1 head");
        views.insert(b"a".to_vec(), kv_view(Some(b"2"), false, 2));
        views.insert(b"b".to_vec(), kv_view(None, true, 1));
        let new = reads_of(kvstore::STORE_TYPE, &views).unwrap();
        assert_eq!(
            diff_reads(Some(&old), Some(&new)),
            vec![
                "read \"a\": \"1\" not conflicted 1 head → \"2\" conflicted 2 heads".to_string(),
                "read (new) \"b\": no value tombstone not conflicted 1 head".to_string()
            ]
        );
        for i in 0..=GOLDEN_READS_MAX_ROWS {
            views.insert(format!("k{i}").into_bytes(), kv_view(Some(b"v"), false, 1));
        }
        assert_eq!(reads_of(kvstore::STORE_TYPE, &views), None);
    }
}
