//! `lattice-logic`'s store logic on the guest SDK (`crates/lattice-guest`), shared by the reference
//! guests (each includes this file as a module). The SDK owns the ABI — the exports, the imports,
//! the input buffers, the status codes (`lattice_guest::abi`); this file only maps the two
//! interfaces onto each other, so the logic runs unchanged and a guest computes exactly what the
//! native build computes:
//!
//! * `lattice_logic::Table` and `Dag` are the SDK's `table` and `dag` imports (a host failure traps
//!   the call, so the logic never sees a `HostError`);
//! * the op the SDK decoded becomes a `lattice_logic::Op`, checked as `Op::decode` checks it;
//! * `ApplyError`s become the SDK's `Failure`s with the same status codes and messages, and a view
//!   or a row that does not decode the SDK's `View` or error message.

use lattice_guest::{dag, status, table, Failure, View};
use lattice_logic::op::Hlc;
use lattice_logic::{ApplyError, Dag, HostError, Op, OpId, StoreLogic, Table};

/// Applies `op` with `logic` through the host's imports (the SDK's `Logic::apply`).
pub fn apply(logic: &dyn StoreLogic, id: &[u8; 32], op: &lattice_guest::Op<'_>) -> Result<(), Failure> {
    let op = Op {
        author: op.author,
        hlc: Hlc { wall_ms: op.wall_ms, counter: op.counter },
        prev: op.prev,
        causal_deps: op.causal_deps.clone(),
        payload: op.payload.to_vec(),
    };
    op.validate()
        .map_err(|e| Failure { status: status::BAD_INPUT, message: format!("lattice_apply: the op does not decode: {e}") })?;
    logic.apply(id, &op, &mut HostTable, &mut HostDag).map_err(|e| match e {
        ApplyError::MalformedPayload(m) => Failure::malformed_payload(m),
        ApplyError::CorruptState(m) => Failure::corrupt_state(m),
        ApplyError::Refused(m) => Failure::refused(m),
        ApplyError::Host(_) => Failure { status: status::HOST_ERROR, message: "the host table failed".to_string() },
    })
}

/// What readers see of `row` under `key` (the SDK's `Logic::observe`).
pub fn observe(logic: &dyn StoreLogic, key: &[u8], row: &[u8]) -> Result<View, String> {
    match logic.observe(key, row) {
        Ok(Some(view)) => Ok(View::Seen(view)),
        Ok(None) => Ok(View::Unseen),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// The store's `data` table: the SDK's `lattice_table` imports.
struct HostTable;

impl Table for HostTable {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(table::get(key))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        table::put(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), HostError> {
        table::delete(key);
        Ok(())
    }
}

/// The received ops: the SDK's `lattice_dag.op_info` import.
struct HostDag;

impl Dag for HostDag {
    fn op_info(&mut self, id: &OpId) -> Result<Option<(Hlc, [u8; 32])>, HostError> {
        Ok(dag::op_info(id).map(|i| (Hlc { wall_ms: i.wall_ms, counter: i.counter }, i.author)))
    }
}

/// Declares the guest for `$logic` (an expression of a `StoreLogic` type) of type `$store_type`
/// schema `$schema`, and exports it: each reference guest is this one line over its logic.
#[macro_export]
macro_rules! bridge_guest {
    ($logic:expr, $store_type:expr, $schema:expr) => {
        struct Guest;

        impl lattice_guest::Logic for Guest {
            const STORE_TYPE: &'static str = $store_type;
            const SCHEMA_VERSION: u64 = $schema;

            fn apply(id: &[u8; 32], op: &lattice_guest::Op<'_>) -> Result<(), lattice_guest::Failure> {
                logic_bridge::apply(&$logic, id, op)
            }

            fn observe(key: &[u8], row: &[u8]) -> Result<lattice_guest::View, String> {
                logic_bridge::observe(&$logic, key, row)
            }
        }

        lattice_guest::export_guest!(Guest);
    };
}
