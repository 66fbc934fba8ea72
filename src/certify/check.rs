//! `certify --check`: a certificate's inputs found again (beside it, or by digest in the Wasm cache) and compared with what it records.

use super::*;

/// Where `check` found one input of the certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    /// `baseline build`, `candidate build` or `corpus`.
    pub input: String,
    /// As the certificate records it.
    pub recorded: String,
    /// Where it was found: a path, `native`, or `Wasm cache <blob path>`.
    pub found: String,
}

/// What `certify --check` found (and, as JSON, what `--check --json` prints; docs/FORMAT.md §17.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub format: &'static str,
    pub format_version: u32,
    pub certificate: String,
    /// Whether the certificate still holds (exit 0) or not (exit 1).
    pub holds: bool,
    /// Why it no longer holds, one sentence each (empty when it holds).
    pub changes: Vec<String>,
    /// Where each build and corpus was found (in the certificate's order: baseline, candidate,
    /// then the corpora).
    pub inputs: Vec<Found>,
}

/// Re-derives a certificate from its own recorded inputs and says whether it still holds, naming
/// what changed. Inputs are found first: a `.wasm` build relative to the certificate's directory
/// (a version-1 certificate: then relative to the working directory), else in the Wasm cache by
/// its recorded digest; a corpus relative to the certificate's directory (versions 1 and 2: at
/// its recorded path, else relative to the certificate's directory). `Err` (unusable input, exit
/// 2) when the certificate cannot be read or is not a certificate of a version this build reads,
/// an input cannot be found anywhere, or a build implements another type or schema than the
/// certificate records.
pub fn check(path: &Path, registry: &Registry) -> Result<CheckReport, CertifyError> {
    if path.is_dir() {
        return Err(CertifyError::CertificateIsADirectory(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CertifyError::ReadCertificate(path.to_path_buf(), e))?;
    let mut report = CheckReport {
        format: CHECK_TAG,
        format_version: 1,
        certificate: path.display().to_string(),
        holds: false,
        changes: Vec::new(),
        inputs: Vec::new(),
    };
    // Not a certificate of a version this build reads (not JSON, another kind of file, a newer
    // or older version, fields missing or unknown): unusable input, never "no longer holds".
    let cert = parse_certificate(&text, path).map_err(CertifyError::NotACertificate)?;
    let legacy = cert.format_version < 2;
    let corpus_relative = cert.format_version >= CERT_CORPUS_RELATIVE;
    let dir = parent_dir(path);
    let changes = &mut report.changes;
    let canonical = to_text(&cert);
    if canonical != text {
        changes.push(format!("the file was edited: {}", first_difference(&text, &canonical)));
    }
    let tool = crate::report::tool_id();
    if cert.tool != tool {
        changes.push(format!("tool version changed: {} -> {tool}", cert.tool));
    }
    if cert.verdict != "equivalent" {
        changes.push(format!("the verdict is {:?}, not \"equivalent\"", cert.verdict));
    }
    let mut specs = Vec::new();
    for (role, id) in [("baseline", &cert.baseline), ("candidate", &cert.candidate)] {
        let spec = match id.build.parse::<BuildSpec>() {
            Ok(s) => s,
            Err(e) => {
                changes.push(format!("the certificate names a {role} build this tool cannot run: {e}"));
                continue;
            }
        };
        let (spec, digest, found) = locate_build(&format!("{role} build"), &spec, id, dir, legacy, registry)?;
        if digest != id.blake3 {
            changes.push(format!("{role} build digest changed: {} -> {digest}", id.blake3));
        }
        report.inputs.push(Found { input: format!("{role} build"), recorded: id.build.clone(), found });
        specs.push(spec);
    }
    let mut corpora = Vec::new();
    for c in &cert.corpora {
        let found = locate_corpus(&c.path, dir, corpus_relative)?;
        let digest = corpus::digest_file(&found.join(corpus::MANIFEST))?;
        if digest != c.manifest_blake3 {
            changes.push(format!("corpus manifest digest changed: {}: {} -> {digest}", c.path, c.manifest_blake3));
        }
        report.inputs.push(Found { input: "corpus".into(), recorded: c.path.clone(), found: found.display().to_string() });
        corpora.push(found);
    }
    if !changes.is_empty() {
        return Ok(report);
    }
    let [baseline, candidate] = <[BuildSpec; 2]>::try_from(specs).expect("both builds parsed");
    // The builds must still implement what the certificate says was certified (exit 2 if not:
    // the certificate is being checked against builds it was never about).
    let registry = match cert.wasm_limits {
        Some(limits) => registry.clone().with_wasm_limits(limits),
        None => registry.clone(),
    };
    let registry = &registry;
    for (role, build) in [("baseline", &baseline), ("candidate", &candidate)] {
        let logic = match build.logic(&cert.store_type, registry) {
            Ok(logic) => logic,
            Err(e) => {
                changes.push(format!("the {role} build no longer runs: {:#}", anyhow::Error::new(e)));
                return Ok(report);
            }
        };
        let against = format!("the certificate {} ({role})", path.display());
        build.check_identity(&logic, &cert.store_type, cert.schema_version, &against)?;
    }
    let opts = CertifyOptions {
        store_type: cert.store_type.clone(),
        baseline,
        candidate,
        corpora,
        cases: cert.cases,
        seed: cert.seed,
        max_ops: cert.max_ops,
        orders: cert.orders,
    };
    // Anything else that stops the re-derivation (a history of an unchanged manifest that no
    // longer loads) means the certificate no longer holds.
    let again = match certify(&opts, registry) {
        // `{:#}` prints the causes too, as the command line does for its own errors.
        Err(e) => {
            changes.push(format!("cannot re-derive: {:#}", anyhow::Error::new(e)));
            return Ok(report);
        }
        Ok(Verdict::Diverged { source, divergence, .. }) => {
            changes.push(format!("the builds now diverge on {source} at op {}", divergence.op_index));
            return Ok(report);
        }
        Ok(Verdict::Equivalent(again)) => again,
    };
    let mut differs = |what: &str, was: String, now: String| {
        if was != now {
            changes.push(format!("{what} changed: {was} -> {now}"));
        }
    };
    differs("schema version", cert.schema_version.to_string(), again.schema_version.to_string());
    differs("cases compared", cert.histories.to_string(), again.histories.to_string());
    differs("ops compared", cert.ops.to_string(), again.ops.to_string());
    for (c, a) in cert.corpora.iter().zip(&again.corpora) {
        differs(&format!("corpus {} histories of the type", c.path), c.histories.to_string(), a.histories.to_string());
    }
    differs("Wasm limits", format!("{:?}", cert.wasm_limits), format!("{:?}", again.wasm_limits));
    report.holds = report.changes.is_empty();
    Ok(report)
}

/// Finds a recorded build: the spec to run, the digest of what was found, and where it was.
fn locate_build(
    input: &str,
    spec: &BuildSpec,
    id: &BuildId,
    cert_dir: &Path,
    legacy: bool,
    registry: &Registry,
) -> Result<(BuildSpec, String, String), CertifyError> {
    let missing = |looked: Vec<String>| CertifyError::MissingInput { input: input.to_string(), recorded: id.build.clone(), looked };
    let cache = registry.wasm_cache();
    let no_cache = || "in no Wasm cache (none is configured: set LATTICE_WASM_CACHE)".to_string();
    match spec {
        BuildSpec::Native | BuildSpec::NativeFault(_) => {
            Ok((spec.clone(), build_id(spec)?.blake3, "this lattice-conform executable".into()))
        }
        BuildSpec::Exec(exec) => match build_id(spec) {
            Ok(found) => Ok((spec.clone(), found.blake3, format!("program {}", exec.program.display()))),
            Err(_) => Err(missing(vec![format!("program {}", exec.program.display())])),
        },
        BuildSpec::Cas(_) | BuildSpec::CasPrefix(_) => {
            let Some(cache) = cache else { return Err(missing(vec![no_cache()])) };
            let digest = match spec.resolve(registry) {
                Ok(BuildSpec::Cas(d)) => d,
                _ => return Err(missing(vec![format!("in the Wasm cache {}", cache.dir().display())])),
            };
            let blob = cache.blob_path(&digest);
            if !blob.is_file() {
                return Err(missing(vec![format!("in the Wasm cache {} (no blob {})", cache.dir().display(), blob.display())]));
            }
            Ok((BuildSpec::Cas(digest), digest.to_string(), format!("Wasm cache {}", blob.display())))
        }
        BuildSpec::WasmFile(recorded) => {
            let mut places = Vec::new();
            if recorded.is_absolute() {
                places.push(recorded.clone());
            } else {
                places.push(if cert_dir == Path::new(".") { recorded.clone() } else { cert_dir.join(recorded) });
                if legacy && !places.contains(recorded) {
                    places.push(recorded.clone());
                }
            }
            if let Some(at) = places.iter().find(|p| p.is_file()) {
                let bytes = std::fs::read(at).map_err(|e| CertifyError::Io(at.clone(), e))?;
                return Ok((BuildSpec::WasmFile(at.clone()), blake3::hash(&bytes).to_hex().to_string(), at.display().to_string()));
            }
            let mut looked: Vec<String> = places.iter().map(|p| format!("at {}", p.display())).collect();
            // The file is gone: the same bytes in the cache are the same build.
            let by_digest = id.blake3.parse::<crate::wasm::Digest>().ok();
            match (cache, by_digest) {
                (Some(cache), Some(d)) if cache.blob_path(&d).is_file() => {
                    Ok((BuildSpec::Cas(d), d.to_string(), format!("Wasm cache {}", cache.blob_path(&d).display())))
                }
                (Some(cache), _) => {
                    looked.push(format!("in the Wasm cache {} (no blob of digest {})", cache.dir().display(), id.blake3));
                    Err(missing(looked))
                }
                (None, _) => {
                    looked.push(no_cache());
                    Err(missing(looked))
                }
            }
        }
    }
}

/// Finds a recorded corpus; a corpus is a directory with a manifest. Version 3 (`relative`): a
/// relative path is relative to the certificate's directory. Older versions: at its path (from
/// the working directory), else relative to the certificate's directory.
fn locate_corpus(recorded: &str, cert_dir: &Path, relative: bool) -> Result<PathBuf, CertifyError> {
    let p = PathBuf::from(recorded);
    let in_cert_dir = if cert_dir == Path::new(".") { p.clone() } else { cert_dir.join(&p) };
    let mut places = Vec::new();
    if p.is_absolute() {
        places.push(p.clone());
    } else if relative {
        places.push(in_cert_dir);
    } else {
        places.push(p.clone());
        if !places.contains(&in_cert_dir) {
            places.push(in_cert_dir);
        }
    }
    match places.iter().find(|d| d.join(corpus::MANIFEST).is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(CertifyError::MissingInput {
            input: "corpus".into(),
            recorded: recorded.into(),
            looked: places.iter().map(|d| format!("for {}", d.join(corpus::MANIFEST).display())).collect(),
        }),
    }
}

fn first_difference(file: &str, canonical: &str) -> String {
    match file.lines().zip(canonical.lines()).enumerate().find(|(_, (a, b))| a != b) {
        Some((line, (a, b))) => format!("line {}: file has `{}`, canonical `{}`", line + 1, a.trim(), b.trim()),
        None => "its lines or final newline differ from the canonical text".into(),
    }
}
