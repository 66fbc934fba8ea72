//! Integration tests: the library on real redb files, and the real binary in temp directories.

mod adequacy;
mod bad_inputs;
mod certify;
mod chain;
mod ci_recipe;
mod cli;
mod concurrency;
mod converge;
mod corpus;
mod fuzz_inputs;
mod gate_friction;
mod gen;
mod hostile;
mod kill;
mod lattice;
mod leftovers;
mod migrate;
mod outside;
mod pairing;
mod props;
mod scale;
mod util;
mod wasm;
mod workflow_author;
mod workflow_cli;
mod workflow_friction;
