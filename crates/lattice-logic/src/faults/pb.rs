//! A second decoder of `KvPayload` (docs/FORMAT.md §5.1), written out field by field so that the
//! protobuf decoding rules the reference takes from prost 0.14 can be broken one at a time.
//!
//! With no fault it decodes exactly as `prost` does — same accepted inputs, same operations —
//! (the main crate's property test `pb_walk_matches_prost` checks that on random and mutated
//! payloads); each [`PbRule`] changes one rule.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::kvstore::Entry;
use crate::logic::ApplyError;

/// The decoding rule a fault breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PbRule {
    /// No recursion limit: any depth of nested groups is skipped.
    NoDepthLimit,
    /// Switching `op_type` from one member to the other keeps the fields decoded so far.
    OneofSwitchMerges,
    /// A repeated occurrence of the same `op_type` member replaces the message instead of merging.
    OneofRepeatReplaces,
    /// An end-group tag closes any open group, whatever its field number.
    EndGroupAnyNumber,
    /// A varint in more bytes than needed (a trailing `0x00` group) is refused.
    NonMinimalVarintRefused,
    /// A 10-byte varint above 2⁶⁴ − 1 (10th byte ≥ 2) wraps instead of being refused.
    VarintOverflowWraps,
}

/// prost's `RECURSION_LIMIT`.
const RECURSION_LIMIT: u32 = 100;

type R<T> = Result<T, String>;

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
    rule: Option<PbRule>,
}

/// What an `Operation` holds while it is decoded.
#[derive(Default)]
struct Operation {
    /// 1 = put, 2 = delete, 0 = none.
    member: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Decodes `payload` as a `KvPayload` into its entries, with `rule` broken (`None`: as prost).
pub(crate) fn decode(payload: &[u8], rule: Option<PbRule>) -> Result<Vec<Entry>, ApplyError> {
    let mut w = Walk { b: payload, pos: 0, rule };
    w.payload().map_err(|e| ApplyError::MalformedPayload(format!("not a KvPayload: {e}")))
}

impl Walk<'_> {
    fn byte(&mut self) -> R<u8> {
        let b = *self.b.get(self.pos).ok_or("invalid varint")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> R<u64> {
        let mut value = 0u64;
        for count in 0..10 {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                if count == 9 && byte >= 0x02 && self.rule != Some(PbRule::VarintOverflowWraps) {
                    return Err("invalid varint".into());
                }
                if count > 0 && byte == 0 && self.rule == Some(PbRule::NonMinimalVarintRefused) {
                    return Err("non-minimal varint".into());
                }
                return Ok(value);
            }
        }
        Err("invalid varint".into())
    }

    fn key(&mut self) -> R<(u32, u8)> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(format!("invalid key value: {key}"));
        }
        let wire_type = (key & 7) as u8;
        if wire_type > 5 {
            return Err(format!("invalid wire type value: {wire_type}"));
        }
        let tag = (key as u32) >> 3;
        if tag == 0 {
            return Err("invalid tag value: 0".into());
        }
        Ok((tag, wire_type))
    }

    fn take(&mut self, len: u64) -> R<&[u8]> {
        if len > (self.b.len() - self.pos) as u64 {
            return Err("buffer underflow".into());
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.b[start..self.pos])
    }

    fn limit(&self, depth: u32) -> R<()> {
        if depth == 0 && self.rule != Some(PbRule::NoDepthLimit) {
            return Err("recursion limit reached".into());
        }
        Ok(())
    }

    /// prost's `skip_field` with recursion budget `depth`.
    fn skip(&mut self, wire_type: u8, tag: u32, depth: u32) -> R<()> {
        self.limit(depth)?;
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => {
                let len = self.varint()?;
                self.take(len).map(|_| ())
            }
            3 => loop {
                let (inner_tag, inner_type) = self.key()?;
                if inner_type == 4 {
                    if inner_tag != tag && self.rule != Some(PbRule::EndGroupAnyNumber) {
                        return Err("unexpected end group tag".into());
                    }
                    return Ok(());
                }
                self.skip(inner_type, inner_tag, depth.saturating_sub(1))?;
            },
            4 => Err("unexpected end group tag".into()),
            _ => self.take(4).map(|_| ()),
        }
    }

    /// The end offset of a length-delimited field of a known message type (wire type 2 only).
    fn delimited(&mut self, wire_type: u8, depth: u32) -> R<usize> {
        if wire_type != 2 {
            return Err(format!("invalid wire type: {wire_type} (expected 2)"));
        }
        self.limit(depth)?;
        let len = self.varint()?;
        if len > (self.b.len() - self.pos) as u64 {
            return Err("buffer underflow".into());
        }
        Ok(self.pos + len as usize)
    }

    /// After a delimited message's fields: they must end exactly at its end.
    fn close(&self, end: usize) -> R<()> {
        if self.pos != end {
            return Err("delimited length exceeded".into());
        }
        Ok(())
    }

    fn bytes(&mut self, wire_type: u8) -> R<Vec<u8>> {
        if wire_type != 2 {
            return Err(format!("invalid wire type: {wire_type} (expected 2)"));
        }
        let len = self.varint()?;
        Ok(self.take(len)?.to_vec())
    }

    fn payload(&mut self) -> R<Vec<Entry>> {
        let mut out = Vec::new();
        while self.pos < self.b.len() {
            let (tag, wire_type) = self.key()?;
            if tag != 1 {
                self.skip(wire_type, tag, RECURSION_LIMIT)?;
                continue;
            }
            let end = self.delimited(wire_type, RECURSION_LIMIT)?;
            let mut op = Operation::default();
            while self.pos < end {
                self.operation_field(&mut op, RECURSION_LIMIT - 1)?;
            }
            self.close(end)?;
            match op.member {
                1 => out.push(Entry::Put { key: op.key, value: op.value }),
                2 => out.push(Entry::Delete { key: op.key }),
                _ => {}
            }
        }
        Ok(out)
    }

    fn operation_field(&mut self, op: &mut Operation, depth: u32) -> R<()> {
        let (tag, wire_type) = self.key()?;
        if tag != 1 && tag != 2 {
            return self.skip(wire_type, tag, depth);
        }
        let end = self.delimited(wire_type, depth)?;
        let keep = match self.rule {
            Some(PbRule::OneofSwitchMerges) => true,
            Some(PbRule::OneofRepeatReplaces) => false,
            _ => op.member == tag,
        };
        if !keep {
            *op = Operation::default();
        }
        op.member = tag;
        while self.pos < end {
            let (field, field_type) = self.key()?;
            match (field, tag) {
                (1, _) => op.key = self.bytes(field_type)?,
                (2, 1) => op.value = self.bytes(field_type)?,
                _ => self.skip(field_type, field, depth - 1)?,
            }
        }
        self.close(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvstore::decode_payload;
    use alloc::vec;

    const PUT_K_V: &[u8] = &[0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v'];

    /// `n` nested groups of field 5 at the top level, then one put.
    fn top_groups(n: usize) -> Vec<u8> {
        [vec![0x2b; n], vec![0x2c; n], PUT_K_V.to_vec()].concat()
    }

    /// One put whose `Operation` holds `n` nested groups of field 5 after its put.
    fn op_groups(n: usize) -> Vec<u8> {
        let op = [&PUT_K_V[2..], &vec![0x2b; n], &vec![0x2c; n]].concat();
        let mut out = vec![0x0a];
        prost::encoding::encode_varint(op.len() as u64, &mut out);
        [out, op].concat()
    }

    #[test]
    fn the_walk_agrees_with_prost_at_the_limits_and_each_rule_changes_one_of_them() {
        let cases: Vec<(Vec<u8>, bool, Option<PbRule>)> = vec![
            (top_groups(100), true, None),
            (top_groups(101), false, Some(PbRule::NoDepthLimit)),
            (op_groups(99), true, None),
            (op_groups(100), false, Some(PbRule::NoDepthLimit)),
            ([&[0x2b, 0x34][..], PUT_K_V].concat(), false, Some(PbRule::EndGroupAnyNumber)),
            ([&[0x0a, 0x88, 0x00][..], &PUT_K_V[2..]].concat(), true, Some(PbRule::NonMinimalVarintRefused)),
            ([&[0x78][..], &[0xff; 9], &[0x01], PUT_K_V].concat(), true, None),
            ([&[0x78][..], &[0xff; 9], &[0x02], PUT_K_V].concat(), false, Some(PbRule::VarintOverflowWraps)),
            ([&[0x78][..], &[0xff; 10], &[0x00], PUT_K_V].concat(), false, None),
        ];
        for (i, (payload, decodes, rule)) in cases.into_iter().enumerate() {
            let prost = decode_payload(&payload);
            assert_eq!(prost.is_ok(), decodes, "case {i}: prost");
            assert_eq!(decode(&payload, None).ok(), prost.clone().ok(), "case {i}: the walk differs from prost");
            if let Some(rule) = rule {
                assert_ne!(decode(&payload, Some(rule)).is_ok(), decodes, "case {i}: {rule:?} does not change the outcome");
            }
        }
    }
}
