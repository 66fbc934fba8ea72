//! The bad-input catalogue: every case is data (what is wrong, how to make it, the command, the
//! exit code and a fragment of the message), run through the real binary, checked to write
//! nothing it must not write, and rendered into `docs/BAD_INPUTS.md`, which this test keeps in
//! step with the cases: a difference fails the test (regenerate with
//! `UPDATE_BAD_INPUTS=1 cargo test --test integration bad_inputs`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use lattice_conform::hash::LtHash;
use lattice_conform::history::History;
use lattice_conform::registry::Registry;
use lattice_conform::{corpus, golden};
use redb::{Builder, ConcurrencyMode, TableDefinition};
use serde_json::{json, Value};

use crate::util::{
    digests, example, example_store, example_with_malformed_op, fresh_store, paused_store, run, tamper_first_data_row, tamper_str_table,
};

/// The document this test generates and checks.
const DOC: &str = "docs/BAD_INPUTS.md";
/// Set to `1` to write [`DOC`] instead of comparing it.
const UPDATE_ENV: &str = "UPDATE_BAD_INPUTS";

/// What kind of outside input a case gets wrong; one section of the document each, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Store,
    History,
    Corpus,
    Build,
    Certificate,
    Migration,
    Report,
    Args,
    Interrupted,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Store,
        Kind::History,
        Kind::Corpus,
        Kind::Build,
        Kind::Certificate,
        Kind::Migration,
        Kind::Report,
        Kind::Args,
        Kind::Interrupted,
    ];

    fn title(self) -> &'static str {
        match self {
            Kind::Store => "Store directories",
            Kind::History => "History files",
            Kind::Corpus => "Corpus, manifest and golden files",
            Kind::Build => "Build specs and Wasm modules",
            Kind::Certificate => "Certificates",
            Kind::Migration => "Migrations",
            Kind::Report => "Verify reports",
            Kind::Args => "Command-line arguments",
            Kind::Interrupted => "What an interrupted run left",
        }
    }

    fn blurb(self) -> &'static str {
        match self {
            Kind::Store => "`peek`, `open`, `dump` and `record` on a damaged or unusable store directory (docs/FORMAT.md §9); the store is left byte-identical.",
            Kind::History => "`apply` of a history file that does not load or does not fit the store (§10). Unless the case says otherwise, the target is the store of `examples/kv-example.json`, and it is left byte-identical.",
            Kind::Corpus => "`verify` and `bless` on a corpus of one history (the example, with its golden) whose manifest, history or golden is bad (§11, §12); nothing is written.",
            Kind::Build => "`--build` arguments that do not resolve to a usable build, and `wasm add` of modules that are not usable guests (docs/WASM_ABI.md); the cache is not created.",
            Kind::Certificate => "`certify --check` of a file that cannot be read or is not a certificate of a version this build reads (exit 2), or of a certificate that no longer holds (exit 1, §17.6).",
            Kind::Migration => "`migrate` from a source that cannot be used or to a destination that exists (§14.4); nothing is written.",
            Kind::Report => "`report merge` of verify reports that cannot be combined (§13.5).",
            Kind::Args => "Arguments the command line refuses before reading any input.",
            Kind::Interrupted => "What a killed run leaves behind, met by the next run (docs/FORMAT.md §18.7, §9.7): the next run removes it, says so in one line on standard error, and goes on. These runs write (that is their point); tests/integration/leftovers.rs kills real runs and compares the trees with uninterrupted ones.",
        }
    }
}

/// A prepared case: the arguments to run, and the store directories that must stay byte-identical.
struct Setup {
    args: Vec<OsString>,
    stores: Vec<PathBuf>,
    /// The Wasm cache the run gets as `LATTICE_WASM_CACHE` (none: the variable is unset).
    wasm_cache: Option<PathBuf>,
    /// The run's working directory (none: the test's).
    cwd: Option<PathBuf>,
}

impl Setup {
    fn new(args: Vec<OsString>) -> Setup {
        Setup { args, stores: Vec::new(), wasm_cache: None, cwd: None }
    }

    /// Runs in `dir`.
    fn in_dir(mut self, dir: &Path) -> Setup {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Runs with `LATTICE_WASM_CACHE` = `cache`.
    fn with_wasm_cache(mut self, cache: &Path) -> Setup {
        self.wasm_cache = Some(cache.to_path_buf());
        self
    }

    /// Also checks that `store` is byte-identical after the run.
    fn keeping(mut self, store: &Path) -> Setup {
        self.stores.push(store.to_path_buf());
        self
    }
}

/// One bad input.
struct Case {
    /// Short, unique, stable.
    id: &'static str,
    kind: Kind,
    /// Exactly what is wrong.
    what: &'static str,
    /// Builds the bad input under the temp dir and returns the command.
    setup: fn(&Path) -> Setup,
    exit: i32,
    /// Must occur in standard error.
    stderr: &'static str,
    /// Whether the run may write under the temp dir (an op rejected during apply pauses the store).
    writes: bool,
}

/// Arguments of mixed types (`&str`, `&Path`, `String`) as a `Vec<OsString>`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(OsString::from($a)),*] };
}

fn case(id: &'static str, kind: Kind, what: &'static str, exit: i32, stderr: &'static str, setup: fn(&Path) -> Setup) -> Case {
    Case { id, kind, what, setup, exit, stderr, writes: false }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- making bad inputs ------------------------------------------------------------------------

/// The example store, built at `tmp/store` and moved to `tmp/<name>`, to damage.
fn store_copy(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::rename(example_store(tmp), &dir).unwrap();
    dir
}

/// The example store damaged by `damage`, with the command `verb <store>` (plus `extra`).
fn damaged(tmp: &Path, verb: &str, extra: &[&str], damage: impl FnOnce(&Path)) -> Setup {
    let dir = store_copy(tmp, "damaged");
    damage(&dir);
    let mut a = args![verb, &dir];
    a.extend(extra.iter().map(OsString::from));
    Setup::new(a).keeping(&dir)
}

/// Sets one `meta` key of state.db (and, with `both`, the same key of log.db's `log_meta`).
fn set_meta(dir: &Path, key: &str, value: Option<&[u8]>, both: bool) {
    tamper_str_table(&dir.join("state.db"), "meta", key, value);
    if both {
        tamper_str_table(&dir.join("log.db"), "log_meta", key, value);
    }
}

/// Rewrites the store type in both files, with the stored state hash recomputed for the new type,
/// as a build that knows `store_type` would have written it.
fn retype(dir: &Path, store_type: &str) {
    set_meta(dir, "store_type", Some(store_type.as_bytes()), true);
    let db = Builder::new().set_concurrency_mode(ConcurrencyMode::SingleWriter).open(dir.join("state.db")).unwrap();
    let acc = {
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(TableDefinition::<&str, &[u8]>::new("meta")).unwrap();
        let raw = meta.get("state_acc").unwrap().unwrap().value().to_vec();
        LtHash::from_bytes(&raw).unwrap()
    };
    drop(db);
    set_meta(dir, "state_hash", Some(&acc.state_hash(store_type, 1).0), false);
}

fn redb_write(file: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = Builder::new().set_concurrency_mode(ConcurrencyMode::SingleWriter).open(file).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

/// Overwrites entry `index` of log.db's `log` table.
fn set_log_entry(file: &Path, index: u64, bytes: &[u8]) {
    redb_write(file, |txn| {
        txn.open_table(TableDefinition::<u64, &[u8]>::new("log")).unwrap().insert(index, bytes).unwrap();
    });
}

fn example_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap()
}

/// The example history edited by `edit` (ops named by `unbound` lose their stated `id`, so that
/// only the intended fault is reported), written to `tmp/history.json`.
fn history_file(tmp: &Path, unbound: &[usize], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v = example_json();
    edit(&mut v);
    for &i in unbound {
        v["ops"][i].as_object_mut().unwrap().remove("id");
    }
    let f = tmp.join("history.json");
    std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    f
}

/// `apply <example store> <history edited by edit>`; the store must stay byte-identical.
fn apply_edited(tmp: &Path, unbound: &[usize], edit: impl FnOnce(&mut Value)) -> Setup {
    let dir = example_store(tmp);
    let f = history_file(tmp, unbound, edit);
    Setup::new(args!["apply", &dir, &f]).keeping(&dir)
}

/// `apply <example store> <file with these bytes>`.
fn apply_text(tmp: &Path, text: &str) -> Setup {
    let dir = example_store(tmp);
    let f = tmp.join("history.json");
    std::fs::write(&f, text).unwrap();
    Setup::new(args!["apply", &dir, &f]).keeping(&dir)
}

/// `apply --create` of the example history edited by `edit` into a new store (which the rejected
/// op pauses: these cases write).
fn apply_create_edited(tmp: &Path, unbound: &[usize], edit: impl FnOnce(&mut Value)) -> Setup {
    let f = history_file(tmp, unbound, edit);
    Setup::new(args!["apply", tmp.join("new-store"), &f, "--create"])
}

/// `apply <example store> <the example history in the binary form, edited by edit>`.
fn apply_binary(tmp: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> Setup {
    let dir = example_store(tmp);
    let mut bytes = History::load(&example()).unwrap().to_binary();
    edit(&mut bytes);
    let f = tmp.join("history.lch");
    std::fs::write(&f, bytes).unwrap();
    Setup::new(args!["apply", &dir, &f]).keeping(&dir)
}

/// Offset of the first op record in a binary history (after the preamble and header).
fn first_op_offset(bytes: &[u8]) -> usize {
    16 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize
}

/// A corpus holding the example history as `example`, with its golden: `(tmp/corpus, tmp/golden)`.
fn tiny_corpus(tmp: &Path) -> (PathBuf, PathBuf) {
    let (c, g) = (tmp.join("corpus"), tmp.join("golden"));
    let h = History::load(&example()).unwrap();
    let entry = corpus::add_history(&c, "example", &h).unwrap();
    let logic = Registry::with_reference_types().resolve(&h.identity()).unwrap();
    let computed = golden::compute(&h, logic, &entry);
    corpus::write_atomic(&golden::path_for(&g, &entry), golden::to_text(&computed).as_bytes()).unwrap();
    (c, g)
}

const CORPUS_HISTORY: &str = "core__kvstore/example.json";

/// `verify` on the tiny corpus after `edit(corpus, golden)`, with `extra` arguments.
fn verify_edited(tmp: &Path, extra: &[&str], edit: impl FnOnce(&Path, &Path)) -> Setup {
    let (c, g) = tiny_corpus(tmp);
    edit(&c, &g);
    let mut a = args!["verify", "--corpus", &c, "--golden", &g];
    a.extend(extra.iter().map(OsString::from));
    Setup::new(a)
}

/// Replaces the JSON text of `file` with `edit(text)`.
fn edit_text(file: &Path, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(file, edit(text)).unwrap();
}

/// Edits a JSON file as a value.
fn edit_json(file: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A WAT guest module with the ABI v1 interface of a `test:ids` guest, plus `imports` (first)
/// and `extra` (last); `abi` is the ABI version it declares, `apply` whether it exports
/// `lattice_apply`.
fn guest(imports: &str, extra: &str, abi: u32, apply: bool) -> Vec<u8> {
    let apply = if apply { r#"(func (export "lattice_apply") (param i32 i32) (result i32) (i32.const 0))"# } else { "" };
    wat::parse_str(format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 16) "test:ids")
  (func (export "lattice_abi_version") (result i32) (i32.const {abi}))
  (func (export "lattice_store_type") (result i64) (i64.const 0x0000000800000010))
  (func (export "lattice_schema_version") (result i64) (i64.const 1))
  (func (export "lattice_alloc") (param i32) (result i32) (i32.const 1024))
  {apply}
  (func (export "lattice_message") (result i64) (i64.const 0))
  {extra})"#
    ))
    .expect("test WAT parses")
}

/// A guest declaring `core:kvstore` at schema 2 (its logic is never reached).
fn kv_schema_2() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory (export "memory") 1) (data (i32.const 16) "core:kvstore")
  (func (export "lattice_abi_version") (result i32) (i32.const 3))
  (func (export "lattice_store_type") (result i64) (i64.const 0x0000000c00000010))
  (func (export "lattice_schema_version") (result i64) (i64.const 2))
  (func (export "lattice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "lattice_apply") (param i32 i32) (result i32) (i32.const 0))
  (func (export "lattice_observe") (param i32 i32) (result i32) (i32.const 1))
  (func (export "lattice_message") (result i64) (i64.const 0)))"#,
    )
    .expect("test WAT parses")
}

/// `wasm add tmp/<name> --cache tmp/cache` of these bytes.
fn wasm_add(tmp: &Path, name: &str, bytes: &[u8]) -> Setup {
    let f = tmp.join(name);
    std::fs::write(&f, bytes).unwrap();
    Setup::new(args!["wasm", "add", &f, "--cache", tmp.join("cache")])
}

/// `verify --type T --build B` on the tiny corpus.
fn verify_build(tmp: &Path, store_type: &str, build: &str) -> Setup {
    let (c, g) = tiny_corpus(tmp);
    Setup::new(args!["verify", "--corpus", &c, "--golden", &g, "--type", store_type, "--build", build])
}

/// `tmp/<name>.json`: a build file running this binary's reference adapter with `--misbehave
/// <how>` (none for `""`), with short time bounds.
fn adapter(tmp: &Path, name: &str, how: &str) -> String {
    let mut args = vec!["serve-build".to_string()];
    if !how.is_empty() {
        args.extend(["--misbehave".to_string(), how.to_string()]);
    }
    let file = serde_json::json!({
        "format": "lattice-conform/exec-build",
        "format_version": 1,
        "program": env!("CARGO_BIN_EXE_lattice-conform"),
        "args": args,
        "limits": {"op_timeout_ms": 100, "history_timeout_s": 60},
    });
    let path = tmp.join(format!("{name}.json"));
    std::fs::write(&path, file.to_string()).unwrap();
    format!("exec:{}", path.display())
}

/// Certifies `candidate` against `native` on the tiny corpus (one generated case) and returns
/// the certificate's path, `tmp/certificate.json`.
fn real_certificate(tmp: &Path, candidate: &OsStr) -> PathBuf {
    let (c, _) = tiny_corpus(tmp);
    let cert = tmp.join("certificate.json");
    let counterexample = tmp.join("counterexample.json");
    let mut a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", candidate, "--bundled", &c];
    a.extend(args!["--cases", "1", "--out", &cert, "--counterexample", &counterexample]);
    run(&a).expect(0);
    cert
}

/// `certify --check` of a real certificate (native against native on the tiny corpus, one
/// generated case) after `edit`.
fn certificate_edited(tmp: &Path, edit: impl FnOnce(&mut Value)) -> Setup {
    let cert = real_certificate(tmp, OsStr::new("native"));
    edit_json(&cert, edit);
    Setup::new(args!["certify", "--check", &cert])
}

/// `certify --check` of a real certificate whose candidate build (a copy of the kvstore guest)
/// was deleted after certifying.
fn certificate_without_its_build(tmp: &Path) -> Setup {
    let cand = tmp.join("cand.wasm");
    std::fs::copy(root().join("guests/dist/core-kvstore.wasm"), &cand).unwrap();
    let cert = real_certificate(tmp, cand.as_os_str());
    std::fs::remove_file(&cand).unwrap();
    Setup::new(args!["certify", "--check", &cert])
}

/// `certify --check` of a file with these bytes.
fn certificate_text(tmp: &Path, text: &str) -> Setup {
    let cert = tmp.join("certificate.json");
    std::fs::write(&cert, text).unwrap();
    Setup::new(args!["certify", "--check", &cert])
}

/// `migrate <src> tmp/dst --to-type core:kvstore-v2` (plus `extra`); the source must stay as it is.
fn migrate_from(src: &Path, tmp: &Path, extra: &[&str]) -> Setup {
    let mut a = args!["migrate", src, tmp.join("dst"), "--to-type", "core:kvstore-v2"];
    a.extend(extra.iter().map(OsString::from));
    Setup::new(a).keeping(src)
}

/// A real verify report of the tiny corpus (made on first use), at `tmp/<name>`, with `extra`
/// arguments (a shard, a filter).
fn real_report_with(tmp: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let (c, g) = if tmp.join("corpus").exists() { (tmp.join("corpus"), tmp.join("golden")) } else { tiny_corpus(tmp) };
    let f = tmp.join(name);
    let mut a = args!["verify", "--corpus", &c, "--golden", &g, "--format", "json", "--output", &f];
    a.extend(extra.iter().map(OsString::from));
    run(a).expect(0);
    f
}

/// The real reports of shards 1/2 and 2/2 of the tiny corpus (one holds its history, the other
/// none), at `tmp/shard-1.json` and `tmp/shard-2.json`.
fn real_shards(tmp: &Path) -> [PathBuf; 2] {
    [real_report_with(tmp, "shard-1.json", &["--shard", "1/2"]), real_report_with(tmp, "shard-2.json", &["--shard", "2/2"])]
}

fn load_json(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// `report merge` of the two real shard reports, the second edited by `edit`.
fn merge_with_edited(tmp: &Path, edit: impl FnOnce(&Path)) -> Setup {
    let [a, b] = real_shards(tmp);
    edit(&b);
    Setup::new(args!["report", "merge", &a, &b])
}

// ---- the catalogue ----------------------------------------------------------------------------

fn cases() -> Vec<Case> {
    use Kind::*;
    vec![
        // ---- store directories
        case("store-dir-missing", Store, "the store directory does not exist", 2, "nope: no such store directory", |t| {
            Setup::new(args!["peek", t.join("nope")])
        }),
        case(
            "store-log-damaged-btree",
            Store,
            "log.db alone, with a damaged B-tree page that makes redb panic (found by the `peek_file` fuzz target)",
            2,
            "log.db: not a redb database or damaged: the storage engine failed while reading it",
            |t| {
                let found = std::fs::read(root().join("fuzz/regressions/peek_file/redb-unreachable-in-btree-get")).unwrap();
                let dir = t.join("damaged");
                std::fs::create_dir(&dir).unwrap();
                std::fs::write(dir.join("log.db"), &found[1..]).unwrap();
                Setup::new(args!["peek", &dir]).keeping(&dir)
            },
        ),
        case(
            "store-dir-empty",
            Store,
            "the directory holds neither state.db nor log.db",
            2,
            "not a store (neither state.db nor log.db is present)",
            |t| {
                std::fs::create_dir(t.join("empty")).unwrap();
                Setup::new(args!["open", t.join("empty")]).keeping(&t.join("empty"))
            },
        ),
        case("state-db-empty", Store, "state.db is empty (0 bytes)", 2, "state.db: not a redb database or damaged: file is empty", |t| {
            damaged(t, "peek", &[], |d| std::fs::write(d.join("state.db"), b"").unwrap())
        }),
        case("state-db-random", Store, "state.db is 9000 bytes of noise", 2, "state.db: not a redb database or damaged", |t| {
            damaged(t, "open", &[], |d| {
                let noise: Vec<u8> = (0..9000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
                std::fs::write(d.join("state.db"), noise).unwrap()
            })
        }),
        case("state-db-truncated", Store, "state.db is cut to its first third", 2, "state.db: not a redb database or damaged", |t| {
            damaged(t, "dump", &[], |d| {
                let bytes = std::fs::read(d.join("state.db")).unwrap();
                std::fs::write(d.join("state.db"), &bytes[..bytes.len() / 3]).unwrap()
            })
        }),
        case("meta-store-id-missing", Store, "state.db's meta has no `store_id`", 2, "state.db: meta key `store_id` is missing", |t| {
            damaged(t, "peek", &[], |d| set_meta(d, "store_id", None, false))
        }),
        case(
            "layout-newer",
            Store,
            "both files say `layout_version` 3",
            2,
            "layout version 3, this build reads 2 (written by a newer lattice-conform; upgrade this tool)",
            |t| damaged(t, "peek", &[], |d| set_meta(d, "layout_version", Some(&3u64.to_le_bytes()), true)),
        ),
        case(
            "files-of-two-stores",
            Store,
            "state.db and log.db come from different stores",
            2,
            "state.db and log.db describe different stores",
            |t| {
                let other = t.join("other");
                run(args!["create", &other, "--type", "core:kvstore", "--id", "00000000-0000-4000-8000-000000000002"]).expect(0);
                damaged(t, "peek", &[], |d| std::fs::copy(other.join("log.db"), d.join("log.db")).map(drop).unwrap())
            },
        ),
        case(
            "store-type-unknown",
            Store,
            "both files say the store type is `acme:unknown` (and the stored state hash is computed for it)",
            2,
            "no opener for store type `acme:unknown`",
            |t| damaged(t, "open", &[], |d| retype(d, "acme:unknown")),
        ),
        case(
            "data-row-tampered",
            Store,
            "one `data` row of state.db was overwritten behind the store's back",
            1,
            "corrupt: stored state hash",
            |t| damaged(t, "open", &["--verify"], |d| tamper_first_data_row(&d.join("state.db"))),
        ),
        case(
            "state-ahead-of-log",
            Store,
            "state.db reflects 6 logged ops, log.db (same store) holds none",
            1,
            "state.db reflects 6 log entries but log.db holds only 0",
            |t| {
                let fresh = fresh_store(t, "fresh");
                damaged(t, "open", &[], |d| std::fs::copy(fresh.join("log.db"), d.join("log.db")).map(drop).unwrap())
            },
        ),
        case(
            "log-entry-undecodable",
            Store,
            "`record`: log entry 2 of log.db is 3 bytes that do not decode as an op",
            2,
            "log.db: log entry 2 does not decode: unknown op encoding version 9",
            |t| {
                let out = t.join("recorded.json");
                damaged(t, "record", &["--out", out.to_str().unwrap()], |d| set_log_entry(&d.join("log.db"), 2, &[9, 9, 9]))
            },
        ),
        case(
            "store-stall-record-removed",
            Store,
            "`record` of a store stalled at op 3 (a malformed payload) whose `paused` meta key was deleted",
            1,
            "replaying its log stalls at log entry 3 (malformed_payload), but the store records nowhere",
            |t| {
                let dir = paused_store(t, 3);
                tamper_str_table(&dir.join("state.db"), "meta", "paused", None);
                Setup::new(args!["record", &dir, "--out", t.join("recorded.json")]).keeping(&dir)
            },
        ),
        case(
            "store-path-is-a-file",
            Store,
            "the store path is a regular file, not a directory",
            2,
            "file: not a directory (a store is a directory holding state.db and log.db)",
            |t| {
                std::fs::write(t.join("file"), b"not a store").unwrap();
                Setup::new(args!["open", t.join("file")])
            },
        ),
        case(
            "replica-state-swapped",
            Store,
            "`open --deep`: state.db was replaced by another replica's (same store id and op count, other data), which `open --verify` accepted before the log chain",
            1,
            "do not belong together: both reflect 6 log entries, but the entries state.db was built from chain to",
            |t| {
                let f = history_file(t, &[0, 1, 2, 3, 4, 5], |v| {
                    v["ops"][0]["payload"] = json!("0a130a110a086772656574696e671205686f776479");
                    v["ops"][0].as_object_mut().unwrap().remove("decoded");
                });
                let replica = t.join("replica");
                run(args!["apply", &replica, &f, "--create"]).expect(0);
                let setup = damaged(t, "open", &["--deep"], |d| std::fs::copy(replica.join("state.db"), d.join("state.db")).map(drop).unwrap());
                run(args!["open", "--verify", &setup.stores[0]]).expect(1);
                setup
            },
        ),
        case(
            "log-truncated",
            Store,
            "`open --deep`: log.db was cut to 90 % of its length",
            1,
            "do not belong together: state.db reflects 6 log entries, but log.db cannot give them back",
            |t| {
                damaged(t, "open", &["--deep"], |d| {
                    let f = std::fs::OpenOptions::new().write(true).open(d.join("log.db")).unwrap();
                    let len = f.metadata().unwrap().len();
                    f.set_len(len * 9 / 10).unwrap();
                })
            },
        ),
        case(
            "foreign-state-db-verify",
            Store,
            "`open --verify`: state.db of another replica of the same store (same id, same 6 log entries, other ops) beside this log.db",
            1,
            "do not belong together: both reflect 6 log entries, but the entries state.db was built from chain to",
            |t| damaged(t, "open", &["--verify"], |d| std::fs::copy(other_replica(t).join("state.db"), d.join("state.db")).map(drop).unwrap()),
        ),
        case(
            "foreign-state-db-apply",
            Store,
            "`apply` of the example to a store whose state.db is another replica's (same id, same 6 log entries): it used to log every op a second time",
            1,
            "do not belong together",
            |t| {
                let mut s = damaged(t, "apply", &[], |d| std::fs::copy(other_replica(t).join("state.db"), d.join("state.db")).map(drop).unwrap());
                s.args.push(example().into());
                s
            },
        ),
        case(
            "log-chain-cut-verify",
            Store,
            "`open --verify`: log.db of a 20,000-op store cut to 99.9 % of its length (its own bookkeeping still reads)",
            1,
            "do not belong together: state.db reflects 20000 log entries, but log.db cannot give them back",
            |t| {
                let dir = crate::util::long_store(t, 20_000);
                let f = std::fs::OpenOptions::new().write(true).open(dir.join("log.db")).unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len * 999 / 1000).unwrap();
                Setup::new(args!["open", &dir, "--verify"]).keeping(&dir)
            },
        ),
        case(
            "open-verify-needs-repair",
            Store,
            "`open --verify` of a store whose state.db is from an earlier commit than its log.db (what a crash or a full disk between the two commits leaves): a check does not repair",
            2,
            "only read, so they do not repair",
            |t| {
                let dir = store_copy(t, "lagging");
                let earlier = t.join("earlier");
                run(args!["apply", &earlier, first_ops(t, 3), "--create"]).expect(0);
                std::fs::copy(earlier.join("state.db"), dir.join("state.db")).unwrap();
                std::fs::remove_dir_all(&earlier).unwrap();
                Setup::new(args!["open", &dir, "--verify"]).keeping(&dir)
            },
        ),
        case(
            "rebuild-symlinked-state",
            Store,
            "`rebuild` where state.db is a symbolic link to a file elsewhere (the rename would replace the link)",
            2,
            "state.db: a symbolic link (to <tmp>/elsewhere/state.db); rebuild writes a new state.db",
            |t| {
                let dir = store_copy(t, "linked");
                std::fs::create_dir(t.join("elsewhere")).unwrap();
                std::fs::rename(dir.join("state.db"), t.join("elsewhere/state.db")).unwrap();
                std::os::unix::fs::symlink(t.join("elsewhere/state.db"), dir.join("state.db")).unwrap();
                Setup::new(args!["rebuild", &dir, "--force"])
            },
        ),
        case(
            "rebuild-foreign-state",
            Store,
            "`rebuild` where state.db belongs to another store than log.db",
            2,
            "rebuild refused: state.db belongs to another store",
            |t| {
                let other = t.join("other");
                run(args!["create", &other, "--type", "core:kvstore", "--id", "00000000-0000-4000-8000-000000000002"]).expect(0);
                damaged(t, "rebuild", &[], |d| std::fs::copy(other.join("state.db"), d.join("state.db")).map(drop).unwrap())
            },
        ),
        case(
            "rebuild-state-ahead",
            Store,
            "`rebuild` where state.db reflects 6 ops and log.db (same store) holds none: the 6 ops exist only in state.db",
            2,
            "rebuild refused: state.db reflects 6 ops but log.db holds only 0",
            |t| {
                let fresh = fresh_store(t, "fresh");
                damaged(t, "rebuild", &[], |d| std::fs::copy(fresh.join("log.db"), d.join("log.db")).map(drop).unwrap())
            },
        ),
        case(
            "record-out-into-store",
            Store,
            "`record --out` names the store's own log.db",
            2,
            "refusing to write inside the store directory",
            |t| {
                let d = store_copy(t, "s");
                Setup::new(args!["record", &d, "--out", d.join("log.db")]).keeping(&d)
            },
        ),
        case("record-out-exists", Store, "`record --out` names an existing file, without --force", 2, "already exists; pass --force to replace it", |t| {
            let d = store_copy(t, "s");
            std::fs::write(t.join("h.json"), b"keep me").unwrap();
            Setup::new(args!["record", &d, "--out", t.join("h.json")]).keeping(&d)
        }),
        case(
            "create-dangling-symlink",
            Store,
            "`create` at a path that is a dangling symbolic link",
            2,
            "link: already exists; choose a new directory",
            |t| {
                std::os::unix::fs::symlink(t.join("nowhere"), t.join("link")).unwrap();
                Setup::new(args!["create", t.join("link"), "--type", "core:kvstore"])
            },
        ),
        case("create-name-too-long", Store, "`create` of a directory whose name is 256 bytes", 2, "the name is 256 bytes long; a file name holds at most 255", |t| {
            Setup::new(args!["create", t.join("x".repeat(256)), "--type", "core:kvstore"])
        }),
        case("audit-not-a-store", Store, "`audit` of a directory that holds neither state.db nor log.db", 2, "<tmp>/plain: not a store (neither state.db nor log.db is present)", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["audit", t.join("plain")])
        }),
        case("audit-half-a-store", Store, "`audit` of a store directory whose log.db was removed", 2, "<tmp>/s/log.db: missing; a store directory holds both state.db and log.db", |t| {
            let d = store_copy(t, "s");
            std::fs::remove_file(d.join("log.db")).unwrap();
            Setup::new(args!["audit", &d]).keeping(&d)
        }),
        case("rebuild-not-a-store", Store, "`rebuild` of a directory that holds neither state.db nor log.db", 2, "<tmp>/plain: not a store (neither state.db nor log.db is present)", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["rebuild", t.join("plain")])
        }),
        case("dump-not-a-store", Store, "`dump` of a directory that holds neither state.db nor log.db", 2, "<tmp>/plain: not a store (neither state.db nor log.db is present)", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["dump", t.join("plain")])
        }),
        case("peek-a-file", Store, "`peek` of a regular file given as the store directory", 2, "<tmp>/file: not a directory (a store is a directory holding state.db and log.db)", |t| {
            std::fs::write(t.join("file"), "not a store\n").unwrap();
            Setup::new(args!["peek", t.join("file")])
        }),
        // ---- history files
        case("history-missing", History, "the history argument of `apply` names nothing", 2, "<tmp>/nope.json: no such history file", |t| {
            let dir = example_store(t);
            Setup::new(args!["apply", &dir, t.join("nope.json")]).keeping(&dir)
        }),
        case("history-show-a-directory", History, "`history show` of a plain directory", 2, "<tmp>/plain: a directory, not a history file", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["history", "show", t.join("plain")])
        }),
        case(
            "corpus-add-a-store",
            History,
            "`corpus add` of a store directory",
            2,
            "<tmp>/s: a directory, not a history file (it is a store directory; `lattice-conform record` exports a store's log as a history)",
            |t| {
                let d = store_copy(t, "s");
                Setup::new(args!["corpus", "add", &d, "--corpus", t.join("c"), "--golden", t.join("g")]).keeping(&d)
            },
        ),
        case(
            "history-add-missing",
            History,
            "`history add` to a history file that does not exist",
            2,
            "<tmp>/h.json: no such history file (`lattice-conform history new <tmp>/h.json --type T` makes an empty one)",
            |t| Setup::new(args!["history", "add", t.join("h.json"), "--author", "alice", "--put", "k=v"]),
        ),
        case("history-build-script-is-a-directory", History, "`history build` of a directory given as the script", 2, "<tmp>/plain: a directory, not a `history build` script", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["history", "build", t.join("plain"), t.join("out.json")])
        }),
        case(
            "history-is-a-store",
            History,
            "the history argument of `apply` is a store directory",
            2,
            "<tmp>/other: a directory, not a history file (it is a store directory; `lattice-conform record` exports a store's log as a history)",
            |t| {
                let other = store_copy(t, "other");
                let dir = example_store(t);
                Setup::new(args!["apply", &dir, &other]).keeping(&dir).keeping(&other)
            },
        ),
        case("history-bom", History, "the history file starts with a UTF-8 byte-order mark", 2, "history.json: starts with a UTF-8 byte-order mark", |t| {
            apply_text(t, &format!("\u{feff}{}", std::fs::read_to_string(example()).unwrap()))
        }),
        case("history-not-json", History, "the history file is plain text", 2, "history.json: invalid JSON at line 1, column 2", |t| {
            apply_text(t, "this is not a history\n")
        }),
        case(
            "history-wrong-format",
            History,
            "`format` is `lattice-conform/golden`",
            2,
            "`format` is \"lattice-conform/golden\", expected \"lattice-conform/history\"",
            |t| apply_edited(t, &[], |v| v["format"] = json!("lattice-conform/golden")),
        ),
        case(
            "history-too-new",
            History,
            "`format_version` is 9 (and the file has a field version 2 does not know)",
            2,
            "format_version 9 is newer than this build reads (3); upgrade lattice-conform",
            |t| {
                apply_edited(t, &[], |v| {
                    v["format_version"] = json!(9);
                    v["signature"] = json!("from the future");
                })
            },
        ),
        case("history-unknown-field", History, "the top level has an unknown field `comment`", 2, "unknown field `comment`", |t| {
            apply_edited(t, &[], |v| v["comment"] = json!("hand-edited"))
        }),
        case(
            "history-author-31-bytes",
            History,
            "op 3 has a 31-byte author (62 hex digits)",
            2,
            "op 3, field `author`: expected 64 hex digits (32 bytes), found 62 characters",
            |t| {
                apply_edited(t, &[3], |v| {
                    let a = v["ops"][3]["author"].as_str().unwrap()[2..].to_string();
                    v["ops"][3]["author"] = json!(a);
                })
            },
        ),
        case(
            "history-payload-odd-hex",
            History,
            "op 0's payload has an odd number of hex digits",
            2,
            "op 0, field `payload`: not hex: Odd number of digits",
            |t| {
                apply_edited(t, &[0], |v| {
                    let p = v["ops"][0]["payload"].as_str().unwrap()[1..].to_string();
                    v["ops"][0]["payload"] = json!(p);
                })
            },
        ),
        case("history-id-mismatch", History, "op 4's stated `id` is not the id of the op", 2, "op 4, field `id`", |t| {
            apply_edited(t, &[], |v| v["ops"][4]["id"] = json!("ab".repeat(32)))
        }),
        case(
            "history-other-store",
            History,
            "the history is for another store id (ids unstated); the store must not be written",
            2,
            "history.json: the history is for the store (id 00000000-0000-4000-8000-000000000002",
            |t| apply_edited(t, &[0, 1, 2, 3, 4, 5, 6], |v| v["store_id"] = json!("00000000-0000-4000-8000-000000000002")),
        ),
        case(
            "history-into-paused-store",
            History,
            "`apply` of the example to a store whose projection stalled at log entry 3; the store must not be written",
            2,
            "projection is stalled since log entry 3 (malformed_payload) was refused",
            |t| {
                let dir = paused_store(t, 3);
                Setup::new(args!["apply", &dir, example()]).keeping(&dir)
            },
        ),
        case(
            "history-unknown-type",
            History,
            "`apply --create` of a history of store type `acme:unknown` (ids unstated)",
            2,
            "no opener for store type `acme:unknown`",
            |t| apply_create_edited(t, &[0, 1, 2, 3, 4, 5, 6], |v| v["store_type"] = json!("acme:unknown")),
        ),
        Case {
            writes: true,
            ..case(
                "history-malformed-payload",
                History,
                "`apply --create`: op 3's payload is the one byte `00` (ops 0–2 are applied, projection stalls at op 3)",
                2,
                "log entry 3 (id ",
                |t| {
                    let f = example_with_malformed_op(t, 3);
                    Setup::new(args!["apply", t.join("new-store"), f, "--create"])
                },
            )
        },
        Case {
            writes: true,
            ..case(
                "history-bad-genesis",
                History,
                "`apply --create`: op 1 is its author's first op but names op 0 (another author's tip) as `prev`: Lattice witnesses it, and projection stalls there",
                2,
                "refused (bad_genesis)",
                |t| {
                    apply_create_edited(t, &[1], |v| {
                        let first = v["ops"][0]["id"].clone();
                        v["ops"][1]["prev"] = first;
                    })
                },
            )
        },
        case(
            "history-bin-truncated",
            History,
            "a binary history (`.lch`) cut off 40 bytes before its end, inside the last op",
            2,
            "history.lch: op 6, at byte ",
            |t| apply_binary(t, |b| b.truncate(b.len() - 40)),
        ),
        case(
            "history-bin-no-trailer",
            History,
            "a binary history that ends after its last op, without the 32-byte trailing digest",
            2,
            "the file ends 0 bytes into the 32-byte trailing digest after all 7 ops: truncated",
            |t| apply_binary(t, |b| b.truncate(b.len() - 32)),
        ),
        case(
            "history-bin-bit-flip",
            History,
            "a binary history with one bit flipped in the last byte of its last op's payload (the op still decodes)",
            2,
            "does not match the blake3 of the bytes before it",
            |t| {
                apply_binary(t, |b| {
                    let last = b.len() - 32 - 1;
                    b[last] ^= 0x01;
                })
            },
        ),
        case(
            "history-bin-over-long",
            History,
            "a binary history with bytes after its trailing digest (more ops than the header declares)",
            2,
            "bytes follow the trailing digest: the header declares 7 ops and the file is longer",
            |t| apply_binary(t, |b| b.extend_from_slice(&[0u8; 8])),
        ),
        case(
            "history-bin-huge-length",
            History,
            "a binary history whose first op record claims a length of 4 GiB",
            2,
            "op 0, at byte 66: length 4294967295 is outside 85..=1081425, the sizes of a valid op",
            |t| {
                apply_binary(t, |b| {
                    let at = first_op_offset(b);
                    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                })
            },
        ),
        case(
            "history-bin-too-new",
            History,
            "a binary history of format version 4",
            2,
            "at byte 8: binary history format version 4 is newer than this build reads (3)",
            |t| apply_binary(t, |b| b[8] = 4),
        ),
        case(
            "history-convert-unknown-form",
            History,
            "`history convert` to a file named neither `.json` nor `.lch`, without `--format`",
            2,
            "unknown history form `txt`: name a history `*.json` (JSON) or `*.lch` (binary), or pass `--format`",
            |t| Setup::new(args!["history", "convert", example(), t.join("out.txt")]),
        ),
        case(
            "history-convert-damaged",
            History,
            "`history convert` of a binary history cut off inside an op: the output is not created",
            2,
            "history.lch: op 6, at byte ",
            |t| {
                let mut bytes = lattice_conform::history::History::load(&example()).unwrap().to_binary();
                bytes.truncate(bytes.len() - 40);
                let f = t.join("history.lch");
                std::fs::write(&f, bytes).unwrap();
                Setup::new(args!["history", "convert", &f, t.join("out.json")])
            },
        ),
        case("history-add-bad-put", History, "`history add --put` without `=`", 2, "--put `greeting`: expected KEY=VALUE", |t| {
            run(args!["history", "new", t.join("h.json"), "--type", "core:kvstore"]).expect(0);
            Setup::new(args!["history", "add", t.join("h.json"), "--author", "alice", "--put", "greeting"])
        }),
        case(
            "history-add-unknown-author-dep",
            History,
            "`history add --deps NAME` where NAME wrote no op of the history",
            2,
            "--deps bob: unknown author `bob`: no op of the history is by it (authors: alice)",
            |t| {
                let h = t.join("h.json");
                run(args!["history", "new", &h, "--type", "core:kvstore"]).expect(0);
                run(args!["history", "add", &h, "--author", "alice", "--put", "k=1"]).expect(0);
                Setup::new(args!["history", "add", &h, "--author", "alice", "--put", "k=2", "--deps", "bob"])
            },
        ),
        case(
            "history-build-bad-script",
            History,
            "a `history build` script whose op has an unknown field",
            2,
            "script.json: invalid JSON at line 1, column",
            |t| {
                let s = t.join("script.json");
                let text = r#"{"format":"lattice-conform/history-script","format_version":1,"store_type":"core:kvstore","ops":[{"author":"a","puts":["k=v"]}]}"#;
                std::fs::write(&s, text).unwrap();
                Setup::new(args!["history", "build", &s, t.join("out.json")])
            },
        ),
        case(
            "history-add-expect-conflict",
            History,
            "`history add` expecting two different values of one key (`--expect k=1 --expect-no-value k`)",
            2,
            "--expect-no-value k: the key is already expected to read Some(\"1\") there",
            |t| {
                run(args!["history", "new", t.join("h.json"), "--type", "core:kvstore"]).expect(0);
                Setup::new(args!["history", "add", t.join("h.json"), "--author", "alice", "--put", "k=1", "--expect", "k=1", "--expect-no-value", "k"])
            },
        ),
        case(
            "history-add-expect-wrong-type",
            History,
            "`history add --expect-heads` on a `core:kvstore-v2` history (it has no heads to read)",
            2,
            "expect[0]: `heads` is not a read of core:kvstore-v2 (it reads exists, value, conflicts)",
            |t| {
                run(args!["history", "new", t.join("h.json"), "--type", "core:kvstore-v2"]).expect(0);
                Setup::new(args!["history", "add", t.join("h.json"), "--author", "alice", "--put", "k=1", "--expect-heads", "k=1"])
            },
        ),
        case(
            "history-expect-past-end",
            History,
            "a history whose expected read is taken after more ops than it has",
            2,
            "expect[0]: after 5 ops, but the history has 1 ops",
            |t| {
                let h = t.join("h.json");
                run(args!["history", "new", &h, "--type", "core:kvstore"]).expect(0);
                run(args!["history", "add", &h, "--author", "alice", "--put", "k=1", "--expect", "k=1"]).expect(0);
                edit_text(&h, |s| s.replace("\"after\": 1", "\"after\": 5"));
                Setup::new(args!["history", "show", &h])
            },
        ),
        case(
            "history-expect-in-version-2",
            History,
            "`expect` in a history that says `\"format_version\": 2`",
            2,
            "`expect` needs \"format_version\": 3 (given before it)",
            |t| {
                let h = t.join("h.json");
                run(args!["history", "new", &h, "--type", "core:kvstore"]).expect(0);
                run(args!["history", "add", &h, "--author", "alice", "--put", "k=1", "--expect", "k=1"]).expect(0);
                edit_text(&h, |s| s.replace("\"format_version\": 3", "\"format_version\": 2"));
                Setup::new(args!["history", "show", &h])
            },
        ),
        case(
            "corpus-add-contradicted-expectation",
            Corpus,
            "`corpus add` of a fixture whose expected read the reference build contradicts (`--expect k=2` after a put of 1)",
            1,
            "refused: the reference build contradicts the expected reads of 1 history",
            |t| {
                let h = t.join("h.json");
                run(args!["history", "new", &h, "--type", "core:kvstore"]).expect(0);
                run(args!["history", "add", &h, "--author", "alice", "--put", "k=1", "--expect", "k=2"]).expect(0);
                std::fs::create_dir_all(t.join("c")).unwrap();
                std::fs::create_dir_all(t.join("g")).unwrap();
                Setup::new(args!["corpus", "add", &h, "--corpus", t.join("c"), "--golden", t.join("g")])
            },
        ),
        // ---- corpus, manifest, golden
        case("corpus-missing", Corpus, "`verify --corpus` names a directory that does not exist", 2, "<tmp>/nope: no such corpus directory", |t| {
            let g = t.join("golden");
            Setup::new(args!["verify", "--corpus", t.join("nope"), "--golden", &g])
        }),
        case("corpus-no-manifest", Corpus, "`verify --corpus` names a directory without MANIFEST.json", 2, "<tmp>/plain: not a corpus directory (it holds no MANIFEST.json)", |t| {
            std::fs::create_dir(t.join("plain")).unwrap();
            Setup::new(args!["verify", "--corpus", t.join("plain"), "--golden", t.join("golden")])
        }),
        case("manifest-not-json", Corpus, "MANIFEST.json is cut off mid-file", 2, "MANIFEST.json: invalid JSON", |t| {
            verify_edited(t, &[], |c, _| edit_text(&c.join("MANIFEST.json"), |s| s[..s.len() / 2].to_string()))
        }),
        case(
            "manifest-too-new",
            Corpus,
            "MANIFEST.json's `format_version` is 2",
            2,
            "format_version 2 is newer than this build reads (1)",
            |t| verify_edited(t, &[], |c, _| edit_json(&c.join("MANIFEST.json"), |v| v["format_version"] = json!(2))),
        ),
        case(
            "manifest-lists-missing-file",
            Corpus,
            "the manifest lists a history file that is not there",
            2,
            "<tmp>/corpus/core__kvstore/example.json: listed in <tmp>/corpus/MANIFEST.json but not there: restore it, or take its entry out of the manifest",
            |t| verify_edited(t, &[], |c, _| std::fs::remove_file(c.join(CORPUS_HISTORY)).unwrap()),
        ),
        case(
            "known-divergences-v1",
            Corpus,
            "`verify --orders` with a known-divergences file of format_version 1 (divergences matched by store type only)",
            2,
            "which matched divergences by store type only",
            |t| {
                let k = t.join("known.json");
                std::fs::write(&k, r#"{"format":"lattice-conform/known-divergences","format_version":1,"divergences":[]}"#).unwrap();
                let k = k.to_string_lossy().into_owned();
                verify_edited(t, &["--orders", "2", "--known", &k], |_, _| {})
            },
        ),
        case(
            "record-known-unknown-entry",
            Corpus,
            "`verify --orders --record-known` names an entry the known-divergences file does not have",
            2,
            "has no entry `no-such-entry`",
            |t| {
                let k = t.join("known.json");
                std::fs::write(&k, r#"{"format":"lattice-conform/known-divergences","format_version":2,"divergences":[]}"#).unwrap();
                let k = k.to_string_lossy().into_owned();
                verify_edited(t, &["--orders", "2", "--known", &k, "--record-known", "no-such-entry"], |_, _| {})
            },
        ),
        case("corpus-digest-mismatch", Corpus, "a listed history gained one byte after it was listed", 2, "but the manifest says", |t| {
            verify_edited(t, &[], |c, _| edit_text(&c.join(CORPUS_HISTORY), |s| s + "\n"))
        }),
        case("golden-missing", Corpus, "the history has no golden", 2, "missing golden for history `core:kvstore/example`", |t| {
            verify_edited(t, &[], |_, g| std::fs::remove_file(g.join(CORPUS_HISTORY)).unwrap())
        }),
        case("golden-not-json", Corpus, "the golden is an empty file", 2, "example.json: invalid JSON", |t| {
            verify_edited(t, &[], |_, g| std::fs::write(g.join(CORPUS_HISTORY), b"").unwrap())
        }),
        case(
            "bless-digest-mismatch",
            Corpus,
            "`bless`: a listed history gained one byte after it was listed",
            2,
            "but the manifest says",
            |t| {
                let (c, g) = tiny_corpus(t);
                edit_text(&c.join(CORPUS_HISTORY), |s| s + "\n");
                Setup::new(args!["bless", "--corpus", &c, "--golden", &g])
            },
        ),
        case("selection-empty", Corpus, "`--filter` matches no history", 2, "no history selected", |t| {
            verify_edited(t, &["--filter", "*no-such-history*"], |_, _| {})
        }),
        case(
            "selection-unknown-type",
            Corpus,
            "`--type core:kvstroe` (a typo): neither in the corpus nor registered",
            2,
            "--type core:kvstroe: unknown store type: corpus <tmp>/corpus has no history of it and no opener is registered for it; known types: core:kvstore, core:kvstore-v2, core:logstore",
            |t| verify_edited(t, &["--type", "core:kvstroe"], |_, _| {}),
        ),
        case(
            "corpus-add-duplicate-id",
            Corpus,
            "`corpus add` of a history under an id the corpus already lists",
            2,
            "history `core:kvstore/example` is already in the corpus",
            |t| {
                let (c, g) = tiny_corpus(t);
                Setup::new(args!["corpus", "add", example(), "--corpus", &c, "--golden", &g, "--id", "example"])
            },
        ),
        case(
            "corpus-add-unknown-type",
            Corpus,
            "`corpus add` of a history whose `store_type` no build here opens",
            2,
            "history.json: no opener for store type `acme:unknown`",
            |t| {
                let (c, g) = tiny_corpus(t);
                let f = t.join("history.json");
                let text = std::fs::read_to_string(example()).unwrap().replace("core:kvstore", "acme:unknown");
                std::fs::write(&f, text).unwrap();
                Setup::new(args!["corpus", "add", &f, "--corpus", &c, "--golden", &g])
            },
        ),
        case(
            "bless-accept-matches-nothing",
            Corpus,
            "`bless --accept PATTERN` where the pattern matches no pending golden",
            2,
            "pattern `*nothing*` matches no pending golden (pending: none)",
            |t| {
                let (c, g) = tiny_corpus(t);
                Setup::new(args!["bless", "--corpus", &c, "--golden", &g, "--accept", "*nothing*"])
            },
        ),
        case(
            "verify-pending-golden",
            Corpus,
            "`verify` with a pending golden (`*.pending`, not yet reviewed) in the golden directory",
            1,
            "1 pending golden(s) not yet reviewed",
            |t| {
                verify_edited(t, &[], |_, g| {
                    std::fs::copy(g.join(CORPUS_HISTORY), g.join(format!("{CORPUS_HISTORY}.pending"))).unwrap();
                })
            },
        ),
        case(
            "verify-orphan-golden",
            Corpus,
            "`verify` with a golden of no listed history (an orphan) in the golden directory",
            1,
            "1 golden(s) of no history in",
            |t| {
                verify_edited(t, &[], |_, g| {
                    std::fs::copy(g.join(CORPUS_HISTORY), g.join("core__kvstore/gone.json")).unwrap();
                })
            },
        ),
        case(
            "verify-golden-of-another-corpus",
            Corpus,
            "`--golden` names the golden directory of another corpus (none of its goldens is for a history of this one)",
            2,
            "<tmp>/other: not a golden directory of the corpus <tmp>/corpus: none of its 1 golden file(s) (e.g. <tmp>/other/core__kvstore/someone-else.json) is the golden of one of the 1 histories listed in <tmp>/corpus/MANIFEST.json or of their migration cases (is --golden or --corpus wrong?)",
            |t| {
                let (c, g) = tiny_corpus(t);
                std::fs::create_dir_all(t.join("other/core__kvstore")).unwrap();
                std::fs::copy(g.join(CORPUS_HISTORY), t.join("other/core__kvstore/someone-else.json")).unwrap();
                Setup::new(args!["verify", "--corpus", &c, "--golden", t.join("other")])
            },
        ),
        case(
            "verify-golden-is-the-corpus",
            Corpus,
            "`--golden` names the corpus directory itself",
            2,
            "<tmp>/corpus: not a golden directory of the corpus <tmp>/corpus: it holds a MANIFEST.json and is a corpus directory itself",
            |t| {
                let (c, _) = tiny_corpus(t);
                Setup::new(args!["verify", "--corpus", &c, "--golden", &c])
            },
        ),
        case(
            "verify-golden-is-a-file",
            Corpus,
            "`--golden` names a file (the manifest), not a directory",
            2,
            "<tmp>/corpus/MANIFEST.json: not a golden directory of the corpus <tmp>/corpus: it is a file, not a directory (is --golden or --corpus wrong?)",
            |t| {
                let (c, _) = tiny_corpus(t);
                Setup::new(args!["verify", "--corpus", &c, "--golden", c.join("MANIFEST.json")])
            },
        ),
        case(
            "bless-golden-of-another-corpus",
            Corpus,
            "`bless --golden` names the golden directory of another corpus (no pending golden is written into it)",
            2,
            "<tmp>/other: not a golden directory of the corpus <tmp>/corpus",
            |t| {
                let (c, g) = tiny_corpus(t);
                std::fs::create_dir_all(t.join("other/core__kvstore")).unwrap();
                std::fs::copy(g.join(CORPUS_HISTORY), t.join("other/core__kvstore/someone-else.json")).unwrap();
                Setup::new(args!["bless", "--corpus", &c, "--golden", t.join("other")])
            },
        ),
        // ---- builds and Wasm modules
        case(
            "build-not-a-spec",
            Build,
            "`--build java`",
            2,
            "--build \"java\": expected `native`, `native-fault:NAME`, a path to a .wasm file, `cas:<digest>`, or `exec:PROGRAM` / `exec:FILE.json`",
            |t| verify_build(t, "core:kvstore", "java"),
        ),
        case("build-unknown-fault", Build, "`--build native-fault:nope`", 2, "no such fault", |t| {
            verify_build(t, "core:kvstore", "native-fault:nope")
        }),
        case(
            "build-fault-other-type",
            Build,
            "`--build native-fault:NAME` with a fault of another store type",
            2,
            "the fault breaks `core:logstore`, not `core:kvstore`",
            |t| verify_build(t, "core:kvstore", "native-fault:log-key-wall-le"),
        ),
        case(
            "build-host-fault-in-certify",
            Build,
            "`certify --candidate native-fault:NAME` with a fault of the host's delivery rules",
            2,
            "a fault of the host's delivery rules, which only `verify` and `corpus adequacy` inject",
            |t| {
                let (c, _) = tiny_corpus(t);
                let mut a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native-fault:deps-ignored"];
                a.extend(args!["--bundled", &c, "--cases", "1", "--out", t.join("cert.json")]);
                Setup::new(a)
            },
        ),
        case("adequacy-unknown-fault", Corpus, "`corpus adequacy --fault nope`", 2, "--fault nope: no such fault", |t| {
            let (c, g) = tiny_corpus(t);
            Setup::new(args!["corpus", "adequacy", "--corpus", &c, "--golden", &g, "--fault", "nope"])
        }),
        case(
            "adequacy-missing-migration-golden",
            Corpus,
            "`corpus adequacy` on a corpus whose `core:kvstore` history has no migration golden",
            2,
            "missing migration golden",
            |t| {
                let (c, g) = tiny_corpus(t);
                Setup::new(args!["corpus", "adequacy", "--corpus", &c, "--golden", &g])
            },
        ),
        case("build-exec-hangs", Build, "an outside build (`exec:`) that stops answering mid-history", 2, "did not answer within", |t| {
            let b = adapter(t, "hang", "hang-at:3");
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-crashes", Build, "an outside build that exits mid-history", 2, "crashing on purpose at op 3", |t| {
            let b = adapter(t, "crash", "crash-at:3");
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-garbage", Build, "an outside build that prints text instead of protocol frames", 2, "not a protocol frame", |t| {
            let b = adapter(t, "garbage", "garbage");
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-wrong-version", Build, "an outside build that answers another protocol version", 2, "speaks build protocol version 2", |t| {
            let b = adapter(t, "v2", "version:2");
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-lies", Build, "an outside build whose stored rows differ from the writes it reported", 2, "its stored rows differ from the writes it reported", |t| {
            let b = adapter(t, "lie", "lie");
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-missing", Build, "`--build exec:` names a program that does not exist", 2, "no-such-program: No such file or directory", |t| {
            let b = format!("exec:{}", t.join("no-such-program").display());
            verify_build(t, "core:kvstore", &b)
        }),
        case("build-exec-for-a-logic", Build, "`verify --migrations` with an outside build (migrations run a store logic)", 2, "migrations run natively", |t| {
            let b = adapter(t, "ref", "");
            let (c, g) = tiny_corpus(t);
            Setup::new(args!["verify", "--corpus", &c, "--golden", &g, "--migrations", "--build", &b])
        }),
        case("build-wasm-missing", Build, "`--build` names a .wasm file that does not exist", 2, "missing.wasm", |t| {
            let b = t.join("missing.wasm").display().to_string();
            verify_build(t, "core:kvstore", &b)
        }),
        case(
            "build-cas-no-cache",
            Build,
            "`--build cas:<digest>` with no Wasm cache configured",
            2,
            "no Wasm cache is configured to look the digest up in",
            |t| verify_build(t, "core:kvstore", &format!("cas:{}", "0".repeat(64))),
        ),
        case(
            "build-other-type",
            Build,
            "`--build` is the `core:logstore` guest, asked to run `core:kvstore`",
            2,
            "declares store type `core:logstore`, but it was asked to run `core:kvstore`",
            |t| {
                let b = t.join("core-logstore.wasm");
                std::fs::copy(root().join("guests/dist/core-logstore.wasm"), &b).unwrap();
                verify_build(t, "core:kvstore", &b.display().to_string())
            },
        ),
        case(
            "build-other-schema-certify",
            Build,
            "`certify --candidate` is a guest declaring `core:kvstore` schema 2; the baseline (and the corpus) are schema 1",
            2,
            "v2.wasm: the build implements `core:kvstore` schema 2, but --baseline native is `core:kvstore` schema 1",
            |t| {
                let (c, _) = tiny_corpus(t);
                let b = t.join("v2.wasm");
                std::fs::write(&b, kv_schema_2()).unwrap();
                let mut a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", &b, "--bundled", &c];
                a.extend(args!["--cases", "0", "--out", t.join("cert.json")]);
                Setup::new(a)
            },
        ),
        case(
            "certify-builds-of-two-types",
            Build,
            "`certify` without `--type`, a `core:kvstore` guest as baseline and a `core:logstore` guest as candidate",
            2,
            "implements `core:logstore`: a hot fix keeps its store type",
            |t| {
                let (c, _) = tiny_corpus(t);
                let (kv, log) = (root().join("guests/dist/core-kvstore.wasm"), root().join("guests/dist/core-logstore.wasm"));
                let mut a = args!["certify", "--baseline", &kv, "--candidate", &log, "--bundled", &c];
                a.extend(args!["--cases", "0", "--out", t.join("cert.json")]);
                Setup::new(a)
            },
        ),
        case(
            "certify-no-type-anywhere",
            Build,
            "`certify` without `--type`, both builds native (neither declares a store type)",
            2,
            "--type is needed: neither --baseline native nor --candidate native declares a store type",
            |t| {
                let (c, _) = tiny_corpus(t);
                let mut a = args!["certify", "--baseline", "native", "--candidate", "native", "--bundled", &c];
                a.extend(args!["--cases", "0", "--out", t.join("cert.json")]);
                Setup::new(a)
            },
        ),
        case(
            "build-other-schema-verify-history",
            Build,
            "`open --verify-history --build` of a guest declaring `core:kvstore` schema 2, for a schema-1 store",
            2,
            "the build implements `core:kvstore` schema 2, but the store <tmp>/s is `core:kvstore` schema 1",
            |t| {
                let dir = store_copy(t, "s");
                let b = t.join("v2.wasm");
                std::fs::write(&b, kv_schema_2()).unwrap();
                Setup::new(args!["open", &dir, "--verify-history", "--build", &b]).keeping(&dir)
            },
        ),
        case(
            "wasm-not-wasm",
            Build,
            "`wasm add` of a text file",
            2,
            "not-a-module.wasm: not a WebAssembly module (it does not start with the `\\0asm` magic and version 1)",
            |t| wasm_add(t, "not-a-module.wasm", b"hello, not a module"),
        ),
        case("wasm-invalid", Build, "`wasm add` of the Wasm magic and version followed by garbage", 2, "invalid WebAssembly module", |t| {
            wasm_add(t, "garbage.wasm", b"\0asm\x01\0\0\0\xff\xff\xff")
        }),
        case(
            "wasm-unknown-import",
            Build,
            "`wasm add` of a module that imports an unknown function (`wasi_snapshot_preview1`.`fd_write`)",
            2,
            "imports `wasi_snapshot_preview1`.`fd_write`; a guest may import only",
            |t| {
                let wasi = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#;
                wasm_add(t, "wasi.wasm", &guest(wasi, "", 1, true))
            },
        ),
        case("wasm-missing-export", Build, "`wasm add` of a module without `lattice_apply`", 2, "missing export `lattice_apply`", |t| {
            wasm_add(t, "no-apply.wasm", &guest("", "", 1, false))
        }),
        case(
            "build-cas-prefix-too-short",
            Build,
            "`--build cas:` with a digest prefix of 7 hex digits",
            2,
            "--build cas:0123abc: a digest prefix needs at least 8 hex digits (it has 7)",
            |t| verify_build(t, "core:kvstore", "cas:0123abc"),
        ),
        case(
            "build-cas-prefix-ambiguous",
            Build,
            "`--build cas:<8 digits>` that begins the digests of two blobs of the Wasm cache",
            2,
            "ambiguous, 2 modules in the Wasm cache <tmp>/cache have a digest starting with it",
            |t| {
                let cache = t.join("cache");
                let blobs = cache.join("blobs");
                std::fs::create_dir_all(&blobs).unwrap();
                for tail in ["0", "1"] {
                    std::fs::write(blobs.join(format!("0123abcd{}.wasm", tail.repeat(56))), b"never read").unwrap();
                }
                verify_build(t, "core:kvstore", "cas:0123abcd").with_wasm_cache(&cache)
            },
        ),
        case(
            "build-cas-prefix-no-match",
            Build,
            "`--build cas:<8 digits>` that begins no digest of the Wasm cache",
            2,
            "--build cas:0123abcd: no module in the Wasm cache <tmp>/cache has a digest starting with `0123abcd`",
            |t| {
                let cache = t.join("cache");
                std::fs::create_dir_all(cache.join("blobs")).unwrap();
                verify_build(t, "core:kvstore", "cas:0123abcd").with_wasm_cache(&cache)
            },
        ),
        // ---- certificates
        case(
            "certificate-corpus-gone",
            Certificate,
            "the corpus the certificate names was deleted",
            2,
            "corpus `corpus` cannot be found: looked for <tmp>/corpus/MANIFEST.json",
            |t| {
                let cert = real_certificate(t, OsStr::new("native"));
                std::fs::remove_dir_all(t.join("corpus")).unwrap();
                Setup::new(args!["certify", "--check", &cert])
            },
        ),
        case(
            "certificate-is-a-directory",
            Certificate,
            "`certify --check` names a directory",
            2,
            "<tmp>/certs: a directory, not a certificate (name the JSON file `certify --out` wrote)",
            |t| {
                std::fs::create_dir_all(t.join("certs")).unwrap();
                Setup::new(args!["certify", "--check", t.join("certs")])
            },
        ),
        case(
            "certificate-missing",
            Certificate,
            "the certificate file does not exist",
            2,
            "missing.json: cannot read the certificate",
            |t| Setup::new(args!["certify", "--check", t.join("missing.json")]),
        ),
        case(
            "certificate-build-gone",
            Certificate,
            "the candidate build the certificate names (a .wasm file) was deleted, and no Wasm cache holds it",
            2,
            "candidate build `cand.wasm` cannot be found: looked at <tmp>/cand.wasm; in no Wasm cache (none is configured: set LATTICE_WASM_CACHE)",
            certificate_without_its_build,
        ),
        case(
            "certify-out-into-store",
            Certificate,
            "`certify --out` names the log.db of a store (it used to be overwritten, and the store lost)",
            2,
            "refusing to write inside the store directory",
            |t| {
                let d = store_copy(t, "s");
                let a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native", "--out", d.join("log.db")];
                Setup::new(a).keeping(&d)
            },
        ),
        case("certificate-not-json", Certificate, "the certificate is plain text", 2, "not a certificate this build can check", |t| {
            certificate_text(t, "certified, honest\n")
        }),
        case(
            "certificate-too-new",
            Certificate,
            "the certificate's `format_version` is 4",
            2,
            "format_version 4 is newer than this build reads (3)",
            |t| certificate_edited(t, |v| v["format_version"] = json!(4)),
        ),
        case(
            "certificate-is-a-history",
            Certificate,
            "the file given to `--check` is a history file, not a certificate",
            2,
            "not a certificate this build can check: <tmp>/example.json: `format` is \"lattice-conform/history\"",
            |t| {
                std::fs::copy(example(), t.join("example.json")).unwrap();
                Setup::new(args!["certify", "--check", t.join("example.json")])
            },
        ),
        case(
            "certificate-field-missing",
            Certificate,
            "the certificate lacks its `seed` field",
            2,
            "missing field `seed`",
            |t| {
                certificate_edited(t, |v| {
                    v.as_object_mut().unwrap().remove("seed");
                })
            },
        ),
        // ---- migrations
        case(
            "migrate-destination-exists",
            Migration,
            "the destination is an existing store",
            2,
            "already exists; a migration never writes over an existing store",
            |t| {
                let src = example_store(t);
                let dst = fresh_store(t, "dst");
                migrate_from(&src, t, &[]).keeping(&dst)
            },
        ),
        case("migrate-source-paused", Migration, "the source is paused at op 2", 2, "store is paused since op 2", |t| {
            let src = paused_store(t, 2);
            migrate_from(&src, t, &[])
        }),
        case("migrate-source-corrupt", Migration, "a `data` row of the source was overwritten", 2, "corrupt: stored state hash", |t| {
            let src = store_copy(t, "src");
            tamper_first_data_row(&src.join("state.db"));
            migrate_from(&src, t, &["--check"])
        }),
        case(
            "migrate-source-lags",
            Migration,
            "the source's state.db reflects 0 of the 6 ops in its log.db",
            2,
            "state.db reflects 0 log entries but log.db holds 6",
            |t| {
                let fresh = fresh_store(t, "fresh");
                let src = store_copy(t, "src");
                std::fs::copy(fresh.join("state.db"), src.join("state.db")).unwrap();
                migrate_from(&src, t, &[])
            },
        ),
        case(
            "migrate-no-migration",
            Migration,
            "`--to-type core:logstore`: no migration from `core:kvstore`",
            2,
            "no migration from `core:kvstore` to `core:logstore`; available: core:kvstore -> core:kvstore-v2",
            |t| {
                let src = example_store(t);
                Setup::new(args!["migrate", &src, t.join("dst"), "--to-type", "core:logstore"]).keeping(&src)
            },
        ),
        // ---- reports
        case("report-not-json", Report, "the second report is cut off mid-file", 2, "shard-2.json: invalid JSON", |t| {
            merge_with_edited(t, |b| edit_text(b, |s| s[..s.len() / 2].to_string()))
        }),
        case(
            "report-is-a-directory",
            Report,
            "`report merge` is given a directory",
            2,
            "report <tmp>/reports: a directory, not a verify report (name the JSON files `verify --format json` wrote)",
            |t| {
                std::fs::create_dir_all(t.join("reports")).unwrap();
                Setup::new(args!["report", "merge", t.join("reports")])
            },
        ),
        case(
            "report-too-old",
            Report,
            "the second report is of format_version 2 (written before reports named their inputs)",
            2,
            "shard-2.json: too old: a verify report of format_version 2, but this build reads format_version 5",
            |t| merge_with_edited(t, |b| edit_json(b, |v| v["format_version"] = json!(2))),
        ),
        case(
            "report-overlap",
            Report,
            "both shard reports hold the same history",
            2,
            "shard-2.json: history `core:kvstore/example` is also in <tmp>/shard-1.json",
            |t| {
                let [a, b] = real_shards(t);
                let (full, empty) = if load_json(&a)["results"].as_array().unwrap().is_empty() { (b.clone(), a.clone()) } else { (a.clone(), b.clone()) };
                let results = load_json(&full)["results"].clone();
                edit_json(&empty, |v| {
                    v["results"] = results;
                    v["selection"]["selected"] = json!(1);
                });
                Setup::new(args!["report", "merge", &a, &b])
            },
        ),
        case("report-missing-shard", Report, "only shard 1/2 of a sharded run", 2, "report merge: shard 2/2 missing", |t| {
            let [a, _] = real_shards(t);
            Setup::new(args!["report", "merge", &a])
        }),
        case(
            "report-duplicate-shard",
            Report,
            "shard 2/2 given twice (a copy of its report)",
            2,
            "report merge: shard 2/2 appears twice: in <tmp>/shard-2.json and in <tmp>/shard-2-again.json",
            |t| {
                let [a, b] = real_shards(t);
                let again = t.join("shard-2-again.json");
                std::fs::copy(&b, &again).unwrap();
                Setup::new(args!["report", "merge", &a, &b, &again])
            },
        ),
        case(
            "report-other-tool",
            Report,
            "the second report was written by another version of lattice-conform",
            2,
            "report merge: <tmp>/shard-2.json and <tmp>/shard-1.json differ in `tool` (`lattice-conform 0.0.1` vs `lattice-conform",
            |t| merge_with_edited(t, |b| edit_json(b, |v| v["tool"] = json!("lattice-conform 0.0.1"))),
        ),
        case(
            "report-other-build",
            Report,
            "the second report is of build `native-fault:forget-one-head`",
            2,
            "differ in `build` (`native-fault:forget-one-head` vs `native`)",
            |t| merge_with_edited(t, |b| edit_json(b, |v| v["build"] = json!("native-fault:forget-one-head"))),
        ),
        case(
            "report-other-golden",
            Report,
            "a golden was rewritten (same value, other bytes) between the runs of the two shards",
            2,
            "report merge: <tmp>/shard-2.json and <tmp>/shard-1.json differ in `golden_blake3`",
            |t| {
                let a = real_report_with(t, "shard-1.json", &["--shard", "1/2"]);
                edit_text(&t.join("golden").join(CORPUS_HISTORY), |s| s + "\n");
                let b = real_report_with(t, "shard-2.json", &["--shard", "2/2"]);
                Setup::new(args!["report", "merge", &a, &b])
            },
        ),
        case(
            "report-other-corpus",
            Report,
            "a history was added to the corpus between the runs of the two shards",
            2,
            "report merge: <tmp>/shard-2.json and <tmp>/shard-1.json differ in `corpus_manifest_blake3`",
            |t| {
                let a = real_report_with(t, "shard-1.json", &["--shard", "1/2"]);
                let h = lattice_conform::history::History::load(&example()).unwrap();
                let entry = corpus::add_history(&t.join("corpus"), "example-2", &h).unwrap();
                let logic = Registry::with_reference_types().resolve(&h.identity()).unwrap();
                let g = golden::to_text(&golden::compute(&h, logic, &entry));
                corpus::write_atomic(&golden::path_for(&t.join("golden"), &entry), g.as_bytes()).unwrap();
                let b = real_report_with(t, "shard-2.json", &["--shard", "2/2"]);
                Setup::new(args!["report", "merge", &a, &b])
            },
        ),
        case(
            "report-other-selection",
            Report,
            "the second shard was run with a `--filter`",
            2,
            "differ in `selection.filter` (`*example*` vs none)",
            |t| {
                let a = real_report_with(t, "shard-1.json", &["--shard", "1/2"]);
                let b = real_report_with(t, "shard-2.json", &["--shard", "2/2", "--filter", "*example*"]);
                Setup::new(args!["report", "merge", &a, &b])
            },
        ),
        case(
            "report-output-into-store",
            Report,
            "`report merge --output` names a file inside a store directory",
            2,
            "refusing to write inside the store directory",
            |t| {
                let [a, b] = real_shards(t);
                let d = store_copy(t, "s");
                Setup::new(args!["report", "merge", &a, &b, "--output", d.join("report.json")]).keeping(&d)
            },
        ),
        case(
            "report-wrong-format",
            Report,
            "the second file is a history, not a report",
            2,
            "`format` is \"lattice-conform/history\", expected \"lattice-conform/verify-report\"",
            |t| merge_with_edited(t, |b| std::fs::copy(example(), b).map(drop).unwrap()),
        ),
        // ---- command-line arguments
        case("args-unknown-command", Args, "an unknown subcommand", 2, "unrecognized subcommand 'frobnicate'", |_| {
            Setup::new(args!["frobnicate"])
        }),
        case(
            "args-certify-corpus-twice",
            Args,
            "`certify --corpus A --corpus B`: the old sense of `--corpus` (extra corpora after ./corpus)",
            2,
            "certify replays one corpus (--corpus DIR) and then the --extra-corpus ones",
            |t| {
                let mut a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native"];
                a.extend(args!["--corpus", t.join("a"), "--corpus", t.join("b"), "--out", t.join("cert.json")]);
                Setup::new(a)
            },
        ),
        case(
            "args-certify-corpus-ambiguous",
            Args,
            "`certify --corpus recorded` run where ./corpus is another corpus (it used to mean ./corpus, then recorded)",
            2,
            "--corpus recorded: ambiguous here",
            |t| {
                tiny_corpus(t);
                let mut a = args!["certify", "--type", "core:kvstore", "--baseline", "native", "--candidate", "native"];
                a.extend(args!["--corpus", "recorded", "--out", "cert.json"]);
                Setup::new(a).in_dir(t)
            },
        ),
        case("args-completions-unknown-shell", Args, "`completions tcsh` (a shell clap_complete does not support)", 2, "invalid value 'tcsh' for '<SHELL>'", |_| {
            Setup::new(args!["completions", "tcsh"])
        }),
        case("args-bad-uuid", Args, "`create --id` is not a UUID", 2, "invalid value 'not-a-uuid' for '--id <ID>'", |t| {
            Setup::new(args!["create", t.join("s"), "--type", "core:kvstore", "--id", "not-a-uuid"])
        }),
        case(
            "args-wasm-flag-without-guests",
            Args,
            "`report merge --wasm-fuel 5`: a Wasm limit given to a command that runs no Wasm guest",
            2,
            "unexpected argument '--wasm-fuel' found",
            |t| Setup::new(args!["report", "merge", t.join("a.json"), "--wasm-fuel", "5"]),
        ),
        case("args-wasm-fuel-not-a-number", Args, "`--wasm-fuel abc`", 2, "invalid value 'abc' for '--wasm-fuel <UNITS>'", |t| {
            let (c, g) = tiny_corpus(t);
            Setup::new(args!["verify", "--corpus", &c, "--golden", &g, "--wasm-fuel", "abc"])
        }),
        case(
            "args-wasm-memory-out-of-range",
            Args,
            "`--wasm-memory-mib 5000` (a 32-bit guest memory is at most 4096 MiB)",
            2,
            "invalid value '5000' for '--wasm-memory-mib <MIB>': 5000 is not in 1..=4096",
            |t| {
                let (c, g) = tiny_corpus(t);
                Setup::new(args!["verify", "--corpus", &c, "--golden", &g, "--wasm-memory-mib", "5000"])
            },
        ),
        case("args-bad-shard", Args, "`verify --shard 0/3`", 2, "--shard 0/3: expected I/N with 1 <= I <= N", |t| {
            verify_edited(t, &["--shard", "0/3"], |_, _| {})
        }),
        case(
            "corpus-add-golden-unwritable",
            Corpus,
            "`corpus add` of the example where its migration golden cannot be written (a file where its directory goes): the copied history and the pending history golden are taken back",
            2,
            "golden/migrations/core__kvstore-to-core__kvstore-v2",
            |t| {
                let (c, g) = tiny_corpus(t);
                std::fs::create_dir_all(g.join("migrations")).unwrap();
                std::fs::write(g.join("migrations/core__kvstore-to-core__kvstore-v2"), b"in the way").unwrap();
                Setup::new(args!["corpus", "add", example(), "--corpus", &c, "--golden", &g, "--id", "again"])
            },
        ),
        case(
            "record-corpus-golden-unwritable",
            Corpus,
            "`record --corpus` where the recorded history's migration golden cannot be written: nothing is listed, nothing is left",
            2,
            "golden/migrations/core__kvstore-to-core__kvstore-v2",
            |t| {
                let (c, g) = tiny_corpus(t);
                std::fs::create_dir_all(g.join("migrations")).unwrap();
                std::fs::write(g.join("migrations/core__kvstore-to-core__kvstore-v2"), b"in the way").unwrap();
                let store = store_copy(t, "recorded");
                Setup::new(args!["record", &store, "--corpus", &c, "--golden", &g, "--name", "recorded"]).keeping(&store)
            },
        ),
        Case {
            writes: true,
            ..case(
                "certify-leaking-guest",
                Build,
                "`certify --json` of a Wasm candidate that leaks 2 MiB per op until its 64 MiB cap (100 ops): every shrinking replay regrows a fresh guest, so shrinking stops at its replay cap and says so",
                1,
                "in 64 replays",
                |t| {
                    use crate::gen::{author, Chains};
                    let good = t.join("good.wasm");
                    std::fs::write(&good, crate::hostile::guest("test:ids", 1, crate::hostile::PUT_ID, "")).unwrap();
                    let leaky = t.join("leaky.wasm");
                    std::fs::write(&leaky, crate::hostile::guest("test:ids", 1, crate::hostile::LEAK, "")).unwrap();
                    let id = uuid::Uuid::from_u128(0x6c65_616b);
                    let mut c = Chains::new(id);
                    let ops = (0..100u64).map(|i| c.next(author(1 + (i % 3) as u8), i + 1, vec![], vec![i as u8]).0).collect();
                    let h = lattice_conform::history::History { store_id: id, store_type: "test:ids".into(), schema_version: 1, provenance: None, delivery: Default::default(), expect: Vec::new(), ops };
                    corpus::add_history(&t.join("corpus"), "leak", &h).unwrap();
                    Setup::new(args![
                        "certify", "--wasm-memory-mib", "64", "--type", "test:ids", "--baseline", &good, "--candidate", &leaky, "--bundled", t.join("corpus"),
                        "--cases", "0", "--out", t.join("cert.json"), "--counterexample", t.join("cx.json"), "--json"
                    ])
                },
            )
        },
        Case {
            writes: true,
            ..case(
                "gen-leftover-temp-file",
                Interrupted,
                "`gen` into a corpus where a killed run left `core__kvstore/.lattice-tmp.x.json.AbC123` (no process holds its lock)",
                0,
                "note: removed <tmp>/corpus/core__kvstore/.lattice-tmp.x.json.AbC123, a temporary file left by an interrupted run",
                |t| {
                    std::fs::create_dir_all(t.join("corpus/core__kvstore")).unwrap();
                    std::fs::write(t.join("corpus/core__kvstore/.lattice-tmp.x.json.AbC123"), b"{\"format\":").unwrap();
                    Setup::new(args!["gen", "--type", "core:kvstore", "--histories", "2", "--out", t.join("corpus")])
                },
            )
        },
        Case {
            writes: true,
            ..case(
                "record-out-leftover-temp-file",
                Interrupted,
                "`record --out <tmp>/out/h.json` where a killed `record` left `.lattice-tmp.h.json.Zz9Zz9` beside it",
                0,
                "note: removed <tmp>/out/.lattice-tmp.h.json.Zz9Zz9, a temporary file left by an interrupted run",
                |t| {
                    let store = store_copy(t, "s");
                    std::fs::create_dir(t.join("out")).unwrap();
                    std::fs::write(t.join("out/.lattice-tmp.h.json.Zz9Zz9"), b"{\"format\":").unwrap();
                    Setup::new(args!["record", &store, "--out", t.join("out/h.json")]).keeping(&store)
                },
            )
        },
        Case {
            writes: true,
            ..case(
                "rebuild-leftover",
                Interrupted,
                "`rebuild` of a store where a killed rebuild left `state.db.rebuild` (half filled) beside `state.db.before-rebuild`",
                0,
                "note: removed <tmp>/s/state.db.rebuild, left by an interrupted rebuild",
                |t| {
                    let store = store_copy(t, "s");
                    std::fs::write(store.join("state.db.rebuild"), b"half a redb file").unwrap();
                    std::fs::copy(store.join("state.db"), store.join("state.db.before-rebuild")).unwrap();
                    Setup::new(args!["rebuild", &store])
                },
            )
        },
        case(
            "args-migrations-build-not-a-migration-fault",
            Args,
            "`verify --migrations` with a `--build` fault that is not a migration fault",
            2,
            "--migrations --build native-fault:forget-one-head: not a migration fault",
            |_| Setup::new(args!["verify", "--migrations", "--build", "native-fault:forget-one-head"]),
        ),
    ]
}

/// A store of the example's id built from 6 ops of its own (the example logs 6): another
/// replica's files, to pair with the example store's.
fn other_replica(t: &Path) -> PathBuf {
    let h = t.join("other.json");
    run(args!["history", "new", &h, "--type", "core:kvstore", "--id", crate::util::EXAMPLE_ID]).expect(0);
    for i in 0..6 {
        run(args!["history", "add", &h, "--author", "bob", "--put", format!("other{i}=v{i}")]).expect(0);
    }
    let dir = t.join("other");
    run(args!["apply", &dir, &h, "--create"]).expect(0);
    dir
}

/// The example's first `n` ops, as a history file under `t`.
fn first_ops(t: &Path, n: usize) -> PathBuf {
    let mut v = example_json();
    v["ops"].as_array_mut().unwrap().truncate(n);
    let f = t.join(format!("first-{n}.json"));
    std::fs::write(&f, v.to_string()).unwrap();
    f
}

// ---- running and rendering --------------------------------------------------------------------

/// Every file and directory under `dir` (relative path → blake3 of the content; `None` for a
/// directory).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<[u8; 32]>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<[u8; 32]>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let kind = path.symlink_metadata().unwrap().file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, Some(*blake3::hash(target.as_os_str().as_encoded_bytes()).as_bytes()));
            } else if kind.is_dir() {
                out.insert(rel, None);
                walk(base, &path, out);
            } else {
                out.insert(rel, Some(*blake3::hash(&std::fs::read(&path).unwrap()).as_bytes()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Machine-specific text made deterministic: the temp dir becomes `<tmp>`, the repository `<repo>`.
fn normalise(text: &str, tmp: &Path) -> String {
    text.replace(&tmp.display().to_string(), "<tmp>").replace(&root().display().to_string(), "<repo>")
}

/// An argument as a reader would type it (quoted if the shell would need it).
fn shell_word(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:<>=,".contains(c)) {
        arg.to_string()
    } else {
        format!("'{arg}'")
    }
}

/// Text as a Markdown inline code span that survives a table cell.
fn code(text: &str) -> String {
    assert!(!text.contains("``"), "cannot render {text:?} as a code span");
    format!("`` {} ``", text.replace('|', "\\|"))
}

/// One rendered row: (kind, row text).
struct Row {
    kind: Kind,
    line: String,
}

/// Runs one case; returns its row, or what went wrong.
fn run_case(c: &Case) -> Result<Row, String> {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let setup = (c.setup)(t);
    let before_tree = tree(t);
    let before_stores: Vec<_> = setup.stores.iter().map(|s| digests(s)).collect();
    let run_it = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lattice-conform"));
        cmd.args(&setup.args).env_remove("LATTICE_WASM_CACHE");
        // In the case's own directory, or the private copy of the fixtures: never the working
        // tree, whose corpus a command's defaults would read.
        cmd.current_dir(setup.cwd.as_deref().unwrap_or(crate::util::fixtures()));
        if let Some(cache) = &setup.wasm_cache {
            cmd.env("LATTICE_WASM_CACHE", cache);
        }
        let out = cmd.output().expect("the binary runs");
        crate::util::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .expect(c.exit)
    };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run_it)).map_err(|e| {
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".into());
        format!("{}: {msg}", c.id)
    })?;
    let stderr = normalise(&out.stderr, t);
    if !stderr.contains(&normalise(c.stderr, t)) {
        return Err(format!("{}: expected {:?} in stderr:\n{stderr}", c.id, c.stderr));
    }
    for (store, before) in setup.stores.iter().zip(&before_stores) {
        if digests(store) != *before {
            return Err(format!("{}: {} was written", c.id, store.display()));
        }
    }
    if !c.writes {
        let after = tree(t);
        if after != before_tree {
            let changed: Vec<_> = before_tree
                .keys()
                .chain(after.keys())
                .filter(|k| before_tree.get(*k) != after.get(*k))
                .map(|k| k.display().to_string())
                .collect();
            return Err(format!("{}: wrote under the temp dir: {changed:?}", c.id));
        }
    }
    let first = stderr.lines().next().unwrap_or("").to_string();
    let command: Vec<String> = setup.args.iter().map(|a| shell_word(&normalise(&a.to_string_lossy(), t))).collect();
    let mut env =
        setup.wasm_cache.as_ref().map_or(String::new(), |c| format!("LATTICE_WASM_CACHE={} ", normalise(&c.display().to_string(), t)));
    if let Some(dir) = &setup.cwd {
        env = format!("cd {}; {env}", normalise(&dir.display().to_string(), t));
    }
    let line = format!(
        "| {} | {} | {} | {} |",
        c.what.replace('|', "\\|"),
        code(&format!("{env}lattice-conform {}", command.join(" "))),
        c.exit,
        code(&first)
    );
    Ok(Row { kind: c.kind, line })
}

fn render(rows: &[Row], total: usize) -> String {
    let mut doc = String::from(
        "# Bad inputs\n\n\
         <!-- Generated by tests/integration/bad_inputs.rs; do not edit by hand. -->\n\n\
         This catalogue is **generated** by the test `bad_inputs` in `tests/integration/bad_inputs.rs`, \
         which builds every bad input below in a temporary directory, runs the real `lattice-conform` \
         binary on it, and checks the exit code, the message, that nothing panicked, and that no input \
         it must not write was written (stores byte for byte, and no new files). The same test compares \
         this file with what it renders and fails on any difference; after changing a case or a message, \
         regenerate it with `UPDATE_BAD_INPUTS=1 cargo test --test integration bad_inputs` and review the diff.\n\n\
         Exit codes are those of docs/FORMAT.md §18.5: `1` a check failed on well-formed input, `2` unusable \
         input. *What the user sees* is the first line of standard error, with the temporary directory \
         shown as `<tmp>`.\n",
    );
    doc.push_str(&format!("\n{total} cases.\n"));
    for kind in Kind::ALL {
        let lines: Vec<&str> = rows.iter().filter(|r| r.kind == kind).map(|r| r.line.as_str()).collect();
        if lines.is_empty() {
            continue;
        }
        doc.push_str(&format!("\n## {}\n\n{}\n\n", kind.title(), kind.blurb()));
        doc.push_str("| Bad input | Command | Exit | What the user sees |\n|---|---|---|---|\n");
        for l in lines {
            doc.push_str(l);
            doc.push('\n');
        }
    }
    doc
}

/// The concurrency section: reader commands run against a store a writer keeps committing to.
fn render_concurrency(pairs: &[crate::concurrency::PairResult]) -> String {
    let mut doc = String::from(
        "\n## Readers beside a writer\n\n\
         Generated by the same test from `tests/integration/concurrency.rs`: a thread keeps applying ops \
         to one `core:kvstore` store (a commit of `log.db` and then of `state.db` every few milliseconds, \
         a few ops each) while each reader below runs as its own process, one round after another. \
         A reader must give the verdict a quiet store gives (exit 0): a \"corrupt\", a \"crash\" advice \
         or any other failure is a false verdict, and the test fails on the first one. Readers read one \
         snapshot of each file, state.db first (docs/FORMAT.md §9.9). The migration checks \
         (`migrate --check`, `--dry-run`) compare the source before and after, so beside a writer they \
         refuse (exit 2, *another process holds the store for writing*) instead of failing; the test \
         checks that too.\n\n\
         Rounds counts the runs that overlapped a writer commit; a run that saw no commit is run again \
         (its verdict still counts).\n\n\
         | Reader (S = the store) | Rounds | False verdicts |\n|---|---|---|\n",
    );
    for p in pairs {
        doc.push_str(&format!("| {} | {} | {} |\n", code(&format!("lattice-conform {}", p.reader)), p.overlapped, p.false_verdicts.len()));
    }
    doc
}

#[test]
fn bad_inputs() {
    let cases = cases();
    let mut ids = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(ids.insert(c.id), "duplicate case id {}", c.id);
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for c in &cases {
        match run_case(c) {
            Ok(row) => rows.push(row),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    let pairs = crate::concurrency::run_all();
    let false_verdicts: Vec<String> =
        pairs.iter().flat_map(|p| p.false_verdicts.iter().map(move |v| format!("{}: {v}", p.reader))).collect();
    assert!(false_verdicts.is_empty(), "false verdicts while a writer ran:\n{}", false_verdicts.join("\n"));
    // The proof needs every reader to have run its rounds while the writer committed.
    for p in &pairs {
        assert_eq!(
            p.overlapped,
            crate::concurrency::ROUNDS,
            "`{}`: only {} of {} rounds overlapped a writer commit",
            p.reader,
            p.overlapped,
            p.rounds
        );
    }
    let mut doc = render(&rows, cases.len());
    doc.push_str(&render_concurrency(&pairs));
    let path = root().join(DOC);
    if std::env::var(UPDATE_ENV).as_deref() == Ok("1") {
        std::fs::write(&path, &doc).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != doc {
        let first =
            committed.lines().zip(doc.lines()).position(|(a, b)| a != b).unwrap_or(committed.lines().count().min(doc.lines().count()));
        panic!(
            "{DOC} is not what the bad-input cases produce (first difference at line {}: {:?}).\n\
             Run `{UPDATE_ENV}=1 cargo test --test integration bad_inputs` and review the diff.",
            first + 1,
            doc.lines().nth(first).unwrap_or("<end of file>")
        );
    }
}
