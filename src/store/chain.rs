//! The log chain: a running digest of `log.db`'s entries, kept in both files (docs/FORMAT.md
//! §9.2, §9.11), so that a `state.db` and a `log.db` that do not belong together are told apart
//! in constant time on every open, not only by a full replay.
//!
//! `digest(0)` is 32 zero bytes; `digest(n + 1) = blake3(TAG ‖ digest(n) ‖ entry n)`, where entry
//! n is the canonical encoding stored at `log` key n. `log.db` keeps the chain over all its
//! entries (`log_meta["log_chain"]`), `state.db` the chain over the `log_len` entries it reflects
//! (`meta["log_chain"]`); both are written in the transactions that append or deliver the entries.
//! Two files of one store have equal chains at equal lengths; a `state.db` of another replica, or
//! a `log.db` replaced by another one, has another digest at the same length.

use std::path::Path;

use redb::ReadableTable;

use super::error::StoreError;
use super::layout::{bad, read_opt, K_LOG_CHAIN};

/// The domain tag hashed before every link.
const TAG: &[u8] = b"lattice-conform log chain v1\0";

/// The chain after `len` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogChain {
    pub len: u64,
    pub digest: [u8; 32],
}

/// Bytes of a stored chain: `len` (u64 LE) ‖ digest.
pub(crate) const CHAIN_BYTES: usize = 40;

impl LogChain {
    /// The chain of an empty log.
    pub const GENESIS: LogChain = LogChain { len: 0, digest: [0; 32] };

    /// Links entry `self.len` (its canonical encoding) onto the chain.
    pub fn push(&mut self, encoding: &[u8]) {
        let mut h = blake3::Hasher::new();
        h.update(TAG);
        h.update(&self.digest);
        h.update(encoding);
        self.digest = *h.finalize().as_bytes();
        self.len += 1;
    }

    pub fn to_bytes(self) -> [u8; CHAIN_BYTES] {
        let mut out = [0u8; CHAIN_BYTES];
        out[..8].copy_from_slice(&self.len.to_le_bytes());
        out[8..].copy_from_slice(&self.digest);
        out
    }

    /// The digest, short, for messages.
    pub fn short(&self) -> String {
        hex::encode(&self.digest[..8])
    }

    /// Reads `log_chain` from a meta table (`meta` or `log_meta`); `None` when the key is absent
    /// (a store written before the chain existed, §19).
    pub fn read(t: &impl ReadableTable<&'static str, &'static [u8]>, path: &Path) -> Result<Option<LogChain>, StoreError> {
        let Some(raw) = read_opt(t, K_LOG_CHAIN, path)? else { return Ok(None) };
        if raw.len() != CHAIN_BYTES {
            return Err(bad(
                path,
                K_LOG_CHAIN,
                format!("expected {CHAIN_BYTES} bytes (u64 LE count ‖ 32-byte digest), found {}", raw.len()),
            ));
        }
        let len = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        Ok(Some(LogChain { len, digest: raw[8..].try_into().expect("32 bytes") }))
    }
}

/// How the two files' chains relate, before any log entry is read.
pub(crate) enum Pairing {
    /// Equal lengths and digests, or a file without a chain (nothing to compare cheaply).
    Paired,
    /// `log.db` is ahead of `state.db` (a writer at work, or a crash between the two commits):
    /// chaining the log's entries `state.len .. log.len` onto `state` must give `log`.
    LogAhead { state: LogChain, log: LogChain },
}

/// The constant-time check of §9.11: `state` (of `state.db`, reflecting `log_len` entries) against
/// `log` (of `log.db`, which holds `logged` entries). A state ahead of the log is left to the
/// callers' own *state ahead of log* check.
pub(crate) fn pair(dir: &Path, state: Option<LogChain>, log_len: u64, log: Option<LogChain>, logged: u64) -> Result<Pairing, StoreError> {
    if let Some(s) = state.filter(|s| s.len != log_len) {
        return Err(unpaired(dir, format!("state.db's log_chain covers {} entries but its log_len is {log_len}", s.len)));
    }
    if let Some(l) = log.filter(|l| l.len != logged) {
        return Err(unpaired(dir, format!("log.db's log_chain covers {} entries but it holds {logged}", l.len)));
    }
    match (state, log) {
        (Some(s), Some(l)) if s.len == l.len && s.digest != l.digest => Err(unpaired(
            dir,
            format!(
                "both reflect {} log entries, but the entries state.db was built from chain to {} and log.db's to {} \
                 (state.db of another replica, or another log.db)",
                s.len,
                s.short(),
                l.short()
            ),
        )),
        (Some(s), Some(l)) if s.len < l.len => Ok(Pairing::LogAhead { state: s, log: l }),
        _ => Ok(Pairing::Paired),
    }
}

/// Chains `entries` (canonical encodings at positions `from.len ..`) onto `from` and requires the
/// result to be `to`.
pub(crate) fn check_tail<'a>(dir: &Path, from: LogChain, to: LogChain, entries: impl Iterator<Item = &'a [u8]>) -> Result<(), StoreError> {
    let mut chain = from;
    for e in entries {
        chain.push(e);
    }
    if chain != to {
        return Err(tail_mismatch(dir, from, to));
    }
    Ok(())
}

/// The error of a log tail that does not chain from `state`'s chain to `log`'s.
pub(crate) fn tail_mismatch(dir: &Path, state: LogChain, log: LogChain) -> StoreError {
    unpaired(
        dir,
        format!(
            "state.db reflects {} log entries (chain {}), but log.db's entries {}..{} do not chain from there to its own {} \
             (state.db of another replica, or another log.db)",
            state.len,
            state.short(),
            state.len,
            log.len,
            log.short()
        ),
    )
}

/// The mismatch error naming both files of `dir`.
pub(crate) fn unpaired(dir: &Path, reason: String) -> StoreError {
    StoreError::Unpaired {
        state: dir.join(super::layout::STATE_FILE),
        log: dir.join(super::layout::LOG_FILE),
        dir: dir.to_path_buf(),
        reason,
    }
}
