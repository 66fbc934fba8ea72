//! Rendering verification reports: human text, JSON, JUnit XML. Nothing here runs anything.

use std::fmt::Write as _;

use super::{Divergence, Failure, HistoryResult, NotRun, Report};

/// Output format of `verify` and `report merge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Human => human(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("a report always serializes");
            s.push('\n');
            s
        }
        Format::Junit => junit(report),
    }
}

/// The line a shard that selects no history prints (its report passes).
pub const EMPTY_SHARD: &str = "0 histories in this shard";

/// One line per history, failure details, and a closing `N passed, N failed` line.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        match &r.failure {
            None => writeln!(out, "PASS {} ({} ops)", r.id, r.ops).unwrap(),
            Some(f) => failure_text(&mut out, r, f),
        }
    }
    if !report.not_run.is_empty() {
        writeln!(out, "stopped after the first failure: {} {} not run (use --keep-going to run them)", report.not_run.len(), units(report))
            .unwrap();
    }
    if report.is_empty_shard() {
        writeln!(out, "{}", EMPTY_SHARD).unwrap();
    }
    writeln!(out, "build {}: {} passed, {} failed", report.build, report.passed(), report.failed()).unwrap();
    if let Some(limits) = &report.wasm_limits {
        writeln!(out, "wasm limits: {limits}").unwrap();
    }
    if let Some(c) = &report.convergence {
        convergence_text(&mut out, c);
    }
    out
}

/// `--quiet`: the failing histories only (each as [`human`] shows it) and, when the convergence
/// check failed, its section; empty when everything passed.
pub fn failures_only(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        if let Some(f) = &r.failure {
            failure_text(&mut out, r, f);
        }
    }
    if let Some(c) = report.convergence.as_ref().filter(|_| report.convergence_failures() > 0) {
        convergence_text(&mut out, c);
    }
    out
}

fn failure_text(out: &mut String, r: &HistoryResult, f: &Failure) {
    writeln!(out, "FAIL {} ({} ops): {}", r.id, r.ops, f.summary).unwrap();
    if let Some(d) = &f.divergence {
        divergence_text_as(out, d, op_word(&r.id));
    }
    unmet_text(out, &f.expectations);
}

/// What a report's results are: `histories`, or the `cases` of `verify --migrations`.
pub fn units(report: &Report) -> &'static str {
    if report.selection.kind == "migrations" {
        "cases"
    } else {
        "histories"
    }
}

/// What the divergence of a result names: an op of the history, or of a migration case's
/// migration (docs/FORMAT.md §15.5).
fn op_word(id: &str) -> &'static str {
    if id.starts_with("migration:") {
        "migration op"
    } else {
        "op"
    }
}

/// One line per expected read a build missed (docs/FORMAT.md §10.10).
fn unmet_text(out: &mut String, unmet: &[crate::expect::Unmet]) {
    for u in unmet {
        writeln!(out, "  expected after {} ops (expect[{}]): {}", u.after, u.index, u.expected).unwrap();
        for d in &u.differences {
            writeln!(out, "    {d}").unwrap();
        }
    }
}

fn convergence_text(out: &mut String, c: &crate::converge::Summary) {
    writeln!(out, "convergence: {} further delivery orders per history (seed {})", c.orders, c.seed).unwrap();
    let count = |v: &str| c.histories.iter().filter(|h| h.verdict == v).count();
    for h in &c.histories {
        match h.verdict.as_str() {
            "skipped" => writeln!(out, "SKIP {}: {}", h.id, h.detail.as_deref().unwrap_or("")).unwrap(),
            "known" => writeln!(
                out,
                "KNOWN {}: diverges (known divergence `{}`; {} ops after shrinking)",
                h.id,
                h.detail.as_deref().unwrap_or(""),
                h.order_a.len()
            )
            .unwrap(),
            "diverges" => {
                writeln!(out, "DIVERGES {}: two delivery orders disagree; shrunk to {} ops", h.id, h.order_a.len()).unwrap();
                if let (Some(k), Some(own), Some(other)) = (h.order, &h.observed_own, &h.observed_order) {
                    writeln!(out, "  first at order {k} (seed {}): observed {own} in its own order, {other} in order {k}", c.seed).unwrap();
                }
                if let Some(d) = &h.detail {
                    writeln!(out, "  not a recorded occurrence: {d}").unwrap();
                }
                writeln!(out, "  order A (op indices): {:?}", h.order_a).unwrap();
                writeln!(out, "  order B (op indices): {:?}", h.order_b).unwrap();
                for k in &h.reads {
                    let read = |t: &Option<String>| t.clone().unwrap_or_else(|| "(not seen)".into());
                    writeln!(out, "  {}: A {} / B {}", k.key, read(&k.expected_text), read(&k.actual_text)).unwrap();
                }
            }
            _ => {}
        }
    }
    for k in &c.stale_known {
        writeln!(out, "STALE known divergence `{k}`: it no longer diverges (a fix? remove it, or re-record with `--record-known`)")
            .unwrap();
    }
    writeln!(
        out,
        "convergence: {} converge, {} known divergences, {} unknown divergences, {} skipped (stalled)",
        count("converges"),
        count("known"),
        count("diverges"),
        count("skipped")
    )
    .unwrap();
}

pub fn divergence_text(out: &mut String, d: &Divergence) {
    divergence_text_as(out, d, "op")
}

/// [`divergence_text`], naming the op `what` (`op`, or `migration op` for a migration case).
fn divergence_text_as(out: &mut String, d: &Divergence, what: &str) {
    writeln!(
        out,
        "  first divergent {what}: #{} (id {}), author {}, hlc {}.{}",
        d.op_index,
        &d.op_id[..16],
        &d.author[..16],
        d.wall_ms,
        d.counter
    )
    .unwrap();
    if let Some(p) = &d.payload {
        writeln!(out, "    payload: {p}").unwrap();
    }
    writeln!(out, "    reference: {} → {}", d.reference, d.reference_state_hash).unwrap();
    writeln!(out, "    this build: {} → {}", d.candidate, d.candidate_state_hash).unwrap();
    key_diff_text(out, "key diff", &d.diff, "(absent)");
    if d.reference_observed_hash != d.candidate_observed_hash {
        writeln!(out, "  reads differ: observed hash {} → {}", d.reference_observed_hash, d.candidate_observed_hash).unwrap();
    }
    key_diff_text(out, "read diff", &d.read_diff, "(not seen)");
}

/// A titled list of keys with the reference's and this build's rendering (`absent` when missing).
fn key_diff_text(out: &mut String, title: &str, diff: &[crate::diff::KeyDiff], absent: &str) {
    if !diff.is_empty() {
        writeln!(out, "  {title} (reference → this build):").unwrap();
    }
    for k in diff {
        writeln!(out, "    {}", k.key).unwrap();
        writeln!(out, "      - {}", k.expected_text.as_deref().unwrap_or(absent)).unwrap();
        writeln!(out, "      + {}", k.actual_text.as_deref().unwrap_or(absent)).unwrap();
    }
}

/// JUnit XML: one `<testcase>` per selected history, classname = store type, each with its
/// measured `time` in seconds (0 when the report has no measurement for it); histories not run
/// are `<skipped>` with the reason.
pub fn junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (tests, failures, skipped) = (report.results.len() + report.not_run.len(), report.failed(), report.not_run.len());
    let convergence = report.convergence.as_ref().map_or(0, |c| c.histories.len() + c.stale_known.len());
    let (all_tests, all_failures) = (tests + convergence, failures + report.convergence_failures());
    let time = |id: &str| seconds(report.durations_us.get(id).copied().unwrap_or(0));
    let total = seconds(report.durations_us.values().sum());
    writeln!(out, "<testsuites name=\"lattice-conform verify\" tests=\"{all_tests}\" failures=\"{all_failures}\" time=\"{total}\">")
        .unwrap();
    writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total}\">",
        xml(&report.build)
    )
    .unwrap();
    for r in &report.results {
        testcase(&mut out, r, &time(&r.id));
    }
    for n in &report.not_run {
        not_run_testcase(&mut out, n);
    }
    out.push_str("  </testsuite>\n");
    if let Some(c) = &report.convergence {
        let (n, fails) = (c.histories.len() + c.stale_known.len(), report.convergence_failures());
        let skipped = c.histories.iter().filter(|v| v.verdict == "skipped" || v.verdict == "known").count();
        writeln!(
            out,
            "  <testsuite name=\"convergence ({} orders, seed {})\" tests=\"{n}\" failures=\"{fails}\" skipped=\"{skipped}\" time=\"0.000\">",
            c.orders, c.seed
        )
        .unwrap();
        // The convergence check is not timed per history.
        let t = "time=\"0.000\"";
        for v in &c.histories {
            let name = xml(&v.id);
            match v.verdict.as_str() {
                "diverges" => {
                    let msg =
                        format!("diverges across delivery orders; shrunk to {} ops: {:?} vs {:?}", v.order_a.len(), v.order_a, v.order_b);
                    writeln!(
                        out,
                        "    <testcase classname=\"convergence\" name=\"{name}\" {t}><failure message=\"{}\"/></testcase>",
                        xml(&msg)
                    )
                    .unwrap();
                }
                "skipped" | "known" => {
                    let msg = format!("{}: {}", v.verdict, v.detail.as_deref().unwrap_or(""));
                    writeln!(
                        out,
                        "    <testcase classname=\"convergence\" name=\"{name}\" {t}><skipped message=\"{}\"/></testcase>",
                        xml(&msg)
                    )
                    .unwrap();
                }
                _ => writeln!(out, "    <testcase classname=\"convergence\" name=\"{name}\" {t}/>").unwrap(),
            }
        }
        for k in &c.stale_known {
            let msg = "it no longer diverges (a fix? remove it, or re-record with --record-known)";
            writeln!(out, "    <testcase classname=\"known-divergences\" name=\"{}\" {t}><failure message=\"{msg}\"/></testcase>", xml(k))
                .unwrap();
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Microseconds as JUnit seconds, to the millisecond.
fn seconds(us: u64) -> String {
    format!("{}.{:03}", us / 1_000_000, us % 1_000_000 / 1000)
}

/// The history's name: its id after the first `/`.
fn short_name(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, n)| n)
}

fn testcase(out: &mut String, r: &HistoryResult, time: &str) {
    write!(out, "    <testcase classname=\"{}\" name=\"{}\" time=\"{time}\"", xml(&r.store_type), xml(short_name(&r.id))).unwrap();
    match &r.failure {
        None => out.push_str("/>\n"),
        Some(f) => {
            let mut body = String::new();
            if let Some(d) = &f.divergence {
                divergence_text_as(&mut body, d, op_word(&r.id));
            }
            unmet_text(&mut body, &f.expectations);
            writeln!(out, ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>", xml(&f.summary), xml(&body)).unwrap();
        }
    }
}

fn not_run_testcase(out: &mut String, n: &NotRun) {
    writeln!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"0.000\">\n      <skipped message=\"{}\"/>\n    </testcase>",
        xml(&n.store_type),
        xml(short_name(&n.id)),
        xml(&n.reason)
    )
    .unwrap();
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
