//! The code's shape, as ARCHITECTURE.md states it, checked: no dependency
//! cycle between the crate's top-level modules, nor between the files of
//! any one module directory; the application crate forbids `unsafe`; no
//! file over 600 lines without the reason stated at its top.
//!
//! Dependencies are read from the source text: `use crate::m`,
//! `crate::m::…` paths, and inside a directory `super::f` and `self::f` (a
//! name a directory's `mod.rs` re-exports counts as a dependency on the
//! file that defines it). Comment lines are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The file's code, comment lines left out.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of every path that follows `prefix` (`prefix`
/// `x`, `prefix` `{x, y::z}` and nested groups).
fn segments_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        // Only a whole path: not `my_super::`, nor the tail of
        // `super::super::`.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.insert(first_ident(&item));
        } else {
            out.insert(first_ident(rest));
        }
    }
    out.remove("");
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The cycles (strongly connected components of more than one node, or a
/// node that depends on itself) of `graph`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    // Kosaraju: finish order on the graph, then components on its reverse.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(n.to_string()) {
            return;
        }
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, seen, order);
        }
        order.push(n.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in graph.keys() {
        visit(n, graph, &mut seen, &mut order);
    }
    let mut reverse: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (n, ms) in graph {
        for m in ms {
            reverse.entry(m.clone()).or_default().insert(n.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.iter().rev() {
        let mut component = Vec::new();
        visit(n, &reverse, &mut assigned, &mut component);
        let component: BTreeSet<String> = component.into_iter().collect();
        let self_loop = component.len() == 1
            && component
                .iter()
                .all(|c| graph.get(c).is_some_and(|ms| ms.contains(c)));
        if component.len() > 1 || self_loop {
            out.push(component);
        }
    }
    out
}

/// The crate's top-level modules and what each uses of the others.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("src")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_stem()?.to_string_lossy().into_owned();
            (p.is_dir() || (name != "lib" && name != "main")).then_some(name)
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).expect("below src");
        let first = rel.components().next().expect("component");
        let module = Path::new(first.as_os_str())
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        if !modules.contains(&module) {
            continue;
        }
        let used = segments_after(&code(&file), "crate::");
        let deps = graph.entry(module.clone()).or_default();
        for m in used {
            if m != module && modules.contains(&m) {
                deps.insert(m);
            }
        }
    }
    graph
}

/// The names a file uses from the module of its directory: `super::x`
/// at its top level, `super::super::x` in its `mod tests` (and so on for
/// files `depth` modules below), `crate::<dir>::x` anywhere. Test modules
/// are taken to be the file's last item, as they are here.
fn names_used(path: &Path, depth: usize, crate_path: &str) -> BTreeSet<String> {
    let text = code(path);
    let tests_at = text
        .lines()
        .scan(0usize, |offset, l| {
            let at = *offset;
            *offset += l.len() + 1;
            Some((at, l.trim_start()))
        })
        .find(|(_, l)| {
            [
                "mod tests {",
                "pub(super) mod tests {",
                "pub(crate) mod tests {",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map_or(text.len(), |(at, _)| at);
    let (top, tests) = text.split_at(tests_at);
    let mut used = BTreeSet::new();
    for (chunk, n) in [(top, depth), (tests, depth + 1)] {
        used.extend(segments_after(chunk, &"super::".repeat(n)));
        used.extend(segments_after(chunk, crate_path));
    }
    // Paths that go further up are not this directory's.
    used.remove("super");
    used.remove("self");
    used
}

/// The node of a directory's `mod.rs` in its file graph.
const MOD: &str = "mod.rs";

/// For each module directory below `src/` (one with a `mod.rs`), its files
/// (`mod.rs` too) and what each uses of the others.
fn file_graphs() -> BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> {
    let src = root().join("src");
    let mut out = BTreeMap::new();
    for modrs in rust_files(&src)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "mod.rs"))
    {
        let dir = modrs.parent().expect("dir").to_path_buf();
        let rel = dir.strip_prefix(&src).expect("below src");
        let crate_path = format!(
            "crate::{}::",
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::")
        );
        // Sibling files and sub-directories.
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| {
                let p = e.ok()?.path();
                if p.is_dir() {
                    return p
                        .join("mod.rs")
                        .exists()
                        .then(|| p.file_name().expect("name").to_string_lossy().into_owned());
                }
                let stem = p.file_stem()?.to_string_lossy().into_owned();
                (p.extension()? == "rs" && stem != "mod").then_some(stem)
            })
            .collect();
        // `pub use file::{A, B}` in mod.rs: A and B are file's.
        let mod_code = code(&modrs);
        let mut reexported: BTreeMap<String, String> = BTreeMap::new();
        for statement in mod_code.split(';') {
            let s = statement.trim();
            let Some(path) = s
                .strip_prefix("pub use ")
                .or_else(|| s.strip_prefix("pub(crate) use "))
                .or_else(|| s.strip_prefix("pub(super) use "))
            else {
                continue;
            };
            let path = path.trim_start_matches("self::");
            let file = first_ident(path);
            if !siblings.contains(&file) {
                continue;
            }
            let items = &path[file.len()..].trim_start_matches("::");
            for item in segments_after(&format!("x::{items}"), "x::") {
                reexported.insert(item, file.clone());
            }
            // `pub use file::Item as Alias`.
            if let Some((_, alias)) = items.split_once(" as ") {
                reexported.insert(first_ident(alias), file.clone());
            }
        }
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // mod.rs itself, where it holds code: what that code uses of its
        // files (its `mod` declarations and re-exports are no use).
        let mod_uses: BTreeSet<String> = mod_code
            .lines()
            .map(str::trim_start)
            .filter(|l| {
                ![
                    "mod ",
                    "pub mod ",
                    "pub(crate) mod ",
                    "pub use ",
                    "pub(crate) use ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .flat_map(|l| {
                siblings
                    .iter()
                    .filter(|f| {
                        l.match_indices(&format!("{f}::")).any(|(i, _)| {
                            !l[..i]
                                .chars()
                                .next_back()
                                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                        })
                    })
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        graph.insert(MOD.to_string(), mod_uses);
        for file in &siblings {
            let mut used = BTreeSet::new();
            if dir.join(file).is_dir() {
                // A sub-directory as a whole: each of its files is a
                // module some levels below this directory's.
                let sub = dir.join(file);
                for f in rust_files(&sub) {
                    let comps = f.strip_prefix(&sub).expect("below").components().count();
                    let is_mod = f.file_name().is_some_and(|n| n == "mod.rs");
                    let depth = 1 + comps - usize::from(is_mod);
                    used.extend(names_used(&f, depth, &crate_path));
                }
            } else {
                used = names_used(&dir.join(format!("{file}.rs")), 1, &crate_path);
            }
            let deps = graph.entry(file.clone()).or_default();
            for name in used {
                let target = if siblings.contains(&name) {
                    Some(name)
                } else {
                    // Re-exported from a file, or defined in mod.rs.
                    Some(reexported.get(&name).cloned().unwrap_or(MOD.to_string()))
                };
                if let Some(t) = target.filter(|t| t != file) {
                    deps.insert(t);
                }
            }
        }
        out.insert(dir, graph);
    }
    out
}

#[test]
fn top_level_modules_depend_on_each_other_without_cycles() {
    let graph = module_graph();
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "module cycles: {found:?}\n(the module graph: {graph:#?})"
    );
}

#[test]
fn the_files_of_each_module_directory_depend_on_each_other_without_cycles() {
    let graphs = file_graphs();
    assert!(
        graphs.keys().any(|d| d.ends_with("outcome")),
        "directories found: {:?}",
        graphs.keys()
    );
    let mut found = Vec::new();
    for (dir, graph) in &graphs {
        for c in cycles(graph) {
            found.push(format!("{}: {c:?}", dir.display()));
        }
    }
    assert!(found.is_empty(), "file-level cycles:\n{}", found.join("\n"));
}

/// The checker itself finds what it must: a cycle through a re-export and
/// a grouped import.
#[test]
fn the_cycle_finder_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            m.entry(a.to_string()).or_default().insert(b.to_string());
            m.entry(b.to_string()).or_default();
        }
        m
    };
    assert!(cycles(&g(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(
        cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![["a", "b", "c"].iter().map(|s| s.to_string()).collect()]
    );
    assert_eq!(
        segments_after(
            "use super::{x::Y, z, w::{A, B}};\nlet q = super::v::f();",
            "super::"
        ),
        ["v", "w", "x", "z"].iter().map(|s| s.to_string()).collect()
    );
    // `super::super::x` is one level up, not `super::super`.
    assert_eq!(
        segments_after("use super::super::x;", "super::"),
        ["super"].iter().map(|s| s.to_string()).collect()
    );
    assert!(segments_after("my_super::x", "super::").is_empty());
}

#[test]
fn the_application_crate_forbids_unsafe_code() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    for file in rust_files(&root().join("src")) {
        assert!(
            !code(&file).contains("allow(unsafe_code)"),
            "{} opts back into unsafe code",
            file.display()
        );
    }
}

/// A file longer than 600 lines says why at its top (in its first
/// comment block).
#[test]
fn no_file_over_600_lines_without_its_reason() {
    let mut long = Vec::new();
    for dir in ["src", "tests", "crates", "examples"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).expect("read");
            if text.lines().count() <= 600 {
                continue;
            }
            let head: String = text
                .lines()
                .take_while(|l| l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join(" ");
            if !head.contains("600 lines") {
                long.push(format!(
                    "{} ({} lines)",
                    file.strip_prefix(root()).unwrap_or(&file).display(),
                    text.lines().count()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over 600 lines that do not say why at their top (\"…600 lines…\"):\n{}",
        long.join("\n")
    );
}
