//! Wasm builds: the `--wasm-*` limit flags, the module cache and `wasm add|list|digest`.

use crate::*;

/// Limits of Wasm guests, for the commands that run them (each falls back to its environment
/// variable, then to the default; docs/WASM_ABI.md §6).
#[derive(clap::Args)]
pub(crate) struct WasmLimitArgs {
    /// Fuel per op for Wasm guests, host calls included [env: LATTICE_WASM_FUEL; default 1000000000].
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u64).range(1..))]
    wasm_fuel: Option<u64>,
    /// Memory cap of a Wasm guest in MiB, 1 to 4096 [env: LATTICE_WASM_MEMORY_MIB; default 256].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    wasm_memory_mib: Option<u64>,
    /// Bytes one op of a Wasm guest may write, in MiB [env: LATTICE_WASM_WRITE_MIB; default 64].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1048576))]
    wasm_write_mib: Option<u64>,
    /// `put`/`delete` calls one op of a Wasm guest may make [env: LATTICE_WASM_ROW_WRITES; default 262144].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    wasm_row_writes: Option<u64>,
    /// Wall-clock watchdog per op of a Wasm guest, in ms [env: LATTICE_WASM_WATCHDOG_MS; default 5000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    wasm_watchdog_ms: Option<u64>,
}

/// The Wasm cache directory used by the open flow and `--build cas:<digest>`.
pub(crate) const ENV_WASM_CACHE: &str = "LATTICE_WASM_CACHE";
#[derive(Subcommand)]
pub(crate) enum WasmCommand {
    /// Check FILE as a guest module, store it in the cache by digest and register it for the
    /// store type and schema version it declares.
    Add {
        /// The guest module (a .wasm file).
        file: PathBuf,
        /// The cache directory (default: $LATTICE_WASM_CACHE).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
    },
    /// List the registered modules: store type, schema version, digest.
    List {
        /// The cache directory (default: $LATTICE_WASM_CACHE).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Limits of the Wasm guests this command runs.
        #[command(flatten, next_help_heading = "Wasm guest limits")]
        limits: WasmLimitArgs,
    },
    /// Print the blake3 digest of each FILE (b3sum format: digest, two spaces, name).
    Digest {
        /// The files to digest.
        files: Vec<PathBuf>,
    },
}

/// Attaches the Wasm cache named by $LATTICE_WASM_CACHE (its guests run under the registry's limits).
pub(crate) fn with_wasm_env(registry: Registry) -> Registry {
    match std::env::var_os(ENV_WASM_CACHE) {
        Some(dir) if !dir.is_empty() => registry.with_wasm_cache(WasmCache::new(dir)),
        _ => registry,
    }
}

/// The Wasm limits: each flag, else its environment variable, else the default; every value
/// checked (a malformed or out-of-range variable is a usage error naming it).
pub(crate) fn wasm_limits(args: &WasmLimitArgs) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let mib = |m: u64| usize::try_from(m << 20).unwrap_or(usize::MAX);
    Ok(Limits {
        fuel_per_op: pick(args.wasm_fuel, "LATTICE_WASM_FUEL", 1, u64::MAX)?.unwrap_or(d.fuel_per_op),
        memory_bytes: pick(args.wasm_memory_mib, "LATTICE_WASM_MEMORY_MIB", 1, 4096)?.map_or(d.memory_bytes, mib),
        write_bytes_per_op: pick(args.wasm_write_mib, "LATTICE_WASM_WRITE_MIB", 1, 1 << 20)?.map_or(d.write_bytes_per_op, |m| m << 20),
        row_writes_per_op: pick(args.wasm_row_writes, "LATTICE_WASM_ROW_WRITES", 1, u64::MAX)?.unwrap_or(d.row_writes_per_op),
        watchdog_ms: pick(args.wasm_watchdog_ms, "LATTICE_WASM_WATCHDOG_MS", 1, 86_400_000)?.unwrap_or(d.watchdog_ms),
    })
}

/// A limit from its flag (already range-checked by clap), else from the variable `name`.
pub(crate) fn pick(flag: Option<u64>, name: &str, min: u64, max: u64) -> anyhow::Result<Option<u64>> {
    if flag.is_some() {
        return Ok(flag);
    }
    let v = match std::env::var(name) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(e) => anyhow::bail!("${name}: {e}"),
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => anyhow::bail!("${name} = {v:?}: expected a whole number from {min} to {max}"),
    }
}

pub(crate) fn wasm_cache(cache: Option<PathBuf>, limits: Limits) -> anyhow::Result<WasmCache> {
    let dir = cache.or_else(|| std::env::var_os(ENV_WASM_CACHE).filter(|d| !d.is_empty()).map(PathBuf::from));
    let dir = dir.ok_or_else(|| anyhow::anyhow!("no Wasm cache directory: pass --cache DIR or set ${ENV_WASM_CACHE}"))?;
    Ok(WasmCache::new(dir).with_limits(limits))
}

pub(crate) fn wasm_command(cmd: WasmCommand, limits: Limits) -> anyhow::Result<()> {
    match cmd {
        WasmCommand::Add { file, cache, .. } => wasm_add(&wasm_cache(cache, limits)?, &file),
        WasmCommand::List { cache, .. } => wasm_list(&wasm_cache(cache, limits)?),
        WasmCommand::Digest { files } => wasm_digest(&files),
    }
}

pub(crate) fn wasm_add(cache: &WasmCache, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).map_err(|source| WasmError::Io { path: file.to_path_buf(), source })?;
    let added = cache.add(&bytes, &file.display().to_string())?;
    let e = &added.entry;
    let replaces = added.replaced.as_ref().map(|old| format!(" (replaces {old})")).unwrap_or_default();
    say!("added {} schema {}: {}{replaces}", e.store_type, e.schema_version, e.digest);
    Ok(())
}

pub(crate) fn wasm_list(cache: &WasmCache) -> anyhow::Result<()> {
    for e in cache.entries()? {
        let digest: lattice_conform::wasm::Digest = e.digest.parse().map_err(anyhow::Error::msg)?;
        let missing = if cache.blob_path(&digest).exists() { "" } else { "  (blob missing)" };
        println!("{}  {}  {}{missing}", e.store_type, e.schema_version, e.digest);
    }
    Ok(())
}

pub(crate) fn wasm_digest(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| WasmError::Io { path: file.clone(), source })?;
        println!("{}  {}", lattice_conform::wasm::Digest::of(&bytes), file.display());
    }
    Ok(())
}
