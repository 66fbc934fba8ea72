//! Guest `core:logstore` (schema 1): `lattice_logic::logstore::LogStore`, unchanged, on the guest
//! SDK (`lattice-guest`, ABI v3).

#[path = "../../logic_bridge.rs"]
mod logic_bridge;

use lattice_guest::{export_guest, Failure, Logic, Op, View};
use lattice_logic::logstore::{LogStore, SCHEMA_VERSION, STORE_TYPE};

struct Guest;

impl Logic for Guest {
    const STORE_TYPE: &'static str = STORE_TYPE;
    const SCHEMA_VERSION: u64 = SCHEMA_VERSION;

    fn apply(id: &[u8; 32], op: &Op<'_>) -> Result<(), Failure> {
        logic_bridge::apply(&LogStore, id, op)
    }

    fn observe(key: &[u8], row: &[u8]) -> Result<View, String> {
        logic_bridge::observe(&LogStore, key, row)
    }
}

export_guest!(Guest);
