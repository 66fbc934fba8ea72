//! Guest `core:kvstore` (schema 1): `lattice_logic::kvstore::KvStore`, unchanged, on the guest SDK
//! (`lattice-guest`, ABI v3).
//!
//! Built twice by scripts/build-guests.sh: `core-kvstore.wasm` (profile `release`) and
//! `core-kvstore-small.wasm` (profile `release-small`, size-optimized) — the same behaviour from
//! differently built bytes, the hot-fix fixture a certification must accept.

#[path = "../../logic_bridge.rs"]
#[macro_use]
mod logic_bridge;

use lattice_logic::kvstore::{KvStore, SCHEMA_VERSION, STORE_TYPE};

bridge_guest!(KvStore, STORE_TYPE, SCHEMA_VERSION);
