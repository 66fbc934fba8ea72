//! The crate's module graph, read from its own `crate::…` paths (test code and comments left out),
//! against ARCHITECTURE.md's "Layers" (issue #27): no two modules import each other in a circle, no
//! module imports from a layer above its own unless ARCHITECTURE.md lists that import (at most
//! two), nothing below the engines reaches goldens or reports, and nothing outside the CLI prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a source file belongs to (`src/store/chain.rs` → `store`).
fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    if first == "bin" || first == "lib.rs" || first == "main.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// The modules `text` names as `crate::NAME`, outside its `#[cfg(test)] mod tests`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = code_of(text);
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c, d::{e, f}}`: the first name of each top-level segment.
            let (mut depth, mut start) = (0, 0);
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.extend(first_name(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(first_name(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.extend(first_name(rest));
        }
    }
    out
}

/// The code of a source file: without its tests module and its comments (doc links included),
/// which are neither imports nor prints.
fn code_of(text: &str) -> String {
    without_tests(text).lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every library source file (`src/`, the CLI under `src/bin` and the unit tests in `tests.rs`
/// files left out): its path below `src/` with `/` separators, and its text.
fn library_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            if p.is_dir() {
                if rel != "bin" {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                // A `tests.rs` holds a module's unit tests (`#[cfg(test)] mod tests;`): test code.
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

/// `text` without its `#[cfg(test)] mod tests { … }` block (braces matched), keeping what follows
/// it; a `mod tests;` line (tests in their own file) has no block to cut.
fn without_tests(text: &str) -> String {
    let marker = "#[cfg(test)]\nmod tests {";
    let Some(start) = text.find(marker) else { return text.to_string() };
    let mut depth = 0usize;
    for (i, ch) in text[start + marker.len() - 1..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let end = start + marker.len() - 1 + i + 1;
                    return format!("{}{}", &text[..start], without_tests(&text[end..]));
                }
            }
            _ => {}
        }
    }
    text[..start].to_string()
}

fn first_name(s: &str) -> Option<String> {
    let name: String = s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())).then_some(name)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in library_files() {
        let Some(m) = module_of(Path::new(&rel)) else { continue };
        let deps = imports(&text);
        g.entry(m.clone()).or_default().extend(deps.into_iter().filter(|d| *d != m));
    }
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    g
}

/// The circles: strongly connected components of more than one module (Tarjan's algorithm).
fn knots(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            if !t.index.contains_key(w.as_str()) {
                visit(t, w);
                let lw = t.low[w.as_str()];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w.as_str()) {
                let iw = t.index[w.as_str()];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = BTreeSet::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                scc.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.out.push(scc);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], on: BTreeSet::new(), out: vec![] };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn architecture_md() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap()
}

/// ARCHITECTURE.md's layers: `- layer N, name: `a`, `b`` lines, module → layer number.
fn layers() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for l in architecture_md().lines() {
        let Some(rest) = l.trim().strip_prefix("- layer ") else { continue };
        let (head, modules) = rest.split_once(':').expect("`- layer N, name: modules`");
        let n: u32 = head.split(',').next().unwrap().trim().parse().expect("a layer number");
        for m in modules.split(',') {
            let m = m.trim().trim_matches('`').to_string();
            assert!(out.insert(m.clone(), n).is_none(), "module `{m}` is listed in two layers");
        }
    }
    out
}

/// The imports ARCHITECTURE.md allows to climb a layer: `- upward: `a` → `b`: why` lines.
fn allowed_upward() -> BTreeSet<(String, String)> {
    architecture_md()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- upward: "))
        .map(|l| {
            let (from, rest) = l.split_once('→').expect("`- upward: `a` → `b`: why`");
            let to = rest.split(':').next().unwrap();
            (from.trim().trim_matches('`').to_string(), to.trim().trim_matches('`').to_string())
        })
        .collect()
}

#[test]
fn no_module_imports_another_in_a_circle() {
    let g = graph();
    assert!(g.len() > 20 && g.contains_key("replay") && g["replay"].contains("delivery"), "the graph was read: {g:?}");
    let circles = knots(&g);
    assert!(circles.is_empty(), "modules importing each other in a circle: {circles:?}");
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(m, deps)| (m.to_string(), deps.into_iter().map(String::from).collect()))
        .collect();
    let found = knots(&g);
    assert_eq!(found, vec![["a", "b", "c"].into_iter().map(String::from).collect::<BTreeSet<_>>()]);
}

#[test]
fn every_import_stays_in_its_layer_or_goes_down() {
    let (g, layers, upward) = (graph(), layers(), allowed_upward());
    assert!(layers.len() > 20, "ARCHITECTURE.md lists the layers: {layers:?}");
    assert!(upward.len() <= 2, "at most two upward imports (issue #27): {upward:?}");
    let unlisted: Vec<&String> = g.keys().filter(|m| !layers.contains_key(*m)).collect();
    assert!(unlisted.is_empty(), "modules missing from ARCHITECTURE.md's layers: {unlisted:?}");
    let gone: Vec<&String> = layers.keys().filter(|m| !g.contains_key(*m)).collect();
    assert!(gone.is_empty(), "ARCHITECTURE.md lists modules that do not exist: {gone:?}");
    let mut climbing = vec![];
    for (from, deps) in &g {
        for to in deps {
            if layers[to] > layers[from] && !upward.contains(&(from.clone(), to.clone())) {
                climbing.push(format!("{from} (layer {}) → {to} (layer {})", layers[from], layers[to]));
            }
        }
    }
    assert!(climbing.is_empty(), "imports that climb a layer without being listed in ARCHITECTURE.md: {climbing:?}");
    let top = *layers.values().max().unwrap();
    let below: Vec<String> = g
        .iter()
        .filter(|(m, _)| layers[*m] < top)
        .flat_map(|(m, deps)| {
            deps.iter().filter(|d| ["golden", "report", "verify"].contains(&d.as_str())).map(move |d| format!("{m} → {d}"))
        })
        .collect();
    assert!(below.is_empty(), "nothing below the engines knows about goldens or reports: {below:?}");
}

#[test]
fn nothing_outside_the_cli_prints() {
    // The two hooks ARCHITECTURE.md names; each must still be there (or the exception is stale).
    let allowed = ["migrate/mod.rs", "outside/serve.rs"];
    let printing: BTreeSet<String> = library_files()
        .into_iter()
        .filter(|(_, text)| code_of(text).lines().any(|l| ["print!(", "println!(", "eprint!(", "eprintln!("].iter().any(|m| l.contains(m))))
        .map(|(rel, _)| rel)
        .collect();
    let expected: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
    assert_eq!(printing, expected, "library files that print (only the CLI may, beside the two named hooks)");
}

#[test]
fn the_reader_finds_grouped_and_nested_imports_and_skips_tests() {
    let text = "use crate::{a::b, c, d::{e, f}};\n/// [`crate::y::Y`]\nfn x() { crate::g::h(); } // crate::w\n#[cfg(test)]\nmod tests {\n use crate::z;\n fn t() { if true { crate::zz::f(); } }\n}\nfn after() { crate::k::g(); }\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g", "k"], "code after the tests module is read, the tests module is not");
}
