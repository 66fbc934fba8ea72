//! Outside builds: a build we did not compile, run as a process that speaks the build protocol
//! (docs/BUILD_PROTOCOL.md) on its standard input and output.
//!
//! [`wire`] (the `lattice-build-protocol` crate) is the protocol's frames and messages; [`exec`] the host side (`--build exec:…`, an
//! [`ExecReplica`] behind the [`crate::replica::Replica`] seam) over `process` (one child process:
//! requests, deadlines, reaping); [`serve`] the reference adapter
//! (`lattice-conform serve-build`), this crate's own replica served over the protocol.

mod build_file;
pub mod exec;
mod process;
pub mod serve;

/// The protocol's frames and messages: the `lattice-build-protocol` crate, shared with adapters.
pub use lattice_build_protocol as wire;

pub use build_file::{ExecBuild, ExecLimits};
pub use exec::{ExecFactory, ExecReplica};
pub use process::{Hello, STDERR_TAIL};
