//! Builds: which implementation of a store type's logic to run (`--build`).
//!
//! `native` is the registered native opener; `native-fault:NAME` is the native build with one
//! fault of the catalogue ([`crate::fault`], `lattice-conform faults`) injected — in the logic, or
//! in the host's delivery, projection or hash rules (for testing what verification catches). Wasm builds
//! run a guest module on the Wasm host: a path to a `.wasm` file, or `cas:<digest>` for a module in
//! the registry's Wasm cache — the whole digest (64 hex digits) or a prefix of at least
//! [`MIN_CAS_PREFIX`] digits that names exactly one blob of the cache. A Wasm build must declare
//! the store type it is asked to run.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::fault::{self, Layer};
use crate::outside::{ExecBuild, ExecFactory};
use crate::registry::{Registry, RegistryError};
use crate::replay::HostFaults;
use crate::replica::{MemFactory, ReplicaError, ReplicaFactory};
use crate::store::Logic;
use crate::wasm::{Digest, WasmError, WasmModule, WasmOpener};

/// The fewest hex digits a `cas:` prefix may have (8 digits: 32 bits, so a cache of thousands of
/// modules rarely holds two under one prefix, and a typo rarely names another module).
pub const MIN_CAS_PREFIX: usize = 8;

/// A `--build` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildSpec {
    /// The native opener registered for the type.
    Native,
    /// The native logic with a named fault injected.
    NativeFault(String),
    /// A Wasm guest module read from a file (an argument ending in `.wasm`).
    WasmFile(PathBuf),
    /// A Wasm guest module from the registry's Wasm cache, by blake3 digest (`cas:<64 hex>`).
    Cas(Digest),
    /// A Wasm guest module from the Wasm cache by a prefix of its digest (`cas:<8 to 63 hex>`,
    /// lowercase); [`BuildSpec::resolve`] turns it into [`BuildSpec::Cas`].
    CasPrefix(String),
    /// An outside build: a process speaking the build protocol (`exec:PROGRAM` or
    /// `exec:FILE.json`; docs/BUILD_PROTOCOL.md). A whole replica, not a store logic: it runs
    /// where a command drives replicas (`verify`, `certify`, `record`, `open --verify-history`).
    Exec(ExecBuild),
}

/// Why a build could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("--build {0:?}: expected `native`, `native-fault:NAME`, a path to a .wasm file, `cas:<digest>`, or `exec:PROGRAM` / `exec:FILE.json`")]
    BadSpec(String),
    #[error("--build {0}")]
    Exec(String),
    #[error(
        "--build {spec}: an outside build is a whole replica, not a store logic; {what} runs a store logic (use `native` or a Wasm build)"
    )]
    ExecNotALogic { spec: String, what: &'static str },
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("--build native-fault:{fault}: no such fault (`lattice-conform faults` lists them)")]
    UnknownFault { fault: String, store_type: String },
    #[error("--build native-fault:{fault}: the fault breaks `{fault_type}`, not `{store_type}`")]
    FaultOfOtherType { fault: String, fault_type: String, store_type: String },
    #[error(
        "--build native-fault:{fault}: a fault of the host's {layer} rules, which only `verify` and `corpus adequacy` inject; this command runs a store logic"
    )]
    HostFault { fault: String, layer: &'static str },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("--build {0}: no Wasm cache is configured to look the digest up in (set LATTICE_WASM_CACHE)")]
    NoWasmCache(String),
    #[error("--build cas:{prefix}: a digest prefix needs at least {MIN_CAS_PREFIX} hex digits (it has {}); `lattice-conform wasm list` shows the digests", .prefix.len())]
    CasPrefixTooShort { prefix: String },
    #[error("--build cas:{prefix}: no module in the Wasm cache {} has a digest starting with `{prefix}`", .cache.display())]
    CasPrefixNotFound { prefix: String, cache: PathBuf },
    #[error("--build cas:{prefix}: ambiguous, {} modules in the Wasm cache {} have a digest starting with it: {}; give more digits", .candidates.len(), .cache.display(), .candidates.join(", "))]
    CasPrefixAmbiguous { prefix: String, cache: PathBuf, candidates: Vec<String> },
    #[error("{build}: the build implements `{found}` schema {found_schema}, but {against} is `{expected}` schema {expected_schema}")]
    IdentityMismatch { build: String, found: String, found_schema: u64, against: String, expected: String, expected_schema: u64 },
    #[error("--build")]
    Wasm {
        build: String,
        #[source]
        source: Box<WasmError>,
    },
}

impl FromStr for BuildSpec {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<BuildSpec, BuildError> {
        match s.split_once(':') {
            None if s == "native" => Ok(BuildSpec::Native),
            Some(("native-fault", name)) if !name.is_empty() => Ok(BuildSpec::NativeFault(name.to_string())),
            Some(("cas", digest)) if digest.len() == 64 => {
                digest.parse().map(BuildSpec::Cas).map_err(|_| BuildError::BadSpec(s.to_string()))
            }
            Some(("cas", prefix)) if !prefix.is_empty() && prefix.len() < 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) => {
                match prefix.to_ascii_lowercase() {
                    p if p.len() < MIN_CAS_PREFIX => Err(BuildError::CasPrefixTooShort { prefix: p }),
                    p => Ok(BuildSpec::CasPrefix(p)),
                }
            }
            Some(("cas", _)) => Err(BuildError::BadSpec(s.to_string())),
            Some(("exec", rest)) => ExecBuild::parse(rest).map(BuildSpec::Exec).map_err(BuildError::Exec),
            _ if s.ends_with(".wasm") => Ok(BuildSpec::WasmFile(PathBuf::from(s))),
            _ => Err(BuildError::BadSpec(s.to_string())),
        }
    }
}

impl fmt::Display for BuildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildSpec::Native => f.write_str("native"),
            BuildSpec::NativeFault(name) => write!(f, "native-fault:{name}"),
            BuildSpec::WasmFile(path) => write!(f, "{}", path.display()),
            BuildSpec::Cas(digest) => write!(f, "cas:{digest}"),
            BuildSpec::CasPrefix(prefix) => write!(f, "cas:{prefix}"),
            BuildSpec::Exec(exec) => write!(f, "exec:{}", exec.spec),
        }
    }
}

impl BuildSpec {
    /// The logic this build runs for `store_type` (at the schema the registry knows). A Wasm
    /// module that declares another store type is refused.
    pub fn logic(&self, store_type: &str, registry: &Registry) -> Result<Logic, BuildError> {
        use crate::registry::StoreOpener;
        match self {
            BuildSpec::Native => Ok(registry.opener(store_type)?.logic()),
            BuildSpec::NativeFault(name) => match self.replay_parts(store_type, registry)? {
                (logic, faults) if faults == HostFaults::default() => Ok(logic),
                _ => Err(BuildError::HostFault { fault: name.clone(), layer: fault::find(name).map_or("host", |f| f.layer.as_str()) }),
            },
            BuildSpec::WasmFile(_) | BuildSpec::Cas(_) | BuildSpec::CasPrefix(_) => Ok(self.wasm_opener(store_type, registry)?.logic()),
            BuildSpec::Exec(_) => Err(BuildError::ExecNotALogic { spec: self.to_string(), what: "this command" }),
        }
    }

    /// Fresh replicas of this build for histories of `store_type`: in memory for the builds
    /// compiled into this tool and Wasm guests, a process per replica for an outside build.
    pub fn factory(&self, store_type: &str, registry: &Registry) -> Result<Box<dyn ReplicaFactory>, BuildError> {
        match self {
            BuildSpec::Exec(exec) => {
                exec.limits().map_err(|e| BuildError::Exec(format!("exec:{}: {e}", exec.spec)))?;
                Ok(Box::new(ExecFactory::pooled(exec.clone())))
            }
            _ => {
                let (logic, faults) = self.replay_parts(store_type, registry)?;
                Ok(Box::new(MemFactory { logic, faults }))
            }
        }
    }

    /// [`BuildSpec::factory`], with a new process for every replica of an outside build (what
    /// `verify --repeat` compares: nothing a process kept can make two runs agree).
    pub fn fresh_factory(&self, store_type: &str, registry: &Registry) -> Result<Box<dyn ReplicaFactory>, BuildError> {
        match self {
            BuildSpec::Exec(exec) => Ok(Box::new(ExecFactory::fresh(exec.clone()))),
            _ => self.factory(store_type, registry),
        }
    }

    /// Whether this is an outside build.
    pub fn is_exec(&self) -> bool {
        matches!(self, BuildSpec::Exec(_))
    }

    /// The logic a replay of `store_type` runs and the host faults it runs with (none but for a
    /// `native-fault:` build of a delivery, kernel or hash fault, whose logic is the native one).
    pub fn replay_parts(&self, store_type: &str, registry: &Registry) -> Result<(Logic, HostFaults), BuildError> {
        let BuildSpec::NativeFault(name) = self else { return Ok((self.logic(store_type, registry)?, HostFaults::default())) };
        let unknown = || BuildError::UnknownFault { fault: name.clone(), store_type: store_type.to_string() };
        let f = fault::find(name).ok_or_else(unknown)?;
        if let Some(logic) = f.logic_for(store_type) {
            return Ok((logic, HostFaults::default()));
        }
        match f.layer {
            Layer::Delivery | Layer::Kernel | Layer::Hash => Ok((registry.opener(store_type)?.logic(), f.host_faults())),
            Layer::Migration => Err(BuildError::HostFault { fault: name.clone(), layer: f.layer.as_str() }),
            Layer::Apply | Layer::Read => Err(BuildError::FaultOfOtherType {
                fault: name.clone(),
                fault_type: f.store_type.to_string(),
                store_type: store_type.to_string(),
            }),
        }
    }

    /// Refuses `logic` (this build's) unless it implements `store_type` at `schema_version`, the
    /// identity of `against` (a store, a history, a certificate), naming both.
    pub fn check_identity(&self, logic: &Logic, store_type: &str, schema_version: u64, against: &str) -> Result<(), BuildError> {
        if logic.store_type() == store_type && logic.schema_version() == schema_version {
            return Ok(());
        }
        Err(BuildError::IdentityMismatch {
            build: self.to_string(),
            found: logic.store_type().to_string(),
            found_schema: logic.schema_version(),
            against: against.to_string(),
            expected: store_type.to_string(),
            expected_schema: schema_version,
        })
    }

    /// Whether this is a Wasm build (its guests run under the registry's [`crate::wasm::Limits`]).
    pub fn is_wasm(&self) -> bool {
        matches!(self, BuildSpec::WasmFile(_) | BuildSpec::Cas(_) | BuildSpec::CasPrefix(_))
    }

    /// This build with a `cas:` prefix replaced by the one digest of the registry's Wasm cache it
    /// names; other builds as they are. No match, or more than one, is an error naming the cache
    /// (and the candidates).
    pub fn resolve(&self, registry: &Registry) -> Result<BuildSpec, BuildError> {
        let BuildSpec::CasPrefix(prefix) = self else { return Ok(self.clone()) };
        let cache = registry.wasm_cache().ok_or_else(|| BuildError::NoWasmCache(self.to_string()))?;
        let wasm = |source| BuildError::Wasm { build: self.to_string(), source: Box::new(source) };
        let found = cache.blobs_with_prefix(prefix).map_err(wasm)?;
        match found.as_slice() {
            [one] => Ok(BuildSpec::Cas(*one)),
            [] => Err(BuildError::CasPrefixNotFound { prefix: prefix.clone(), cache: cache.dir().to_path_buf() }),
            many => Err(BuildError::CasPrefixAmbiguous {
                prefix: prefix.clone(),
                cache: cache.dir().to_path_buf(),
                candidates: many.iter().map(|d| d.to_string()).collect(),
            }),
        }
    }

    /// The opener of a Wasm build, checked to declare `store_type`.
    pub fn wasm_opener(&self, store_type: &str, registry: &Registry) -> Result<WasmOpener, BuildError> {
        let wasm = |source| BuildError::Wasm { build: self.to_string(), source: Box::new(source) };
        let limits = registry.wasm_limits();
        let module = match self {
            BuildSpec::CasPrefix(_) => return self.resolve(registry)?.wasm_opener(store_type, registry),
            BuildSpec::WasmFile(path) => WasmModule::from_file(path).map_err(wasm)?,
            BuildSpec::Cas(digest) => {
                let cache = registry.wasm_cache().ok_or_else(|| BuildError::NoWasmCache(self.to_string()))?;
                cache.load(digest).map_err(wasm)?
            }
            _ => return Err(BuildError::BadSpec(format!("{self} is not a Wasm build"))),
        };
        module.expect_type(store_type, &self.to_string()).map_err(wasm)?;
        Ok(WasmOpener::new(module, limits))
    }

    /// The store type this build can only be run as, when it says so itself: the type a Wasm
    /// guest declares, or the type whose rule a `native-fault:` fault of a store logic breaks.
    /// `None` for `native` and for faults of the host's rules (any type). Lets `--type` be left
    /// out where the build already names it.
    pub fn declared_type(&self, registry: &Registry) -> Result<Option<String>, BuildError> {
        let wasm = |source| BuildError::Wasm { build: self.to_string(), source: Box::new(source) };
        match self {
            BuildSpec::Native => Ok(None),
            BuildSpec::CasPrefix(_) => self.resolve(registry)?.declared_type(registry),
            BuildSpec::NativeFault(name) => {
                let f = fault::find(name).ok_or_else(|| BuildError::UnknownFault { fault: name.clone(), store_type: String::new() })?;
                Ok(matches!(f.layer, Layer::Apply | Layer::Read | Layer::Migration).then(|| f.store_type.to_string()))
            }
            BuildSpec::WasmFile(path) => Ok(Some(WasmModule::from_file(path).map_err(wasm)?.store_type().to_string())),
            BuildSpec::Cas(digest) => {
                let cache = registry.wasm_cache().ok_or_else(|| BuildError::NoWasmCache(self.to_string()))?;
                Ok(Some(cache.load(digest).map_err(wasm)?.store_type().to_string()))
            }
            BuildSpec::Exec(exec) => {
                let hello = exec.hello()?;
                Ok(match hello.types.as_slice() {
                    [(one, _)] => Some(one.clone()),
                    _ => None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lattice_logic::kvstore::STORE_TYPE as KV;

    #[test]
    fn specs_parse_and_print_back() {
        let digest = "cas:".to_string() + &"ab".repeat(32);
        for s in ["native", "native-fault:forget-one-head", "guests/dist/core-kvstore.wasm", &digest] {
            assert_eq!(s.parse::<BuildSpec>().unwrap().to_string(), s);
        }
        for bad in ["nativ", "cas:", "cas:abcdefgz", "kvstore.was", &format!("cas:{}", "a".repeat(65))] {
            assert!(matches!(bad.parse::<BuildSpec>(), Err(BuildError::BadSpec(_))), "{bad}");
        }
        assert!(matches!("cas:abc".parse::<BuildSpec>(), Err(BuildError::CasPrefixTooShort { .. })));
        assert_eq!("cas:ABCDEF01".parse::<BuildSpec>().unwrap(), BuildSpec::CasPrefix("abcdef01".into()));
        assert_eq!(format!("cas:{}", "AB".repeat(32)).parse::<BuildSpec>().unwrap().to_string(), digest);
        let r = Registry::with_reference_types();
        assert!(matches!(BuildSpec::NativeFault("nope".into()).logic(KV, &r), Err(BuildError::UnknownFault { .. })));
        assert!(matches!(
            BuildSpec::NativeFault("forget-one-head".into()).logic("core:logstore", &r),
            Err(BuildError::FaultOfOtherType { .. })
        ));
        let host = BuildSpec::NativeFault("deps-ignored".into());
        assert!(matches!(host.logic(KV, &r), Err(BuildError::HostFault { layer: "delivery", .. })));
        assert_eq!(host.replay_parts("core:logstore", &r).unwrap().1.delivery, Some(crate::delivery::DeliveryFault::DepsIgnored));
        assert!(BuildSpec::NativeFault("v2-conflicts-dropped".into()).logic("core:kvstore-v2", &r).is_ok());
        let cas: BuildSpec = digest.parse().unwrap();
        assert!(matches!(cas.logic(KV, &r), Err(BuildError::NoWasmCache(_))));
        let missing = BuildSpec::WasmFile("no/such/guest.wasm".into()).logic(KV, &r).err().unwrap();
        assert!(matches!(&missing, BuildError::Wasm { source, .. } if matches!(**source, WasmError::Io { .. })), "{missing:?}");
    }
}
