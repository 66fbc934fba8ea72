//! The migration's target replayed in memory (the same kernel as on disk): the state hash a
//! migration gives for a source state, or why the state is not migratable. Migration goldens
//! (`golden::migration`) and `migrate --check` use it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{chain, MigrateError, Migration};
use crate::registry::Registry;
use crate::replay::{HostFaults, MemStore};
use crate::store::{self, StoreIdentity};

/// The golden target store id: fixed so migration goldens are reproducible.
pub fn golden_target_id() -> Uuid {
    Uuid::from_u128(0x6c61_7474_6963_4500_8000_0000_0000_0002)
}

/// The target state hash a migration gives for the state `rows` (in memory, same kernel).
pub fn target_hash_in_memory(
    m: &dyn Migration,
    rows: &[(Vec<u8>, Vec<u8>)],
    id: Uuid,
    author: [u8; 32],
    registry: &Registry,
) -> Result<String, MigrateError> {
    target_hash_with(m, rows, id, author, registry.opener(m.target_type())?.logic(), HostFaults::default())
        .map_err(|n| MigrateError::TargetRefused { dst: PathBuf::from(m.target_type()), index: n.op_index, reason: n.to_string() })
}

/// [`target_hash_in_memory`] with the target's logic and host faults given; a migration op the
/// target refuses on arrival or stalls on makes the state [`NotMigratable`].
pub fn target_hash_with(
    m: &dyn Migration,
    rows: &[(Vec<u8>, Vec<u8>)],
    id: Uuid,
    author: [u8; 32],
    logic: store::Logic,
    faults: HostFaults,
) -> Result<String, NotMigratable> {
    let identity = StoreIdentity { store_id: id, store_type: m.target_type().into(), schema_version: logic.schema_version() };
    let mut target = MemStore::new(identity, logic).with_faults(faults);
    let payloads = m.payloads(rows);
    for (index, op) in chain(&payloads, id, author).iter().enumerate() {
        let reason = match target.deliver(op) {
            crate::replay::Delivered::Refused(r) => format!("refused on arrival: {}", r.reason),
            _ => match target.stall() {
                Some(stall) => format!("projection stalled ({}): {}", stall.kind.as_str(), stall.reason),
                None => continue,
            },
        };
        let keys = m.payload_keys(&payloads[index]);
        return Err(NotMigratable {
            op_index: index as u64,
            key: keys.first().map_or_else(String::new, hex::encode),
            keys: keys.len() as u64,
            reason,
        });
    }
    Ok(target.state_hash().to_string())
}

/// Why a source state cannot be migrated: the first migration op (§14.3) the target refuses on
/// arrival or stalls on — e.g. one value too large for an op of its own (docs/FORMAT.md §15.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotMigratable {
    /// The migration op's index (0-based) among the migration's ops.
    pub op_index: u64,
    /// The first source key the op carries, lowercase hex (empty when it carries none).
    pub key: String,
    /// How many source keys the op carries.
    pub keys: u64,
    /// What the target said.
    pub reason: String,
}

impl std::fmt::Display for NotMigratable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = hex::decode(&self.key).map(|k| crate::decode::Bytes::new(&k)).ok();
        let shown = key.as_ref().and_then(|b| b.utf8.as_ref().map(|u| format!("{u:?}"))).unwrap_or_else(|| format!("hex:{}", self.key));
        write!(f, "not migratable: key {shown}")?;
        if self.keys > 1 {
            write!(f, " (and {} more keys in its op)", self.keys - 1)?;
        }
        write!(f, ", migration op {} {}", self.op_index, self.reason)
    }
}
