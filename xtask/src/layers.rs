//! `cargo xtask layers`: vtep-user's imports point down its layers.
//!
//! Every `crate::…` path in `vtep-user/src` (in `use` trees and in code;
//! comments and strings are skipped) and every `super::…` path is resolved
//! to the module it names. A file may use a module of a lower layer, or
//! one of its own top-level module; within a top-level module the files'
//! uses must not form a cycle. The layers are [`LAYERS`]; `lab` (the
//! benchmark lab) stands beside them: it may use what [`LAB_MAY_USE`] says
//! and only [`LAB_USED_BY`] may use it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::cmd;

/// vtep-user's top-level modules, bottom first.
const LAYERS: [&str; 6] = ["model", "system", "datapath", "control", "daemon", "cli"];
/// The benchmark lab's place beside the layers.
const LAB: &str = "lab";
const LAB_MAY_USE: [&str; 3] = ["model", "system", "datapath"];
const LAB_USED_BY: [&str; 1] = ["cli"];

pub fn run() -> anyhow::Result<()> {
    let src = cmd::workspace_root().join("vtep-user/src");
    let uses = crate_uses(&src)?;
    let problems = check(&uses);
    let edges: usize = uses.values().map(BTreeSet::len).sum();
    if !problems.is_empty() {
        for p in &problems {
            println!("{p}");
        }
        bail!(
            "{} import(s) of vtep-user break its layers ({})",
            problems.len(),
            LAYERS.join(" < ")
        );
    }
    println!(
        "vtep-user: {} modules, {edges} uses between them, all pointing down ({}; {LAB} beside)",
        uses.len(),
        LAYERS.join(" < ")
    );
    Ok(())
}

/// Module (`control::afxdp`, two segments deep) → the modules it uses, for
/// every file below `src` but the crate roots.
fn crate_uses(src: &Path) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files)?;
    let mut uses = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src)?.with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts.is_empty() || parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        // A module and the files below it count as one (`control::afxdp`).
        let module = parts.iter().take(2).cloned().collect::<Vec<_>>().join("::");
        let used = paths(&strip(&text))
            .into_iter()
            .filter_map(|p| resolve(&parts, &p))
            .filter(|m| *m != module);
        uses.entry(module.clone())
            .or_insert_with(BTreeSet::new)
            .extend(used);
    }
    Ok(uses)
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The layer problems in `uses`, one line each.
fn check(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_owned();
    let rank = |t: &str| LAYERS.iter().position(|l| *l == t);
    let mut problems = Vec::new();
    for (from, used) in uses {
        let f = top(from);
        for to in used {
            let t = top(to);
            if t == f {
                continue;
            }
            let allowed = match (f.as_str(), t.as_str()) {
                (LAB, t) => LAB_MAY_USE.contains(&t),
                (f, LAB) => LAB_USED_BY.contains(&f),
                (f, t) => match (rank(f), rank(t)) {
                    (Some(a), Some(b)) => b < a,
                    _ => false,
                },
            };
            if !allowed {
                problems.push(format!("{from} uses {to}: {t} is not below {f}"));
            }
        }
    }
    // Within a top-level module: no cycle among its files.
    for cycle in cycles(uses, |a, b| top(a) == top(b)) {
        problems.push(format!("cycle: {}", cycle.join(" -> ")));
    }
    problems
}

/// Cycles of the use graph restricted to edges `keep` accepts, each as the
/// modules along it (first repeated at the end).
fn cycles(
    uses: &BTreeMap<String, BTreeSet<String>>,
    keep: impl Fn(&str, &str) -> bool,
) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        m: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        keep: &dyn Fn(&str, &str) -> bool,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        marks.insert(m.to_owned(), Mark::Open);
        stack.push(m.to_owned());
        for n in uses.get(m).into_iter().flatten().filter(|n| keep(m, n)) {
            match marks.get(n.as_str()).copied().unwrap_or(Mark::New) {
                Mark::New if uses.contains_key(n) => visit(n, uses, keep, marks, stack, found),
                Mark::Open => {
                    let at = stack.iter().position(|s| s == n).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(n.clone());
                    found.push(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(m.to_owned(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for m in uses.keys() {
        if marks.get(m).copied().unwrap_or(Mark::New) == Mark::New {
            visit(m, uses, &keep, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// `text` without comments, string and char literals (each replaced by a
/// space), so that only code is searched for paths.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied()) {
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            (b'"', _) => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            // A char literal ('a', '\n'), not a lifetime ('a).
            (b'\'', _) if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            _ => {
                // Multi-byte characters pass through whole.
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Every path that starts at `crate::` or `super::` in `code`, with `use`
/// trees (`crate::{a::{b, c}, d}`) expanded, as its segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    for (at, _) in code.match_indices("::") {
        // The segment before `::` must be `crate` or `super`, starting a path.
        let start = code[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let head = &code[start..at];
        if !(head == "crate" || head == "super") {
            continue;
        }
        if start >= 2 && &b[start - 2..start] == b"::" {
            continue; // super::super::x is found at the first super.
        }
        let mut rest = &code[start..];
        tree(&mut rest, Vec::new(), &mut out);
    }
    out
}

/// Parses one use tree at the front of `s` (after `prefix`), pushing each
/// path it names into `out`.
fn tree(s: &mut &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        *s = s.trim_start();
        if let Some(r) = s.strip_prefix('{') {
            *s = r;
            loop {
                *s = s.trim_start();
                if let Some(r) = s.strip_prefix('}') {
                    *s = r;
                    return;
                }
                if s.is_empty() {
                    return;
                }
                let before = s.len();
                tree(s, path.clone(), out);
                *s = s.trim_start();
                if let Some(r) = s.strip_prefix(',') {
                    *s = r;
                } else if s.len() == before {
                    // Nothing a tree can take (a stray character): skip it,
                    // or this loop would never end.
                    let skip = s.chars().next().map_or(0, char::len_utf8);
                    *s = &s[skip..];
                }
            }
        }
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        if end == 0 {
            // `*`, or something that is not a path segment: the path so far
            // (a glob taken with it).
            if let Some(r) = s.strip_prefix('*') {
                *s = r;
            }
            out.push(path);
            return;
        }
        path.push(s[..end].to_owned());
        *s = &s[end..];
        match s.trim_start().strip_prefix("::") {
            Some(r) => *s = r,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module (as `a::b`, at most two segments deep: a top-level module and
/// its child) that `path`, written in module `at`, refers to.
fn resolve(at: &[String], path: &[String]) -> Option<String> {
    let mut abs: Vec<String> = Vec::new();
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
        }
        Some("super") => {
            abs = at.to_vec();
            while segs.peek().is_some_and(|s| *s == "super") {
                segs.next();
                abs.pop()?;
            }
        }
        _ => return None,
    }
    abs.extend(segs.filter(|s| *s != "self").cloned());
    // Keep the module part: lower-case segments, two deep at most (an item
    // such as `Gateway` or `attach` is not a module; that is fine, the
    // module before it is what counts).
    let modules: Vec<&str> = abs
        .iter()
        .map(String::as_str)
        .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .take(2)
        .collect();
    (!modules.is_empty()).then(|| modules.join("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(code: &str) -> Vec<String> {
        paths(code).into_iter().map(|p| p.join("::")).collect()
    }

    #[test]
    fn use_trees_are_expanded() {
        assert_eq!(
            p("use crate::{a::{b, c::D}, e, f::{self, G}};"),
            [
                "crate::a::b",
                "crate::a::c::D",
                "crate::e",
                "crate::f::self",
                "crate::f::G"
            ]
        );
        assert_eq!(p("let x = crate::a::b(1);"), ["crate::a::b"]);
        assert_eq!(p("use super::super::x::Y;"), ["super::super::x::Y"]);
        // A glob inside braces (it once looped, growing without end).
        assert_eq!(
            p("use super::{sink::wait_for_stop, *};"),
            ["super::sink::wait_for_stop", "super"]
        );
        assert_eq!(p("use crate::{a::*, b};"), ["crate::a", "crate::b"]);
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = strip("// crate::a\n/* crate::b */ \"crate::c\" let c = 'x'; crate::d::e()");
        assert_eq!(p(&code), ["crate::d::e"]);
    }

    #[test]
    fn paths_resolve_to_modules() {
        let at: Vec<String> = ["control", "afxdp", "view"].map(String::from).to_vec();
        let r = |s: &str| resolve(&at, &s.split("::").map(String::from).collect::<Vec<_>>());
        assert_eq!(
            r("crate::datapath::gateway::Gateway").as_deref(),
            Some("datapath::gateway")
        );
        assert_eq!(r("super::worker::Sock").as_deref(), Some("control::afxdp"));
        assert_eq!(
            r("super::super::apply::x").as_deref(),
            Some("control::apply")
        );
        assert_eq!(r("crate::model").as_deref(), Some("model"));
    }

    #[test]
    fn an_upward_use_and_a_cycle_are_problems() {
        let uses: BTreeMap<String, BTreeSet<String>> = [
            ("model::config", &["datapath::loader"][..]),
            ("datapath::loader", &["datapath::gateway", "model::config"]),
            ("datapath::gateway", &["datapath::loader"]),
            ("lab::pktgen", &["cli"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
        let problems = check(&uses);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("model::config uses datapath::loader"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("lab::pktgen uses cli"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("cycle: datapath::gateway")
                    || p.starts_with("cycle: datapath::loader"))
        );
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }
}
