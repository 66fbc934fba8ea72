//! Unit tests of `verify`.

use super::*;

#[test]
fn the_golden_set_digest_is_of_ids_and_bytes_in_id_order_and_tells_missing_from_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, none) = (tmp.path().join("a.json"), tmp.path().join("b.json"), tmp.path().join("none.json"));
    std::fs::write(&a, "{}").unwrap();
    std::fs::write(&b, "").unwrap();
    let set = |items: &[(&str, &PathBuf)]| golden_set_digest(items.iter().map(|(id, p)| (id.to_string(), (*p).clone()))).unwrap();
    let digest = set(&[("t/a", &a), ("t/b", &b)]);
    let mut expected = blake3::Hasher::new();
    expected.update(b"t/a\0\x01").update(&2u64.to_le_bytes()).update(b"{}");
    expected.update(b"t/b\0\x01").update(&0u64.to_le_bytes());
    assert_eq!(digest, expected.finalize().to_hex().to_string());
    assert_eq!(set(&[("t/b", &b), ("t/a", &a)]), digest, "the order given does not matter");
    assert_ne!(set(&[("t/a", &a), ("t/b", &none)]), digest, "a missing golden is not an empty one");
    assert_ne!(set(&[("t/a", &a), ("t/c", &b)]), digest, "the ids take part");
}
