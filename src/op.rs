//! Ops as the kernel sees them: the reference op type from `lattice-logic` plus its id.
//!
//! An op id is `blake3("lattice-conform/op-id/v1\0" ‖ store_id (16 bytes) ‖ canonical op
//! encoding)`: binding the store id means the same bytes replayed into another store are a
//! different op, so chains cannot be spliced across stores.

pub use lattice_logic::op::{DecodeError, Hlc, Op, OpId, MAX_CAUSAL_DEPS, MAX_PAYLOAD, ZERO_HASH};
use uuid::Uuid;

const OP_ID_DOMAIN: &[u8] = b"lattice-conform/op-id/v1\0";

/// The id of `op` in the store `store_id`.
pub fn op_id(store_id: &Uuid, op: &Op) -> OpId {
    op_id_of_encoding(store_id, &op.encode())
}

/// The id of an op given its canonical encoding (saves re-encoding when the bytes are at hand).
pub fn op_id_of_encoding(store_id: &Uuid, encoded: &[u8]) -> OpId {
    let mut h = blake3::Hasher::new();
    h.update(OP_ID_DOMAIN);
    h.update(store_id.as_bytes());
    h.update(encoded);
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_id_binds_the_store_id() {
        let op = Op { author: [1; 32], hlc: Hlc::default(), prev: ZERO_HASH, causal_deps: vec![], payload: vec![1] };
        let a = op_id(&Uuid::from_bytes([1; 16]), &op);
        assert_ne!(a, op_id(&Uuid::from_bytes([2; 16]), &op));
        let mut manual = Vec::from(OP_ID_DOMAIN);
        manual.extend_from_slice(&[1; 16]);
        manual.extend_from_slice(&op.encode());
        assert_eq!(a, *blake3::hash(&manual).as_bytes());
    }
}
