//! Guest `core:logstore` (schema 1): `lattice_logic::logstore::LogStore`, unchanged, on the guest
//! SDK (`lattice-guest`, ABI v3).

#[path = "../../logic_bridge.rs"]
#[macro_use]
mod logic_bridge;

use lattice_logic::logstore::{LogStore, SCHEMA_VERSION, STORE_TYPE};

bridge_guest!(LogStore, STORE_TYPE, SCHEMA_VERSION);
