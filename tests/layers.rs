//! The source tree is the architecture: each folder of `src/` is a layer, and a
//! file imports only from its own layer's files and the layers below it, with no
//! circle among files. Read from the `crate::` paths the files use, tests included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom, and what each may import.
fn may_import(layer: &str) -> &'static [&'static str] {
    match layer {
        "domain" => &["domain"],
        "inbound" => &["domain", "inbound"],
        "aws" => &["domain", "aws"],
        "run" => &["domain", "inbound", "aws", "run"],
        _ => &["domain", "inbound", "aws", "run", "top"],
    }
}

fn layer_of(module: &str) -> &str {
    match module.split("::").next().unwrap_or_default() {
        layer @ ("domain" | "inbound" | "aws" | "run") => layer,
        _ => "top",
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `src/run/extend.rs` is `run::extend`; `src/aws/mod.rs` is `aws`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The modules a file's `crate::` paths name: `crate::a::b::{C, d}` names
/// `a::b` when `a::b` is a module, else `a`.
fn imports(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let path: String = text[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let longest = (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|candidate| modules.contains(candidate));
        if let Some(module) = longest {
            named.insert(module);
        }
    }
    named
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    files
        .iter()
        .filter(|f| !f.ends_with("main.rs") && !f.ends_with("lib.rs"))
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let module = module_of(&src, file);
            let mut named = imports(&text, &modules);
            named.remove(&module);
            (module, named)
        })
        .collect()
}

#[test]
fn no_file_imports_from_a_layer_above_its_own() {
    let mut upward = Vec::new();
    for (module, named) in graph() {
        let allowed = may_import(layer_of(&module));
        for import in named {
            if !allowed.contains(&layer_of(&import)) {
                upward.push(format!("{module} -> {import}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports pointing up: {upward:#?}");
}

#[test]
fn no_circle_among_files() {
    let graph = graph();
    // Kahn's algorithm: what cannot be ordered lies on a circle.
    let mut waiting: BTreeMap<&str, usize> = graph
        .iter()
        .map(|(m, named)| {
            (
                m.as_str(),
                named.iter().filter(|n| graph.contains_key(*n)).count(),
            )
        })
        .collect();
    let mut ready: Vec<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(m, _)| *m)
        .collect();
    while let Some(done) = ready.pop() {
        waiting.remove(done);
        for (module, named) in &graph {
            if named.contains(done) {
                if let Some(n) = waiting.get_mut(module.as_str()) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(module);
                    }
                }
            }
        }
    }
    assert!(
        waiting.is_empty(),
        "files on a circle of imports, or importing one: {:?}",
        waiting.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_checks_see_the_layers() {
    let graph = graph();
    for module in [
        "domain::arn",
        "inbound::classify",
        "aws::drs",
        "run::reconcile",
        "handler",
    ] {
        assert!(
            graph.contains_key(module),
            "{module} not found: {:?}",
            graph.keys()
        );
    }
    assert!(
        graph["handler::reconciliation"].contains("run::reconcile"),
        "imports are read: {:?}",
        graph["handler::reconciliation"]
    );
}

#[test]
fn the_pure_layers_name_no_sdk_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for layer in ["domain", "inbound"] {
        rust_files(&src.join(layer), &mut files);
    }
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for sdk in [
            "aws_sdk_",
            "aws_smithy_",
            "aws_config",
            "aws_credential_types",
            "lambda_runtime",
        ] {
            assert!(!text.contains(sdk), "{} names {sdk}", file.display());
        }
    }
}
