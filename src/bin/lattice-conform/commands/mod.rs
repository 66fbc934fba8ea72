//! One file per command group, each its clap arguments and the calls into the library.

pub(crate) mod certify;
pub(crate) mod corpus;
pub(crate) mod history;
pub(crate) mod migrate;
pub(crate) mod store;
pub(crate) mod verify;
pub(crate) mod wasm;
