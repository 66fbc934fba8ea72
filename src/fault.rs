//! The fault catalogue: every seeded semantic fault the suite can inject, by name
//! (`--build native-fault:NAME`, `lattice-conform faults`, `corpus adequacy`).
//!
//! A fault breaks exactly one rule of the specification, in one layer: delivery
//! ([`DeliveryFault`]), the projection step ([`KernelFault`]), a store type's apply or read rules
//! ([`LogicFault`], and `core:kvstore`'s two original faults), the state-hash encoding
//! ([`HashFault`]) or the migration ([`MigrationFault`]). Each layer owns its hook and runs its
//! reference path with no fault; this module only names and describes them. Names are stable:
//! they appear in adequacy reports and CI logs.

use std::sync::Arc;

use lattice_logic::faults::{Faulty, LogicFault};
use lattice_logic::kvstore::{self, FaultyKvStore};
use serde::Serialize;

use crate::delivery::DeliveryFault;
use crate::hash::HashFault;
use crate::kernel::KernelFault;
use crate::migrate::MigrationFault;
use crate::replay::HostFaults;
use crate::store::Logic;

/// `store_type` of a fault that is not specific to one store type (delivery, kernel, hash).
pub const ANY_TYPE: &str = "*";

/// Where the broken rule lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Delivery,
    Kernel,
    Apply,
    Read,
    Hash,
    Migration,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Delivery => "delivery",
            Layer::Kernel => "kernel",
            Layer::Apply => "apply",
            Layer::Read => "read",
            Layer::Hash => "hash",
            Layer::Migration => "migration",
        }
    }
}

/// How a fault is injected.
#[derive(Clone, Copy, Debug)]
pub enum Injection {
    Delivery(DeliveryFault),
    Kernel(KernelFault),
    Logic(LogicFault),
    /// `core:kvstore`'s original faults, which the committed faulty Wasm guest also carries.
    Kvstore(kvstore::Fault),
    Hash(HashFault),
    Migration(MigrationFault),
    /// A logic made by the caller for the fault's store type: for faults outside the catalogue
    /// (a test's deliberately surviving fault, a library user's own).
    Custom(fn() -> Logic),
}

/// One catalogued fault.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub name: &'static str,
    /// The store type whose rule it breaks ([`ANY_TYPE`] for delivery, kernel and hash faults;
    /// a migration fault names the migration's source type).
    pub store_type: &'static str,
    pub layer: Layer,
    /// The bug it models, in one line.
    pub description: &'static str,
    pub injection: Injection,
}

const KV: &str = kvstore::STORE_TYPE;
const LOG: &str = lattice_logic::logstore::STORE_TYPE;
const V2: &str = lattice_logic::kvstore_v2::STORE_TYPE;

const fn f(name: &'static str, store_type: &'static str, layer: Layer, description: &'static str, injection: Injection) -> Fault {
    Fault { name, store_type, layer, description, injection }
}

use Injection as I;
use Layer as L;

/// Every fault, in catalogue order (by layer, then store type).
pub const CATALOGUE: &[Fault] = &[
    f(
        "redelivery-reprojected",
        ANY_TYPE,
        L::Delivery,
        "a redelivered, already witnessed op is projected again instead of ignored",
        I::Delivery(DeliveryFault::RedeliveryReprojected),
    ),
    f(
        "deps-ignored",
        ANY_TYPE,
        L::Delivery,
        "an op is witnessed without waiting for its causal_deps",
        I::Delivery(DeliveryFault::DepsIgnored),
    ),
    f(
        "prev-must-be-own-tip",
        ANY_TYPE,
        L::Delivery,
        "an op waits for its own author's tip as prev (Lattice accepts any author's witness tip)",
        I::Delivery(DeliveryFault::PrevMustBeOwnTip),
    ),
    f(
        "floating-dropped",
        ANY_TYPE,
        L::Delivery,
        "an op that arrives before its prev or deps is dropped instead of held",
        I::Delivery(DeliveryFault::FloatingDropped),
    ),
    f(
        "witness-no-cascade",
        ANY_TYPE,
        L::Delivery,
        "witnessing makes one pass, so ops readied by ops witnessed in it wait for the next arrival",
        I::Delivery(DeliveryFault::NoCascade),
    ),
    f(
        "witness-prev-any-witnessed",
        ANY_TYPE,
        L::Delivery,
        "an op whose prev is any witnessed op, not only a witness tip, is witnessed (forks of older ops stop floating)",
        I::Delivery(DeliveryFault::PrevAnyWitnessed),
    ),
    f(
        "chain-accepts-any-prev",
        ANY_TYPE,
        L::Kernel,
        "projection applies an op whose prev is not its author's tip instead of stalling (broken_chain)",
        I::Kernel(KernelFault::ChainAcceptsAnyPrev),
    ),
    f(
        "genesis-accepts-any-prev",
        ANY_TYPE,
        L::Kernel,
        "projection applies an author's first op whatever its prev instead of stalling (bad_genesis)",
        I::Kernel(KernelFault::GenesisAcceptsAnyPrev),
    ),
    f(
        "refused-op-advances-tip",
        ANY_TYPE,
        L::Kernel,
        "a refused op's rows are rolled back but it still becomes its author's tip",
        I::Kernel(KernelFault::RefusedOpAdvancesTip),
    ),
    f(
        "stall-skips-op",
        ANY_TYPE,
        L::Kernel,
        "an apply error skips the op and projection goes on instead of stalling",
        I::Kernel(KernelFault::StallSkipsOp),
    ),
    f(
        "forget-one-head",
        KV,
        L::Apply,
        "an op superseding two or more heads of a key leaves the last one it names",
        I::Kvstore(kvstore::Fault::ForgetOneHead),
    ),
    f(
        "kv-batch-forward",
        KV,
        L::Apply,
        "a batch is walked first to last, so the first entry of a repeated key wins",
        I::Logic(LogicFault::KvBatchForward),
    ),
    f("kv-deps-ignored", KV, L::Apply, "heads named in causal_deps are not removed", I::Logic(LogicFault::KvDepsIgnored)),
    f(
        "kv-compare-last-head",
        KV,
        L::Apply,
        "a new op is compared with the latest-arrived head instead of heads[0]",
        I::Logic(LogicFault::KvCompareLastHead),
    ),
    f(
        "kv-strict-greater",
        KV,
        L::Apply,
        "an op wins only with a strictly greater (hlc, author): > instead of >=",
        I::Logic(LogicFault::KvStrictGreater),
    ),
    f("kv-author-tie-reversed", KV, L::Apply, "on equal HLCs the smaller author wins", I::Logic(LogicFault::KvAuthorTieReversed)),
    f(
        "kv-counter-ignored",
        KV,
        L::Apply,
        "the winner is picked by wall time and author, ignoring the HLC counter",
        I::Logic(LogicFault::KvCounterIgnored),
    ),
    f(
        "kv-loser-prepended",
        KV,
        L::Apply,
        "a losing op is inserted right after heads[0] instead of appended (head order)",
        I::Logic(LogicFault::KvLoserPrepended),
    ),
    f(
        "kv-tombstone-as-empty-value",
        KV,
        L::Apply,
        "a winning delete stores an empty value instead of a tombstone",
        I::Logic(LogicFault::KvTombstoneAsEmptyValue),
    ),
    f(
        "kv-empty-key-refused",
        KV,
        L::Apply,
        "a batch with an empty key is refused as malformed (Lattice allows empty keys)",
        I::Logic(LogicFault::KvEmptyKeyRefused),
    ),
    f(
        "kv-loser-kind-stored",
        KV,
        L::Apply,
        "a losing op's value or tombstone is stored although the winner stays heads[0]",
        I::Logic(LogicFault::KvLoserKindStored),
    ),
    f(
        "read-flips-conflicted",
        KV,
        L::Read,
        "reads report conflicted the wrong way round; stored rows are right",
        I::Kvstore(kvstore::Fault::ReadFlipsConflicted),
    ),
    f(
        "kv-read-tombstone-hidden",
        KV,
        L::Read,
        "readers do not see a tombstoned key at all (Lattice reports it as a tombstone)",
        I::Logic(LogicFault::KvReadTombstoneHidden),
    ),
    f(
        "log-key-wall-le",
        LOG,
        L::Apply,
        "the entry key holds wall_ms little-endian, so entries no longer sort by time",
        I::Logic(LogicFault::LogKeyWallLittleEndian),
    ),
    f(
        "log-duplicate-overwrites",
        LOG,
        L::Apply,
        "a duplicate timestamp overwrites the entry instead of stalling (DuplicateTimestamp)",
        I::Logic(LogicFault::LogDuplicateOverwrites),
    ),
    f(
        "log-empty-payload-stored",
        LOG,
        L::Apply,
        "an empty payload stores an empty entry instead of nothing",
        I::Logic(LogicFault::LogEmptyPayloadStored),
    ),
    f(
        "log-length-prefix-u32",
        LOG,
        L::Apply,
        "the stored value's length prefix is a u32, not Lattice's u64 (reads still agree)",
        I::Logic(LogicFault::LogLengthPrefixU32),
    ),
    f(
        "log-read-includes-prefix",
        LOG,
        L::Read,
        "readers get the stored value with its length prefix",
        I::Logic(LogicFault::LogReadIncludesPrefix),
    ),
    f(
        "v2-equal-stamp-wins",
        V2,
        L::Apply,
        "an equal stamp (hlc, author) replaces the row: >= instead of >",
        I::Logic(LogicFault::V2EqualStampWins),
    ),
    f(
        "v2-author-ignored",
        V2,
        L::Apply,
        "stamps compare HLCs only, so on an HLC tie the stored row stays whatever the author",
        I::Logic(LogicFault::V2AuthorIgnored),
    ),
    f(
        "v2-refused-keeps-version",
        V2,
        L::Apply,
        "a refused (older) write does not bump the key's version",
        I::Logic(LogicFault::V2RefusedKeepsVersion),
    ),
    f(
        "v2-remove-deletes-row",
        V2,
        L::Apply,
        "a remove deletes the row instead of leaving a tombstone (a late older write resurrects the key)",
        I::Logic(LogicFault::V2RemoveDeletesRow),
    ),
    f(
        "v2-conflicts-dropped",
        V2,
        L::Apply,
        "a set stores a conflict count of 0 whatever the payload says",
        I::Logic(LogicFault::V2ConflictsDropped),
    ),
    f("v2-read-shows-removed", V2, L::Read, "readers see a removed key as an empty value", I::Logic(LogicFault::V2ReadShowsRemoved)),
    f("hash-omits-tips", ANY_TYPE, L::Hash, "the state hash leaves out the author tips", I::Hash(HashFault::OmitsTips)),
    f(
        "hash-no-length-prefix",
        ANY_TYPE,
        L::Hash,
        "hashed elements carry no length prefixes (key and value run together)",
        I::Hash(HashFault::NoLengthPrefix),
    ),
    f("hash-shared-table-tag", ANY_TYPE, L::Hash, "tip rows are hashed under the data table's tag", I::Hash(HashFault::SharedTableTag)),
    f(
        "migrate-chunk-128",
        KV,
        L::Migration,
        "the migration splits target payloads every 128 entries instead of 256",
        I::Migration(MigrationFault::Chunk128),
    ),
    f(
        "migrate-chunk-257",
        KV,
        L::Migration,
        "the migration's chunk bound is off by one: 257 entries per payload",
        I::Migration(MigrationFault::Chunk257),
    ),
    f(
        "migrate-keeps-tombstones",
        KV,
        L::Migration,
        "the migration carries tombstoned keys over as removes instead of dropping them",
        I::Migration(MigrationFault::KeepsTombstones),
    ),
    f(
        "migrate-conflicts-dropped",
        KV,
        L::Migration,
        "the migration writes a conflict count of 0 for conflicted keys",
        I::Migration(MigrationFault::ConflictsDropped),
    ),
    f(
        "migrate-drops-first-key",
        KV,
        L::Migration,
        "the migration silently drops the first live key",
        I::Migration(MigrationFault::DropsFirstKey),
    ),
];

/// The catalogued fault called `name`.
pub fn find(name: &str) -> Option<&'static Fault> {
    CATALOGUE.iter().find(|f| f.name == name)
}

impl Fault {
    /// Whether replaying a history of `store_type` can show this fault directly (migration and
    /// kvstore-v2 faults also show through the migration goldens of `core:kvstore` histories).
    pub fn applies_to(&self, store_type: &str) -> bool {
        self.store_type == ANY_TYPE || (self.store_type == store_type && self.layer != Layer::Migration)
    }

    /// The faulty logic for `store_type`, if this fault is one of that type's logic.
    pub fn logic_for(&self, store_type: &str) -> Option<Logic> {
        if self.store_type != store_type {
            return None;
        }
        match self.injection {
            Injection::Logic(f) => Some(Arc::new(Faulty(f))),
            Injection::Kvstore(f) => Some(Arc::new(FaultyKvStore(f))),
            Injection::Custom(make) => Some(make()),
            _ => None,
        }
    }

    /// The host faults a replay under this fault runs with.
    pub fn host_faults(&self) -> HostFaults {
        let mut h = HostFaults::default();
        match self.injection {
            Injection::Delivery(f) => h.delivery = Some(f),
            Injection::Kernel(f) => h.kernel = Some(f),
            Injection::Hash(f) => h.hash = Some(f),
            _ => {}
        }
        h
    }

    /// The migration fault, if this is one.
    pub fn migration_fault(&self) -> Option<MigrationFault> {
        match self.injection {
            Injection::Migration(f) => Some(f),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn each_fault_injects_exactly_one_hook() {
        for f in CATALOGUE {
            let hooks = [f.logic_for(f.store_type).is_some(), f.host_faults() != HostFaults::default(), f.migration_fault().is_some()];
            assert_eq!(hooks.iter().filter(|h| **h).count(), 1, "{}", f.name);
            assert_eq!(find(f.name).map(|g| g.name), Some(f.name));
        }
        assert!(find("none").is_none());
    }
}
