//! The expected-read flags of `history add`, and the note that says them after the op.

use crate::*;

/// The expected-read flags of `history add` (docs/FORMAT.md §10.10): checked after this op by
/// `verify` for every build, and by `bless` against the reference build.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Expected reads (after this op)")]
pub(crate) struct ExpectArgs {
    /// KEY reads VALUE (kvstore types; repeatable; `hex:…` for bytes).
    #[arg(long = "expect", value_name = "KEY=VALUE")]
    value: Vec<String>,
    /// KEY reads no value: no row, a tombstone or a removed key.
    #[arg(long = "expect-no-value", value_name = "KEY")]
    no_value: Vec<String>,
    /// KEY has no row a reader sees.
    #[arg(long = "expect-absent", value_name = "KEY")]
    absent: Vec<String>,
    /// KEY is a tombstone (core:kvstore).
    #[arg(long = "expect-tombstone", value_name = "KEY")]
    tombstone: Vec<String>,
    /// KEY is conflicted: more than one head (core:kvstore).
    #[arg(long = "expect-conflicted", value_name = "KEY")]
    conflicted: Vec<String>,
    /// KEY is not conflicted (core:kvstore).
    #[arg(long = "expect-not-conflicted", value_name = "KEY")]
    not_conflicted: Vec<String>,
    /// KEY has N heads (core:kvstore).
    #[arg(long = "expect-heads", value_name = "KEY=N")]
    heads: Vec<String>,
    /// KEY's conflict counter is N (core:kvstore-v2).
    #[arg(long = "expect-conflicts", value_name = "KEY=N")]
    conflicts: Vec<String>,
    /// The log's entries are exactly these, in read order (core:logstore; repeatable).
    #[arg(long = "expect-log", value_name = "TEXT")]
    log: Vec<String>,
    /// The log has N entries (core:logstore).
    #[arg(long = "expect-entries", value_name = "N")]
    entries: Option<u64>,
}

impl ExpectArgs {
    pub(super) fn flags(self: Box<Self>) -> lattice_conform::author::ExpectFlags {
        lattice_conform::author::ExpectFlags {
            value: self.value,
            no_value: self.no_value,
            absent: self.absent,
            tombstone: self.tombstone,
            conflicted: self.conflicted,
            not_conflicted: self.not_conflicted,
            heads: self.heads,
            conflicts: self.conflicts,
            log: self.log,
            entries: self.entries,
        }
    }
}

/// After an op with expected reads: says them, and whether the reference build meets them now
/// (a fixture of a bug the reference build still has fails until it is fixed: `bless` refuses it).
pub(super) fn expect_note(registry: &Registry, h: &history::History) -> anyhow::Result<()> {
    let n = h.ops.len() as u64;
    let now: Vec<(usize, &lattice_conform::expect::Read)> = h.expect.iter().enumerate().filter(|(_, e)| e.after == Some(n)).collect();
    if now.is_empty() {
        return Ok(());
    }
    for (i, e) in &now {
        say!("expect[{i}] after {n} ops: {}", lattice_conform::expect::Read { after: None, ..(*e).clone() }.describe());
    }
    let logic = registry.resolve(&h.identity())?;
    let entry =
        lattice_conform::corpus::ManifestEntry { path: String::new(), store_type: h.store_type.clone(), ops: n, blake3: String::new() };
    let c = lattice_conform::golden::compute_checked(&h.header(), h.ops.iter().cloned(), logic, Default::default(), &entry);
    let missed: Vec<_> = c.unmet.iter().filter(|u| u.after == n).collect();
    if missed.is_empty() {
        say!("the reference build meets them");
    } else {
        for u in missed {
            say!("note: the reference build does not meet expect[{}] yet: {}", u.index, u.differences.join("; "));
        }
        say!("note: until it does, `bless` and `corpus add` refuse this history and `verify` fails it for every build that reads the same");
    }
    Ok(())
}
