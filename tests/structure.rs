//! The layering of the server crate, read from its source: the edges `http`, `auth` and `ws`
//! must not import each other in a cycle (issue #12, "Structure"), so each can be read, tested
//! and changed without the other two. State shared by them lives in `state`; the extractors
//! that need it live in `http`.
//!
//! An edge is any `crate::<module>` path in a file of another top-level module (`src/<m>.rs` or
//! `src/<m>/**`), outside comments: imports and inline paths alike. Paths inside
//! `#[utoipa::path(...)]` attributes are left out: they name response schemas for the OpenAPI
//! document (`http::openapi`), not code one edge calls in another. (A follow-up could move
//! those shared schemas below the edges and drop this exception.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The edges that must not form a cycle, directly or through other modules.
const EDGES: [&str; 3] = ["http", "auth", "ws"];

#[test]
fn no_import_cycle_between_http_auth_and_ws() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    let mut cycles = Vec::new();
    for (i, from) in EDGES.iter().enumerate() {
        for to in &EDGES[i + 1..] {
            if let (Some(there), Some(back)) = (path(&graph, from, to), path(&graph, to, from)) {
                cycles.push(format!("{} / {}", there.join(" -> "), back.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles between the edges: {cycles:#?}");
}

#[test]
fn the_graph_sees_imports_in_every_form() {
    let text = "use crate::auth::Caller;\n\
                use crate::{config, storage::Store};\n\
                // crate::ws in a comment is no edge\n\
                fn f() { crate::telemetry::init(); }\n\
                #[utoipa::path(get, path = \"/x\",\n\
                    responses(crate::http::openapi::Errors))]\n\
                fn g() {}\n";
    let found = imports_of(text);
    let expected: BTreeSet<String> =
        ["auth", "config", "storage", "telemetry"].into_iter().map(String::from).collect();
    assert_eq!(found, expected);
}

/// Top-level module → the top-level modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let targets = graph.entry(module.clone()).or_default();
        targets.extend(imports_of(&text).into_iter().filter(|target| *target != module));
    }
    graph
}

/// The top-level modules `text` names through `crate::`, comments left out.
fn imports_of(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Bracket depth of an open `#[utoipa::path(...)]` attribute, 0 outside one.
    let mut in_doc_attribute = 0i32;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        if in_doc_attribute > 0 || code.trim_start().starts_with("#[utoipa::path") {
            in_doc_attribute += brackets(code);
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: the first segment of each entry.
                let inner = group.split('}').next().unwrap_or_default();
                for entry in inner.split(',') {
                    found.extend(ident(entry.trim()));
                }
            } else {
                found.extend(ident(rest));
            }
        }
    }
    found
}

/// Opening minus closing square brackets.
fn brackets(code: &str) -> i32 {
    code.chars().map(|c| i32::from(c == '[') - i32::from(c == ']')).sum()
}

fn ident(text: &str) -> Option<String> {
    let name: String =
        text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// A shortest chain of imports from `from` to `to`, if there is one.
fn path(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut frontier = vec![from.to_owned()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for module in frontier {
            for target in graph.get(&module).into_iter().flatten() {
                if target == from || came_from.contains_key(target) {
                    continue;
                }
                came_from.insert(target.clone(), module.clone());
                if target == to {
                    let mut chain = vec![to.to_owned()];
                    while let Some(previous) = came_from.get(chain.last().unwrap()) {
                        chain.push(previous.clone());
                        if previous == from {
                            break;
                        }
                    }
                    chain.reverse();
                    return Some(chain);
                }
                next.push(target.clone());
            }
        }
        frontier = next;
    }
    None
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
