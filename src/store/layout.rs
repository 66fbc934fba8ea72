//! The on-disk layout: table definitions, meta keys and their codecs, and how redb files are
//! opened. This is the only place that knows redb table names (normative: docs/FORMAT.md,
//! "Store directory").

use std::path::Path;

use redb::{Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadableTable, TableDefinition};
use uuid::Uuid;

use super::error::{RedbContext, StoreError};
use super::StoreIdentity;

pub(crate) const STATE_FILE: &str = "state.db";
/// The file a rebuild fills before renaming it over `state.db`.
pub(crate) const REBUILD_FILE: &str = "state.db.rebuild";
pub(crate) const LOG_FILE: &str = "log.db";

/// state.db: identity, tips, state hash, bookkeeping.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// state.db: the store logic's rows.
pub(crate) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// state.db: reserved for the kernel; empty.
pub(crate) const SYSTEM: TableDefinition<&[u8], &[u8]> = TableDefinition::new("system");
/// state.db: every op received (Lattice's intention store index): op id → status (0 floating,
/// 1 witnessed) ‖ wall_ms u64 LE ‖ counter u32 LE ‖ author.
pub(crate) const OPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ops");
/// state.db: the floating ops: prev ‖ op id → arrival (log position, u64 LE) ‖ canonical op.
pub(crate) const FLOATING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("floating");
/// state.db: each author's witness tip: author → op id.
pub(crate) const WITNESS_TIPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("witness_tips");
/// log.db: the store's identity, so log.db identifies the store on its own.
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("log_meta");
/// log.db: canonical encodings of the ops received, in arrival order (0-based).
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

pub(crate) const K_STORE_ID: &str = "store_id";
pub(crate) const K_STORE_TYPE: &str = "store_type";
pub(crate) const K_SCHEMA: &str = "schema_version";
pub(crate) const K_LAYOUT: &str = "layout_version";
pub(crate) const K_ACC: &str = "state_acc";
pub(crate) const K_HASH: &str = "state_hash";
pub(crate) const K_LOG_LEN: &str = "log_len";
pub(crate) const K_PAUSED: &str = "paused";
/// `meta` and `log_meta`: the log chain (`store::chain`) over the entries the file reflects.
pub(crate) const K_LOG_CHAIN: &str = "log_chain";
pub(crate) const TIP_PREFIX: &str = "tip/";
/// log.db only: the type and schema the store was created as (`u64 LE schema ‖ UTF-8 type`),
/// written once at create and never changed; `audit` compares the live identity against it.
pub(crate) const K_CREATED_AS: &str = "created_as";

/// The store layout version this build writes and reads.
pub const LAYOUT_VERSION: u64 = 2;

/// Every process opens our files in this mode, so read-only peeks coexist with one writer.
const MODE: ConcurrencyMode = ConcurrencyMode::SingleWriter;

pub(crate) fn tip_key(author: &[u8; 32]) -> String {
    format!("{TIP_PREFIX}{}", hex::encode(author))
}

/// Opens an existing file read-write (takes the writer role; may repair after a crash).
pub(crate) fn open_rw(path: &Path) -> Result<Database, StoreError> {
    require_file(path)?;
    Builder::new().set_concurrency_mode(MODE).open(path).at(path)
}

/// Opens an existing file read-only. Writes nothing; refuses a file that needs repair. A
/// read-only open cannot turn an empty file into a database, so the empty-file diagnosis runs
/// only when the open fails (one `stat` fewer on the path every peek takes).
pub(crate) fn open_ro(path: &Path) -> Result<ReadOnlyDatabase, StoreError> {
    Builder::new().set_concurrency_mode(MODE).set_cache_size(1 << 20).open_read_only(path).or_else(|e| {
        require_file(path)?;
        Err(e).at(path)
    })
}

/// The writer's claim on a store directory: an exclusive advisory lock (`flock`) on the directory
/// itself, held for as long as a read-write [`super::Store`] is open. redb already keeps a second
/// writer out of each file; this lock exists so that a *reader* can tell whether a writer is at
/// work (see [`writer_active`]) without touching redb's own lock bytes, and it puts nothing in the
/// directory. Released when dropped (the file descriptor closes).
#[derive(Debug)]
pub(crate) struct DirLock(#[allow(dead_code)] std::fs::File);

/// How long a writer waits for readers' momentary probes to let go before calling the store held.
const LOCK_ATTEMPTS: u32 = 500;

/// Takes the writer lock on `dir`. Readers only ever hold a shared lock for the instant of a
/// probe, so a writer retries for up to about half a second before reporting the store as held
/// by another process (another writer keeps it for as long as it runs).
pub(crate) fn lock_writer(dir: &Path) -> Result<DirLock, StoreError> {
    let file = std::fs::File::open(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
    for _ in 0..LOCK_ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::Io { path: dir.to_path_buf(), source }),
        }
    }
    Err(StoreError::Locked { path: dir.to_path_buf() })
}

/// Whether a writer (a read-write open in any process) holds `dir`. A shared probe of the
/// directory lock, released at once; an unreadable directory counts as no writer (the caller is
/// about to fail on it anyway). A writer holds the lock for as long as its store is open, so the
/// probe answers "yes" only when the lock stays held over [`PROBE_ATTEMPTS`] tries 2 ms apart: a
/// lock seen held for an instant — a writer closing, or a child process another thread of this
/// process is starting, which holds copies of its descriptors until it runs its program — is
/// not a writer.
pub(crate) fn writer_active(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir) else { return false };
    for attempt in 0..PROBE_ATTEMPTS {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                return false;
            }
            Err(std::fs::TryLockError::WouldBlock) if attempt + 1 < PROBE_ATTEMPTS => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            Err(std::fs::TryLockError::WouldBlock) => return true,
            Err(std::fs::TryLockError::Error(_)) => return false,
        }
    }
    true
}

/// Tries of [`writer_active`] before it says a writer holds the store (≈ 100 ms in all).
const PROBE_ATTEMPTS: u32 = 50;

/// Whether `e` says the file it names does not exist (or its directory is not one).
pub(crate) fn is_not_found(e: &StoreError) -> bool {
    use std::io::ErrorKind::{NotADirectory, NotFound};
    matches!(e, StoreError::Io { source, .. } if matches!(source.kind(), NotFound | NotADirectory))
}

/// Creates a new file; it must not exist.
pub(crate) fn create(path: &Path) -> Result<Database, StoreError> {
    if path.exists() {
        return Err(StoreError::AlreadyExists { path: path.to_path_buf() });
    }
    Builder::new().set_concurrency_mode(MODE).create(path).at(path)
}

/// redb turns an empty file into a database on create; refuse it (and a missing file) up front.
fn require_file(path: &Path) -> Result<(), StoreError> {
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
    if meta.len() == 0 {
        return Err(StoreError::NotRedb { path: path.to_path_buf(), detail: "file is empty".into() });
    }
    Ok(())
}

/// Writes the identity keys into a meta table (`meta` or `log_meta`).
pub(crate) fn write_identity(t: &mut redb::Table<&str, &[u8]>, id: &StoreIdentity, path: &Path) -> Result<(), StoreError> {
    t.insert(K_STORE_ID, id.store_id.as_bytes().as_slice()).at(path)?;
    t.insert(K_STORE_TYPE, id.store_type.as_bytes()).at(path)?;
    t.insert(K_SCHEMA, id.schema_version.to_le_bytes().as_slice()).at(path)?;
    t.insert(K_LAYOUT, LAYOUT_VERSION.to_le_bytes().as_slice()).at(path)?;
    Ok(())
}

/// Reads and checks the identity keys from a meta table.
pub(crate) fn read_identity(t: &impl ReadableTable<&'static str, &'static [u8]>, path: &Path) -> Result<StoreIdentity, StoreError> {
    let layout = read_u64(t, K_LAYOUT, path)?;
    if layout != LAYOUT_VERSION {
        let hint = if layout > LAYOUT_VERSION {
            "written by a newer lattice-conform; upgrade this tool"
        } else {
            "written by an older layout this build cannot read"
        };
        return Err(bad(path, K_LAYOUT, format!("layout version {layout}, this build reads {LAYOUT_VERSION} ({hint})")));
    }
    let raw_id = read_bytes(t, K_STORE_ID, path)?;
    let store_id: [u8; 16] =
        raw_id.as_slice().try_into().map_err(|_| bad(path, K_STORE_ID, format!("expected 16 bytes, found {}", raw_id.len())))?;
    let raw_type = read_bytes(t, K_STORE_TYPE, path)?;
    let store_type = String::from_utf8(raw_type).map_err(|e| bad(path, K_STORE_TYPE, format!("not UTF-8 ({e})")))?;
    if store_type.is_empty() {
        return Err(bad(path, K_STORE_TYPE, "empty".into()));
    }
    let schema_version = read_u64(t, K_SCHEMA, path)?;
    Ok(StoreIdentity { store_id: Uuid::from_bytes(store_id), store_type, schema_version })
}

pub(crate) fn read_opt(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(t.get(key).at(path)?.map(|v| v.value().to_vec()))
}

pub(crate) fn read_bytes(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    read_opt(t, key, path)?.ok_or_else(|| StoreError::MissingMeta { path: path.to_path_buf(), key: key.to_string() })
}

pub(crate) fn read_u64(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str, path: &Path) -> Result<u64, StoreError> {
    let raw = read_bytes(t, key, path)?;
    let arr: [u8; 8] = raw.as_slice().try_into().map_err(|_| bad(path, key, format!("expected 8 bytes (u64 LE), found {}", raw.len())))?;
    Ok(u64::from_le_bytes(arr))
}

pub(crate) fn read_hash(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str, path: &Path) -> Result<[u8; 32], StoreError> {
    let raw = read_bytes(t, key, path)?;
    raw.as_slice().try_into().map_err(|_| bad(path, key, format!("expected 32 bytes, found {}", raw.len())))
}

pub(crate) fn bad(path: &Path, key: &str, reason: String) -> StoreError {
    StoreError::BadMeta { path: path.to_path_buf(), key: key.to_string(), reason }
}

/// Opens a table that must exist in a read transaction, naming it if it does not.
pub(crate) fn open_ro_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
    path: &Path,
) -> Result<redb::ReadOnlyTable<K, V>, StoreError> {
    match txn.open_table(def) {
        Err(redb::TableError::TableDoesNotExist(_)) => {
            Err(StoreError::MissingTable { path: path.to_path_buf(), table: redb::TableHandle::name(&def).to_string() })
        }
        other => other.at(path),
    }
}
