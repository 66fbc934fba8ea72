//! What `--build exec:…` names: a program and its arguments (`exec:PROGRAM`, or a build file
//! `exec:FILE.json`), the time bounds it runs under, and what reports and certificates record of
//! it (the program's digest). docs/BUILD_PROTOCOL.md §2, §8.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::outside::process::{Hello, Process};
use crate::replica::ReplicaError;

const BUILD_FILE_TAG: &str = "lattice-conform/exec-build";
const BUILD_FILE_VERSION: u32 = 1;
/// Time bounds of an outside build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecLimits {
    /// Milliseconds allowed per op of a frame (and for each other message).
    pub op_timeout_ms: u64,
    /// Seconds allowed for one whole history (one process).
    pub history_timeout_s: u64,
}

impl Default for ExecLimits {
    fn default() -> ExecLimits {
        ExecLimits { op_timeout_ms: 10_000, history_timeout_s: 1_800 }
    }
}

impl ExecLimits {
    /// The defaults, overridden by `LATTICE_EXEC_OP_TIMEOUT_MS` and `LATTICE_EXEC_HISTORY_TIMEOUT_S`.
    pub fn from_env() -> Result<ExecLimits, String> {
        let mut l = ExecLimits::default();
        for (var, slot) in
            [("LATTICE_EXEC_OP_TIMEOUT_MS", &mut l.op_timeout_ms), ("LATTICE_EXEC_HISTORY_TIMEOUT_S", &mut l.history_timeout_s)]
        {
            if let Ok(v) = std::env::var(var) {
                *slot = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("{var}={v:?}: expected a positive integer"))?;
            }
        }
        Ok(l)
    }
}

/// An outside build: the program to run and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecBuild {
    /// What `--build` said after `exec:`.
    pub spec: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Limits from the build file, if it sets them (else the environment's or the defaults).
    pub limits: Option<ExecLimits>,
}

/// The build file (`exec:FILE.json`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildFile {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    format_version: u32,
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    limits: Option<ExecLimits>,
}

impl ExecBuild {
    /// `exec:PROGRAM` (run with no arguments) or `exec:FILE.json` (a build file naming the
    /// program, its arguments and limits; a relative program path is relative to the file).
    pub fn parse(spec: &str) -> Result<ExecBuild, String> {
        if spec.is_empty() {
            return Err("exec: needs a program or a build file (exec:PROGRAM or exec:FILE.json)".into());
        }
        if !spec.ends_with(".json") {
            return Ok(ExecBuild { spec: spec.into(), program: PathBuf::from(spec), args: vec![], limits: None });
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| format!("exec:{spec}: cannot read the build file: {e}"))?;
        crate::versioned::check(&text, path, BUILD_FILE_TAG, BUILD_FILE_VERSION).map_err(|e| format!("exec:{spec}: {e}"))?;
        let file: BuildFile =
            serde_json::from_str(&text).map_err(|e| format!("exec:{spec}: {}", crate::versioned::json_error(path, &e)))?;
        let mut program = PathBuf::from(&file.program);
        if file.program.contains('/') && program.is_relative() {
            program = path.parent().unwrap_or(Path::new(".")).join(program);
        }
        Ok(ExecBuild { spec: spec.into(), program, args: file.args, limits: file.limits })
    }

    /// The limits in force: the build file's, else the environment's, else the defaults.
    pub fn limits(&self) -> Result<ExecLimits, String> {
        match self.limits {
            Some(l) => Ok(l),
            None => ExecLimits::from_env(),
        }
    }

    /// The program file's blake3 (found on `PATH` if it is a bare name) and the arguments: what
    /// reports and certificates record of the build.
    pub fn identity(&self) -> Result<String, String> {
        Ok(format!("exec:{} program blake3 {} args {:?}", self.spec, self.program_digest()?, self.args))
    }

    /// The blake3 of the program file, in hex (what a certificate binds).
    pub fn program_digest(&self) -> Result<String, String> {
        let path = self.resolved_program()?;
        let bytes = std::fs::read(&path).map_err(|e| format!("exec:{}: cannot read {}: {e}", self.spec, path.display()))?;
        Ok(blake3::hash(&bytes).to_hex().to_string())
    }

    fn resolved_program(&self) -> Result<PathBuf, String> {
        if self.program.components().count() > 1 || self.program.is_absolute() {
            return Ok(self.program.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join(&self.program))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("exec:{}: `{}` is not on PATH", self.spec, self.program.display()))
    }

    /// Starts the build and shakes hands: the store types it serves, its name and version.
    pub fn hello(&self) -> Result<Hello, ReplicaError> {
        let mut p = Process::spawn(self)?;
        let hello = p.hello()?;
        p.bye();
        Ok(hello)
    }
}
