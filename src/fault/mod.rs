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

mod rules;
pub use rules::*;

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
    /// The id of the rule it breaks, from docs/FORMAT.md §21.3 (`R-WITNESS-6`).
    pub rule: &'static str,
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

const fn f(
    name: &'static str,
    rule: &'static str,
    store_type: &'static str,
    layer: Layer,
    description: &'static str,
    injection: Injection,
) -> Fault {
    Fault { name, rule, store_type, layer, description, injection }
}

use Injection as I;
use Layer as L;

/// Every fault, in catalogue order (by layer, then store type).
pub const CATALOGUE: &[Fault] = &[
    f(
        "redelivery-reprojected",
        "R-RECV-1",
        ANY_TYPE,
        L::Delivery,
        "a redelivered, already witnessed op is projected again instead of ignored",
        I::Delivery(DeliveryFault::RedeliveryReprojected),
    ),
    f(
        "deps-ignored",
        "R-WITNESS-1",
        ANY_TYPE,
        L::Delivery,
        "an op is witnessed without waiting for its causal_deps",
        I::Delivery(DeliveryFault::DepsIgnored),
    ),
    f(
        "prev-must-be-own-tip",
        "R-WITNESS-2",
        ANY_TYPE,
        L::Delivery,
        "an op waits for its own author's tip as prev (Lattice accepts any author's witness tip)",
        I::Delivery(DeliveryFault::PrevMustBeOwnTip),
    ),
    f(
        "floating-dropped",
        "R-RECV-2",
        ANY_TYPE,
        L::Delivery,
        "an op that arrives before its prev or deps is dropped instead of held",
        I::Delivery(DeliveryFault::FloatingDropped),
    ),
    f(
        "witness-no-cascade",
        "R-WITNESS-4",
        ANY_TYPE,
        L::Delivery,
        "witnessing makes one pass, so ops readied by ops witnessed in it wait for the next arrival",
        I::Delivery(DeliveryFault::NoCascade),
    ),
    f(
        "witness-prev-any-witnessed",
        "R-WITNESS-3",
        ANY_TYPE,
        L::Delivery,
        "an op whose prev is any witnessed op, not only a witness tip, is witnessed (forks of older ops stop floating)",
        I::Delivery(DeliveryFault::PrevAnyWitnessed),
    ),
    f(
        "arrival-counts-received",
        "R-RECV-3",
        ANY_TYPE,
        L::Delivery,
        "arrival indices count received ops only, so a redelivery before a stall shifts its op index",
        I::Delivery(DeliveryFault::ArrivalCountsReceived),
    ),
    f(
        "witness-authors-descending",
        "R-WITNESS-5",
        ANY_TYPE,
        L::Delivery,
        "a witness pass visits the tip candidates by their author descending instead of ascending",
        I::Delivery(DeliveryFault::WitnessAuthorsDescending),
    ),
    f(
        "witness-genesis-first",
        "R-WITNESS-6",
        ANY_TYPE,
        L::Delivery,
        "a witness pass visits genesis (zero prev) candidates first instead of last",
        I::Delivery(DeliveryFault::WitnessGenesisFirst),
    ),
    f(
        "witness-shared-prev-by-arrival",
        "R-WITNESS-7",
        ANY_TYPE,
        L::Delivery,
        "candidates naming the same prev are witnessed in arrival order instead of by op id",
        I::Delivery(DeliveryFault::WitnessSharedPrevByArrival),
    ),
    f(
        "witness-prev-rechecked",
        "R-WITNESS-8",
        ANY_TYPE,
        L::Delivery,
        "a candidate's prev is checked again in its pass, so the second of two ops naming one tip floats",
        I::Delivery(DeliveryFault::WitnessPrevRechecked),
    ),
    f(
        "chain-accepts-any-prev",
        "R-CHAIN-2",
        ANY_TYPE,
        L::Kernel,
        "projection applies an op whose prev is not its author's tip instead of stalling (broken_chain)",
        I::Kernel(KernelFault::ChainAcceptsAnyPrev),
    ),
    f(
        "genesis-accepts-any-prev",
        "R-CHAIN-1",
        ANY_TYPE,
        L::Kernel,
        "projection applies an author's first op whatever its prev instead of stalling (bad_genesis)",
        I::Kernel(KernelFault::GenesisAcceptsAnyPrev),
    ),
    f(
        "refused-op-advances-tip",
        "R-STALL-2",
        ANY_TYPE,
        L::Kernel,
        "a refused op's rows are rolled back but it still becomes its author's tip",
        I::Kernel(KernelFault::RefusedOpAdvancesTip),
    ),
    f(
        "stall-skips-op",
        "R-STALL-1",
        ANY_TYPE,
        L::Kernel,
        "an apply error skips the op and projection goes on instead of stalling",
        I::Kernel(KernelFault::StallSkipsOp),
    ),
    f(
        "forget-one-head",
        "R-KV-APPLY-2",
        KV,
        L::Apply,
        "an op superseding two or more heads of a key leaves the last one it names",
        I::Kvstore(kvstore::Fault::ForgetOneHead),
    ),
    f(
        "kv-batch-forward",
        "R-KV-APPLY-1",
        KV,
        L::Apply,
        "a batch is walked first to last, so the first entry of a repeated key wins",
        I::Logic(LogicFault::KvBatchForward),
    ),
    f("kv-deps-ignored", "R-KV-APPLY-2", KV, L::Apply, "heads named in causal_deps are not removed", I::Logic(LogicFault::KvDepsIgnored)),
    f(
        "kv-compare-last-head",
        "R-KV-APPLY-3",
        KV,
        L::Apply,
        "a new op is compared with the latest-arrived head instead of heads[0]",
        I::Logic(LogicFault::KvCompareLastHead),
    ),
    f(
        "kv-strict-greater",
        "R-KV-APPLY-4",
        KV,
        L::Apply,
        "an op wins only with a strictly greater (hlc, author): > instead of >=",
        I::Logic(LogicFault::KvStrictGreater),
    ),
    f(
        "kv-author-tie-reversed",
        "R-KV-APPLY-5",
        KV,
        L::Apply,
        "on equal HLCs the smaller author wins",
        I::Logic(LogicFault::KvAuthorTieReversed),
    ),
    f(
        "kv-counter-ignored",
        "R-KV-APPLY-5",
        KV,
        L::Apply,
        "the winner is picked by wall time and author, ignoring the HLC counter",
        I::Logic(LogicFault::KvCounterIgnored),
    ),
    f(
        "kv-loser-prepended",
        "R-KV-APPLY-6",
        KV,
        L::Apply,
        "a losing op is inserted right after heads[0] instead of appended (head order)",
        I::Logic(LogicFault::KvLoserPrepended),
    ),
    f(
        "kv-tombstone-as-empty-value",
        "R-KV-ROW-1",
        KV,
        L::Apply,
        "a winning delete stores an empty value instead of a tombstone",
        I::Logic(LogicFault::KvTombstoneAsEmptyValue),
    ),
    f(
        "kv-empty-key-refused",
        "R-KV-PB-7",
        KV,
        L::Apply,
        "a batch with an empty key is refused as malformed (Lattice allows empty keys)",
        I::Logic(LogicFault::KvEmptyKeyRefused),
    ),
    f(
        "kv-loser-kind-stored",
        "R-KV-APPLY-7",
        KV,
        L::Apply,
        "a losing op's value or tombstone is stored although the winner stays heads[0]",
        I::Logic(LogicFault::KvLoserKindStored),
    ),
    f(
        "kv-pb-no-depth-limit",
        "R-KV-PB-1",
        KV,
        L::Apply,
        "payload groups nest without limit (prost refuses more than 100 levels)",
        I::Logic(LogicFault::KvPbNoDepthLimit),
    ),
    f(
        "kv-pb-oneof-switch-merges",
        "R-KV-PB-2",
        KV,
        L::Apply,
        "switching an Operation from put to delete (or back) keeps the fields decoded so far",
        I::Logic(LogicFault::KvPbOneofSwitchMerges),
    ),
    f(
        "kv-pb-oneof-repeat-replaces",
        "R-KV-PB-3",
        KV,
        L::Apply,
        "a repeated put (or delete) in one Operation replaces the message instead of merging into it",
        I::Logic(LogicFault::KvPbOneofRepeatReplaces),
    ),
    f(
        "kv-pb-end-group-any-number",
        "R-KV-PB-4",
        KV,
        L::Apply,
        "an end-group tag closes a group whatever its field number",
        I::Logic(LogicFault::KvPbEndGroupAnyNumber),
    ),
    f(
        "kv-pb-non-minimal-varint-refused",
        "R-KV-PB-5",
        KV,
        L::Apply,
        "a varint written in more bytes than needed makes the payload malformed",
        I::Logic(LogicFault::KvPbNonMinimalVarintRefused),
    ),
    f(
        "kv-pb-varint-overflow-wraps",
        "R-KV-PB-6",
        KV,
        L::Apply,
        "a 10-byte varint above 2^64 - 1 wraps instead of making the payload malformed",
        I::Logic(LogicFault::KvPbVarintOverflowWraps),
    ),
    f(
        "read-flips-conflicted",
        "R-KV-READ-1",
        KV,
        L::Read,
        "reads report conflicted the wrong way round; stored rows are right",
        I::Kvstore(kvstore::Fault::ReadFlipsConflicted),
    ),
    f(
        "kv-read-tombstone-hidden",
        "R-KV-READ-2",
        KV,
        L::Read,
        "readers do not see a tombstoned key at all (Lattice reports it as a tombstone)",
        I::Logic(LogicFault::KvReadTombstoneHidden),
    ),
    f(
        "log-key-wall-le",
        "R-LOG-1",
        LOG,
        L::Apply,
        "the entry key holds wall_ms little-endian, so entries no longer sort by time",
        I::Logic(LogicFault::LogKeyWallLittleEndian),
    ),
    f(
        "log-duplicate-overwrites",
        "R-LOG-2",
        LOG,
        L::Apply,
        "a duplicate timestamp overwrites the entry instead of stalling (DuplicateTimestamp)",
        I::Logic(LogicFault::LogDuplicateOverwrites),
    ),
    f(
        "log-empty-payload-stored",
        "R-LOG-3",
        LOG,
        L::Apply,
        "an empty payload stores an empty entry instead of nothing",
        I::Logic(LogicFault::LogEmptyPayloadStored),
    ),
    f(
        "log-length-prefix-u32",
        "R-LOG-4",
        LOG,
        L::Apply,
        "the stored value's length prefix is a u32, not Lattice's u64 (reads still agree)",
        I::Logic(LogicFault::LogLengthPrefixU32),
    ),
    f(
        "log-read-includes-prefix",
        "R-LOG-READ-1",
        LOG,
        L::Read,
        "readers get the stored value with its length prefix",
        I::Logic(LogicFault::LogReadIncludesPrefix),
    ),
    f(
        "v2-equal-stamp-wins",
        "R-V2-1",
        V2,
        L::Apply,
        "an equal stamp (hlc, author) replaces the row: >= instead of >",
        I::Logic(LogicFault::V2EqualStampWins),
    ),
    f(
        "v2-author-ignored",
        "R-V2-2",
        V2,
        L::Apply,
        "stamps compare HLCs only, so on an HLC tie the stored row stays whatever the author",
        I::Logic(LogicFault::V2AuthorIgnored),
    ),
    f(
        "v2-refused-keeps-version",
        "R-V2-3",
        V2,
        L::Apply,
        "a refused (older) write does not bump the key's version",
        I::Logic(LogicFault::V2RefusedKeepsVersion),
    ),
    f(
        "v2-remove-deletes-row",
        "R-V2-4",
        V2,
        L::Apply,
        "a remove deletes the row instead of leaving a tombstone (a late older write resurrects the key)",
        I::Logic(LogicFault::V2RemoveDeletesRow),
    ),
    f(
        "v2-conflicts-dropped",
        "R-V2-5",
        V2,
        L::Apply,
        "a set stores a conflict count of 0 whatever the payload says",
        I::Logic(LogicFault::V2ConflictsDropped),
    ),
    f(
        "v2-read-shows-removed",
        "R-V2-READ-1",
        V2,
        L::Read,
        "readers see a removed key as an empty value",
        I::Logic(LogicFault::V2ReadShowsRemoved),
    ),
    f("hash-omits-tips", "R-HASH-1", ANY_TYPE, L::Hash, "the state hash leaves out the author tips", I::Hash(HashFault::OmitsTips)),
    f(
        "hash-no-length-prefix",
        "R-HASH-2",
        ANY_TYPE,
        L::Hash,
        "hashed elements carry no length prefixes (key and value run together)",
        I::Hash(HashFault::NoLengthPrefix),
    ),
    f(
        "hash-shared-table-tag",
        "R-HASH-3",
        ANY_TYPE,
        L::Hash,
        "tip rows are hashed under the data table's tag",
        I::Hash(HashFault::SharedTableTag),
    ),
    f(
        "migrate-chunk-128",
        "R-MIG-1",
        KV,
        L::Migration,
        "the migration splits target payloads every 128 entries instead of 256",
        I::Migration(MigrationFault::Chunk128),
    ),
    f(
        "migrate-chunk-257",
        "R-MIG-1",
        KV,
        L::Migration,
        "the migration's chunk bound is off by one: 257 entries per payload",
        I::Migration(MigrationFault::Chunk257),
    ),
    f(
        "migrate-keeps-tombstones",
        "R-MIG-2",
        KV,
        L::Migration,
        "the migration carries tombstoned keys over as removes instead of dropping them",
        I::Migration(MigrationFault::KeepsTombstones),
    ),
    f(
        "migrate-conflicts-dropped",
        "R-MIG-3",
        KV,
        L::Migration,
        "the migration writes a conflict count of 0 for conflicted keys",
        I::Migration(MigrationFault::ConflictsDropped),
    ),
    f(
        "migrate-drops-first-key",
        "R-MIG-4",
        KV,
        L::Migration,
        "the migration silently drops the first live key",
        I::Migration(MigrationFault::DropsFirstKey),
    ),
];

/// The rule called `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

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
mod tests;
