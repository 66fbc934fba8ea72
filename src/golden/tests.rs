//! Unit tests of `golden`.

use super::*;

fn golden(hashes: &[&str], stall: Option<u64>) -> Golden {
    let checkpoints = hashes[..hashes.len() - 1]
        .iter()
        .enumerate()
        .map(|(i, h)| Checkpoint { after_ops: (i as u64 + 1) * 64, state_hash: h.repeat(64), observed_hash: "0".repeat(64) })
        .collect();
    Golden {
        format: GOLDEN_TAG.into(),
        format_version: GOLDEN_VERSION,
        history: "t/x".into(),
        history_blake3: "b".repeat(64),
        store_type: "t".into(),
        schema_version: 1,
        ops: 200,
        refused: 0,
        redelivered: 0,
        witnessed: 200,
        applied: 200,
        stall: stall.map(|op_index| StallAt { op_index, kind: RejectKind::BrokenChain }),
        floating: vec![],
        checkpoint_interval: CHECKPOINT_INTERVAL,
        checkpoints,
        final_state_hash: hashes[hashes.len() - 1].repeat(64),
        final_observed_hash: "0".repeat(64),
        reads: None,
    }
}

#[test]
fn a_diff_names_each_changed_field_and_the_span_of_the_first_divergence() {
    let old = golden(&["a", "b", "c", "d"], None);
    let mut new = golden(&["a", "x", "y", "z"], Some(150));
    new.applied = 150;
    let lines = diff_lines(&old, &new);
    assert!(lines.contains(&"halt: none → stalled at op 150 (broken_chain)".to_string()), "{lines:?}");
    assert!(lines.contains(&"applied: 200 → 150".to_string()), "{lines:?}");
    assert!(lines.contains(&format!("checkpoint after 128 ops: state {} → {}", "b".repeat(16), "x".repeat(16))), "{lines:?}");
    assert!(lines.contains(&format!("final state hash: {} → {}", "d".repeat(64), "z".repeat(64))), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "first divergence: within ops 64..128 (the first checkpoint that differs)");
    // Only the end differs: the span runs from the last checkpoint to the op count.
    let end = golden(&["a", "b", "c", "e"], None);
    assert_eq!(diff_lines(&old, &end).last().unwrap(), "first divergence: within ops 192..200 (every checkpoint agrees)");
    assert!(diff_lines(&old, &old).iter().all(|l| l.contains("formatting")));
}

/// Every file under `dir` (relative path → bytes), for comparing two golden directories.
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn one_replay_blesses_exactly_what_a_replay_per_golden_kind_blesses() {
    let tmp = crate::corpus::repository_corpus_copy();
    let corpus = tmp.path().join("corpus");
    let registry = crate::registry::Registry::with_reference_types();
    let (both, apart) = (tmp.path().join("both"), tmp.path().join("apart"));
    let one = bless_all_with_migrations(&corpus, &both, None, &registry).unwrap();
    let mut two = bless_all(&corpus, &apart, None, &registry).unwrap();
    two.extend(bless_migrations(&corpus, &apart, &registry).unwrap());
    assert!(one.iter().any(|b| b.id.starts_with("migration:")), "the corpus has migration cases");
    assert_eq!(one, two, "same goldens, same order, same review lines");
    assert_eq!(tree(&both), tree(&apart), "same files, byte for byte");
    // With a type: that type's histories and the migrations that start from it.
    let (typed, typed_apart) = (tmp.path().join("typed"), tmp.path().join("typed-apart"));
    let one = bless_all_with_migrations(&corpus, &typed, Some("core:kvstore"), &registry).unwrap();
    let mut two = bless_all(&corpus, &typed_apart, Some("core:kvstore"), &registry).unwrap();
    two.extend(
        bless_migrations(&corpus, &typed_apart, &registry).unwrap().into_iter().filter(|b| b.id.starts_with("migration:core:kvstore/")),
    );
    assert_eq!(one, two);
    assert!(one.iter().all(|b| b.id.starts_with("core:kvstore/") || b.id.starts_with("migration:core:kvstore/")), "{one:?}");
}
