//! Helpers shared by the integration tests: run the binary, fingerprint files, tamper with redb.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use redb::{Builder, ConcurrencyMode, TableDefinition};

/// The repository, for its parts no test run changes: `guests/dist`, `examples`, `docs`, `fuzz`.
/// Its `corpus/` and `golden/` are the working tree's, which a developer may be changing while the
/// tests run (adding a fixture, blessing): read [`fixtures`] instead.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A private copy of the repository's `corpus/` and `golden/` (`known-divergences` and
/// `lattice-tests.json` included), made once per test process outside the repository and removed
/// when the process exits. Every test that reads the bundled fixtures reads them here — by path,
/// or by running the binary here so that its default `corpus` and `golden` are these — so that a
/// fixture added, edited or blessed while the tests run changes nothing they see. The copy is
/// checked against its own manifest (every listed history's digest), and made again if a writer
/// was caught half way.
pub fn fixtures() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("lattice-conform-fixtures-").tempdir().expect("a temp dir").keep();
        for attempt in 1..=5 {
            for d in ["corpus", "golden"] {
                let _ = std::fs::remove_dir_all(dir.join(d));
                copy_dir(&repo().join(d), &dir.join(d));
            }
            match consistent(&dir) {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    eprintln!("fixtures: the copy caught a writer half way ({e}); copying again");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => panic!("fixtures: no consistent copy of the corpus after {attempt} tries: {e}"),
            }
        }
        let _ = REMOVE_AT_EXIT.set(dir.clone());
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as atexit(3) requires.
        unsafe { libc::atexit(remove_fixtures) };
        dir
    })
}

/// The copy [`fixtures`] made, for [`remove_fixtures`].
static REMOVE_AT_EXIT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_fixtures() {
    if let Some(dir) = REMOVE_AT_EXIT.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Every history the copy's manifest lists is there with the listed digest.
fn consistent(dir: &Path) -> Result<(), String> {
    let corpus = dir.join("corpus");
    let manifest = lattice_conform::corpus::Manifest::load(&corpus, false).map_err(|e| e.to_string())?;
    for e in &manifest.files {
        let bytes = std::fs::read(corpus.join(&e.path)).map_err(|err| format!("{}: {err}", e.path))?;
        if blake3::hash(&bytes).to_hex().as_str() != e.blake3 {
            return Err(format!("{}: not the listed digest", e.path));
        }
    }
    Ok(())
}

/// Copies the directory tree `from` to `to` (regular files and directories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

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

/// Runs `lattice-conform ARGS` and captures everything, in [`fixtures`] (so a command's default
/// `corpus` and `golden` are the private copy, never the working tree's).
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_in(fixtures(), args)
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
    repo().join("examples/kv-example.json")
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
