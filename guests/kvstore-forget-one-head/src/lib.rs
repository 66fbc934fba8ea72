//! A deliberately wrong `core:kvstore` guest: `FaultyKvStore(Fault::ForgetOneHead)`, on the guest
//! SDK (`lattice-guest`, ABI v3).
//!
//! It claims `core:kvstore` schema 1, as a bad hot fix would, but when an op supersedes two or
//! more heads of a key one of them survives. Histories without such a merge give the native
//! hashes; the first merge of two heads diverges. A fixture for certification, never for use.

#[path = "../../logic_bridge.rs"]
#[macro_use]
mod logic_bridge;

use lattice_logic::kvstore::{Fault, FaultyKvStore, SCHEMA_VERSION, STORE_TYPE};

const LOGIC: FaultyKvStore = FaultyKvStore(Fault::ForgetOneHead);

bridge_guest!(LOGIC, STORE_TYPE, SCHEMA_VERSION);
