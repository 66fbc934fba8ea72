//! Crafted scenario families (docs/FORMAT.md §11.6): histories built to a shape rather than from
//! random actions, each pinning rules the action generator cannot reach.
//!
//! * **witness races** (`core:kvstore`): rounds in which one delivery — a batch, or the late
//!   arrival of an op others wait on — readies several ops at once: ops naming several authors'
//!   tips, genesis ops, and in the last round two forks of one tip delivered against op-id order.
//!   Every op writes the key `race` and loses to a far-future sentinel, so each is appended to the
//!   key's heads in projection order: the stored row spells out the witness order (§4.2), and the
//!   fork stalls projection at the op the order puts second. A redelivery early on and an op left
//!   floating at the end pin arrival indices (§4).
//! * **payload edges** (`core:kvstore`): payloads at the edges of the protobuf decoding rules prost
//!   0.14 implements (§5.1) — nesting at the recursion limit, `op_type` switches and repeats,
//!   non-minimal varints, a 10-byte varint — then one payload just past an edge (malformed), which
//!   stalls projection.
//!
//! Both draw from a ChaCha RNG seeded from the history's salt, so `gen` stays byte-reproducible.

use std::collections::BTreeMap;

use lattice_logic::kvstore::{encode_payload, Entry};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use uuid::Uuid;

use crate::history::{Batch, Delivery};
use crate::op::{op_id, Hlc, Op, OpId, ZERO_HASH};

/// Which crafted family a scenario generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crafted {
    WitnessRaces,
    PayloadEdges,
}

/// Wall clock of the first crafted op (as the generator's, §11.6).
const BASE_WALL_MS: u64 = 1_700_000_000_000;
/// The sentinel writes `race` this far in the future, so every other write loses to it.
const SENTINEL_AHEAD_MS: u64 = 1_000_000_000;

/// The ops, in delivery order, and their delivery plan.
pub fn build(kind: Crafted, index: u32, store_id: Uuid, salt: &[u8; 32], ops: u32) -> (Vec<Op>, Delivery) {
    let mut h = blake3::Hasher::new();
    h.update(b"lattice-conform crafted rng v1\0");
    h.update(salt);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, h.finalize().as_bytes());
    let mut b = Builder {
        store_id,
        salt: *salt,
        rng,
        authors: 0,
        tips: BTreeMap::new(),
        clock: BASE_WALL_MS,
        values: 0,
        ops: vec![],
        batches: vec![],
    };
    match kind {
        Crafted::WitnessRaces => b.witness_races(ops as usize),
        Crafted::PayloadEdges => b.payload_edges(index, ops as usize),
    }
    (b.ops, Delivery { batches: b.batches, restarts: vec![] })
}

struct Builder {
    store_id: Uuid,
    salt: [u8; 32],
    rng: TestRng,
    /// Authors made so far.
    authors: u32,
    /// Each author's tip, once it has written.
    tips: BTreeMap<[u8; 32], OpId>,
    clock: u64,
    values: u32,
    ops: Vec<Op>,
    batches: Vec<Batch>,
}

impl Builder {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn new_author(&mut self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"lattice-conform crafted author\0");
        h.update(&self.salt);
        h.update(&self.authors.to_le_bytes());
        self.authors += 1;
        *h.finalize().as_bytes()
    }

    fn id(&self, op: &Op) -> OpId {
        op_id(&self.store_id, op)
    }

    /// A new op of `author` after `prev`, at the next millisecond.
    fn op(&mut self, author: [u8; 32], prev: OpId, deps: Vec<OpId>, payload: Vec<u8>) -> Op {
        self.clock += 1;
        Op { author, hlc: Hlc { wall_ms: self.clock, counter: 0 }, prev, causal_deps: deps, payload }
    }

    /// A put of `key` to a value no other op writes.
    fn put(&mut self, key: &str) -> Vec<u8> {
        self.values += 1;
        encode_payload(&[Entry::Put { key: key.as_bytes().to_vec(), value: format!("v{}", self.values).into_bytes() }])
    }

    /// An op of `author` after its tip (genesis if it has none).
    fn next(&mut self, author: [u8; 32], deps: Vec<OpId>, key: &str) -> Op {
        let prev = self.tips.get(&author).copied().unwrap_or(ZERO_HASH);
        let payload = self.put(key);
        self.op(author, prev, deps, payload)
    }

    fn deliver(&mut self, op: Op) -> OpId {
        let id = self.id(&op);
        self.ops.push(op);
        id
    }

    fn witness_races(&mut self, ops: usize) {
        // The sentinel: far ahead of every other write of `race`.
        let sentinel = self.new_author();
        let payload = self.put("race");
        let w = Op {
            author: sentinel,
            hlc: Hlc { wall_ms: BASE_WALL_MS + SENTINEL_AHEAD_MS, counter: 0 },
            prev: ZERO_HASH,
            causal_deps: vec![],
            payload,
        };
        self.deliver(w);
        let mut writers = Vec::new();
        for _ in 0..3 + self.below(3) {
            let a = self.new_author();
            let op = self.next(a, vec![], "race");
            let id = self.deliver(op);
            self.tips.insert(a, id);
            writers.push(a);
        }
        // A redelivery: every later arrival index counts it (§4).
        let at = 1 + self.below(self.ops.len() - 1);
        let again = self.ops[at].clone();
        self.ops.push(again);
        while self.ops.len() + 8 < ops.max(24) {
            self.round(&mut writers, false);
        }
        self.round(&mut writers, true);
        // An op whose dependency never arrives floats to the end.
        let loner = self.new_author();
        let mut missing = blake3::Hasher::new();
        missing.update(b"lattice-conform crafted missing\0");
        missing.update(&self.salt);
        let op = self.next(loner, vec![*missing.finalize().as_bytes()], "race");
        self.deliver(op);
    }

    /// One race: several ops readied by one delivery. The last round (always a cascade) adds two
    /// forks of one tip, delivered higher op id first, whose second (by op id) stalls projection.
    fn round(&mut self, writers: &mut Vec<[u8; 32]>, last: bool) {
        // The last round is a cascade: its forks wait for the gate, so even delivered one by one
        // (as `verify --orders` delivers) both are witnessed in one pass and the second stalls.
        let cascade = last || self.below(2) == 1;
        // The gate others wait on (cascade): a new author's genesis or an existing writer's op.
        let mut pool = writers.clone();
        let gate_author = match cascade {
            true if self.below(2) == 0 => Some(pool.remove(self.below(pool.len()))),
            true => Some(self.new_author()),
            false => None,
        };
        let gate = gate_author.map(|a| self.next(a, vec![], "gate"));
        let deps: Vec<OpId> = gate.iter().map(|g| self.id(g)).collect();
        let mut racers: Vec<Op> = Vec::new();
        let tip_racers = 1 + self.below(pool.len().min(3));
        for _ in 0..tip_racers {
            let a = pool.remove(self.below(pool.len()));
            racers.push(self.next(a, deps.clone(), "race"));
        }
        let mut geneses = self.below(3);
        if racers.len() + geneses < 2 {
            geneses = 1;
        }
        for _ in 0..geneses {
            let a = self.new_author();
            racers.push(self.next(a, deps.clone(), "race"));
        }
        // Shuffle the arrival order.
        for i in (1..racers.len()).rev() {
            let j = self.below(i + 1);
            racers.swap(i, j);
        }
        if last {
            let twin_of = racers[self.below(tip_racers.min(racers.len()))].clone();
            let payload = self.put("race");
            let twin = Op { payload, ..twin_of.clone() };
            let (hi, lo) = if self.id(&twin) > self.id(&twin_of) { (twin, twin_of) } else { (twin_of, twin) };
            racers.retain(|r| *r != lo && *r != hi);
            let at = self.below(racers.len() + 1);
            racers.insert(at, lo);
            racers.insert(at, hi);
        }
        for r in &racers {
            let id = self.id(r);
            self.tips.insert(r.author, id);
            if !writers.contains(&r.author) {
                writers.push(r.author);
            }
        }
        if let (Some(a), Some(g)) = (gate_author, &gate) {
            let id = self.id(g);
            self.tips.insert(a, id);
            if !writers.contains(&a) {
                writers.push(a);
            }
        }
        if cascade {
            for r in racers {
                self.deliver(r);
            }
            self.deliver(gate.expect("a cascade has a gate"));
        } else {
            self.batches.push(Batch { start: self.ops.len() as u64, len: racers.len() as u64 });
            for r in racers {
                self.deliver(r);
            }
        }
    }

    fn payload_edges(&mut self, index: u32, ops: usize) {
        let writers = [self.new_author(), self.new_author()];
        let mut edges: Vec<Edge> = Edge::ACCEPTED.to_vec();
        while edges.len() + 4 < ops.max(12) {
            edges.push(Edge::ACCEPTED[self.below(Edge::ACCEPTED.len())]);
        }
        for i in (1..edges.len()).rev() {
            let j = self.below(i + 1);
            edges.swap(i, j);
        }
        edges.push(Edge::MALFORMED[index as usize % Edge::MALFORMED.len()]);
        for edge in edges {
            let author = writers[self.below(2)];
            let payload = self.edge(edge);
            let prev = self.tips.get(&author).copied().unwrap_or(ZERO_HASH);
            let op = self.op(author, prev, vec![], payload);
            let id = self.deliver(op);
            self.tips.insert(author, id);
        }
        // Two ordinary writes after the stall: witnessed, never projected.
        for _ in 0..2 {
            let author = writers[self.below(2)];
            let op = self.next(author, vec![], "after");
            let id = self.deliver(op);
            self.tips.insert(author, id);
        }
    }

    fn key(&mut self) -> Vec<u8> {
        const KEYS: [&[u8]; 4] = [b"alpha", b"beta", b"", b"gamma"];
        KEYS[self.below(KEYS.len())].to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        self.values += 1;
        format!("e{}", self.values).into_bytes()
    }

    /// The payload of one edge case, around an ordinary put or delete (§5.1).
    fn edge(&mut self, edge: Edge) -> Vec<u8> {
        let (key, value, other) = (self.key(), self.value(), self.key());
        let put = pb::put(&key, &value);
        let field = 5 + self.below(10) as u32;
        match edge {
            Edge::TopGroups(n) => [pb::groups(field, n), pb::ld(1, &pb::ld(1, &put))].concat(),
            Edge::OperationGroups(n) => pb::ld(1, &[pb::ld(1, &put), pb::groups(field, n)].concat()),
            // put {key, value} then delete {}: the delete starts afresh, so it deletes the empty
            // key (a decoder that merges on the switch deletes `key`).
            Edge::OneofSwitch => {
                let key = if key.is_empty() { b"alpha".to_vec() } else { key };
                pb::ld(1, &[pb::ld(1, &pb::put(&key, &value)), pb::ld(2, &[])].concat())
            }
            // put {key, value} then put {other}: merged, the value stays.
            Edge::OneofRepeat => pb::ld(1, &[pb::ld(1, &put), pb::ld(1, &pb::ld(1, &other))].concat()),
            Edge::NonMinimal => {
                let op = [pb::padded(0x0a, 2), pb::padded(put.len() as u64, 3), put].concat();
                [pb::padded(0x0a, 1), pb::padded(op.len() as u64, 4), op].concat()
            }
            Edge::LongVarint(last) => [pb::key(field, 0), vec![0xff; 9], vec![last], encode_payload(&[Entry::Delete { key }])].concat(),
            Edge::EndGroup(delta) => [pb::key(field, 3), pb::key(field + delta, 4), pb::ld(1, &pb::ld(1, &put))].concat(),
        }
    }
}

/// One edge of §5.1's decoding rules.
#[derive(Clone, Copy, Debug)]
enum Edge {
    /// `n` nested groups at the top level (prost's limit: 100 decode, 101 do not).
    TopGroups(usize),
    /// `n` nested groups inside an `Operation` (99 decode, 100 do not).
    OperationGroups(usize),
    OneofSwitch,
    OneofRepeat,
    /// Every tag and length in more bytes than needed.
    NonMinimal,
    /// An unknown varint field of 10 bytes whose last byte is this (≤ 1 decodes).
    LongVarint(u8),
    /// A group whose end-group tag names its field number plus this (0 decodes).
    EndGroup(u32),
}

impl Edge {
    const ACCEPTED: [Edge; 7] = [
        Edge::TopGroups(100),
        Edge::OperationGroups(99),
        Edge::OneofSwitch,
        Edge::OneofRepeat,
        Edge::NonMinimal,
        Edge::LongVarint(1),
        Edge::EndGroup(0),
    ];
    const MALFORMED: [Edge; 4] = [Edge::TopGroups(101), Edge::EndGroup(1), Edge::LongVarint(2), Edge::OperationGroups(100)];
}

/// Protobuf wire helpers for the edge payloads.
mod pb {
    pub fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    /// `v` as a varint with `extra` needless bytes (continuation groups of zero).
    pub fn padded(v: u64, extra: usize) -> Vec<u8> {
        let mut out = varint(v);
        let last = out.len() - 1;
        out[last] |= 0x80;
        out.extend(std::iter::repeat_n(0x80, extra - 1));
        out.push(0);
        out
    }

    pub fn key(field: u32, wire_type: u8) -> Vec<u8> {
        varint(u64::from(field) << 3 | u64::from(wire_type))
    }

    /// A length-delimited field.
    pub fn ld(field: u32, body: &[u8]) -> Vec<u8> {
        [key(field, 2), varint(body.len() as u64), body.to_vec()].concat()
    }

    /// The fields of a `PutOp`.
    pub fn put(k: &[u8], v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if !k.is_empty() {
            out.extend(ld(1, k));
        }
        if !v.is_empty() {
            out.extend(ld(2, v));
        }
        out
    }

    /// `n` nested empty groups of `field`.
    pub fn groups(field: u32, n: usize) -> Vec<u8> {
        [key(field, 3).repeat(n), key(field, 4).repeat(n)].concat()
    }
}
