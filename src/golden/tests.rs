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
