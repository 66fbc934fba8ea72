//! The `StoreLogic` trait: what a store type is, as seen by the kernel.

use alloc::string::String;
use alloc::vec::Vec;

use crate::op::{Hlc, Op, OpId};
use crate::table::{HostError, Table};

/// Why a store logic refused an op. Any error rolls the op back and stalls projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The payload does not decode for this store type; the message says where.
    MalformedPayload(String),
    /// A row already in the table does not decode: the stored state is damaged, not the op.
    CorruptState(String),
    /// The op is well formed but the store's rules refuse it (e.g. the logstore's duplicate
    /// timestamp). Like every apply error, it stalls projection.
    Refused(String),
    /// The table backing failed; the host holds the detail.
    Host(HostError),
}

/// What the host knows about the ops a store has received (Lattice's DAG queries): a store logic
/// that resolves conflicts by comparing with an earlier op looks that op up here.
pub trait Dag {
    /// The HLC and author of a received op, or `None` if the store has never received it.
    fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError>;
}

/// A [`Dag`] that knows no op, for logics and tests that never look one up.
pub struct NoDag;

impl Dag for NoDag {
    fn op_info(&mut self, _: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError> {
        Ok(None)
    }
}

impl From<HostError> for ApplyError {
    fn from(e: HostError) -> Self {
        ApplyError::Host(e)
    }
}

/// A store type's logic: a pure function from (table contents, op) to new table contents.
///
/// Implementations must be deterministic: the same table contents and op give the same writes on
/// every platform and build. `apply` may leave partial writes behind when it returns an error; the
/// host discards them with the op's transaction.
pub trait StoreLogic {
    /// The logical type name, e.g. `core:kvstore`. Fixed for the life of a store.
    fn store_type(&self) -> &str;
    /// The data-format version this logic reads and writes.
    fn schema_version(&self) -> u64;
    /// Applies one op (already chain-checked by the host) to `table`; `dag` answers questions
    /// about other ops the store has received.
    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError>;
    /// What a reader of this type sees of the stored row `row` under `key`, as the type's
    /// canonical *view* bytes (docs/FORMAT.md, "Observed state"); `None` when readers do not see
    /// the row at all. A row that does not decode is `CorruptState`.
    fn observe(&self, key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError>;
}
