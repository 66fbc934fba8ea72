//! The real binary on real files: the main flow, peek's promises, corruption, and bad inputs
//! (each must be a clear error with exit 2, no panic, and nothing written).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{digests, example, example_store, fresh_store, run, tamper_first_data_row, tamper_str_table, Run};

fn cmd(words: &[&str], dir: &Path) -> Run {
    run(words.iter().map(OsStr::new).chain([dir.as_os_str()]))
}

fn open_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&cmd(&["open", "--json"], dir).expect(0).stdout).unwrap()
}

#[test]
fn example_history_applies_verifies_rebuilds_and_resumes_to_one_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let opened = open_json(&dir);
    insta::assert_json_snapshot!("open_example", opened);
    cmd(&["open", "--verify"], &dir).expect(0);
    let again = run([OsStr::new("apply"), dir.as_os_str(), example().as_os_str()]).expect(0);
    assert!(again.stdout.starts_with("delivered 7 ops: 0 received (0 applied), 7 already received"), "{}", again.stdout);
    cmd(&["rebuild"], &dir).expect(0);
    assert_eq!(open_json(&dir)["state_hash"], opened["state_hash"]);
}

#[test]
fn dump_shows_resolved_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    insta::assert_snapshot!("dump_example", cmd(&["dump"], &dir).expect(0).stdout);
}

#[test]
fn peek_leaves_both_files_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let before = digests(&dir);
    let out = cmd(&["peek", "--json"], &dir).expect(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((v["store_type"].as_str(), v["source"].as_str()), (Some("core:kvstore"), Some("state_db")));
    assert_eq!(digests(&dir), before);
}

/// Starts a second process that holds `dir` open for writing; returns once it says "ready".
fn hold_open(dir: &Path) -> Child {
    let mut holder = Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
        .arg("hold-open")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    holder
}

#[test]
fn peek_works_while_another_process_holds_the_store_for_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let mut holder = hold_open(&dir);
    let peeked = cmd(&["peek"], &dir);
    drop(holder.stdin.take().map(|mut s| s.flush()));
    assert!(holder.wait().unwrap().success());
    assert!(peeked.expect(0).stdout.contains("store_type:     core:kvstore"));
}

#[test]
fn open_verify_reads_only_and_works_while_another_process_holds_the_store_for_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let before = digests(&dir);
    let alone = open_json(&dir);
    assert_eq!(digests(&dir), before, "open wrote to the store");
    let mut holder = hold_open(&dir);
    let held = cmd(&["open", "--verify", "--json"], &dir);
    drop(holder.stdin.take().map(|mut s| s.flush()));
    assert!(holder.wait().unwrap().success());
    let held: serde_json::Value = serde_json::from_str(&held.expect(0).stdout).unwrap();
    assert_eq!((held["state_hash"].as_str(), held["verified"].as_bool()), (alone["state_hash"].as_str(), Some(true)));
}

#[test]
fn peek_of_a_store_killed_while_open_is_a_clear_error_and_open_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let mut holder = hold_open(&dir);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = cmd(&["peek"], &dir).expect(2);
    assert!(err.stderr.contains("state.db: was not closed cleanly"), "{}", err.stderr);
    // A check only reads: it says the store needs a repair, and `open` makes it (issue #32).
    let check = cmd(&["open", "--verify"], &dir).expect(2);
    assert!(check.stderr.contains("only read, so they do not repair"), "{}", check.stderr);
    cmd(&["open"], &dir).expect(0);
    cmd(&["open", "--verify"], &dir).expect(0);
    cmd(&["peek"], &dir).expect(0);
}

#[test]
fn tampering_one_data_value_makes_open_verify_report_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let hash = open_json(&dir)["state_hash"].as_str().unwrap().to_string();
    tamper_first_data_row(&dir.join("state.db"));
    cmd(&["open"], &dir).expect(0);
    let out = cmd(&["open", "--verify"], &dir).expect(1);
    assert!(out.stderr.contains("corrupt: stored state hash ") && out.stderr.contains(&hash), "{}", out.stderr);
}

#[test]
fn an_op_that_stalls_projection_exits_2_names_it_and_the_stall_is_part_of_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = crate::util::example_with_malformed_op(tmp.path(), 3);
    let dir = tmp.path().join("s");
    let out = run([OsStr::new("apply"), dir.as_os_str(), bad.as_os_str(), OsStr::new("--create")]).expect(2);
    assert!(out.stderr.contains("log entry 3 (id ") && out.stderr.contains("malformed_payload"), "{}", out.stderr);
    let opened = open_json(&dir);
    assert_eq!(opened["paused"]["op_index"].as_u64(), Some(3));
    let hash = opened["state_hash"].clone();
    let again = run([OsStr::new("apply"), dir.as_os_str(), bad.as_os_str()]).expect(2);
    assert!(again.stderr.contains("projection is stalled since log entry 3"), "{}", again.stderr);
    // The refused op is in the log, so a rebuild replays into the same stall and the same hash.
    let rebuilt = cmd(&["rebuild"], &dir).expect(0);
    assert!(rebuilt.stdout.contains("projection stalls again at log entry 3 (malformed_payload)"), "{}", rebuilt.stdout);
    let opened = open_json(&dir);
    assert_eq!((opened["paused"]["op_index"].as_u64(), &opened["state_hash"]), (Some(3), &hash));
}

/// Runs `peek` and `open` on `dir`, expects exit 2 with `needle` in the message, and checks that
/// no file changed.
fn refused(dir: &Path, needle: &str) {
    let before = digests(dir);
    for verb in ["peek", "open"] {
        let out = cmd(&[verb], dir).expect(2);
        assert!(out.stderr.contains(needle), "{verb}: expected {needle:?} in:\n{}", out.stderr);
    }
    assert_eq!(digests(dir), before, "a refused store must not be written");
}

#[test]
fn bad_store_inputs_are_clear_errors_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let good = example_store(tmp.path());
    let case = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(good.join("log.db"), d.join("log.db")).unwrap();
        std::fs::copy(good.join("state.db"), d.join("state.db")).unwrap();
        d
    };
    // Missing directory.
    let out = cmd(&["peek"], &tmp.path().join("nope")).expect(2);
    assert!(out.stderr.contains("nope: no such store directory"), "{}", out.stderr);
    // A directory with neither file.
    let empty_dir = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty_dir).unwrap();
    refused(&empty_dir, "not a store (neither state.db nor log.db is present)");
    // Empty state.db.
    let d = case("empty-file");
    std::fs::write(d.join("state.db"), b"").unwrap();
    refused(&d, "state.db: not a redb database or damaged: file is empty");
    // Random bytes.
    let d = case("random");
    std::fs::write(d.join("state.db"), (0..9000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    refused(&d, "state.db: not a redb database or damaged");
    // Truncated redb file.
    let d = case("truncated");
    let bytes = std::fs::read(d.join("state.db")).unwrap();
    std::fs::write(d.join("state.db"), &bytes[..bytes.len() / 3]).unwrap();
    refused(&d, "state.db: not a redb database or damaged");
    // Meta missing store_id.
    let d = case("no-store-id");
    tamper_str_table(&d.join("state.db"), "meta", "store_id", None);
    refused(&d, "meta key `store_id` is missing");
    // store_id of the wrong length.
    let d = case("short-store-id");
    tamper_str_table(&d.join("state.db"), "meta", "store_id", Some(&[1, 2, 3]));
    refused(&d, "meta key `store_id` is invalid: expected 16 bytes, found 3");
    // Non-UTF-8 store_type.
    let d = case("bad-type");
    tamper_str_table(&d.join("state.db"), "meta", "store_type", Some(&[0xff, 0xfe]));
    refused(&d, "meta key `store_type` is invalid: not UTF-8");
    // state.db and log.db of different stores.
    let other = tmp.path().join("other");
    cmd(&["create", "--type", "core:kvstore"], &other).expect(0);
    let d = case("mixed");
    std::fs::copy(other.join("log.db"), d.join("log.db")).unwrap();
    refused(&d, "state.db and log.db describe different stores");
}

#[test]
fn bad_history_inputs_are_clear_errors_with_exit_2_and_leave_the_store_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let before = digests(&dir);
    let apply = |text: &str| {
        let f = tmp.path().join("h.json");
        std::fs::write(&f, text).unwrap();
        run([OsStr::new("apply"), dir.as_os_str(), f.as_os_str()]).expect(2).stderr
    };
    let text = std::fs::read_to_string(example()).unwrap();
    // Bad JSON: the message names line and column.
    let broken = text.replacen("\"store_type\": \"core:kvstore\",", "\"store_type\": core:kvstore,", 1);
    assert!(apply(&broken).contains("h.json: invalid JSON at line 5, column 17"));
    // An op with a hash of the wrong length: names the op and the field.
    let first_author = text.find("\"author\": \"").unwrap() + 11;
    let short = format!("{}{}", &text[..first_author], &text[first_author + 2..]);
    assert!(apply(&short).contains("h.json: op 0, field `author`: expected 64 hex digits (32 bytes), found 62 characters"));
    // A history of another store.
    let other = text.replace("6c617474-6963-4500-8000-000000000001", "6c617474-6963-4500-8000-000000000002");
    let err = apply(&other);
    assert!(err.contains("the history is for the store") || err.contains("field `id`"), "{err}");
    // A file written by a newer format version.
    assert!(apply(&text.replace("\"format_version\": 1", "\"format_version\": 9"))
        .contains("format_version 9 is newer than this build reads (3)"));
    assert_eq!(digests(&dir), before);
}

#[test]
fn create_refuses_unknown_types_and_existing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let out = cmd(&["create", "--type", "my.app.v2"], &dir).expect(2);
    assert!(
        out.stderr.contains("no opener for store type `my.app.v2`; registered types: core:kvstore, core:kvstore-v2, core:logstore"),
        "{}",
        out.stderr
    );
    assert!(!dir.exists());
    cmd(&["create", "--type", "core:logstore"], &dir).expect(0);
    let before = digests(&dir);
    let again = cmd(&["create", "--type", "core:logstore"], &dir).expect(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(digests(&dir), before);
}

#[test]
fn rebuild_recovers_from_a_garbage_state_db() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let hash = open_json(&dir)["state_hash"].clone();
    std::fs::write(dir.join("state.db"), b"not a database at all").unwrap();
    cmd(&["open"], &dir).expect(2);
    cmd(&["rebuild"], &dir).expect(0);
    assert_eq!(open_json(&dir)["state_hash"], hash);
    cmd(&["open", "--verify"], &dir).expect(0);
}

fn write_history(path: &Path, store_type: &str, store_id: uuid::Uuid, ops: Vec<lattice_conform::op::Op>) {
    let h = lattice_conform::history::History {
        store_id,
        store_type: store_type.into(),
        schema_version: 1,
        provenance: None,
        delivery: Default::default(),
        expect: Vec::new(),
        ops,
    };
    std::fs::write(path, h.to_json()).unwrap();
}

#[test]
fn an_op_whose_prev_never_arrives_floats_and_apply_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example()).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["ops"][3]["prev"] = serde_json::json!("11".repeat(32));
    v["ops"][3].as_object_mut().unwrap().remove("id");
    let f = tmp.path().join("h.json");
    std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let dir = tmp.path().join("s");
    let out = run([OsStr::new("apply"), dir.as_os_str(), f.as_os_str(), OsStr::new("--create")]).expect(0);
    assert!(out.stdout.contains("received ops are floating"), "{}", out.stdout);
    assert!(open_json(&dir)["paused"].is_null(), "a floating op does not stall anything");
}

#[test]
fn logstore_entries_dump_in_wall_time_then_author_order_and_a_second_entry_in_one_ms_stalls() {
    use crate::gen::{author, Chains};
    let tmp = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::from_u128(42);
    let mut c = Chains::new(id);
    let ops = vec![
        c.next(author(2), 5, vec![], b"b".to_vec()).0,
        c.next(author(1), 5, vec![], b"a".to_vec()).0,
        c.next(author(3), 4, vec![], b"c".to_vec()).0,
        // Lattice accepts an empty payload and stores nothing, so wall time 6 stays free.
        c.next(author(1), 6, vec![], vec![]).0,
    ];
    let (f, dir) = (tmp.path().join("log.json"), tmp.path().join("s"));
    write_history(&f, "core:logstore", id, ops.clone());
    run([OsStr::new("apply"), dir.as_os_str(), f.as_os_str(), OsStr::new("--create")]).expect(0);
    let contents = |dir: &Path| -> Vec<String> {
        let dumped: serde_json::Value = serde_json::from_str(&cmd(&["dump", "--json"], dir).expect(0).stdout).unwrap();
        dumped["rows"].as_array().unwrap().iter().map(|r| r["content"]["utf8"].as_str().unwrap().to_string()).collect()
    };
    let (a1, a2) = (hex::encode(author(1)), hex::encode(author(2)));
    assert_eq!(contents(&dir), if a1 < a2 { ["c", "a", "b"] } else { ["c", "b", "a"] });
    let mut more = ops;
    more.push(c.next(author(1), 6, vec![], b"d".to_vec()).0);
    more.push(c.next(author(1), 6, vec![], b"e".to_vec()).0);
    write_history(&f, "core:logstore", id, more);
    let out = run([OsStr::new("apply"), dir.as_os_str(), f.as_os_str()]).expect(2);
    assert!(
        out.stderr.contains("log entry 5 (id ") && out.stderr.contains("refused") && out.stderr.contains("duplicate timestamp"),
        "{}",
        out.stderr
    );
    assert_eq!(contents(&dir).len(), 4, "d is stored, e is not");
}

#[test]
fn dump_json_shows_concurrent_kvstore_heads_and_the_winner() {
    use crate::gen::{author, put, Chains};
    let tmp = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::from_u128(43);
    let mut c = Chains::new(id);
    let ops = vec![c.next(author(1), 7, vec![], put(b"k", b"early")).0, c.next(author(2), 9, vec![], put(b"k", b"late")).0];
    let (f, dir) = (tmp.path().join("kv.json"), tmp.path().join("s"));
    write_history(&f, "core:kvstore", id, ops);
    run([OsStr::new("apply"), dir.as_os_str(), f.as_os_str(), OsStr::new("--create")]).expect(0);
    let dumped: serde_json::Value = serde_json::from_str(&cmd(&["dump", "--json"], &dir).expect(0).stdout).unwrap();
    let row = &dumped["rows"][0];
    assert_eq!((row["kind"].as_str(), row["value"]["utf8"].as_str()), (Some("kv_key"), Some("late")));
    assert_eq!(row["heads"].as_array().unwrap().len(), 2);
}

#[test]
fn a_tip_of_the_wrong_length_is_reported_not_taken_for_a_new_author() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let text = std::fs::read_to_string(example()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first_author = v["ops"][0]["author"].as_str().unwrap();
    tamper_str_table(&dir.join("state.db"), "meta", &format!("tip/{first_author}"), Some(&[1, 2, 3]));
    let out = cmd(&["open", "--verify"], &dir).expect(2);
    assert!(out.stderr.contains("is invalid: expected 32 bytes, found 3"), "{}", out.stderr);
}

#[test]
fn format_md_test_vectors_are_what_the_code_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/FORMAT.md")).unwrap();
    let hash = open_json(&dir)["state_hash"].as_str().unwrap().to_string();
    let history = lattice_conform::history::History::load(&example()).unwrap();
    let op0 = hex::encode(lattice_conform::op::op_id(&history.store_id, &history.ops[0]));
    assert!(doc.contains(&hash), "docs/FORMAT.md must state the example's final state hash {hash}");
    assert!(doc.contains(&op0), "docs/FORMAT.md must state op 0's id {op0}");
}

#[test]
fn a_log_holding_one_op_twice_is_a_bad_log_entry_for_rebuild() {
    // The bad input: log entry 3 overwritten with a copy of entry 1 (an op is logged once, when
    // it is first received). Rebuild must name the entry and leave state.db as it was.
    use redb::ReadableTable as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let state_before = digests(&dir)["state.db"];
    let db = redb::Database::open(dir.join("log.db")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut log = txn.open_table(redb::TableDefinition::<u64, &[u8]>::new("log")).unwrap();
        let first = log.get(1).unwrap().unwrap().value().to_vec();
        log.insert(3, first.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let out = cmd(&["rebuild"], &dir).expect(2);
    assert!(out.stderr.contains("log.db: log entry 3 cannot be replayed: a second copy of an op already logged earlier"), "{}", out.stderr);
    assert_eq!(digests(&dir)["state.db"], state_before, "rebuild replaced state.db");
}

#[test]
fn a_rebuild_that_cannot_replay_the_log_leaves_state_db_as_it_was() {
    // Log entry 2 overwritten with bytes that do not decode: the rebuild must fail before
    // replacing a working state.db, and leave no temporary file.
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let before = open_json(&dir);
    let state_before = digests(&dir)["state.db"];
    let db = redb::Database::open(dir.join("log.db")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<u64, &[u8]>::new("log")).unwrap().insert(2, [9u8, 9, 9].as_slice()).unwrap();
    txn.commit().unwrap();
    drop(db);
    let out = cmd(&["rebuild"], &dir).expect(2);
    assert!(out.stderr.contains("log.db: log entry 2 does not decode"), "{}", out.stderr);
    assert_eq!(digests(&dir)["state.db"], state_before, "rebuild replaced state.db");
    assert!(!dir.join("state.db.rebuild").exists());
    assert_eq!(open_json(&dir)["state_hash"], before["state_hash"]);
}

#[test]
fn concurrent_creates_of_one_directory_make_one_store_and_leave_nothing_else() {
    // Bad input tried: six `create`s of the same directory started at once.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
                .args([OsStr::new("create"), dir.as_os_str(), OsStr::new("--type"), OsStr::new("core:kvstore")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "exactly one create succeeds");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("already exists; choose a new directory"), "{err}");
    }
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["s"], "no stray .lattice-creating-* directory");
    cmd(&["open", "--deep"], &dir).expect(0);
}

#[test]
fn dump_into_a_pipe_closed_early_ends_quietly_with_exit_0() {
    // Bad input tried: the reader of `dump`'s output goes away after one line (`dump | head -1`),
    // with far more than a pipe buffer of rows still to write.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let id = uuid::Uuid::from_u128(7);
    let logic = lattice_conform::registry::Registry::with_reference_types().opener("core:kvstore").unwrap().logic();
    let mut store = lattice_conform::store::Store::create(&dir, id, logic).unwrap();
    let ops: Vec<_> = lattice_conform::corpus::synthetic::ops(20_000, lattice_conform::corpus::synthetic::Kind::KvStore, id).collect();
    store.apply_ops(&ops, 0).unwrap();
    drop(store);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lattice-conform"))
        .args([OsStr::new("dump"), dir.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("\"key-"), "{first}");
    // The reader is dropped here: the pipe's read end closes with most rows unwritten.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "nothing on standard error: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn migrate_to_a_name_of_241_bytes_works_and_leaves_no_temporary_directory() {
    // The temporary directory's name used to be the destination's plus 18 bytes, past the 255-byte
    // limit for a valid 241-byte destination.
    let tmp = tempfile::tempdir().unwrap();
    let src = example_store(tmp.path());
    let dst = tmp.path().join("d".repeat(241));
    run([OsStr::new("migrate"), src.as_os_str(), dst.as_os_str(), OsStr::new("--to-type"), OsStr::new("core:kvstore-v2")]).expect(0);
    cmd(&["open", "--deep"], &dst).expect(0);
    let stray: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn rebuild_keeps_the_replaced_state_db_and_force_overrides_a_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = example_store(tmp.path());
    let before = std::fs::read(dir.join("state.db")).unwrap();
    let out = cmd(&["rebuild"], &dir).expect(0);
    assert!(out.stdout.contains("state.db.before-rebuild"), "{}", out.stdout);
    assert_eq!(std::fs::read(dir.join("state.db.before-rebuild")).unwrap(), before, "the old state.db is kept byte for byte");
    // A state.db ahead of its log is refused without --force, rebuilt with it (and kept again).
    let fresh = fresh_store(tmp.path(), "fresh");
    std::fs::copy(fresh.join("log.db"), dir.join("log.db")).unwrap();
    let refused = cmd(&["rebuild"], &dir).expect(2);
    assert!(refused.stderr.contains("6 ops exist only in state.db"), "{}", refused.stderr);
    let forced = cmd(&["rebuild", "--force"], &dir).expect(0);
    assert!(forced.stdout.contains("rebuilt state.db from 0 logged ops"), "{}", forced.stdout);
    assert!(dir.join("state.db.before-rebuild.2").exists());
}
