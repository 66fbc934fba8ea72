//! Guest `core:logstore` (schema 1): `lattice_logic::logstore::LogStore`, unchanged, behind ABI v1.

use lattice_logic::logstore::LogStore;

lattice_guest_abi::export_store_logic!(LogStore, LogStore);
