//! A deliberately wrong `core:kvstore` guest: `FaultyKvStore(Fault::ForgetOneHead)`.
//!
//! It claims `core:kvstore` schema 1, as a bad hot fix would, but when an op supersedes two or
//! more heads of a key one of them survives. Histories without such a merge give the native
//! hashes; the first merge of two heads diverges. A fixture for certification, never for use.

use lattice_logic::kvstore::{Fault, FaultyKvStore};

lattice_guest_abi::export_store_logic!(FaultyKvStore, FaultyKvStore(Fault::ForgetOneHead));
