//! Progress bars for long runs, on a terminal only.
//!
//! Library code asks for a bar with [`bar`] and ticks it; whether anything is drawn is decided
//! once per process by the binary ([`enable`]): only when stderr is a terminal, `CI` is unset and
//! `--quiet` was not given. A library caller that never enables progress gets hidden bars, so
//! tests and embedders see no output. Bars draw on stderr only, never on stdout (which may carry
//! JSON), and nothing they show enters a report or a hashed value.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether bars should be drawn in this process: stderr is a terminal, the `CI` environment
/// variable is unset and the user did not ask for quiet output.
pub fn wanted(quiet: bool) -> bool {
    use std::io::IsTerminal;
    !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// Turns bars on or off for the rest of the process (the binary calls it once, from [`wanted`]).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether bars are drawn.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A bar of `len` steps counting `unit` (e.g. "histories", "cases", "ops"), with the elapsed time,
/// the rate and the estimated time left; hidden unless [`enabled`]. `what` names the work. The bar
/// clears itself when dropped, so an early return leaves no half-drawn line.
pub fn bar(what: &str, len: u64, unit: &str) -> indicatif::ProgressBar {
    if !enabled() {
        return indicatif::ProgressBar::hidden();
    }
    let template = format!("{{msg}} {{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}, {{per_sec}}, ETA {{eta}}]");
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr())
        .with_finish(indicatif::ProgressFinish::AndClear);
    bar.set_style(indicatif::ProgressStyle::with_template(&template).expect("valid template"));
    bar.set_message(what.to_string());
    bar
}

/// A spinner for work of unknown length (e.g. reading a history whose op count is not declared),
/// counting `unit`; hidden unless [`enabled`].
pub fn spinner(what: &str, unit: &str) -> indicatif::ProgressBar {
    if !enabled() {
        return indicatif::ProgressBar::hidden();
    }
    let template = format!("{{spinner}} {{msg}} {{pos}} {unit} [{{elapsed_precise}}, {{per_sec}}]");
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        .with_finish(indicatif::ProgressFinish::AndClear);
    bar.set_style(indicatif::ProgressStyle::with_template(&template).expect("valid template"));
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_hidden_unless_enabled() {
        // Nothing in a test process enables bars, so a library caller draws nothing.
        assert!(!enabled());
        assert!(bar("verify", 10, "histories").is_hidden());
        assert!(spinner("record", "ops").is_hidden());
        // Under `cargo test` stderr is captured or CI is set; either way quiet wins.
        assert!(!wanted(true));
    }
}
