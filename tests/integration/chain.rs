//! Chain rules and all-or-nothing apply, on real store files through the library.

use std::path::Path;
use std::sync::Arc;

use lattice_conform::kernel::RejectKind;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::op::Op;
use lattice_conform::registry::{OpenError, Opened, Registry};
use lattice_conform::store::{Store, StoreError};
use uuid::Uuid;

use crate::gen::{author, delete, put, Chains};

fn new_store(tmp: &Path) -> (Store, Chains) {
    let id = Uuid::from_u128(7);
    (Store::create(&tmp.join("s"), id, Arc::new(KvStore)).unwrap(), Chains::new(id))
}

/// Everything observable about a store's state: hash, log length, rows, number of tips.
type Snapshot = (String, u64, Vec<(Vec<u8>, Vec<u8>)>, usize);

fn snapshot(s: &Store) -> Snapshot {
    let mut rows = Vec::new();
    s.for_each_row(|k, v| rows.push((k.to_vec(), v.to_vec()))).unwrap();
    (s.state_hash().to_string(), s.log_len(), rows, s.tips().unwrap().len())
}

fn rejected_kind(e: StoreError) -> (u64, RejectKind) {
    match e {
        StoreError::Rejected { index, kind, .. } => (index, kind),
        other => panic!("expected a rejection, got {other}"),
    }
}

#[test]
fn first_op_with_nonzero_prev_is_a_bad_genesis_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let before = snapshot(&s);
    let (mut op, _) = c.next(author(1), 1, vec![], put(b"k", b"v"));
    op.prev = [5; 32];
    assert_eq!(rejected_kind(s.apply_ops(&[op], 0).unwrap_err()), (0, RejectKind::BadGenesis));
    assert_eq!(snapshot(&s), before);
    assert!(s.paused().is_some());
}

#[test]
fn an_op_not_naming_the_tip_breaks_the_chain_and_pauses_after_the_good_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let (b, _) = c.next(author(1), 2, vec![], put(b"k", b"2"));
    let (mut bad, _) = c.next(author(1), 3, vec![], put(b"k", b"3"));
    bad.prev = a_id_of(&s, &a);
    let (after, _) = c.next(author(2), 4, vec![], put(b"x", b"y"));
    let err = s.apply_ops(&[a, b, bad, after], 10).unwrap_err();
    let msg = err.to_string();
    assert_eq!(rejected_kind(err), (12, RejectKind::BrokenChain));
    assert!(msg.contains("op 12 (id ") && msg.contains("broken_chain"), "{msg}");
    assert_eq!(s.log_len(), 2, "the two good ops before the broken link are kept");
    s.verify().unwrap();
    let paused = s.apply_ops(&[], 0).unwrap_err();
    assert!(matches!(paused, StoreError::Paused { .. }), "{paused}");
}

fn a_id_of(s: &Store, op: &Op) -> [u8; 32] {
    lattice_conform::op::op_id(&s.identity().store_id, op)
}

#[test]
fn redelivering_the_tip_is_an_idempotent_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let summary = s.apply_ops(&[a.clone(), a.clone()], 0).unwrap();
    let after_first = snapshot(&s);
    assert_eq!((summary.applied, summary.duplicates), (1, 1));
    assert_eq!(s.apply_ops(&[a], 2).unwrap().duplicates, 1);
    assert_eq!(snapshot(&s), after_first);
}

#[test]
fn a_second_genesis_for_a_known_author_is_a_broken_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let mut fresh = Chains::new(s.identity().store_id);
    let (again, _) = fresh.next(author(1), 2, vec![], put(b"k", b"2"));
    assert_eq!(rejected_kind(s.apply_ops(&[a, again], 0).unwrap_err()), (1, RejectKind::BrokenChain));
}

#[test]
fn a_malformed_payload_mid_batch_rolls_back_only_that_op() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let ops: Vec<Op> = (0..5).map(|i| c.next(author(1), i, vec![], if i == 3 { vec![1, 2, 3] } else { put(b"k", &[i as u8]) }).0).collect();
    std::fs::create_dir(tmp.path().join("x")).unwrap();
    let mut expected_store = new_store(&tmp.path().join("x")).0;
    expected_store.apply_ops(&ops[..3], 0).unwrap();
    assert_eq!(rejected_kind(s.apply_ops(&ops, 0).unwrap_err()), (3, RejectKind::MalformedPayload));
    assert_eq!(snapshot(&s), snapshot(&expected_store));
}

#[test]
fn state_db_behind_its_log_catches_up_on_open() {
    // Models a crash between the log.db commit and the state.db commit.
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let ops: Vec<Op> = (0..6).map(|i| c.next(author(1 + (i % 2) as u8), i, vec![], put(b"k", &[i as u8])).0).collect();
    s.apply_ops(&ops[..3], 0).unwrap();
    drop(s);
    let dir = tmp.path().join("s");
    std::fs::copy(dir.join("state.db"), tmp.path().join("old-state.db")).unwrap();
    let mut s = Store::open(&dir, Arc::new(KvStore)).unwrap();
    s.apply_ops(&ops[3..], 3).unwrap();
    let full = s.state_hash();
    drop(s);
    std::fs::copy(tmp.path().join("old-state.db"), dir.join("state.db")).unwrap();
    // The read-only open refuses the gap and writes nothing; the fallback repairs it read-write.
    let registry = Registry::with_reference_types();
    let before = crate::util::digests(&dir);
    let err = registry.open_read_only(&dir).err().unwrap();
    assert!(matches!(err, OpenError::Store(StoreError::StateLagsLog { state_len: 3, log_len: 6, .. })), "{err}");
    assert_eq!(crate::util::digests(&dir), before);
    let opened = registry.open_for_reading(&dir).unwrap();
    assert!(matches!(opened, Opened::Repaired(_)));
    assert_eq!((opened.state_hash(), opened.log_len()), (full, 6));
    drop(opened);
    let s = Store::open(&dir, Arc::new(KvStore)).unwrap();
    assert_eq!((s.state_hash(), s.log_len()), (full, 6));
    s.verify().unwrap();
    drop(s);
    let opened = registry.open_for_reading(&dir).unwrap();
    assert!(matches!(opened, Opened::ReadOnly(_)));
    assert_eq!((opened.state_hash(), opened.verify().unwrap()), (full, full));
}

#[test]
fn state_db_ahead_of_its_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let dir = tmp.path().join("s");
    std::fs::copy(dir.join("log.db"), tmp.path().join("old-log.db")).unwrap();
    let (a, _) = c.next(author(1), 1, vec![], delete(b"k"));
    s.apply_ops(&[a], 0).unwrap();
    drop(s);
    std::fs::copy(tmp.path().join("old-log.db"), dir.join("log.db")).unwrap();
    let err = Store::open(&dir, Arc::new(KvStore)).err().unwrap();
    assert!(matches!(err, StoreError::StateAheadOfLog { state_len: 1, log_len: 0, .. }), "{err}");
    assert!(err.is_check_failure());
}

#[test]
fn applying_over_a_tip_of_the_wrong_length_is_a_storage_error_not_a_new_genesis() {
    // A damaged tip used to read as "no tip", so a fresh genesis op for that author was accepted.
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    s.apply_ops(&[a], 0).unwrap();
    drop(s);
    let dir = tmp.path().join("s");
    crate::util::tamper_str_table(&dir.join("state.db"), "meta", &format!("tip/{}", hex::encode(author(1))), Some(&[1, 2, 3]));
    let mut s = Store::open(&dir, Arc::new(KvStore)).unwrap();
    let (genesis_again, _) = Chains::new(s.identity().store_id).next(author(1), 2, vec![], put(b"k", b"2"));
    let err = format!("{:#}", anyhow::Error::from(s.apply_ops(&[genesis_again], 0).unwrap_err()));
    assert!(err.contains("holds 3 bytes, expected 32"), "{err}");
    assert_eq!(s.log_len(), 1);
}
