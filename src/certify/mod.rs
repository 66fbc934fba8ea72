//! Hot-fix certification: is a candidate build hash-equivalent to its baseline?
//!
//! Both builds replay the same histories side by side and must agree after every op, on the
//! outcome (applied, duplicate, or the same reject kind) and on the state hash. Phase 1 replays
//! every history of the bundled corpus for the type and of any extra corpus (e.g. recorded
//! production histories); phase 2 replays generated histories (the corpus generator's scenarios)
//! and mutations of corpus payload bytes, re-chained so the ops stay valid — so a store type with
//! no generator still gets coverage. A divergence is shrunk to a small history that still
//! diverges. Agreement yields a certificate bound to both builds' digests; the same inputs give a
//! byte-identical certificate, and `check` re-derives it: it finds the recorded builds relative to
//! the certificate's directory or by digest in the Wasm cache, names each input that changed, and
//! tells an input it cannot find (unusable input) from a certificate that no longer holds.

use crate::corpus::ManifestEntry;
use crate::replica::ReplicaError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::{BuildError, BuildSpec};
use crate::corpus::{self, gen, CorpusError, Manifest};
use crate::history::History;
use crate::lockstep::Divergence;
pub use crate::lockstep::{lockstep, rechain, shrink, with_ids, Shrinking, SHRINK_REPLAYS, SHRINK_SECONDS};
use crate::op::{Op, OpId};
use crate::registry::Registry;

mod check;
pub use check::*;

const CERT_TAG: &str = "lattice-conform/certificate";
/// Version 3: every path — a `.wasm` build's `build` and a corpus's `path` — is relative to the
/// certificate's directory. Version 2: `.wasm` builds relative to the certificate, corpora as
/// given (relative to the working directory); version 1: both as given. All three are read.
const CERT_VERSION: u32 = 3;
/// The first version whose corpus paths are relative to the certificate's directory.
const CERT_CORPUS_RELATIVE: u32 = 3;
/// The oldest certificate version `check` still reads.
const CERT_OLDEST: u32 = 1;
/// The `format` of `certify --json`'s output.
pub const RESULT_TAG: &str = "lattice-conform/certify-result";
/// The `format` of `certify --check --json`'s output.
pub const CHECK_TAG: &str = "lattice-conform/certificate-check";

/// What to certify.
#[derive(Clone, Debug)]
pub struct CertifyOptions {
    pub store_type: String,
    pub baseline: BuildSpec,
    pub candidate: BuildSpec,
    /// Corpus directories (the bundled one first); histories of other types are skipped.
    pub corpora: Vec<PathBuf>,
    /// Generated cases (phase 2); half generated histories, half payload mutations.
    pub cases: u32,
    pub seed: u64,
    pub max_ops: u32,
    /// Each corpus history is also a case in this many further delivery orders
    /// ([`crate::converge::orders`], seeded by `seed`).
    pub orders: u32,
}

/// A certificate: the candidate reproduced the baseline's outcome, state hash and observed hash
/// after every op of every history listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub format: String,
    pub format_version: u32,
    pub tool: String,
    pub store_type: String,
    pub schema_version: u64,
    pub baseline: BuildId,
    pub candidate: BuildId,
    pub corpora: Vec<CorpusId>,
    pub seed: u64,
    pub cases: u32,
    pub max_ops: u32,
    /// Further delivery orders of each corpus history (omitted when 0, as certificates made
    /// before the option have none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders: u32,
    /// The limits the Wasm builds ran under (present when either build is Wasm); `check`
    /// re-derives under them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_limits: Option<crate::wasm::Limits>,
    pub histories: u64,
    pub ops: u64,
    pub verdict: String,
}

/// A build and the digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildId {
    /// The `--build` argument.
    pub build: String,
    /// blake3 of the `.wasm` bytes; for a native build, of the running executable.
    pub blake3: String,
    /// `wasm`, or `native lattice-conform <version>`.
    pub kind: String,
}

/// A corpus and the digest of its manifest (which lists every file's digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusId {
    pub path: String,
    pub manifest_blake3: String,
    pub histories: u64,
}

/// The result of a certification run.
#[derive(Debug)]
pub enum Verdict {
    Equivalent(Certificate),
    /// The builds disagree; the history is shrunk, `source` says where it came from.
    Diverged {
        source: String,
        history: History,
        divergence: Box<Divergence>,
        /// How much shrinking it took, and whether a cap stopped it.
        shrinking: Shrinking,
    },
}

/// Unusable input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertifyError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("{0}: cannot read the certificate")]
    ReadCertificate(PathBuf, #[source] std::io::Error),
    #[error("{0}: a directory, not a certificate (name the JSON file `certify --out` wrote)")]
    CertificateIsADirectory(PathBuf),
    #[error("{0}: cannot read the build to digest it")]
    Io(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Version(#[from] crate::versioned::VersionError),
    #[error("{0}: {1}")]
    Replica(String, #[source] ReplicaError),
    #[error("{input} `{recorded}` cannot be found: looked {}", .looked.join("; "))]
    MissingInput { input: String, recorded: String, looked: Vec<String> },
    /// The reason names the file.
    #[error("not a certificate this build can check: {0}")]
    NotACertificate(String),
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Runs both phases (phase 1: every corpus history, then each in `orders` further delivery
/// orders; phase 2: generated cases).
pub fn certify(opts: &CertifyOptions, registry: &Registry) -> Result<Verdict, CertifyError> {
    // A `cas:` prefix names the one module of the cache it matches, in the certificate too.
    let opts = &CertifyOptions { baseline: opts.baseline.resolve(registry)?, candidate: opts.candidate.resolve(registry)?, ..opts.clone() };
    let baseline = opts.baseline.factory(&opts.store_type, registry)?;
    let candidate = opts.candidate.factory(&opts.store_type, registry)?;
    let baseline_logic = (!opts.baseline.is_exec()).then(|| opts.baseline.logic(&opts.store_type, registry)).transpose()?;
    let schema = match &baseline_logic {
        Some(logic) => logic.schema_version(),
        None => registry.opener(&opts.store_type).map_err(BuildError::from)?.logic().schema_version(),
    };
    if !opts.candidate.is_exec() {
        let against = format!("--baseline {}", opts.baseline);
        opts.candidate.check_identity(&opts.candidate.logic(&opts.store_type, registry)?, &opts.store_type, schema, &against)?;
    }
    let mut corpus_ids = Vec::new();
    let mut listed: Vec<Listed> = Vec::new();
    for dir in &opts.corpora {
        let (id, entries) = load_corpus(dir, &opts.store_type)?;
        // Every history's identity is checked before any is replayed (a header read).
        for (source, dir, entry) in &entries {
            let header = corpus::open_checked(dir, entry)?.header().clone();
            if let Some(logic) = &baseline_logic {
                opts.baseline.check_identity(logic, &header.store_type, header.schema_version, &format!("history `{source}`"))?;
            }
        }
        corpus_ids.push(id);
        listed.extend(entries);
    }
    let (mut count, mut ops) = (0u64, 0u64);
    let cases = listed.len() as u64 * (1 + u64::from(opts.orders)) + u64::from(opts.cases);
    let bar = crate::progress::bar("certify", cases, "cases");
    // Phase 1: the corpus histories as they are, each streamed from its file (a recorded
    // history of millions of ops is never held whole).
    for (source, dir, entry) in &listed {
        let mut stream = corpus::open_checked(dir, entry)?;
        let header = stream.header().clone();
        let d =
            lockstep(&header, stream.ops(), baseline.as_ref(), candidate.as_ref()).map_err(|e| CertifyError::Replica(source.clone(), e))?;
        if let Some(d) = d {
            // The ops up to the divergent one still diverge there: shrink that prefix.
            let h = load_prefix(dir, entry, d.op_index + 1)?;
            let (history, divergence, shrinking) = shrink(h, d, baseline.as_ref(), candidate.as_ref());
            return Ok(Verdict::Diverged { source: source.clone(), history, divergence: Box::new(divergence), shrinking });
        }
        let done = stream.finish()?;
        count += 1;
        ops += done.ops;
        bar.inc(1);
    }
    // Mutations need the histories in memory: a small one whole, a large one as the prefix of
    // `max_ops` ops a mutation keeps.
    let mut histories: Vec<(String, History)> = Vec::new();
    if opts.orders > 0 || opts.cases > 0 {
        for (source, dir, entry) in &listed {
            let h = if std::fs::metadata(dir.join(&entry.path)).map_or(0, |m| m.len()) <= corpus::STREAM_ABOVE || opts.orders > 0 {
                corpus::load_checked(dir, entry)?
            } else {
                load_prefix(dir, entry, u64::from(opts.max_ops.max(1)))?
            };
            histories.push((source.clone(), h));
        }
    }
    let reordered = histories.iter().flat_map(|(source, h)| {
        // Seeded by the history id (`<type>/<name>`), as `verify --orders` does: not by the
        // corpus path, so `corpus` and `./corpus` draw the same orders.
        let id = source.rsplit_once(": ").map_or(source.as_str(), |(_, id)| id);
        crate::converge::orders(h, id, opts.orders, opts.seed).into_iter().enumerate().map(move |(k, order)| {
            let ops = order.iter().map(|&i| h.ops[i].clone()).collect();
            (
                format!("{source} in delivery order {k}"),
                History { ops, provenance: None, delivery: Default::default(), expect: Vec::new(), ..h.clone() },
            )
        })
    });
    for (source, h) in reordered.chain((0..opts.cases).filter_map(|i| generated_case(opts, &histories, i))) {
        let d = lockstep(&h.header(), h.ops.iter().cloned(), baseline.as_ref(), candidate.as_ref())
            .map_err(|e| CertifyError::Replica(source.clone(), e))?;
        if let Some(d) = d {
            let (history, divergence, shrinking) = shrink(h, d, baseline.as_ref(), candidate.as_ref());
            return Ok(Verdict::Diverged { source, history, divergence: Box::new(divergence), shrinking });
        }
        count += 1;
        ops += h.ops.len() as u64;
        bar.inc(1);
    }
    Ok(Verdict::Equivalent(Certificate {
        format: CERT_TAG.into(),
        format_version: CERT_VERSION,
        tool: crate::report::tool_id(),
        store_type: opts.store_type.clone(),
        schema_version: schema,
        baseline: build_id(&opts.baseline)?,
        candidate: build_id(&opts.candidate)?,
        corpora: corpus_ids,
        seed: opts.seed,
        cases: opts.cases,
        max_ops: opts.max_ops,
        orders: opts.orders,
        wasm_limits: (opts.baseline.is_wasm() || opts.candidate.is_wasm()).then(|| registry.wasm_limits()),
        histories: count,
        ops,
        verdict: "equivalent".into(),
    }))
}

/// The certificate's canonical text: pretty JSON and a newline.
pub fn to_text(c: &Certificate) -> String {
    let mut s = serde_json::to_string_pretty(c).expect("a certificate serializes");
    s.push('\n');
    s
}

/// Parses the text of a certificate file read from `path` (named in errors): the current version,
/// or versions 1 and 2 (same fields; `check` then also looks for a `.wasm` build (version 1) or a
/// corpus (versions 1 and 2) relative to the working directory).
pub fn parse_certificate(text: &str, path: &Path) -> Result<Certificate, String> {
    match crate::versioned::check(text, path, CERT_TAG, CERT_VERSION) {
        Ok(()) => {}
        Err(crate::versioned::VersionError::TooOld { found, .. }) if found >= CERT_OLDEST => {}
        Err(e) => return Err(e.to_string()),
    }
    serde_json::from_str(text).map_err(|e| crate::versioned::json_error(path, &e).to_string())
}

/// `cert` as written to `out`: each `.wasm` build and each corpus recorded by its path relative
/// to `out`'s directory (created if missing), so `check` finds them from any working directory,
/// and wherever the certificate and its inputs are moved together.
pub fn located_at(mut cert: Certificate, out: &Path) -> Result<Certificate, CertifyError> {
    let dir = parent_dir(out);
    std::fs::create_dir_all(dir).map_err(|e| CertifyError::Io(dir.to_path_buf(), e))?;
    for id in [&mut cert.baseline, &mut cert.candidate] {
        if let Ok(BuildSpec::WasmFile(path)) = id.build.parse::<BuildSpec>() {
            let rel = relative_path(&path, dir).map_err(|e| CertifyError::Io(path.clone(), e))?;
            id.build = rel.display().to_string();
        }
    }
    for c in &mut cert.corpora {
        let path = PathBuf::from(&c.path);
        let rel = relative_dir(&path, dir).map_err(|e| CertifyError::Io(path.clone(), e))?;
        c.path = rel.display().to_string();
    }
    Ok(cert)
}

/// The directory `target` as a path relative to the directory `base` (`.` when they are the
/// same), both with their symbolic links resolved.
fn relative_dir(target: &Path, base: &Path) -> std::io::Result<PathBuf> {
    let t = std::fs::canonicalize(target)?;
    let b = std::fs::canonicalize(base)?;
    let out = relative_between(&t, &b);
    Ok(if out.as_os_str().is_empty() { PathBuf::from(".") } else { out })
}

/// The path from the directory `base` to `target`, both absolute and canonical.
fn relative_between(target: &Path, base: &Path) -> PathBuf {
    let (tc, bc): (Vec<_>, Vec<_>) = (target.components().collect(), base.components().collect());
    let common = tc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &tc[common..] {
        out.push(c);
    }
    out
}

/// The directory a file path is in (`.` for a bare name).
fn parent_dir(file: &Path) -> &Path {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The file `target` as a path relative to the directory `base`, both with their directories'
/// symbolic links resolved (the file's own name is kept as it is).
fn relative_path(target: &Path, base: &Path) -> std::io::Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let t = std::fs::canonicalize(parent_dir(target))?;
    let b = std::fs::canonicalize(base)?;
    let mut out = relative_between(&t, &b);
    out.push(name);
    Ok(out)
}

/// What `certify --json` prints (docs/FORMAT.md §17.7): the verdict of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunJson {
    pub format: &'static str,
    pub format_version: u32,
    /// `equivalent` or `diverged`.
    pub verdict: &'static str,
    pub store_type: String,
    pub baseline: String,
    pub candidate: String,
    /// Cases compared and their ops (equivalent only).
    pub histories: Option<u64>,
    pub ops: Option<u64>,
    /// The certificate written (equivalent only).
    pub certificate: Option<String>,
    /// The diverging case, the counterexample written, its ops and its divergent op (diverged only).
    pub source: Option<String>,
    pub counterexample: Option<String>,
    pub counterexample_ops: Option<u64>,
    pub divergent_op: Option<u64>,
    /// Shrinking's replays and the cap that stopped it, if one did (diverged only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrinking: Option<Shrinking>,
}

impl RunJson {
    /// The JSON of a run of `opts` that ended in `verdict`, written to `out` (the certificate or
    /// the counterexample).
    pub fn new(opts: &CertifyOptions, verdict: &Verdict, out: &Path) -> RunJson {
        let mut j = RunJson {
            format: RESULT_TAG,
            format_version: 1,
            verdict: "equivalent",
            store_type: opts.store_type.clone(),
            baseline: opts.baseline.to_string(),
            candidate: opts.candidate.to_string(),
            histories: None,
            ops: None,
            certificate: None,
            source: None,
            counterexample: None,
            counterexample_ops: None,
            divergent_op: None,
            shrinking: None,
        };
        match verdict {
            Verdict::Equivalent(c) => {
                (j.histories, j.ops, j.certificate) = (Some(c.histories), Some(c.ops), Some(out.display().to_string()));
                (j.baseline, j.candidate) = (c.baseline.build.clone(), c.candidate.build.clone());
            }
            Verdict::Diverged { source, history, divergence, shrinking } => {
                j.verdict = "diverged";
                j.shrinking = Some(shrinking.clone());
                j.source = Some(source.clone());
                j.counterexample = Some(out.display().to_string());
                j.counterexample_ops = Some(history.ops.len() as u64);
                j.divergent_op = Some(divergence.op_index);
            }
        }
        j
    }
}

/// A listed corpus history: its source name, its corpus directory and its manifest entry.
type Listed = (String, PathBuf, ManifestEntry);

/// The corpus's histories of `store_type` (checked as they are read, not here).
fn load_corpus(dir: &Path, store_type: &str) -> Result<(CorpusId, Vec<Listed>), CertifyError> {
    let manifest = Manifest::load(dir, false)?;
    let mut out = Vec::new();
    for e in manifest.files.iter().filter(|e| e.store_type == store_type) {
        out.push((format!("{}: {}", dir.display(), e.id()), dir.to_path_buf(), e.clone()));
    }
    let digest = corpus::digest_file(&dir.join(corpus::MANIFEST))?;
    Ok((CorpusId { path: dir.display().to_string(), manifest_blake3: digest, histories: out.len() as u64 }, out))
}

/// The first `n` ops of a listed history (the rest of the file is not read).
fn load_prefix(dir: &Path, entry: &ManifestEntry, n: u64) -> Result<History, CertifyError> {
    let mut stream = corpus::open_checked(dir, entry)?;
    let header = stream.header().clone();
    let ops: Vec<Op> = stream.ops().take(n as usize).collect();
    if (ops.len() as u64) < n {
        // Shorter than asked: the whole file was read, so its errors are known.
        stream.finish()?;
    }
    Ok(History {
        store_id: header.store_id,
        store_type: header.store_type,
        schema_version: header.schema_version,
        provenance: None,
        delivery: header.delivery.clamped(ops.len() as u64),
        expect: Vec::new(),
        ops,
    })
}

/// Phase 2, case `i` (made on demand, so memory holds one case at a time): the first half are
/// generated histories of the type's scenarios, the rest payload mutations of corpus histories
/// (all mutations when the type has no generator).
fn generated_case(opts: &CertifyOptions, corpus: &[(String, History)], i: u32) -> Option<(String, History)> {
    let scenarios = gen::scenarios_for(&opts.store_type);
    let gen_count = if scenarios.is_empty() { 0 } else { opts.cases.div_ceil(2) };
    if i < gen_count {
        let s = &scenarios[i as usize % scenarios.len()];
        let ops = 1 + (mix(opts.seed, i as u64) % opts.max_ops.max(1) as u64) as u32;
        return Some((format!("generated {} seed {} index {i} ops {ops}", s.name, opts.seed), gen::generate(s, opts.seed, i, ops)));
    }
    if corpus.is_empty() {
        return None;
    }
    let (name, h) = &corpus[mix(opts.seed, i as u64) as usize % corpus.len()];
    Some((format!("mutation {i} of {name}"), mutate(h, mix(opts.seed ^ 0x6d75_7461, i as u64), opts.max_ops as usize)))
}

/// A deterministic 64-bit mix of (seed, i): blake3, first 8 bytes LE.
fn mix(seed: u64, i: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Flips one payload byte in up to three ops of (a prefix of) `h`, then re-chains.
fn mutate(h: &History, r: u64, max_ops: usize) -> History {
    let mut ops: Vec<(OpId, Op)> = with_ids(h).into_iter().take(max_ops.max(1)).collect();
    if ops.is_empty() {
        return History { provenance: None, ..h.clone() };
    }
    for k in 0..3u64 {
        let x = mix(r, k);
        let i = x as usize % ops.len();
        let p = &mut ops[i].1.payload;
        if !p.is_empty() {
            let at = (x >> 20) as usize % p.len();
            p[at] ^= 1 << ((x >> 40) % 8);
        }
    }
    let ops = rechain(h, &ops);
    History { delivery: h.delivery.clamped(ops.len() as u64), ops, provenance: None, ..h.clone() }
}

fn build_id(b: &BuildSpec) -> Result<BuildId, CertifyError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| CertifyError::Io(p.to_path_buf(), e));
    Ok(match b {
        BuildSpec::Exec(exec) => {
            let digest = exec.program_digest().map_err(|e| CertifyError::Build(BuildError::Exec(e)))?;
            BuildId { build: b.to_string(), blake3: digest, kind: format!("exec, args {:?}", exec.args) }
        }
        BuildSpec::WasmFile(path) => {
            BuildId { build: b.to_string(), blake3: blake3::hash(&read(path)?).to_hex().to_string(), kind: "wasm".into() }
        }
        BuildSpec::Cas(d) => BuildId { build: b.to_string(), blake3: d.to_string(), kind: "wasm".into() },
        BuildSpec::CasPrefix(_) => return Err(CertifyError::Build(BuildError::BadSpec(format!("{b} (an unresolved prefix)")))),
        _ => {
            let exe = std::env::current_exe().map_err(|e| CertifyError::Io(PathBuf::from("current executable"), e))?;
            BuildId {
                build: b.to_string(),
                blake3: blake3::hash(&read(&exe)?).to_hex().to_string(),
                kind: format!("native lattice-conform {}", env!("CARGO_PKG_VERSION")),
            }
        }
    })
}

#[cfg(test)]
mod tests;
