//! [`OpIndex`]: what an in-memory replay knows of every op it received (status, HLC, author),
//! by op id, in memory bounded independently of the history's length.
//!
//! Lattice's delivery needs an exact answer for *any* op ever received — a redelivery of an old
//! op is ignored, a `causal_dep` must name a witnessed op, and the kvstore compares a key's head
//! by its HLC and author — so nothing may be forgotten. The index keeps the most recent entries
//! in two hash maps (a young and an old generation of at most [`WINDOW`] entries each). When the
//! young one fills, the old one is written to a scratch redb file (a temporary file, removed when
//! the index is dropped) as a table of its own, and the young one becomes the old. A lookup tries
//! the young map, the old map, then the spilled generations newest first (a newer entry for an id
//! is its update), each guarded by a Bloom filter over the ids it holds, so an id that was never
//! received (every new op's redelivery check) rarely touches the disk. One table per generation
//! keeps the writes linear: ids are random, so adding a generation to one growing table rewrote
//! most of its pages each time (35 GB of writes for a 10M-op history). Ops
//! refer mostly to recent ops (a `prev`, a dep on the current head), which stay in memory.
//!
//! Only lookups by id happen; nothing is iterated, so the hash maps do not affect determinism.
//! An answer is always exact: the filters only rule out ids, and the file holds every spilled
//! entry. If the scratch file cannot be created or written, the index keeps everything in
//! memory instead (exact, unbounded) and says so through [`OpIndex::spill_failure`]; a failed
//! read of a spilled entry is a host error (the op stalls as a host failure naming no data).

use std::collections::HashMap;

use lattice_logic::op::Hlc;
use lattice_logic::HostError;
use redb::{ReadableDatabase, TableDefinition};

use crate::delivery::Status;
use crate::op::OpId;

/// Entries per in-memory generation: the most a hash map of 2^18 buckets holds (7/8 of them)
/// before it doubles, so each generation stays within one allocation of ~23 MiB.
pub const WINDOW: usize = 229_000;
/// Bloom filter bits per spilled entry, and probes per id (false positives ≈ 0.05 %).
const BLOOM_BITS_PER_ENTRY: usize = 16;
const BLOOM_PROBES: u64 = 11;
/// redb's page cache for the scratch file.
const SPILL_CACHE: usize = 16 << 20;

/// The table of spilled generation `g`.
fn generation(name: &str) -> TableDefinition<'_, &'static [u8; 32], &'static [u8; 45]> {
    TableDefinition::new(name)
}

fn generation_name(g: usize) -> String {
    format!("generation-{g}")
}

/// What the index knows of one received op.
pub type Known = (Status, Hlc, [u8; 32]);

/// The op index (see the module docs).
pub struct OpIndex {
    young: HashMap<OpId, Known>,
    old: HashMap<OpId, Known>,
    spill: Option<Spill>,
    /// Why spilling was given up, if it was (everything then stays in memory).
    spill_failure: Option<String>,
    window: usize,
}

struct Spill {
    db: redb::Database,
    read: redb::ReadTransaction,
    /// One filter per spilled generation.
    blooms: Vec<Bloom>,
    _dir: tempfile::TempDir,
}

impl Default for OpIndex {
    fn default() -> OpIndex {
        OpIndex::with_window(WINDOW)
    }
}

impl OpIndex {
    /// An index whose generations hold `window` entries (tests use small windows).
    pub fn with_window(window: usize) -> OpIndex {
        OpIndex { young: HashMap::new(), old: HashMap::new(), spill: None, spill_failure: None, window: window.max(1) }
    }

    /// What the index knows of `id`.
    pub fn get(&mut self, id: &OpId) -> Result<Option<Known>, HostError> {
        if let Some(k) = self.young.get(id).or_else(|| self.old.get(id)) {
            return Ok(Some(*k));
        }
        let Some(spill) = &self.spill else { return Ok(None) };
        for (g, bloom) in spill.blooms.iter().enumerate().rev() {
            if !bloom.may_contain(id) {
                continue;
            }
            let name = generation_name(g);
            let table = spill.read.open_table(generation(&name)).map_err(|_| HostError)?;
            if let Some(v) = table.get(id).map_err(|_| HostError)? {
                return Ok(Some(decode(v.value())));
            }
        }
        Ok(None)
    }

    /// Records (or updates) what is known of `id`.
    pub fn insert(&mut self, id: OpId, known: Known) {
        self.young.insert(id, known);
        if self.young.len() >= self.window && self.spill_failure.is_none() {
            self.rotate();
        }
    }

    /// Why the index could not spill to disk, if it could not (it then holds everything in memory).
    pub fn spill_failure(&self) -> Option<&str> {
        self.spill_failure.as_deref()
    }

    /// Entries written to the scratch file so far (generations × their sizes, updates counted again).
    pub fn spilled_generations(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.blooms.len())
    }

    fn rotate(&mut self) {
        if !self.old.is_empty() {
            if let Err(e) = self.spill_old() {
                // Keep everything in memory: exact, only no longer bounded.
                self.spill_failure = Some(e);
                self.old.extend(std::mem::take(&mut self.young));
                return;
            }
        }
        self.old = std::mem::take(&mut self.young);
    }

    fn spill_old(&mut self) -> Result<(), String> {
        if self.spill.is_none() {
            self.spill = Some(Spill::create()?);
        }
        let spill = self.spill.as_mut().expect("created just above");
        let mut entries: Vec<(&OpId, &Known)> = self.old.iter().collect();
        // Sorted inserts fill redb's pages in order.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut bloom = Bloom::new(entries.len());
        let txn = spill.db.begin_write().map_err(|e| format!("op index scratch file: {e}"))?;
        let name = generation_name(spill.blooms.len());
        {
            let mut table = txn.open_table(generation(&name)).map_err(|e| format!("op index scratch file: {e}"))?;
            for (id, known) in &entries {
                table.insert(*id, &encode(known)).map_err(|e| format!("op index scratch file: {e}"))?;
                bloom.add(id);
            }
        }
        txn.commit().map_err(|e| format!("op index scratch file: {e}"))?;
        spill.read = spill.db.begin_read().map_err(|e| format!("op index scratch file: {e}"))?;
        spill.blooms.push(bloom);
        self.old.clear();
        Ok(())
    }
}

impl Spill {
    fn create() -> Result<Spill, String> {
        let dir = tempfile::Builder::new()
            .prefix("lattice-conform-opindex-")
            .tempdir()
            .map_err(|e| format!("op index scratch directory: {e}"))?;
        // Each generation is one durable commit (one fsync per WINDOW entries): non-durable
        // commits would keep pages redb cannot reuse until a durable one.
        let db = redb::Database::builder()
            .set_cache_size(SPILL_CACHE)
            .create(dir.path().join("index.redb"))
            .map_err(|e| format!("op index scratch file: {e}"))?;
        let read = db.begin_read().map_err(|e| format!("op index scratch file: {e}"))?;
        Ok(Spill { db, read, blooms: Vec::new(), _dir: dir })
    }
}

fn encode((status, hlc, author): &Known) -> [u8; 45] {
    let mut out = [0u8; 45];
    out[0] = match status {
        Status::Floating => 0,
        Status::Witnessed => 1,
    };
    out[1..9].copy_from_slice(&hlc.wall_ms.to_le_bytes());
    out[9..13].copy_from_slice(&hlc.counter.to_le_bytes());
    out[13..45].copy_from_slice(author);
    out
}

fn decode(b: &[u8; 45]) -> Known {
    let status = if b[0] == 0 { Status::Floating } else { Status::Witnessed };
    let hlc = Hlc {
        wall_ms: u64::from_le_bytes(b[1..9].try_into().expect("8 bytes")),
        counter: u32::from_le_bytes(b[9..13].try_into().expect("4 bytes")),
    };
    (status, hlc, b[13..45].try_into().expect("32 bytes"))
}

/// A Bloom filter over op ids. Op ids are blake3 outputs, so their own bytes serve as the two
/// base hashes of double hashing (probe i = h1 + i·h2 mod m).
struct Bloom {
    bits: Vec<u64>,
    m: u64,
}

impl Bloom {
    fn new(entries: usize) -> Bloom {
        let m = (entries.max(1) * BLOOM_BITS_PER_ENTRY) as u64;
        Bloom { bits: vec![0; m.div_ceil(64) as usize], m }
    }

    fn probes(&self, id: &OpId) -> impl Iterator<Item = u64> + '_ {
        let h1 = u64::from_le_bytes(id[0..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(id[8..16].try_into().expect("8 bytes")) | 1;
        (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.m)
    }

    fn add(&mut self, id: &OpId) {
        let probes: Vec<u64> = self.probes(id).collect();
        for p in probes {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, id: &OpId) -> bool {
        self.probes(id).all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> OpId {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    fn known(i: u64, status: Status) -> Known {
        (status, Hlc { wall_ms: i, counter: (i % 7) as u32 }, id(i + 1_000_000))
    }

    #[test]
    fn spilled_entries_are_found_exactly_and_updates_win() {
        let mut index = OpIndex::with_window(100);
        for i in 0..1_000 {
            index.insert(id(i), known(i, Status::Floating));
        }
        assert!(index.spilled_generations() >= 8, "a window of 100 over 1000 entries spills");
        // An update of an entry that was spilled long ago.
        index.insert(id(3), known(3, Status::Witnessed));
        for i in 100..300 {
            index.insert(id(10_000 + i), known(i, Status::Floating));
        }
        for i in 0..1_000 {
            let want = if i == 3 { known(3, Status::Witnessed) } else { known(i, Status::Floating) };
            assert_eq!(index.get(&id(i)).unwrap(), Some(want), "entry {i}");
        }
        for i in 5_000..6_000 {
            assert_eq!(index.get(&id(i)).unwrap(), None, "never inserted: {i}");
        }
        assert_eq!(index.spill_failure(), None);
    }

    #[test]
    fn a_bloom_filter_never_forgets_and_rarely_lies() {
        let mut b = Bloom::new(10_000);
        for i in 0..10_000 {
            b.add(&id(i));
        }
        assert!((0..10_000).all(|i| b.may_contain(&id(i))));
        let false_positives = (10_000..110_000).filter(|i| b.may_contain(&id(*i))).count();
        assert!(false_positives < 100, "{false_positives} false positives in 100,000 (expected about 50)");
    }
}
