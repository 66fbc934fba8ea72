//! Exit codes of the `lattice-conform` binary. CI gates on these, so they never change meaning.

/// Everything asked for was done and every check passed.
pub const OK: i32 = 0;
/// A check failed on well-formed input: a corrupt store, a hash mismatch.
pub const CHECK_FAILED: i32 = 1;
/// The input is unusable: bad arguments, missing or malformed files, an op the store rejected.
pub const INPUT_ERROR: i32 = 2;
