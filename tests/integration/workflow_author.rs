//! The maintainer's workflow through the real binary: fixtures written from intent (`history new`,
//! `history add`, `history build`), put into a corpus (`corpus add`, `record --corpus`) with
//! pending goldens, reviewed like insta snapshots (`bless` diffs, `bless --accept/--reject` with
//! globs), and `verify` refusing to pass over unreviewed or orphaned goldens.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{run, run_in};

/// `history new t/<name> --type T` then one `history add` per element of `adds`.
fn author(tmp: &Path, name: &str, store_type: &str, adds: &[&[&str]]) -> PathBuf {
    let file = tmp.join(name);
    run_in(tmp, ["history", "new", name, "--type", store_type]).expect(0);
    for a in adds {
        let mut args = vec!["history", "add", name];
        args.extend_from_slice(a);
        run_in(tmp, args).expect(0);
    }
    file
}

/// Two authors on `core:kvstore`: alice puts two keys, bob concurrently puts `k` (a conflict:
/// `--deps none`), alice then deletes `greeting` having seen everything (`auto`).
const CONFLICT: &[&[&str]] = &[
    &["--author", "alice", "--put", "greeting=hello", "--put", "k=1"],
    &["--author", "bob", "--put", "k=2", "--deps", "none"],
    &["--author", "alice", "--delete", "greeting"],
];

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The dumped rows of `store` by key text.
fn rows(store: &Path) -> Vec<Value> {
    let out = run(["dump".as_ref(), store.as_os_str(), "--json".as_ref()]).expect(0);
    json(&out.stdout)["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], key: &str) -> &'a Value {
    rows.iter().find(|r| r["key"]["utf8"] == key).unwrap_or_else(|| panic!("no row {key} in {rows:?}"))
}

#[test]
fn an_authored_history_applies_and_reads_back_what_was_put() {
    let tmp = tempfile::tempdir().unwrap();
    let h = author(tmp.path(), "fix.json", "core:kvstore", CONFLICT);
    // The file is a proper history: ids, chains and decoded payloads, readable by `history show`.
    let file = json(&std::fs::read_to_string(&h).unwrap());
    let ops = file["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[2]["prev"], ops[0]["id"], "alice's second op chains to her first");
    assert_eq!(ops[1]["prev"], "0".repeat(64), "bob's first op is a genesis");
    let mut heads = vec![ops[0]["id"].as_str().unwrap().to_string()];
    assert_eq!(ops[2]["causal_deps"], serde_json::json!(heads), "auto: the heads of `greeting`");
    heads.clear();
    assert_eq!(ops[1]["causal_deps"], serde_json::json!(heads));
    assert_eq!(ops[1]["decoded"][0]["put"]["value"]["utf8"], "2");
    assert_eq!((ops[0]["hlc"]["wall_ms"].as_u64().unwrap() + 1, 0), (ops[1]["hlc"]["wall_ms"].as_u64().unwrap(), 0));

    let store = tmp.path().join("store");
    run(["apply".as_ref(), store.as_os_str(), h.as_os_str(), "--create".as_ref()]).expect(0);
    run(["open".as_ref(), store.as_os_str(), "--deep".as_ref()]).expect(0);
    let kv = rows(&store);
    let k = row(&kv, "k");
    assert_eq!(k["value"]["utf8"], "2", "bob's later HLC wins");
    assert_eq!(k["heads"].as_array().unwrap().len(), 2, "the concurrent puts conflict: {k}");
    let g = row(&kv, "greeting");
    assert_eq!((g["tombstone"].clone(), g["value"].clone()), (Value::Bool(true), Value::Null));

    // A logstore fixture: --append, chained per author, entries read back in order.
    let log = author(
        tmp.path(),
        "log.lch",
        "core:logstore",
        &[&["--author", "alice", "--append", "first"], &["--author", "bob", "--append", "second"]],
    );
    let store = tmp.path().join("log-store");
    run(["apply".as_ref(), store.as_os_str(), log.as_os_str(), "--create".as_ref()]).expect(0);
    let contents: Vec<Value> = rows(&store).iter().map(|r| r["content"]["utf8"].clone()).collect();
    assert_eq!(contents, vec![Value::from("first"), Value::from("second")]);
}

#[test]
fn history_build_gives_the_bytes_of_history_adds_and_the_same_inputs_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let script = serde_json::json!({
        "format": "lattice-conform/history-script",
        "format_version": 1,
        "store_type": "core:kvstore",
        "ops": [
            {"author": "alice", "put": ["greeting=hello", "k=1"]},
            {"author": "bob", "put": ["k=2"], "deps": ["none"]},
            {"author": "alice", "delete": ["greeting"], "deps": ["auto"]},
            {"author": "carol", "put": ["hex:00ff=hex:"], "deps": ["alice", "bob"], "hlc": "1700000000100.3"}
        ]
    });
    let script_path = tmp.path().join("script.json");
    std::fs::write(&script_path, serde_json::to_string_pretty(&script).unwrap()).unwrap();
    for form in ["json", "lch"] {
        let name = format!("fix.{form}");
        let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut adds: Vec<&[&str]> = CONFLICT.to_vec();
        adds.push(&["--author", "carol", "--put", "hex:00ff=hex:", "--deps", "alice", "bob", "--hlc", "1700000000100.3"]);
        let added = author(&a, &name, "core:kvstore", &adds);
        for d in [&b, &c] {
            run_in(d, ["history".as_ref(), "build".as_ref(), script_path.as_os_str(), name.as_ref()]).expect(0);
        }
        let bytes = |d: &Path| std::fs::read(d.join(&name)).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "{form}: build = new + adds");
        assert_eq!(bytes(&b), bytes(&c), "{form}: the same script gives the same bytes");
        assert_eq!(std::fs::read(&added).unwrap(), bytes(&a));
        // Written by the one history writer: `history convert` round-trips it byte for byte.
        let other = if form == "json" { "back.lch" } else { "back.json" };
        run_in(&a, ["history", "convert", &name, other]).expect(0);
        run_in(&a, ["history", "convert", other, "again", "--format", if form == "json" { "json" } else { "bin" }]).expect(0);
        assert_eq!(std::fs::read(a.join("again")).unwrap(), bytes(&a), "{form}");
        // Output exists: refused without --force, and left as it was.
        let again = run_in(&b, ["history".as_ref(), "build".as_ref(), script_path.as_os_str(), name.as_ref()]).expect(2);
        assert!(again.stderr.contains("already exists; pass --force"), "{}", again.stderr);
        run_in(&b, ["history".as_ref(), "build".as_ref(), script_path.as_os_str(), name.as_ref(), "--force".as_ref()]).expect(0);
        assert_eq!(bytes(&b), bytes(&c));
        for d in [&a, &b, &c] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

/// A corpus of two generated `core:kvstore` histories with accepted goldens (history and
/// migration), in `tmp`.
fn small_corpus(tmp: &Path) {
    run_in(tmp, ["gen", "--type", "core:kvstore", "--histories", "2", "--ops", "20", "--out", "corpus"]).expect(0);
    for args in [&["bless"][..], &["bless", "--accept"], &["bless", "--migrations"], &["bless", "--migrations", "--accept"]] {
        run_in(tmp, args).expect(0);
    }
    run_in(tmp, ["verify"]).expect(0);
}

fn pending(tmp: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![tmp.join("golden")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".pending") {
                out.push(p.strip_prefix(tmp.join("golden")).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn corpus_add_writes_pending_goldens_and_bless_shows_diffs_and_reviews_by_glob() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(t);
    for name in ["fix-a.json", "fix-b.json"] {
        author(t, name, "core:kvstore", CONFLICT);
    }
    let added = run_in(t, ["corpus", "add", "fix-a.json"]).expect(0);
    assert!(added.stdout.contains("added fix-a.json as core:kvstore/fix-a (3 ops)"), "{}", added.stdout);
    // One command reviews the history's golden and its migration golden.
    assert!(added.stdout.ends_with("then run `lattice-conform bless --accept core:kvstore/fix-a`\n"), "{}", added.stdout);
    run_in(t, ["corpus", "add", "fix-b.json"]).expect(0);
    let mig = "migrations/core__kvstore-to-core__kvstore-v2";
    assert_eq!(
        pending(t),
        [
            "core__kvstore/fix-a.json.pending".to_string(),
            "core__kvstore/fix-b.json.pending".into(),
            format!("{mig}/fix-a.json.pending"),
            format!("{mig}/fix-b.json.pending"),
        ]
    );
    // A duplicate id is refused, naming the file; nothing changes.
    let manifest = std::fs::read(t.join("corpus/MANIFEST.json")).unwrap();
    let dup = run_in(t, ["corpus", "add", "fix-a.json"]).expect(2);
    assert!(dup.stderr.contains("fix-a.json: history `core:kvstore/fix-a` is already in the corpus"), "{}", dup.stderr);
    assert_eq!(std::fs::read(t.join("corpus/MANIFEST.json")).unwrap(), manifest);

    // A changed accepted golden: bless shows the fields that differ, old → new.
    let gen_id = {
        let m = json(&String::from_utf8(manifest).unwrap());
        m["files"][0]["path"].as_str().unwrap().trim_end_matches(".json").replace("core__kvstore/", "")
    };
    let accepted = t.join(format!("golden/core__kvstore/{gen_id}.json"));
    let original = std::fs::read_to_string(&accepted).unwrap();
    let old_hash = json(&original)["final_state_hash"].as_str().unwrap().to_string();
    std::fs::write(&accepted, original.replace(&old_hash, &"1".repeat(64))).unwrap();
    let bless = run_in(t, ["bless"]).expect(0);
    assert!(bless.stdout.contains(&format!("changed   core:kvstore/{gen_id}\n")), "{}", bless.stdout);
    assert!(bless.stdout.contains(&format!("    final state hash: {} → {old_hash}\n", "1".repeat(64))), "{}", bless.stdout);
    // A new golden's review shows what a reader sees first, then the counts and hashes.
    assert!(
        bless.stdout.contains("new       core:kvstore/fix-a\n    reads \"greeting\": no value tombstone not conflicted 1 head\n    reads \"k\": \"2\" conflicted 2 heads\n    3 ops (3 applied"),
        "{}",
        bless.stdout
    );
    assert!(bless.stdout.contains(&format!("    first divergence: within ops 0..{}", json(&original)["ops"])), "{}", bless.stdout);
    // The migration goldens are blessed in the same run.
    assert!(bless.stdout.contains("new       migration:core:kvstore/fix-b\n"), "{}", bless.stdout);
    assert!(bless.stdout.contains("bless: 1 changed, 4 new, 3 unchanged"), "{}", bless.stdout);

    // A pattern matching no pending golden: exit 2 naming it, nothing accepted.
    let before = pending(t);
    let none = run_in(t, ["bless", "--accept", "core:kvstore/fix-a", "*nothing*"]).expect(2);
    assert!(none.stderr.contains("pattern `*nothing*` matches no pending golden"), "{}", none.stderr);
    assert_eq!(pending(t), before);
    // `--migrations` reviews only the migration goldens; a glob accept and a name reject act on
    // what they match, the history's golden and its migration golden alike.
    let macc = run_in(t, ["bless", "--migrations", "--accept", "fix-a"]).expect(0);
    assert_eq!(macc.stdout, "accepted  migration:core:kvstore/fix-a\nbless --migrations: 1 accepted\n");
    let acc = run_in(t, ["bless", "--accept", "*/fix-a"]).expect(0);
    assert_eq!(acc.stdout, "accepted  core:kvstore/fix-a\nbless: 1 accepted\n");
    let rej = run_in(t, ["bless", "--reject", "fix-b"]).expect(0);
    assert_eq!(rej.stdout, "rejected  core:kvstore/fix-b\nrejected  migration:core:kvstore/fix-b\nbless: 2 rejected\n");
    assert!(t.join("golden/core__kvstore/fix-a.json").exists());
    assert!(!t.join("golden/core__kvstore/fix-b.json").exists());
    assert_eq!(std::fs::read_to_string(&accepted).unwrap(), original.replace(&old_hash, &"1".repeat(64)), "not matched: untouched");
    assert_eq!(pending(t), [format!("core__kvstore/{gen_id}.json.pending")]);
    run_in(t, ["bless", "--accept"]).expect(0);
    assert_eq!(std::fs::read_to_string(&accepted).unwrap(), original);

    // A binary history of a type no migration starts from: copied byte for byte, one pending golden.
    let lch = author(t, "log.lch", "core:logstore", &[&["--author", "alice", "--append", "x"]]);
    let added = run_in(t, ["corpus", "add", "log.lch"]).expect(0);
    assert!(!added.stdout.contains("--migrations"), "{}", added.stdout);
    assert_eq!(std::fs::read(t.join("corpus/core__logstore/log.lch")).unwrap(), std::fs::read(&lch).unwrap());
    let pend = pending(t);
    assert_eq!(pend.iter().filter(|p| p.contains("log.json")).collect::<Vec<_>>(), ["core__logstore/log.json.pending"]);
}

#[test]
fn verify_fails_on_pending_and_orphan_goldens_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_corpus(t);
    author(t, "fix.json", "core:kvstore", CONFLICT);
    run_in(t, ["corpus", "add", "fix.json"]).expect(0);
    // Unreviewed: exit 1 naming every pending golden.
    let out = run_in(t, ["verify"]).expect(1);
    assert!(out.stderr.contains("2 pending golden(s) not yet reviewed"), "{}", out.stderr);
    assert!(out.stderr.contains("core__kvstore/fix.json.pending"), "{}", out.stderr);
    assert!(out.stderr.contains("core__kvstore-to-core__kvstore-v2/fix.json.pending"), "{}", out.stderr);
    // The history golden accepted, the migration one still pending (`bless --accept` of the
    // history's id would take both): verify checks the history goldens and passes only with
    // --allow-pending.
    run_in(t, ["bless", "--accept", "core__kvstore/fix.json"]).expect(2);
    run_in(t, ["bless", "--accept", "core:kvstore/fix"]).expect(0);
    run_in(t, ["bless"]).expect(0);
    std::fs::rename(
        t.join("golden/migrations/core__kvstore-to-core__kvstore-v2/fix.json"),
        t.join("golden/migrations/core__kvstore-to-core__kvstore-v2/fix.json.pending"),
    )
    .unwrap();
    let out = run_in(t, ["verify"]).expect(1);
    assert!(out.stderr.contains("1 pending golden(s)"), "{}", out.stderr);
    let ok = run_in(t, ["verify", "--allow-pending"]).expect(0);
    assert!(ok.stdout.contains("3 passed, 0 failed"), "{}", ok.stdout);
    run_in(t, ["bless", "--migrations", "--accept"]).expect(0);
    run_in(t, ["verify"]).expect(0);
    run_in(t, ["verify", "--migrations"]).expect(0);
    // An orphan: a golden no listed history has.
    std::fs::copy(t.join("golden/core__kvstore/fix.json"), t.join("golden/core__kvstore/gone.json")).unwrap();
    let out = run_in(t, ["verify", "--migrations"]).expect(1);
    assert!(out.stderr.contains("1 golden(s) of no history in corpus (orphans"), "{}", out.stderr);
    assert!(out.stderr.contains("core__kvstore/gone.json"), "{}", out.stderr);
    run_in(t, ["verify", "--allow-pending"]).expect(0);
}

#[test]
fn record_corpus_writes_pending_goldens_that_verify_after_review() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let h = author(t, "fix.json", "core:kvstore", CONFLICT);
    let store = t.join("store");
    run(["apply".as_ref(), store.as_os_str(), h.as_os_str(), "--create".as_ref()]).expect(0);
    let rec = run_in(t, ["record", "store", "--corpus", "c", "--golden", "g", "--name", "prod"]).expect(0);
    assert!(rec.stdout.contains("recorded 3 ops as core:kvstore/prod with pending goldens"), "{}", rec.stdout);
    assert!(rec.stdout.ends_with("then run `lattice-conform bless --accept core:kvstore/prod`\n"), "{}", rec.stdout);
    let (accepted, migration) = (t.join("g/core__kvstore/prod.json"), t.join("g/migrations/core__kvstore-to-core__kvstore-v2/prod.json"));
    for p in [&accepted, &migration] {
        assert!(!p.exists(), "{} accepted without review", p.display());
        let mut pending = p.clone().into_os_string();
        pending.push(".pending");
        assert!(Path::new(&pending).exists(), "{}", p.display());
    }
    run_in(t, ["verify", "--corpus", "c", "--golden", "g"]).expect(1);
    // One accept reviews both.
    let acc = run_in(t, ["bless", "--corpus", "c", "--golden", "g", "--accept"]).expect(0);
    assert!(acc.stdout.ends_with("bless: 2 accepted\n"), "{}", acc.stdout);
    run_in(t, ["verify", "--corpus", "c", "--golden", "g", "--migrations"]).expect(0);
    run_in(t, ["verify", "--corpus", "c", "--golden", "g"]).expect(0);
    // A missing migration golden names `bless --migrations`.
    std::fs::remove_file(&migration).unwrap();
    let out = run_in(t, ["verify", "--corpus", "c", "--golden", "g", "--migrations"]).expect(2);
    assert!(out.stderr.contains("(run `lattice-conform bless`, review, then `bless --accept`)"), "{}", out.stderr);
}
