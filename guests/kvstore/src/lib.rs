//! Guest `core:kvstore` (schema 1): `lattice_logic::kvstore::KvStore`, unchanged, behind ABI v1.
//!
//! Built twice by scripts/build-guests.sh: `core-kvstore.wasm` (profile `release`) and
//! `core-kvstore-small.wasm` (profile `release-small`, size-optimized) — the same behaviour from
//! differently built bytes, the hot-fix fixture a certification must accept.

use lattice_logic::kvstore::KvStore;

lattice_guest_abi::export_store_logic!(KvStore, KvStore);
