//! `corpus adequacy` and `faults`: the kill matrix on slices of the bundled corpus, a deliberately
//! surviving fault that fails the run by name, a weakly killed one, and host faults through
//! `verify`. The whole catalogue against the whole corpus is the release gate `.ci/run` runs with
//! the release binary (a debug build takes minutes over it).

use std::sync::Arc;

use lattice_conform::adequacy::{self, AdequacyOptions};
use lattice_conform::fault::{Fault, Injection, Layer, CATALOGUE};
use lattice_conform::lattice_logic::kvstore::{decode_payload, KvStore};
use lattice_conform::lattice_logic::{ApplyError, Dag, Op, OpId, StoreLogic, Table};
use lattice_conform::registry::Registry;
use lattice_conform::store::Logic;
use lattice_conform::verify::Field;

use crate::util::{fixtures, run_in};

/// `core:kvstore` that writes one extra row when a batch touches the key `"never in a corpus"`:
/// a fault the bundled corpus cannot catch, since no history writes that key.
struct OnlyOnAnUnusedKey;

impl StoreLogic for OnlyOnAnUnusedKey {
    fn store_type(&self) -> &str {
        KvStore.store_type()
    }
    fn schema_version(&self) -> u64 {
        KvStore.schema_version()
    }
    fn apply(&self, id: &OpId, op: &Op, table: &mut dyn Table, dag: &mut dyn Dag) -> Result<(), ApplyError> {
        KvStore.apply(id, op, table, dag)?;
        if decode_payload(&op.payload)?.iter().any(|e| e.key() == b"never in a corpus") {
            table.put(b"extra", b"row")?;
        }
        Ok(())
    }
    fn observe(&self, key: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        KvStore.observe(key, row)
    }
}

fn unused_key_logic() -> Logic {
    Arc::new(OnlyOnAnUnusedKey)
}

const SURVIVOR: Fault = Fault {
    name: "extra-row-on-an-unused-key",
    rule: "R-TEST-UNUSED-KEY",
    store_type: "core:kvstore",
    layer: Layer::Apply,
    description: "writes an extra row when a batch touches a key no history has",
    injection: Injection::Custom(unused_key_logic),
};

fn options(filter: &str, faults: Vec<Fault>) -> AdequacyOptions {
    let mut opts = AdequacyOptions::new(fixtures());
    opts.filter = Some(filter.into());
    opts.faults = faults;
    opts
}

#[test]
fn a_deliberately_surviving_fault_fails_the_run_and_is_named_beside_killed_ones() {
    let killed = *lattice_conform::fault::find("kv-deps-ignored").unwrap();
    let opts = options("core:kvstore/delete-reput-s1-0*", vec![killed, SURVIVOR]);
    let report = adequacy::run(&opts, &Registry::with_reference_types()).unwrap();
    assert!(!report.passed());
    assert_eq!(report.survivors, vec!["extra-row-on-an-unused-key".to_string()]);
    let rows: Vec<(&str, u64, u64)> = report.faults.iter().map(|f| (f.name.as_str(), f.tried, f.kills)).collect();
    assert_eq!(rows[1], ("extra-row-on-an-unused-key", report.histories, 0));
    assert_eq!(rows[0].1, report.histories);
    assert!(rows[0].2 >= 1, "kv-deps-ignored is caught by every delete-reput history: {rows:?}");
    assert_eq!(report.faults[0].families.get("delete-reput"), Some(&rows[0].2));
    assert!(report.faults[0].fields.contains_key(&Field::StateHash));
    let human = adequacy::render_human(&report);
    assert!(human.contains("surviving: extra-row-on-an-unused-key"), "{human}");
}

#[test]
fn the_cli_exits_1_naming_a_fault_the_selected_histories_cannot_catch() {
    // No single-author history has two ops with the same HLC, so `>` versus `>=` never shows.
    let out = run_in(
        fixtures(),
        [
            "corpus",
            "adequacy",
            "--filter",
            "core:kvstore/single-author-*",
            "--fault",
            "kv-strict-greater",
            "--fault",
            "hash-omits-tips",
            "--json",
        ],
    )
    .expect(1);
    assert!(out.stderr.contains("1 surviving (kv-strict-greater)"), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["format"], "lattice-conform/adequacy-report");
    assert_eq!(report["survivors"], serde_json::json!(["kv-strict-greater"]));
    assert_eq!(report["faults"][1]["name"], "hash-omits-tips");
    assert_eq!(report["faults"][1]["kills"], report["histories"]);
    // Killed by every selected history, but not by as many as asked: weak, exit 1.
    let weak = run_in(
        fixtures(),
        ["corpus", "adequacy", "--filter", "core:kvstore/single-author-*", "--fault", "hash-omits-tips", "--min-kills", "5"],
    )
    .expect(1);
    assert!(weak.stdout.contains("killed by fewer than 5: hash-omits-tips"), "{}", weak.stdout);
    assert!(weak.stderr.contains("1 killed by fewer than 5 histories (hash-omits-tips)"), "{}", weak.stderr);
    let unknown = run_in(fixtures(), ["corpus", "adequacy", "--fault", "nope"]).expect(2);
    assert!(unknown.stderr.contains("--fault nope: no such fault"), "{}", unknown.stderr);
}

#[test]
fn faults_lists_the_catalogue_and_every_fault_is_a_build() {
    let out = run_in(fixtures(), ["faults", "--json"]).expect(0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(listed.len(), CATALOGUE.len());
    assert!(CATALOGUE.len() >= 25);
    for (line, f) in listed.iter().zip(CATALOGUE) {
        assert_eq!((line["name"].as_str(), line["layer"].as_str()), (Some(f.name), Some(f.layer.as_str())));
        assert!(!f.description.is_empty());
    }
    let human = run_in(fixtures(), ["faults"]).expect(0);
    assert!(human.stdout.lines().any(|l| l.starts_with("migrate-chunk-128") && l.contains("core:kvstore")), "{}", human.stdout);
}

#[test]
fn a_host_fault_is_a_build_verify_catches() {
    let out = run_in(
        fixtures(),
        ["verify", "--build", "native-fault:stall-skips-op", "--filter", "core:kvstore/malformed-payload-s1-016", "--format", "json"],
    )
    .expect(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failure = &report["results"][0]["failure"];
    assert!(failure["summary"].as_str().unwrap().starts_with("stall: expected stalled at op"), "{failure}");
    assert!(!failure["divergence"].is_null(), "the first divergent op is found on the faulty host: {failure}");
}

#[test]
fn a_changed_witness_order_or_a_decoder_without_prosts_nesting_limit_fails_verify() {
    // Each build breaks one rule the crafted families pin (docs/FORMAT.md §21.3): the witness
    // order of §4.2, and the recursion limit of §5.1's payload decoding.
    for (fault, family) in [
        ("witness-authors-descending", "witness-races"),
        ("witness-genesis-first", "witness-races"),
        ("witness-shared-prev-by-arrival", "witness-races"),
        ("kv-pb-no-depth-limit", "payload-edges"),
    ] {
        let filter = format!("core:kvstore/{family}-s1-00[0-3]");
        let build = format!("native-fault:{fault}");
        let out =
            run_in(fixtures(), ["verify", "--build", build.as_str(), "--filter", filter.as_str(), "--keep-going", "--format", "json"])
                .expect(1);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let failed = report["results"].as_array().unwrap().iter().filter(|r| !r["failure"].is_null()).count();
        assert!(failed >= 1, "{fault}: no {family} history fails");
        // The reference build passes the same histories.
        run_in(fixtures(), ["verify", "--filter", filter.as_str()]).expect(0);
    }
}
