//! The crate's module graph, read from its own `crate::…` paths (test code and comments left out): which
//! top-level modules import each other in a circle. Issue #27 wants none; until the remaining
//! knots are untied, this test is a ratchet — every circle must lie inside one of the knots listed
//! in ARCHITECTURE.md ("Known import knots"), so no new module joins one and no new circle forms.

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
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    // Comments (doc links included) are not imports.
    let code: String = code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
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

fn first_name(s: &str) -> Option<String> {
    let name: String = s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())).then_some(name)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let Some(m) = module_of(p.strip_prefix(&src).unwrap()) else { continue };
                let deps = imports(&std::fs::read_to_string(&p).unwrap());
                g.entry(m.clone()).or_default().extend(deps.into_iter().filter(|d| *d != m));
            }
        }
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

/// The knots ARCHITECTURE.md lists under "Known import knots": one per line, `- knot: a, b, c`.
fn allowed() -> Vec<BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.trim().strip_prefix("- knot: "))
        .map(|l| l.split(',').map(|m| m.trim().trim_matches('`').to_string()).collect())
        .collect()
}

#[test]
fn every_import_circle_lies_inside_a_known_knot() {
    let g = graph();
    assert!(g.len() > 20 && g.contains_key("replay") && g["replay"].contains("delivery"), "the graph was read: {g:?}");
    let allowed = allowed();
    assert!(!allowed.is_empty(), "ARCHITECTURE.md lists the known knots");
    let outside: Vec<BTreeSet<String>> = knots(&g).into_iter().filter(|k| !allowed.iter().any(|a| k.is_subset(a))).collect();
    assert!(outside.is_empty(), "modules importing each other in a circle outside the known knots: {outside:?}; known: {allowed:?}");
}

#[test]
fn the_reader_finds_grouped_and_nested_imports_and_skips_tests() {
    let text = "use crate::{a::b, c, d::{e, f}};\n/// [`crate::y::Y`]\nfn x() { crate::g::h(); } // crate::w\n#[cfg(test)]\nmod tests {\n use crate::z;\n}\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
}
