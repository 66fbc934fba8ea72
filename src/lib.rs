//! lattice-conform: the Lattice store model (self-describing `state.db` + `log.db`, peek →
//! resolve → open, reference store types) and the conformance suite around it.
//!
//! Layers, bottom up: [`op`] (op ids) and [`hash`] (the LtHash state hash); [`kernel`] (the apply
//! step every host shares); [`store`] (the redb files); [`registry`] (store_type → opener, the
//! generic open flow); [`history`] (history files). The binary is a thin shell over these.

pub mod adequacy;
pub mod author;
pub mod build;
pub mod certify;
pub mod converge;
pub mod corpus;
pub mod decode;
pub mod deep;
pub mod delivery;
pub mod diff;
pub mod exit;
pub mod expect;
pub mod fault;
pub mod golden;
#[doc(hidden)]
pub mod harness;
pub mod hash;
pub mod history;
pub mod kernel;
pub mod lockstep;
pub(crate) mod mem_intentions;
pub mod migrate;
pub mod op;
pub mod op_index;
pub mod output;
pub mod outside;
pub mod progress;
pub mod record;
pub mod registry;
pub mod replay;
pub mod replica;
pub mod report;
pub mod scratch;
pub mod store;
pub mod stream;
pub mod verify;
pub mod versioned;
pub mod wasm;

pub use lattice_logic;
