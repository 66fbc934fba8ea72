//! History files: a store's identity and its ops, in two forms with one meaning.
//!
//! - **JSON** (`format_version` 1, docs/FORMAT.md §10.1–§10.5): every field explicit, the
//!   human-readable interchange and review form. A corpus history also records its provenance,
//!   and small payloads carry a decoded form beside the hex, which must agree with the hex.
//! - **Binary** (`.lch`, §10.6, [`binary`]): a header and the ops' canonical encodings, length-
//!   prefixed, with a trailing digest; for large recorded and generated histories.
//!
//! Both are read as a stream ([`open`] → [`OpStream`]) and written as one ([`HistoryWriter`]), so
//! memory does not grow with the history; [`History`] is the whole history in memory, for the
//! small ones (certify's mutations, the Lattice scenarios). Errors name the op index and field
//! (JSON) or the byte offset and op index (binary); a newer format version is refused as such.

mod binary;
mod json;
mod plan;
mod shapes;
mod stream;
mod whole;
mod writer;

pub use plan::{Batch, Delivery, Step, Walk};

pub use binary::{BINARY_VERSION, MAGIC, MAX_OP, MIN_OP};
pub use shapes::hash32;
use shapes::{op_json, parse_op, OpJson};
use stream::HashingReader;
pub use stream::{open, Finished, OpStream};
pub use writer::{write, HistoryWriter, Written};

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::expect::Read as ExpectedRead;
use crate::op::Op;
use crate::store::StoreIdentity;

/// The `format` tag every history file carries.
pub const FORMAT_TAG: &str = "lattice-conform/history";
/// The newest history format version this build reads and writes: 2 adds the delivery plan
/// (§10.9), 3 the expected reads (§10.10). A history is written in the oldest version that holds
/// it, so a history without either keeps the bytes it had.
pub const FORMAT_VERSION: u32 = 3;

/// The version a history with this plan and these expectations is written in.
pub fn version_for(delivery: &Delivery, expect: &[ExpectedRead]) -> u32 {
    if !expect.is_empty() {
        3
    } else if delivery.is_plain() {
        1
    } else {
        2
    }
}

/// A loaded, checked history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
    /// How the history was made; `None` for hand-written ones.
    pub provenance: Option<Provenance>,
    /// Batches and restarts (§10.9); empty: every op delivered on its own.
    pub delivery: Delivery,
    /// Expected reads (§10.10), checked by `verify` for every build.
    pub expect: Vec<ExpectedRead>,
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
    #[error("{path}: a directory, not a history file{}", if *.store { " (it is a store directory; `lattice-conform record` exports a store's log as a history)" } else { "" })]
    IsADirectory { path: PathBuf, store: bool },
    #[error("{path}: no such history file")]
    NotFound { path: PathBuf },
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
    #[error("{path}: {reason}")]
    BadDelivery { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadExpect { path: PathBuf, reason: String },
    #[error("{path}: {}at byte {offset}: {reason}", op.map(|i| format!("op {i}, ")).unwrap_or_default())]
    Binary { path: PathBuf, offset: u64, op: Option<u64>, reason: String },
    #[error("{path}: the history reader stopped without a result (a bug: please report it)")]
    ReaderLost { path: PathBuf },
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unknown history form `{ext}`: name a history `*.json` (JSON) or `*.lch` (binary), or pass `--format`")]
    UnknownForm { path: PathBuf, ext: String },
}

/// Everything in a history but its ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub store_id: Uuid,
    pub store_type: String,
    pub schema_version: u64,
    pub provenance: Option<Provenance>,
    /// Batches and restarts (§10.9).
    pub delivery: Delivery,
    /// Expected reads (§10.10).
    pub expect: Vec<ExpectedRead>,
}

impl Header {
    /// The identity of the store the history belongs to.
    pub fn identity(&self) -> StoreIdentity {
        StoreIdentity { store_id: self.store_id, store_type: self.store_type.clone(), schema_version: self.schema_version }
    }

    /// The header of a history of the store `id` (no provenance).
    pub fn of(id: &StoreIdentity) -> Header {
        Header {
            store_id: id.store_id,
            store_type: id.store_type.clone(),
            schema_version: id.schema_version,
            provenance: None,
            delivery: Delivery::default(),
            expect: Vec::new(),
        }
    }
}

/// The two forms of a history file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// JSON (§10.1), `*.json`.
    Json,
    /// Binary (§10.6), `*.lch`.
    #[value(name = "bin")]
    Binary,
}

impl Form {
    /// The form a file name asks for: `*.lch` is binary, `*.json` JSON; anything else is an error
    /// unless `default` is given.
    pub fn for_path(path: &Path, default: Option<Form>) -> Result<Form, HistoryError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("lch") => Ok(Form::Binary),
            Some("json") => Ok(Form::Json),
            other => default.ok_or_else(|| HistoryError::UnknownForm { path: path.to_path_buf(), ext: other.unwrap_or("").to_string() }),
        }
    }

    /// The file extension of this form, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Form::Json => "json",
            Form::Binary => "lch",
        }
    }

    /// The form of a history file whose bytes begin with `head` (§10.6: the binary form's first
    /// byte is its magic's, which no JSON document starts with); the one place that tells them apart.
    pub fn of_bytes(head: &[u8]) -> Form {
        if head.first() == Some(&MAGIC[0]) {
            Form::Binary
        } else {
            Form::Json
        }
    }
}

/// The form of the history file at `path`, from its first byte ([`Form::of_bytes`]).
pub fn form_of(path: &Path) -> std::io::Result<Form> {
    let mut first = [0u8; 1];
    let n = std::fs::File::open(path)?.read(&mut first)?;
    Ok(Form::of_bytes(&first[..n]))
}

/// Refuses a history path that cannot be a history file, in words rather than an OS error: a
/// directory (a store directory said so) or nothing at all (docs/FORMAT.md §10.2).
pub fn check_path(path: &Path) -> Result<(), HistoryError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let store = ["state.db", "log.db"].iter().any(|f| path.join(f).is_file());
            Err(HistoryError::IsADirectory { path: path.to_path_buf(), store })
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HistoryError::NotFound { path: path.to_path_buf() }),
        Err(source) => Err(HistoryError::Io { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{op_id, Hlc};
    use crate::versioned::VersionError;

    fn sample() -> History {
        let op = Op { author: [3; 32], hlc: Hlc { wall_ms: 5, counter: 1 }, prev: [0; 32], causal_deps: vec![], payload: vec![0xab] };
        History {
            store_id: Uuid::from_bytes([9; 16]),
            store_type: "core:logstore".into(),
            schema_version: 1,
            provenance: None,
            delivery: Delivery::default(),
            expect: Vec::new(),
            ops: vec![op],
        }
    }

    /// Bad inputs tried: `delivery` in a version-1 file, after `ops`, naming ops past the end,
    /// and overlapping batches; a good plan round-trips through both forms as version 2.
    #[test]
    fn a_delivery_plan_is_version_2_in_both_forms_and_bad_plans_are_named() {
        let mut h = with_provenance(4);
        let plain_json = h.to_json();
        assert!(plain_json.contains("\"format_version\": 1"));
        h.delivery = Delivery { batches: vec![Batch { start: 1, len: 2 }], restarts: vec![3] };
        let json = h.to_json();
        assert!(json.contains("\"format_version\": 2") && json.contains("\"delivery\""), "{json}");
        assert_eq!(History::parse(&json, Path::new("h.json")).unwrap(), h);
        let bin = h.to_binary();
        assert_eq!(u32::from_le_bytes(bin[8..12].try_into().unwrap()), 2);
        assert_eq!(History::from_bytes(bin, Path::new("h.lch")).unwrap(), h);
        let v1 = json.replace("\"format_version\": 2", "\"format_version\": 1");
        let e = History::parse(&v1, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("`delivery` needs \"format_version\": 2"), "{e}");
        let past = json.replace("\"restarts\": [\n      3\n    ]", "\"restarts\": [\n      9\n    ]");
        assert_ne!(past, json);
        let e = History::parse(&past, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("delivery.restarts[0]: a restart before op 9 but the history has 4 ops"), "{e}");
        let overlap = json.replace("\"restarts\": [\n      3\n    ]", "\"restarts\": [\n      2\n    ]");
        let e = History::parse(&overlap, Path::new("h.json")).unwrap_err().to_string();
        assert!(e.contains("falls inside the batch of ops 1 to 2"), "{e}");
    }

    fn with_provenance(ops: usize) -> History {
        let mut h = sample();
        h.provenance =
            Some(Provenance { generator: "g/1".into(), seed: 3, scenario: "s".into(), index: 0, ops: 2, tags: vec!["t".into()] });
        let op = h.ops[0].clone();
        h.ops = (0..ops as u64).map(|i| Op { hlc: Hlc { wall_ms: i, counter: 0 }, ..op.clone() }).collect();
        h
    }

    #[test]
    fn streamed_writes_are_byte_for_byte_the_whole_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 3] {
            let h = with_provenance(n);
            for form in [Form::Json, Form::Binary] {
                let path = dir.path().join(format!("h{n}.{}", form.extension()));
                let written = write(&path, form, &h).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                let whole = if form == Form::Json { h.to_json().into_bytes() } else { h.to_binary() };
                assert_eq!(bytes, whole, "{n} ops, {form:?}");
                assert_eq!(written.blake3, blake3::hash(&bytes).to_hex().to_string());
                assert_eq!(History::load(&path).unwrap(), h, "{n} ops, {form:?}");
                let finished = open(&path).unwrap().finish().unwrap();
                assert_eq!((finished.ops, finished.blake3), (n as u64, written.blake3));
            }
        }
    }

    #[test]
    fn a_binary_writer_that_ends_with_another_count_patches_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let h = with_provenance(3);
        let path = dir.path().join("h.lch");
        let mut w = HistoryWriter::create(&path, Form::Binary, &h.header(), 10).unwrap();
        for op in &h.ops {
            w.push(op).unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), h.to_binary());
        assert_eq!(written.blake3, blake3::hash(&h.to_binary()).to_hex().to_string());
    }

    #[test]
    fn every_damaged_binary_history_is_refused_with_its_offset() {
        let good = with_provenance(3).to_binary();
        let p = Path::new("h.lch");
        // Every truncation (bad input: the file cut at each length).
        for len in 1..good.len() {
            let err = History::from_bytes(good[..len].to_vec(), p).unwrap_err();
            assert!(matches!(err, HistoryError::Binary { .. }), "cut at {len}: {err}");
            assert!(err.to_string().contains("truncated") || err.to_string().contains("not a binary"), "cut at {len}: {err}");
        }
        // Every single-bit flip (bad input: one corrupted bit anywhere).
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(History::from_bytes(bad, p).is_err(), "a flipped bit at byte {i} was accepted");
        }
        // An extra byte after the trailer (bad input: an over-long file).
        let mut long = good.clone();
        long.push(0);
        let err = History::from_bytes(long, p).unwrap_err().to_string();
        assert!(err.contains(&format!("at byte {}", good.len())) && err.contains("bytes follow the trailing digest"), "{err}");
        // A length prefix beyond the longest valid op (bad input: a huge length) is refused before
        // anything is allocated for it.
        let mut huge = good.clone();
        let first_op = 16 + u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
        huge[first_op..first_op + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = History::from_bytes(huge, p).unwrap_err().to_string();
        assert_eq!(err, format!("h.lch: op 0, at byte {first_op}: length 4294967295 is outside 85..={MAX_OP}, the sizes of a valid op"));
    }

    #[test]
    fn json_whose_ops_come_before_the_header_still_loads() {
        let h = sample();
        let v: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
        let reordered = format!(
            "{{\"ops\": {}, \"store_type\": {}, \"schema_version\": 1, \"store_id\": {}, \"format_version\": 1, \"format\": {}}}",
            v["ops"], v["store_type"], v["store_id"], v["format"]
        );
        assert_eq!(History::parse(&reordered, Path::new("h")).unwrap(), h);
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

    /// Expected reads make a history version 3 in both forms and round-trip; bad ones are named
    /// with their index: past the last op, out of order, inside a batch, a field of another type,
    /// `expect` in a version-2 file or after `ops`, and a version-3 binary header with none.
    #[test]
    fn expected_reads_are_version_3_in_both_forms_and_bad_ones_are_named() {
        use crate::expect::Read;
        let mut h = sample();
        h.expect = vec![Read { after: Some(1), log: Some(vec!["hex:ab".into()]), entries: Some(1), ..Read::default() }];
        let json = h.to_json();
        assert!(json.contains("\"format_version\": 3"), "{json}");
        assert_eq!(History::parse(&json, Path::new("h")).unwrap(), h);
        assert_eq!(History::from_bytes(h.to_binary(), Path::new("h.lch")).unwrap(), h);
        assert_eq!(u32::from_le_bytes(h.to_binary()[8..12].try_into().unwrap()), 3, "binary version 3");
        let bad = |from: &str, to: &str| {
            assert!(json.contains(from), "{from}");
            History::parse(&json.replacen(from, to, 1), Path::new("h")).unwrap_err().to_string()
        };
        let err = bad("\"after\": 1", "\"after\": 2");
        assert!(err.contains("expect[0]: after 2 ops, but the history has 1 ops"), "{err}");
        let err = bad("\"entries\": 1", "\"entries\": 1, \"conflicts\": 1");
        assert!(err.contains("expect[0]: `conflicts` is not a read of core:logstore"), "{err}");
        let err = bad("\"format_version\": 3", "\"format_version\": 2");
        assert!(err.contains("`expect` needs \"format_version\": 3"), "{err}");
        let err = bad("\"expect\": [", "\"expect\": [{\"after\": 1, \"entries\": 1}, {\"after\": 0, \"entries\": 0},");
        assert!(err.contains("expect[1]: `after` 0 is below the expectation before it (1)"), "{err}");
        // A version-3 binary header must hold reads.
        let mut plain = sample();
        plain.expect.clear();
        let mut bin = plain.to_binary();
        bin[8..12].copy_from_slice(&3u32.to_le_bytes());
        let err = History::from_bytes(bin, Path::new("h.lch")).unwrap_err().to_string();
        assert!(err.contains("ends inside the delivery plan") || err.contains("cut short"), "{err}");
    }

    #[test]
    fn stated_id_must_match_and_newer_formats_are_refused() {
        let text = sample().to_json();
        let tampered = text.replace("\"payload\": \"ab\"", "\"payload\": \"ac\"");
        assert!(matches!(History::parse(&tampered, Path::new("h")), Err(HistoryError::BadOp { field: "decoded", .. })));
        let mut v: serde_json::Value = serde_json::from_str(&tampered).unwrap();
        v["ops"][0].as_object_mut().unwrap().remove("decoded");
        assert!(matches!(History::parse(&v.to_string(), Path::new("h")), Err(HistoryError::BadOp { field: "id", .. })));
        let newer = text.replace("\"format_version\": 1", "\"format_version\": 4, \"new_field\": true");
        assert!(matches!(History::parse(&newer, Path::new("h")), Err(HistoryError::Version(VersionError::TooNew { found: 4, .. }))));
        let id = op_id(&Uuid::from_bytes([9; 16]), &sample().ops[0]);
        let upper = text.replace(&hex::encode(id), &hex::encode_upper(id));
        assert_eq!(History::parse(&upper, Path::new("h")).unwrap(), sample(), "hex is case-insensitive, `id` included");
    }
}
