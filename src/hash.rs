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
const OBSERVED_DOMAIN: &[u8] = b"lattice-conform/observed-hash/v1\0";

/// Which logical table a hashed row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RowTable {
    /// A row of the `data` table (the store logic's state).
    Data = 0x01,
    /// An author's chain tip: key = author (32 bytes), value = tip op id (32 bytes).
    Tip = 0x02,
    /// What a reader sees of one key: key = the `data` key, value = the logic's view of its row
    /// (only in the observed-state accumulator, never in the state hash).
    Observed = 0x03,
    /// A row the logic could not view: key = the `data` key, empty value (only in the observed
    /// accumulator; its own tag, so it can never equal a view).
    Unviewable = 0x04,
}

/// A seeded fault of the state-hash encoding (`lattice-conform faults`): a host that hashes rows
/// differently. Only [`LtHash::insert_faulty`] knows it; the reference path never sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HashFault {
    /// Author tips are left out of the state hash.
    OmitsTips,
    /// Elements carry no length prefixes (`tag ‖ key ‖ value`).
    NoLengthPrefix,
    /// Tip rows are hashed under the data table's tag.
    SharedTableTag,
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

    /// Adds a row encoded as a host with `fault` would encode it (for adequacy measurement).
    pub fn insert_faulty(&mut self, fault: HashFault, table: RowTable, key: &[u8], value: &[u8]) {
        let mut e = Vec::with_capacity(9 + key.len() + value.len());
        match (fault, table) {
            (HashFault::OmitsTips, RowTable::Tip) => return,
            (HashFault::NoLengthPrefix, _) => {
                e.push(table as u8);
                e.extend_from_slice(key);
                e.extend_from_slice(value);
            }
            (HashFault::SharedTableTag, RowTable::Tip) => e = element(RowTable::Data, key, value),
            _ => e = element(table, key, value),
        }
        let lanes = expand_element(&e);
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

    /// Adds every row of `other` (accumulators of disjoint row sets sum to the accumulator of
    /// their union).
    pub fn add_all(&mut self, other: &LtHash) {
        for (acc, x) in self.lanes.iter_mut().zip(other.lanes.iter()) {
            *acc = acc.wrapping_add(*x);
        }
    }

    /// The accumulator of the rows `feed` emits, all in `table`, expanded on up to `threads`
    /// threads. `feed` runs on the calling thread and hands rows over in batches; because the sum
    /// is order-independent the result equals inserting the rows one by one.
    pub fn sum_rows<E>(
        table: RowTable,
        threads: usize,
        feed: impl FnOnce(&mut dyn FnMut(&[u8], &[u8])) -> Result<(), E>,
    ) -> Result<LtHash, E> {
        if threads <= 1 {
            let mut acc = LtHash::default();
            feed(&mut |k, v| acc.insert(table, k, v))?;
            return Ok(acc);
        }
        // A batch is a flat buffer of `u32 LE key length ‖ key ‖ u32 LE value length ‖ value`.
        const BATCH_BYTES: usize = 64 * 1024;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(threads * 2);
        let rx = std::sync::Mutex::new(rx);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut acc = LtHash::default();
                        loop {
                            let batch = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                                Ok(b) => b,
                                Err(_) => return acc,
                            };
                            let mut rest = batch.as_slice();
                            while !rest.is_empty() {
                                let (key, r) = take_prefixed(rest);
                                let (value, r) = take_prefixed(r);
                                acc.insert(table, key, value);
                                rest = r;
                            }
                        }
                    })
                })
                .collect();
            let mut batch = Vec::with_capacity(BATCH_BYTES);
            let fed = feed(&mut |k, v| {
                for part in [k, v] {
                    batch.extend_from_slice(&(part.len() as u32).to_le_bytes());
                    batch.extend_from_slice(part);
                }
                if batch.len() >= BATCH_BYTES {
                    // The workers only stop when the sender is dropped, so this cannot fail.
                    let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_BYTES)));
                }
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            drop(tx);
            let mut acc = LtHash::default();
            for w in workers {
                acc.add_all(&w.join().expect("an LtHash worker does not panic"));
            }
            fed.map(|()| acc)
        })
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
        self.finish(STATE_DOMAIN, store_type, schema_version)
    }

    /// The 32-byte observed hash of an accumulator of [`RowTable::Observed`] elements: the same
    /// construction as the state hash under its own domain.
    pub fn observed_hash(&self, store_type: &str, schema_version: u64) -> StateHash {
        self.finish(OBSERVED_DOMAIN, store_type, schema_version)
    }

    fn finish(&self, domain: &[u8], store_type: &str, schema_version: u64) -> StateHash {
        let mut h = blake3::Hasher::new();
        h.update(domain);
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

/// Splits a `u32 LE length ‖ bytes` prefix off `buf` (a batch built by [`LtHash::sum_rows`]).
fn take_prefixed(buf: &[u8]) -> (&[u8], &[u8]) {
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf[4..].split_at(len)
}

/// blake3 XOF of `ELEMENT_DOMAIN ‖ element`, read as 1024 little-endian `u16` lanes.
fn expand(table: RowTable, key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new();
    h.update(ELEMENT_DOMAIN);
    write_element(table, key, value, |part| {
        h.update(part);
    });
    lanes_of(h)
}

/// [`expand`] of an element already encoded (possibly wrongly, under a [`HashFault`]).
fn expand_element(element: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new();
    h.update(ELEMENT_DOMAIN);
    h.update(element);
    lanes_of(h)
}

fn lanes_of(h: blake3::Hasher) -> [u16; LANES] {
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
    fn each_hash_fault_changes_the_hash_of_a_store_with_a_data_row_and_a_tip() {
        let rows = |f: Option<HashFault>| {
            let mut acc = LtHash::default();
            for (t, k, v) in [(RowTable::Data, &b"k"[..], &b"v"[..]), (RowTable::Tip, &[1u8; 32][..], &[2u8; 32][..])] {
                match f {
                    Some(f) => acc.insert_faulty(f, t, k, v),
                    None => acc.insert(t, k, v),
                }
            }
            acc.state_hash("t", 1)
        };
        for f in [HashFault::OmitsTips, HashFault::NoLengthPrefix, HashFault::SharedTableTag] {
            assert_ne!(rows(Some(f)), rows(None), "{f:?}");
        }
        // The faulty path with a row it leaves alone is the reference encoding.
        let (mut a, mut b) = (LtHash::default(), LtHash::default());
        a.insert(RowTable::Data, b"k", b"v");
        b.insert_faulty(HashFault::OmitsTips, RowTable::Data, b"k", b"v");
        assert_eq!(a, b);
    }

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
    fn parallel_sum_equals_sequential_insertion() {
        // Enough rows (and one row larger than a batch) to spread over several batches and threads.
        let rows: Vec<(Vec<u8>, Vec<u8>)> =
            (0..3000u32).map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; if i == 7 { 100_000 } else { 40 }])).collect();
        let mut seq = LtHash::default();
        for (k, v) in &rows {
            seq.insert(RowTable::Data, k, v);
        }
        for threads in [1, 2, 3] {
            let par = LtHash::sum_rows::<()>(RowTable::Data, threads, |emit| {
                rows.iter().for_each(|(k, v)| emit(k, v));
                Ok(())
            })
            .unwrap();
            assert_eq!(par, seq, "{threads} threads");
        }
        let failed = LtHash::sum_rows(RowTable::Data, 2, |emit| {
            emit(b"k", b"v");
            Err("read failed")
        });
        assert_eq!(failed, Err("read failed"));
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
