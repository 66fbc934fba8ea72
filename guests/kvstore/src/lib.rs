//! Guest `core:kvstore` (schema 1): `lattice_logic::kvstore::KvStore`, unchanged, on the guest SDK
//! (`lattice-guest`, ABI v3).
//!
//! Built twice by scripts/build-guests.sh: `core-kvstore.wasm` (profile `release`) and
//! `core-kvstore-small.wasm` (profile `release-small`, size-optimized) — the same behaviour from
//! differently built bytes, the hot-fix fixture a certification must accept.

#[path = "../../logic_bridge.rs"]
mod logic_bridge;

use lattice_guest::{export_guest, Failure, Logic, Op, View};
use lattice_logic::kvstore::{KvStore, SCHEMA_VERSION, STORE_TYPE};

struct Guest;

impl Logic for Guest {
    const STORE_TYPE: &'static str = STORE_TYPE;
    const SCHEMA_VERSION: u64 = SCHEMA_VERSION;

    fn apply(id: &[u8; 32], op: &Op<'_>) -> Result<(), Failure> {
        logic_bridge::apply(&KvStore, id, op)
    }

    fn observe(key: &[u8], row: &[u8]) -> Result<View, String> {
        logic_bridge::observe(&KvStore, key, row)
    }
}

export_guest!(Guest);
