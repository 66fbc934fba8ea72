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

/// One normative rule of docs/FORMAT.md's rule list (§21.3), which a build must follow and a
/// catalogued fault breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, `R-<AREA>-<n>`.
    pub id: &'static str,
    /// The FORMAT.md section that states it.
    pub section: &'static str,
    /// The rule, in one line.
    pub text: &'static str,
}

/// Every rule of docs/FORMAT.md §21.3, in that list's order. Each is broken by at least one fault
/// of [`CATALOGUE`] (a unit test checks both this and that the document lists exactly these).
pub const RULES: &[Rule] = &[
    Rule { id: "R-RECV-1", section: "4.1", text: "A redelivery — an op already received, floating or witnessed — changes nothing." },
    Rule { id: "R-RECV-2", section: "4.1", text: "An op that is not ready when it arrives is kept, floating, until it is." },
    Rule { id: "R-RECV-3", section: "4", text: "An arrival index counts every delivery, redeliveries included." },
    Rule { id: "R-WITNESS-1", section: "4.2", text: "An op is ready only when every one of its causal_deps is witnessed." },
    Rule { id: "R-WITNESS-2", section: "4.2", text: "Any author's witness tip is a ready prev, not only the op's own author's." },
    Rule { id: "R-WITNESS-3", section: "4.2", text: "A prev must be a current witness tip (or ZERO_HASH): a fork of an older op floats." },
    Rule { id: "R-WITNESS-4", section: "4.2", text: "Witnessing repeats in passes until a pass witnesses nothing." },
    Rule { id: "R-WITNESS-5", section: "4.2", text: "A pass visits the tip prevs by the author whose tip each is, ascending." },
    Rule { id: "R-WITNESS-6", section: "4.2", text: "A pass visits the genesis (ZERO_HASH) candidates after every tip prev." },
    Rule { id: "R-WITNESS-7", section: "4.2", text: "Candidates naming the same prev are taken by op id, ascending." },
    Rule {
        id: "R-WITNESS-8",
        section: "4.2",
        text: "Within a pass a candidate's prev is not checked again: two ops naming one tip are both witnessed.",
    },
    Rule { id: "R-CHAIN-1", section: "4.3", text: "An author's first projected op must have prev ZERO_HASH, else it fails bad_genesis." },
    Rule { id: "R-CHAIN-2", section: "4.3", text: "A later op must name its author's projected tip as prev, else it fails broken_chain." },
    Rule { id: "R-STALL-1", section: "4.3", text: "A failed op stalls projection for good: no later op of any author is projected." },
    Rule { id: "R-STALL-2", section: "4.3", text: "A failed op changes nothing: its rows and its author's tip are rolled back." },
    Rule { id: "R-KV-PB-1", section: "5.1", text: "Nesting deeper than prost's recursion limit (100) makes a payload malformed." },
    Rule { id: "R-KV-PB-2", section: "5.1", text: "A field of the other op_type member starts a fresh message." },
    Rule { id: "R-KV-PB-3", section: "5.1", text: "A repeated field of the same op_type member merges into it." },
    Rule { id: "R-KV-PB-4", section: "5.1", text: "A group ends only at the end-group tag of its own field number." },
    Rule { id: "R-KV-PB-5", section: "5.1", text: "A varint in more bytes than needed is accepted." },
    Rule { id: "R-KV-PB-6", section: "5.1", text: "A 10-byte varint above 2^64 - 1 makes a payload malformed." },
    Rule { id: "R-KV-PB-7", section: "5.1", text: "Keys and values are any bytes, the empty key included." },
    Rule { id: "R-KV-APPLY-1", section: "5.4", text: "A batch is applied last operation first, so the last operation on a key wins." },
    Rule { id: "R-KV-APPLY-2", section: "5.4", text: "Every head named in causal_deps is removed from the key's heads." },
    Rule { id: "R-KV-APPLY-3", section: "5.4", text: "The new op is compared with heads[0] only." },
    Rule { id: "R-KV-APPLY-4", section: "5.4", text: "The new op wins when its (hlc, author) is greater than or equal to heads[0]'s." },
    Rule { id: "R-KV-APPLY-5", section: "5.4", text: "(hlc, author) compares wall_ms, then counter, then author bytes." },
    Rule { id: "R-KV-APPLY-6", section: "5.4", text: "A losing op is appended after the last head." },
    Rule { id: "R-KV-APPLY-7", section: "5.4", text: "A losing op leaves the stored value or tombstone as it is." },
    Rule { id: "R-KV-ROW-1", section: "5.2", text: "A winning delete stores kind tombstone, not an empty value." },
    Rule { id: "R-KV-READ-1", section: "5.3", text: "A key reads as conflicted exactly when its row has more than one head." },
    Rule { id: "R-KV-READ-2", section: "5.3", text: "A tombstoned key exists and reads as a tombstone." },
    Rule { id: "R-LOG-1", section: "6", text: "An entry's row key is wall_ms as u64 big-endian, then the author." },
    Rule { id: "R-LOG-2", section: "6", text: "An entry whose row key is already stored is refused (a duplicate timestamp)." },
    Rule { id: "R-LOG-3", section: "6", text: "An empty payload writes no entry." },
    Rule { id: "R-LOG-4", section: "6", text: "An entry's row value is its length as u64 LE, then the content." },
    Rule { id: "R-LOG-READ-1", section: "6", text: "A reader sees an entry's content without its length prefix." },
    Rule { id: "R-V2-1", section: "7.3", text: "A write replaces a row only with a strictly greater stamp." },
    Rule { id: "R-V2-2", section: "7.3", text: "A stamp is (wall_ms, counter, author): the author breaks HLC ties." },
    Rule { id: "R-V2-3", section: "7.3", text: "Every write bumps the key's version, replacing or not." },
    Rule { id: "R-V2-4", section: "7.3", text: "A remove leaves a tombstone row." },
    Rule { id: "R-V2-5", section: "7.3", text: "A set stores the conflicts count its entry carries." },
    Rule { id: "R-V2-READ-1", section: "8.5", text: "A removed key is not seen." },
    Rule { id: "R-HASH-1", section: "8.1", text: "The state hash covers the author tip rows." },
    Rule { id: "R-HASH-2", section: "8.2", text: "Every hashed element carries u32 length prefixes for its key and value." },
    Rule { id: "R-HASH-3", section: "8.1", text: "Data rows and tip rows are hashed under distinct table tags." },
    Rule { id: "R-MIG-1", section: "14.2", text: "A migration writes at most 256 entries per target payload, splitting at exactly 256." },
    Rule { id: "R-MIG-2", section: "14.2", text: "A migration drops tombstoned keys." },
    Rule { id: "R-MIG-3", section: "14.2", text: "A migration sets a key's conflicts to its number of heads minus one." },
    Rule { id: "R-MIG-4", section: "14.2", text: "A migration carries every live key." },
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
        let doc = include_str!("../docs/FORMAT.md");
        let start = doc.find("### 21.3 The rule list").expect("§21.3 in FORMAT.md");
        let listed: Vec<(String, String)> = doc[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("##"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let id = cells.get(1)?.trim_matches('`');
                id.starts_with("R-")
                    .then(|| (id.to_string(), cells.get(2).map_or(String::new(), |c| c.trim_start_matches('§').to_string())))
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
}
