//! Decoded views of `data` rows for people: `dump`, and later key-level diffs.
//!
//! A row of a reference type decodes into its logical meaning (a kvstore key's stored winner and
//! heads; a logstore entry's wall time, author and content). A row of any other type, or one
//! that does not decode, is shown raw — decoding never fails.

use lattice_logic::{kvstore, kvstore_v2, logstore};
use serde::Serialize;

/// One `data` row, decoded as far as its store type allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecodedRow {
    /// A kvstore key: the winner's value (`null` for a tombstone) and the heads, winner first.
    KvKey { key: Bytes, value: Option<Bytes>, tombstone: bool, heads: Vec<String> },
    /// A kvstore-v2 key: its value (`null` when removed), version and conflict count.
    KvV2Key { key: Bytes, value: Option<Bytes>, version: u64, conflicts: u32, wall_ms: u64, counter: u32, author: String },
    /// A logstore entry.
    LogEntry { wall_ms: u64, author: String, content: Bytes },
    /// Anything else: the raw key and value.
    Raw { key: Bytes, value: Bytes },
}

/// Bytes shown as hex, plus UTF-8 text when they are printable text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Bytes {
    pub hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utf8: Option<String>,
}

impl Bytes {
    pub fn new(b: &[u8]) -> Bytes {
        let utf8 = std::str::from_utf8(b).ok().filter(|s| s.chars().all(|c| !c.is_control())).map(str::to_string);
        Bytes { hex: hex::encode(b), utf8 }
    }
}

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.utf8 {
            Some(s) if s.len() <= 64 => write!(f, "{s:?}"),
            _ if self.hex.len() > 64 => write!(f, "0x{}… ({} bytes)", &self.hex[..64], self.hex.len() / 2),
            _ => write!(f, "0x{}", self.hex),
        }
    }
}

/// Whether [`decode_payload`] knows `store_type`. A `decoded` form in a history of another type
/// cannot be checked and is kept as the reader's note.
pub fn has_payload_decoder(store_type: &str) -> bool {
    matches!(store_type, kvstore::STORE_TYPE | logstore::STORE_TYPE | kvstore_v2::STORE_TYPE)
}

/// The decoded form of an op's payload, for readers: kvstore entries or a logstore entry's bytes.
/// `None` for other types and for payloads that do not decode.
pub fn decode_payload(store_type: &str, payload: &[u8]) -> Option<serde_json::Value> {
    match store_type {
        kvstore::STORE_TYPE => {
            let entries = kvstore::decode_payload(payload).ok()?;
            Some(serde_json::Value::Array(entries.iter().map(entry_json).collect()))
        }
        logstore::STORE_TYPE => serde_json::to_value(Bytes::new(payload)).ok(),
        kvstore_v2::STORE_TYPE => {
            let entries = kvstore_v2::decode_payload(payload).ok()?;
            Some(serde_json::Value::Array(entries.iter().map(v2_entry_json).collect()))
        }
        _ => None,
    }
}

fn entry_json(e: &kvstore::Entry) -> serde_json::Value {
    match e {
        kvstore::Entry::Put { key, value } => serde_json::json!({ "put": { "key": Bytes::new(key), "value": Bytes::new(value) } }),
        kvstore::Entry::Delete { key } => serde_json::json!({ "delete": { "key": Bytes::new(key) } }),
    }
}

fn v2_entry_json(e: &kvstore_v2::Entry) -> serde_json::Value {
    match e {
        kvstore_v2::Entry::Set { key, value, conflicts } => {
            serde_json::json!({ "set": { "key": Bytes::new(key), "value": Bytes::new(value), "conflicts": conflicts } })
        }
        kvstore_v2::Entry::Remove { key } => serde_json::json!({ "remove": { "key": Bytes::new(key) } }),
    }
}

/// Decodes a row of a store of `store_type`.
pub fn decode_row(store_type: &str, key: &[u8], value: &[u8]) -> DecodedRow {
    let raw = || DecodedRow::Raw { key: Bytes::new(key), value: Bytes::new(value) };
    match store_type {
        kvstore::STORE_TYPE => kv_row(key, value).unwrap_or_else(raw),
        logstore::STORE_TYPE => log_row(key, value).unwrap_or_else(raw),
        kvstore_v2::STORE_TYPE => v2_row(key, value).unwrap_or_else(raw),
        _ => raw(),
    }
}

fn kv_row(key: &[u8], value: &[u8]) -> Option<DecodedRow> {
    let seen = kvstore::inspect(Some(value)).ok()?;
    Some(DecodedRow::KvKey {
        key: Bytes::new(key),
        value: seen.value.as_deref().map(Bytes::new),
        tombstone: seen.tombstone,
        heads: seen.heads.iter().map(hex::encode).collect(),
    })
}

fn v2_row(key: &[u8], value: &[u8]) -> Option<DecodedRow> {
    let r = kvstore_v2::decode_row(value)?;
    Some(DecodedRow::KvV2Key {
        key: Bytes::new(key),
        value: r.value.as_deref().map(Bytes::new),
        version: r.version,
        conflicts: r.conflicts,
        wall_ms: r.hlc.wall_ms,
        counter: r.hlc.counter,
        author: hex::encode(r.author),
    })
}

fn log_row(key: &[u8], value: &[u8]) -> Option<DecodedRow> {
    let (wall_ms, author) = logstore::parse_entry_key(key)?;
    let content = logstore::decode_entry(value)?;
    Some(DecodedRow::LogEntry { wall_ms, author: hex::encode(author), content: Bytes::new(content) })
}

/// What a reader sees of one key (a view, docs/FORMAT.md "Observed state"), decoded as far as its
/// store type allows; anything else (a view that does not decode, or the marker of a row the
/// build could not view) is shown raw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecodedView {
    /// A kvstore read: value (or `null`), tombstone, conflicted, and the heads as a set (sorted).
    KvRead {
        value: Option<Bytes>,
        tombstone: bool,
        conflicted: bool,
        heads: Vec<String>,
    },
    /// A logstore entry as read.
    LogRead {
        content: Bytes,
    },
    /// A kvstore-v2 read.
    KvV2Read {
        value: Bytes,
        conflicts: u32,
    },
    Raw {
        view: Bytes,
    },
}

/// Decodes a view of a store of `store_type`.
pub fn decode_view(store_type: &str, view: &[u8]) -> DecodedView {
    let raw = || DecodedView::Raw { view: Bytes::new(view) };
    match store_type {
        kvstore::STORE_TYPE => kv_view(view).unwrap_or_else(raw),
        logstore::STORE_TYPE => DecodedView::LogRead { content: Bytes::new(view) },
        kvstore_v2::STORE_TYPE => v2_view(view).unwrap_or_else(raw),
        _ => raw(),
    }
}

fn kv_view(view: &[u8]) -> Option<DecodedView> {
    let (&kind, rest) = view.split_first()?;
    let (value, rest) = match kind {
        1 => {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            (Some(Bytes::new(rest.get(4..4 + len)?)), &rest[4 + len..])
        }
        0 | 2 => (None, rest),
        _ => return None,
    };
    let (&conflicted, rest) = rest.split_first()?;
    let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let heads = rest.get(4..)?;
    if heads.len() != 32 * n || conflicted > 1 {
        return None;
    }
    Some(DecodedView::KvRead {
        value,
        tombstone: kind == 2,
        conflicted: conflicted == 1,
        heads: heads.chunks(32).map(hex::encode).collect(),
    })
}

fn v2_view(view: &[u8]) -> Option<DecodedView> {
    let len = u32::from_le_bytes(view.get(..4)?.try_into().ok()?) as usize;
    let value = view.get(4..4 + len)?;
    let conflicts = u32::from_le_bytes(view.get(4 + len..)?.try_into().ok()?);
    Some(DecodedView::KvV2Read { value: Bytes::new(value), conflicts })
}

impl std::fmt::Display for DecodedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodedView::KvRead { value, tombstone, conflicted, heads } => {
                match (value, tombstone) {
                    (Some(v), _) => write!(f, "reads {v}")?,
                    (None, true) => write!(f, "reads nothing (deleted)")?,
                    (None, false) => write!(f, "reads nothing")?,
                }
                let shown: Vec<&str> = heads.iter().map(|h| &h[..h.len().min(16)]).collect();
                write!(f, ", conflicted: {conflicted}, heads {{{}}}", shown.join(", "))
            }
            DecodedView::LogRead { content } => write!(f, "entry {content}"),
            DecodedView::KvV2Read { value, conflicts } => write!(f, "reads {value} ({conflicts} conflicts)"),
            DecodedView::Raw { view } => write!(f, "view {view}"),
        }
    }
}

impl std::fmt::Display for DecodedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodedRow::KvKey { key, value, tombstone, heads } => {
                match (value, tombstone) {
                    (Some(v), _) => write!(f, "{key} = {v}")?,
                    (None, true) => write!(f, "{key} (deleted)")?,
                    (None, false) => write!(f, "{key} (no kind)")?,
                }
                if heads.len() > 1 {
                    let shown: Vec<&str> = heads.iter().map(|h| &h[..h.len().min(16)]).collect();
                    write!(f, "  [conflicted, {} heads: {}]", heads.len(), shown.join(", "))?;
                }
                Ok(())
            }
            DecodedRow::KvV2Key { key, value, version, conflicts, .. } => match value {
                Some(v) => write!(f, "{key} = {v}  (version {version}, {conflicts} conflicts)"),
                None => write!(f, "{key} (removed; version {version})"),
            },
            DecodedRow::LogEntry { wall_ms, author, content } => write!(f, "{wall_ms} author {}: {content}", &author[..16]),
            DecodedRow::Raw { key, value } => write!(f, "{key} => {value}"),
        }
    }
}
