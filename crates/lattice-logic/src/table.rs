//! The table interface a store logic reads and writes its `data` through.
//!
//! The host decides what sits behind it: a redb table inside the op's write transaction, an
//! in-memory map for fast replay, or Wasm imports. Whatever the backing, the state hash is defined
//! on the logical (key, value) contents, so all of them give the same hash for the same history.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The host failed underneath the logic (I/O, storage, a limit). The host keeps the detail; the
/// logic only propagates it, so the op is rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError;

/// Key/value access to a store's `data` table. Keys compare as raw bytes.
pub trait Table {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError>;
    fn delete(&mut self, key: &[u8]) -> Result<(), HostError>;
}

/// An in-memory table, ordered by key. Used by tests and by hosts that replay without redb.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTable {
    pub rows: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Table for MemTable {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.rows.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        self.rows.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        self.rows.remove(key);
        Ok(())
    }
}
