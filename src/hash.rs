//! The state hash: an LtHash accumulator over the store's logical (key, value) rows.
//!
//! Each row is encoded as a table-tagged, length-prefixed element, expanded by the blake3 XOF to
//! 1024 `u16` lanes, and added lane-wise (wrapping) to the accumulator; removing a row subtracts
//! the same lanes. The accumulator is therefore independent of insertion order and can be kept
//! incrementally, and the 32-byte state hash binds it to the store type and schema version.
//! Unlike an XOR of row hashes it cannot be forged by linear algebra. Normative layout:
//! docs/FORMAT.md, "State hash".

/// Number of `u16` lanes in the accumulator.
pub const LANES: usize = 1024;
/// Bytes of a serialized accumulator (little-endian lanes).
pub const ACC_BYTES: usize = LANES * 2;

const ELEMENT_DOMAIN: &[u8] = b"lattice-conform/lthash-element/v1\0";
const STATE_DOMAIN: &[u8] = b"lattice-conform/state-hash/v1\0";

/// Which logical table a hashed row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RowTable {
    /// A row of the `data` table (the store logic's state).
    Data = 0x01,
    /// An author's chain tip: key = author (32 bytes), value = tip op id (32 bytes).
    Tip = 0x02,
}

/// An LtHash accumulator of 1024 wrapping `u16` lanes.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash { lanes: Box::new([0u16; LANES]) }
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", hex::encode(&blake3::hash(&self.to_bytes()).as_bytes()[..8]))
    }
}

impl LtHash {
    /// Adds a row.
    pub fn insert(&mut self, table: RowTable, key: &[u8], value: &[u8]) {
        let lanes = expand(table, key, value);
        for (acc, x) in self.lanes.iter_mut().zip(lanes.iter()) {
            *acc = acc.wrapping_add(*x);
        }
    }

    /// Removes a row previously inserted with the same bytes.
    pub fn remove(&mut self, table: RowTable, key: &[u8], value: &[u8]) {
        let lanes = expand(table, key, value);
        for (acc, x) in self.lanes.iter_mut().zip(lanes.iter()) {
            *acc = acc.wrapping_sub(*x);
        }
    }

    /// The accumulator as 2048 bytes, lanes little-endian, lane 0 first.
    pub fn to_bytes(&self) -> [u8; ACC_BYTES] {
        let mut out = [0u8; ACC_BYTES];
        for (chunk, lane) in out.chunks_exact_mut(2).zip(self.lanes.iter()) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// Reads [`LtHash::to_bytes`] output; `None` if the length is not [`ACC_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<LtHash> {
        if bytes.len() != ACC_BYTES {
            return None;
        }
        let mut acc = LtHash::default();
        for (lane, chunk) in acc.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([chunk[0], chunk[1]]);
        }
        Some(acc)
    }

    /// The 32-byte state hash of this accumulator for a store of `store_type` at `schema_version`.
    pub fn state_hash(&self, store_type: &str, schema_version: u64) -> StateHash {
        let mut h = blake3::Hasher::new();
        h.update(STATE_DOMAIN);
        h.update(&(store_type.len() as u32).to_le_bytes());
        h.update(store_type.as_bytes());
        h.update(&schema_version.to_le_bytes());
        h.update(&self.to_bytes());
        StateHash(*h.finalize().as_bytes())
    }
}

/// A 32-byte state hash. Displays as lowercase hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateHash(pub [u8; 32]);

impl std::fmt::Display for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The element encoding: `tag ‖ u32 LE key length ‖ key ‖ u32 LE value length ‖ value`.
pub fn element(table: RowTable, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(9 + key.len() + value.len());
    write_element(table, key, value, |part| e.extend_from_slice(part));
    e
}

/// Feeds the element encoding to `sink` in parts, so hashing needs no copy of large values.
fn write_element(table: RowTable, key: &[u8], value: &[u8], mut sink: impl FnMut(&[u8])) {
    sink(&[table as u8]);
    sink(&(key.len() as u32).to_le_bytes());
    sink(key);
    sink(&(value.len() as u32).to_le_bytes());
    sink(value);
}

/// blake3 XOF of `ELEMENT_DOMAIN ‖ element`, read as 1024 little-endian `u16` lanes.
fn expand(table: RowTable, key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new();
    h.update(ELEMENT_DOMAIN);
    write_element(table, key, value, |part| {
        h.update(part);
    });
    let mut bytes = [0u8; ACC_BYTES];
    h.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        *lane = u16::from_le_bytes([chunk[0], chunk[1]]);
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_then_remove_is_identity_and_order_does_not_matter() {
        let mut a = LtHash::default();
        a.insert(RowTable::Data, b"k1", b"v1");
        a.insert(RowTable::Data, b"k2", b"v2");
        let mut b = LtHash::default();
        b.insert(RowTable::Data, b"k2", b"v2");
        b.insert(RowTable::Data, b"k1", b"v1");
        assert_eq!(a, b);
        a.remove(RowTable::Data, b"k1", b"v1");
        a.remove(RowTable::Data, b"k2", b"v2");
        assert_eq!(a, LtHash::default());
    }

    #[test]
    fn tags_and_length_prefixes_separate_rows() {
        let mut a = LtHash::default();
        a.insert(RowTable::Data, b"ab", b"c");
        let mut b = LtHash::default();
        b.insert(RowTable::Data, b"a", b"bc");
        let mut c = LtHash::default();
        c.insert(RowTable::Tip, b"ab", b"c");
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn expand_matches_the_documented_element_encoding() {
        let mut h = blake3::Hasher::new();
        h.update(ELEMENT_DOMAIN);
        h.update(&element(RowTable::Data, b"key", b"value"));
        let mut bytes = [0u8; ACC_BYTES];
        h.finalize_xof().fill(&mut bytes);
        let mut acc = LtHash::default();
        acc.insert(RowTable::Data, b"key", b"value");
        assert_eq!(acc.to_bytes(), bytes);
    }

    #[test]
    fn state_hash_binds_type_and_schema() {
        let acc = LtHash::default();
        let h = acc.state_hash("core:kvstore", 1);
        assert_ne!(h, acc.state_hash("core:logstore", 1));
        assert_ne!(h, acc.state_hash("core:kvstore", 2));
        assert_eq!(LtHash::from_bytes(&acc.to_bytes()), Some(acc));
    }
}
