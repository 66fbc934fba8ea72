//! Builds: which implementation of a store type's logic to run (`--build`).
//!
//! `native` is the registered native opener; `native-fault:NAME` is the native logic with a
//! deliberate fault injected (for testing that verification catches a logic change). Wasm builds
//! (a `.wasm` path, `cas:<digest>`) resolve through the Wasm host.

use std::fmt;
use std::str::FromStr;

use lattice_logic::kvstore::{Fault, FaultyKvStore, STORE_TYPE as KV};

use crate::registry::{Registry, RegistryError};
use crate::store::Logic;

/// A `--build` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildSpec {
    /// The native opener registered for the type.
    Native,
    /// The native logic with a named fault injected.
    NativeFault(String),
}

/// Why a build could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("--build {0:?}: expected `native`, `native-fault:NAME`, a path to a .wasm file, or `cas:<digest>`")]
    BadSpec(String),
    #[error("--build native-fault:{fault}: no such fault for `{store_type}` (known for core:kvstore: forget-one-head)")]
    UnknownFault { fault: String, store_type: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl FromStr for BuildSpec {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<BuildSpec, BuildError> {
        match s.split_once(':') {
            None if s == "native" => Ok(BuildSpec::Native),
            Some(("native-fault", name)) if !name.is_empty() => Ok(BuildSpec::NativeFault(name.to_string())),
            _ => Err(BuildError::BadSpec(s.to_string())),
        }
    }
}

impl fmt::Display for BuildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildSpec::Native => f.write_str("native"),
            BuildSpec::NativeFault(name) => write!(f, "native-fault:{name}"),
        }
    }
}

impl BuildSpec {
    /// The logic this build runs for `store_type` (at the schema the registry knows).
    pub fn logic(&self, store_type: &str, registry: &Registry) -> Result<Logic, BuildError> {
        match self {
            BuildSpec::Native => Ok(registry.opener(store_type)?.logic()),
            BuildSpec::NativeFault(name) => fault_logic(name, store_type),
        }
    }
}

fn fault_logic(name: &str, store_type: &str) -> Result<Logic, BuildError> {
    let unknown = || BuildError::UnknownFault { fault: name.to_string(), store_type: store_type.to_string() };
    match (store_type, Fault::from_name(name)) {
        (KV, Some(fault)) => Ok(std::sync::Arc::new(FaultyKvStore(fault))),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["native", "native-fault:forget-one-head"] {
            assert_eq!(s.parse::<BuildSpec>().unwrap().to_string(), s);
        }
        assert!(matches!("nativ".parse::<BuildSpec>(), Err(BuildError::BadSpec(_))));
        let r = Registry::with_reference_types();
        assert!(matches!(BuildSpec::NativeFault("nope".into()).logic(KV, &r), Err(BuildError::UnknownFault { .. })));
        assert!(BuildSpec::NativeFault("forget-one-head".into()).logic("core:logstore", &r).is_err());
    }
}
