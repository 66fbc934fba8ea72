//! Reference store logic for lattice-conform, written once and compiled both into the native
//! crate and, unchanged, into Wasm guests.
//!
//! This crate is `no_std` + `alloc` and depends on nothing. It holds:
//! - [`op`]: the canonical byte encoding of an op (the bytes an op id is computed over and the
//!   bytes a Wasm guest receives);
//! - [`table`]: the small table interface a store logic reads and writes its `data` through;
//! - [`kvstore`] and [`logstore`]: Lattice's store types `core:kvstore` and `core:logstore`, rule
//!   for rule and byte for byte (payloads and rows are Lattice's protobuf messages);
//! - [`kvstore_v2`]: `core:kvstore-v2`, this suite's own migration target;
//! - `faults` (feature `faults`, off for the Wasm guests): seeded one-rule faults of those types,
//!   for measuring what a corpus catches.
//!
//! Guarantee: every function here is a pure function of its inputs and the table contents — no
//! clock, no randomness, no floats, no hash-map iteration — so the same op history gives the same
//! table contents on every build of this source.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(feature = "faults")]
pub mod faults;
pub mod kvstore;
pub mod kvstore_v2;
pub mod logic;
pub mod logstore;
pub mod op;
pub mod table;
mod wire;

pub use logic::{ApplyError, Dag, NoDag, StoreLogic};
pub use op::{DecodeError, Hlc, Op, OpId, ZERO_HASH};
pub use table::{HostError, MemTable, Table};
