//! The rule list (docs/FORMAT.md §21.3): every normative rule a build must follow, each broken by at least one catalogued fault.

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
