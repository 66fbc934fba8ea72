//! Unit tests of `fault`.

use super::*;

#[test]
fn names_are_unique_kebab_case_and_every_layer_and_type_is_covered() {
    let mut names: Vec<&str> = CATALOGUE.iter().map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CATALOGUE.len(), "duplicate fault names");
    assert!(CATALOGUE.len() >= 25);
    assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')));
    for layer in [L::Delivery, L::Kernel, L::Apply, L::Read, L::Hash, L::Migration] {
        assert!(CATALOGUE.iter().any(|f| f.layer == layer), "{layer:?}");
    }
    for ty in [KV, LOG, V2, ANY_TYPE] {
        assert!(CATALOGUE.iter().any(|f| f.store_type == ty), "{ty}");
    }
    // Every logic fault is catalogued, under the type it breaks.
    for lf in LogicFault::ALL {
        let f = CATALOGUE.iter().find(|f| matches!(f.injection, Injection::Logic(x) if x == lf)).expect("catalogued");
        assert_eq!(f.store_type, lf.store_type(), "{}", f.name);
    }
}

#[test]
fn every_rule_is_broken_by_a_fault_and_every_fault_breaks_a_listed_rule() {
    for r in RULES {
        assert!(CATALOGUE.iter().any(|f| f.rule == r.id), "rule {} has no fault", r.id);
    }
    for f in CATALOGUE {
        assert!(rule(f.rule).is_some(), "fault {} names rule {}, which is not listed", f.name, f.rule);
    }
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len(), "duplicate rule ids");
}

/// docs/FORMAT.md §21.3's table lists exactly [`RULES`], in order, with the same sections.
#[test]
fn the_rule_list_in_format_md_is_the_catalogues() {
    let doc = include_str!("../../docs/FORMAT.md");
    let start = doc.find("### 21.3 The rule list").expect("§21.3 in FORMAT.md");
    let listed: Vec<(String, String)> = doc[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("##"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let id = cells.get(1)?.trim_matches('`');
            id.starts_with("R-").then(|| (id.to_string(), cells.get(2).map_or(String::new(), |c| c.trim_start_matches('§').to_string())))
        })
        .collect();
    let expected: Vec<(String, String)> = RULES.iter().map(|r| (r.id.to_string(), r.section.to_string())).collect();
    assert_eq!(listed, expected);
}

#[test]
fn each_fault_injects_exactly_one_hook() {
    for f in CATALOGUE {
        let hooks = [f.logic_for(f.store_type).is_some(), f.host_faults() != HostFaults::default(), f.migration_fault().is_some()];
        assert_eq!(hooks.iter().filter(|h| **h).count(), 1, "{}", f.name);
        assert_eq!(find(f.name).map(|g| g.name), Some(f.name));
    }
    assert!(find("none").is_none());
}
