//! Unit tests of `migrate`.

use super::*;
use crate::replay::MemStore;

fn set(key: &str, value_len: usize) -> v2::Entry {
    v2::Entry::Set { key: key.as_bytes().to_vec(), value: vec![7; value_len], conflicts: 0 }
}

#[test]
fn payloads_split_at_256_entries_and_at_the_payload_limit() {
    let small: Vec<v2::Entry> = (0..300).map(|i| set(&format!("k{i:03}"), 10)).collect();
    let p = chunk_payloads(&small, ENTRIES_PER_OP);
    let counts: Vec<usize> = p.iter().map(|b| v2::decode_payload(b).unwrap().len()).collect();
    assert_eq!(counts, vec![256, 44]);
    let big: Vec<v2::Entry> = (0..3).map(|i| set(&format!("k{i}"), 600 << 10)).collect();
    let p = chunk_payloads(&big, ENTRIES_PER_OP);
    assert_eq!(p.len(), 3, "two 600 KiB values do not fit one 1 MiB payload");
    assert!(p.iter().all(|b| b.len() <= crate::op::MAX_PAYLOAD));
    let fits: Vec<v2::Entry> = (0..2).map(|i| set(&format!("k{i}"), 400 << 10)).collect();
    assert_eq!(chunk_payloads(&fits, ENTRIES_PER_OP).len(), 1);
    assert!(chunk_payloads(&[], ENTRIES_PER_OP).is_empty());
}

/// A source with 300 keys (one deleted, one written concurrently by a second author): each
/// migration fault changes the payloads, and so the target.
#[test]
fn every_migration_fault_changes_the_payloads_of_a_wide_source_with_a_tombstone_and_a_conflict() {
    let id = Uuid::from_u128(7);
    let identity = StoreIdentity { store_id: id, store_type: kv::STORE_TYPE.into(), schema_version: 1 };
    let puts: Vec<kv::Entry> = (0..300).map(|i| kv::Entry::Put { key: format!("k{i:03}").into_bytes(), value: b"v".to_vec() }).collect();
    let first = Op {
        author: [1; 32],
        hlc: Hlc { wall_ms: 1, counter: 0 },
        prev: ZERO_HASH,
        causal_deps: vec![],
        payload: kv::encode_payload(&puts),
    };
    let del = Op {
        author: [1; 32],
        hlc: Hlc { wall_ms: 2, counter: 0 },
        prev: op_id(&id, &first),
        causal_deps: vec![op_id(&id, &first)],
        payload: kv::encode_payload(&[kv::Entry::Delete { key: b"k000".to_vec() }]),
    };
    let other = Op {
        author: [2; 32],
        hlc: Hlc { wall_ms: 3, counter: 0 },
        prev: ZERO_HASH,
        causal_deps: vec![],
        payload: kv::encode_payload(&[kv::Entry::Put { key: b"k001".to_vec(), value: b"w".to_vec() }]),
    };
    let store = MemStore::replayed(identity, Arc::new(kv::KvStore), [&first, &del, &other]);
    let rows: Vec<(Vec<u8>, Vec<u8>)> = store.rows().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let reference = KvToV2::default().payloads(&rows);
    assert_eq!(reference.iter().map(|p| v2::decode_payload(p).unwrap().len()).collect::<Vec<_>>(), vec![256, 43]);
    for f in [
        MigrationFault::Chunk128,
        MigrationFault::Chunk257,
        MigrationFault::KeepsTombstones,
        MigrationFault::ConflictsDropped,
        MigrationFault::DropsFirstKey,
    ] {
        assert_ne!(KvToV2 { fault: Some(f) }.payloads(&rows), reference, "{f:?}");
    }
}
