//! A deliberately wrong `core:kvstore` guest: `FaultyKvStore(Fault::ForgetOneHead)`, on the guest
//! SDK (`lattice-guest`, ABI v3).
//!
//! It claims `core:kvstore` schema 1, as a bad hot fix would, but when an op supersedes two or
//! more heads of a key one of them survives. Histories without such a merge give the native
//! hashes; the first merge of two heads diverges. A fixture for certification, never for use.

#[path = "../../logic_bridge.rs"]
mod logic_bridge;

use lattice_guest::{export_guest, Failure, Logic, Op, View};
use lattice_logic::kvstore::{Fault, FaultyKvStore, SCHEMA_VERSION, STORE_TYPE};

const LOGIC: FaultyKvStore = FaultyKvStore(Fault::ForgetOneHead);

struct Guest;

impl Logic for Guest {
    const STORE_TYPE: &'static str = STORE_TYPE;
    const SCHEMA_VERSION: u64 = SCHEMA_VERSION;

    fn apply(id: &[u8; 32], op: &Op<'_>) -> Result<(), Failure> {
        logic_bridge::apply(&LOGIC, id, op)
    }

    fn observe(key: &[u8], row: &[u8]) -> Result<View, String> {
        logic_bridge::observe(&LOGIC, key, row)
    }
}

export_guest!(Guest);
