//! Integration tests: the library on real redb files, and the real binary in temp directories.

mod certify;
mod chain;
mod cli;
mod corpus;
mod gen;
mod migrate;
mod props;
mod util;
mod wasm;
