//! Chain rules and all-or-nothing apply, on real store files through the library.

use std::path::Path;
use std::sync::Arc;

use lattice_conform::kernel::RejectKind;
use lattice_conform::lattice_logic::kvstore::KvStore;
use lattice_conform::op::Op;
use lattice_conform::registry::{OpenError, Opened, Registry};
use lattice_conform::store::{ApplySummary, Store, StoreError};
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

/// What projection changed: hash, rows, number of tips (a [`Snapshot`] without the log length).
type State = (String, Vec<(Vec<u8>, Vec<u8>)>, usize);

fn state(s: &Store) -> State {
    let (hash, _, rows, tips) = snapshot(s);
    (hash, rows, tips)
}

fn stall_of(summary: &ApplySummary) -> Option<(u64, RejectKind)> {
    summary.stalled.as_ref().map(|p| (p.op_index, p.kind))
}

#[test]
fn an_op_whose_prev_nobody_has_floats_changes_no_state_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let before = state(&s);
    let (first, first_id) = c.next(author(1), 1, vec![], put(b"k", b"v"));
    let (second, _) = c.next(author(1), 2, vec![], put(b"k", b"w"));
    let summary = s.apply_ops(std::slice::from_ref(&second), 0).unwrap();
    assert_eq!((summary.received, summary.applied, stall_of(&summary)), (1, 0, None));
    assert_eq!((state(&s), s.log_len()), (before, 1), "logged, not projected");
    assert!(s.paused().is_none());
    // Closed and reopened, the floating op is still held: its parent's arrival applies both.
    drop(s);
    let mut s = Store::open(&tmp.path().join("s"), Arc::new(KvStore)).unwrap();
    let summary = s.apply_ops(&[first], 1).unwrap();
    assert_eq!((summary.received, summary.applied), (1, 2));
    let tips = s.tips().unwrap();
    assert_eq!(tips.len(), 1);
    assert_ne!(tips[0].1, first_id, "the floating child is the tip now");
    s.verify().unwrap();
}

#[test]
fn an_op_naming_a_superseded_tip_floats_and_other_authors_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let (b, _) = c.next(author(1), 2, vec![], put(b"k", b"2"));
    let (mut stale, _) = c.next(author(1), 3, vec![], put(b"k", b"3"));
    stale.prev = a_id_of(&s, &a);
    let (after, _) = c.next(author(2), 4, vec![], put(b"x", b"y"));
    let summary = s.apply_ops(&[a, b, stale, after], 10).unwrap();
    assert_eq!((summary.received, summary.applied, stall_of(&summary)), (4, 3, None));
    assert_eq!(s.log_len(), 4, "every received op is logged");
    s.verify().unwrap();
}

#[test]
fn an_op_whose_prev_is_another_authors_tip_is_witnessed_and_stalls_projection_as_bad_genesis() {
    // Lattice's quirk: a floating op is ready when its prev is any author's tip; projection then
    // finds that its own author has no tip and a non-zero prev.
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, a_id) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let (mut foreign, _) = c.next(author(2), 2, vec![], put(b"k", b"2"));
    foreign.prev = a_id;
    let (later, _) = c.next(author(3), 3, vec![], put(b"z", b"3"));
    let summary = s.apply_ops(&[a, foreign, later], 0).unwrap();
    assert_eq!((summary.applied, stall_of(&summary)), (1, Some((1, RejectKind::BadGenesis))));
    assert_eq!(s.paused().map(|p| p.op_index), Some(1));
    let mut rows = Vec::new();
    s.for_each_row(|k, _| rows.push(k.to_vec())).unwrap();
    assert_eq!(rows, vec![b"k".to_vec()], "nothing after the stall is applied, for any author");
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
fn a_second_genesis_for_a_known_author_is_witnessed_and_stalls_projection_as_a_broken_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let (a, _) = c.next(author(1), 1, vec![], put(b"k", b"1"));
    let mut fresh = Chains::new(s.identity().store_id);
    let (again, _) = fresh.next(author(1), 2, vec![], put(b"k", b"2"));
    let summary = s.apply_ops(&[a, again], 0).unwrap();
    assert_eq!(stall_of(&summary), Some((1, RejectKind::BrokenChain)));
    assert_eq!(s.paused().map(|p| (p.op_index, p.kind)), Some((1, RejectKind::BrokenChain)));
    // Ops keep arriving after a stall (as in Lattice); none is applied.
    let (later, _) = c.next(author(2), 3, vec![], put(b"z", b"3"));
    let summary = s.apply_ops(&[later], 2).unwrap();
    assert_eq!((summary.received, summary.applied), (1, 0));
}

#[test]
fn a_malformed_payload_mid_batch_rolls_back_only_that_op_and_stalls_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, mut c) = new_store(tmp.path());
    let ops: Vec<Op> = (0..5).map(|i| c.next(author(1), i, vec![], if i == 3 { vec![0xff] } else { put(b"k", &[i as u8]) }).0).collect();
    std::fs::create_dir(tmp.path().join("x")).unwrap();
    let mut expected_store = new_store(&tmp.path().join("x")).0;
    expected_store.apply_ops(&ops[..3], 0).unwrap();
    let summary = s.apply_ops(&ops, 0).unwrap();
    assert_eq!((summary.applied, stall_of(&summary)), (3, Some((3, RejectKind::MalformedPayload))));
    assert_eq!(state(&s), state(&expected_store));
    assert_eq!(s.log_len(), 5, "op 4 is received and logged though not applied");
    s.verify().unwrap();
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
