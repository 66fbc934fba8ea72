//! Helpers shared by the integration tests: run the binary, fingerprint files, tamper with redb.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use redb::{Builder, ConcurrencyMode, TableDefinition};

/// The outcome of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output on failure.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "the binary panicked:\n{}", self.stderr);
        self
    }
}

/// Runs `lattice-conform ARGS` and captures everything.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_in(Path::new("."), args)
}

/// Runs `lattice-conform ARGS` in the directory `dir` and captures everything.
pub fn run_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_lattice-conform")).current_dir(dir).args(args).output().expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The example history's store id (`examples/kv-example.json`).
pub const EXAMPLE_ID: &str = "6c617474-6963-4500-8000-000000000001";

/// An empty `core:kvstore` at `tmp/<name>` with the example's store id (so its files pair with
/// the example store's).
pub fn fresh_store(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    run([
        OsStr::new("create"),
        dir.as_os_str(),
        OsStr::new("--type"),
        OsStr::new("core:kvstore"),
        OsStr::new("--id"),
        OsStr::new(EXAMPLE_ID),
    ])
    .expect(0);
    dir
}

/// The bundled example history.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kv-example.json")
}

/// Builds a store from the example history under `tmp` and returns its directory.
pub fn example_store(tmp: &Path) -> PathBuf {
    let dir = tmp.join("store");
    run([OsStr::new("apply"), dir.as_os_str(), example().as_os_str(), OsStr::new("--create")]).expect(0);
    dir
}

/// A `core:kvstore` store at `tmp/long` built by `apply` from a synthetic history of `n` ops (one
/// store id; the same ops every time).
pub fn long_store(tmp: &Path, n: u64) -> PathBuf {
    use lattice_conform::corpus::synthetic::{ops, Kind};
    let identity = lattice_conform::store::StoreIdentity {
        store_id: uuid::Uuid::from_u128(0x3232),
        store_type: "core:kvstore".into(),
        schema_version: 1,
    };
    let history = tmp.join("long.json");
    let ops: Vec<lattice_conform::op::Op> = ops(n, Kind::KvStore, identity.store_id).collect();
    std::fs::write(&history, lattice_conform::history::History::new(&identity, ops).to_json()).unwrap();
    let dir = tmp.join("long");
    run([OsStr::new("apply"), dir.as_os_str(), history.as_os_str(), OsStr::new("--create")]).expect(0);
    dir
}

/// blake3 of every file in `dir`, by name.
pub fn digests(dir: &Path) -> BTreeMap<String, [u8; 32]> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), *blake3::hash(&std::fs::read(e.path()).unwrap()).as_bytes())
        })
        .collect()
}

/// Sets (`Some`) or removes (`None`) one key of a `&str → &[u8]` table in a redb file, bypassing
/// the library — the way a bug or an attacker would.
pub fn tamper_str_table(file: &Path, table: &str, key: &str, value: Option<&[u8]>) {
    let db = Builder::new().set_concurrency_mode(ConcurrencyMode::SingleWriter).open(file).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TableDefinition::<&str, &[u8]>::new(table)).unwrap();
        match value {
            Some(v) => t.insert(key, v).map(drop).unwrap(),
            None => t.remove(key).map(drop).unwrap(),
        }
    }
    txn.commit().unwrap();
}

/// Overwrites the value of the first row of the `data` table.
pub fn tamper_first_data_row(file: &Path) {
    use redb::ReadableTable;
    let db = Builder::new().set_concurrency_mode(ConcurrencyMode::SingleWriter).open(file).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TableDefinition::<&[u8], &[u8]>::new("data")).unwrap();
        let key = t.first().unwrap().unwrap().0.value().to_vec();
        t.insert(key.as_slice(), b"tampered".as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// The example history with op `index`'s payload replaced by one malformed byte (and its stated
/// `id` and `decoded` form dropped, so the file itself still loads), written under `tmp`.
pub fn example_with_malformed_op(tmp: &Path, index: usize) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    let op = v["ops"][index].as_object_mut().unwrap();
    op.insert("payload".into(), "00".into());
    op.remove("id");
    op.remove("decoded");
    let bad = tmp.join(format!("malformed-op-{index}.json"));
    std::fs::write(&bad, v.to_string()).unwrap();
    bad
}

/// A store built from the example history that paused at op `index` (a malformed payload).
pub fn paused_store(tmp: &Path, index: usize) -> PathBuf {
    let dir = tmp.join(format!("paused-at-{index}"));
    let bad = example_with_malformed_op(tmp, index);
    run([OsStr::new("apply"), dir.as_os_str(), bad.as_os_str(), OsStr::new("--create")]).expect(2);
    dir
}
