//! `report merge`, and how a report ends a run: printed or written, with the exit code of its
//! verdict (`CheckFailed`).

use crate::*;

#[derive(Subcommand)]
pub(crate) enum ReportCommand {
    /// Combine shard reports (from `verify --format json`) into one verdict.
    Merge {
        /// The shard reports (`verify --format json`), one per shard of one run.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// The merged report's form: `human`, `json` or `junit`.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Write the merged report to FILE instead of standard output (as `verify --output`).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub(crate) fn report_merge(paths: &[PathBuf], format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    if let Some(out) = output {
        lattice_conform::output::check_dir(out)?;
    }
    let parts = paths.iter().map(|p| Ok((p.clone(), Report::load(p)?))).collect::<anyhow::Result<Vec<_>>>()?;
    finish_report(&Report::merge(parts)?, format, output)
}

/// Prints the report (or writes it to `output`); a failed history, an unknown divergence or a
/// stale known divergence makes the exit code 1.
pub(crate) fn finish_report(report: &Report, format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    let quiet = quiet();
    let text = render(report, format);
    match output {
        Some(path) => {
            corpus::write_atomic(path, text.as_bytes())?;
            let verdict = format!("build {}: {} passed, {} failed", report.build, report.passed(), report.failed());
            if !quiet || report.failed() > 0 {
                eprintln!("{verdict}, {} not run; report written to {}", report.not_run.len(), path.display());
            }
        }
        // --quiet keeps a machine-readable report whole, and cuts the human one to its failures.
        None if quiet && format == Format::Human => print!("{}", lattice_conform::report::failures_only(report)),
        None => print!("{text}"),
    }
    if !quiet && report.is_empty_shard() && (format != Format::Human || output.is_some()) {
        eprintln!("{}", lattice_conform::report::EMPTY_SHARD);
    }
    if report.failed() > 0 {
        let not_run = match report.not_run.len() {
            0 => String::new(),
            n => format!(" ({n} more not run: verify stops at the first failure; --keep-going runs every one)"),
        };
        let units = lattice_conform::report::units(report);
        anyhow::bail!(CheckFailed(format!("{} of {} {units} failed{not_run}", report.failed(), report.results.len())));
    }
    if report.convergence_failures() > 0 {
        anyhow::bail!(CheckFailed(format!("{} convergence failures (unknown or stale divergences)", report.convergence_failures())));
    }
    Ok(())
}

/// A check failed on well-formed input (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CheckFailed(pub(crate) String);
