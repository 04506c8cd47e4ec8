//! The module structure stays as the data flows: each top-level module of the library imports
//! only modules below it in [`LAYERS`], so there is no cycle between them and no upward import
//! (a stage reaching into training code, the encoder into the daemon). Read from the sources,
//! test code included, as `cargo modules` would show it.

mod common;

use std::path::Path;

/// The library's top-level modules, lowest first: the building blocks, the models, the stages
/// in data-flow order, then what wires them (the daemon) and what runs beside it (training,
/// evaluation, benchmarks, fuzzing entry points).
const LAYERS: &[&str] = &[
    "runtime",
    "images",
    "detail",
    "models",
    "capture",
    "calibrate",
    "reference",
    "infer",
    "encode",
    "daemon",
    "offline",
    "fuzzing",
];

/// Largest module file, in lines before its tests: past it a file holds more than one idea.
const MAX_MODULE_LINES: usize = 900;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::NAME` paths in `text`, with their line numbers.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((n + 1, name));
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it_so_there_is_no_cycle() {
    let src = common::root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    let mut seen = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(level) = LAYERS.iter().position(|l| *l == top) else {
            // main.rs, lib.rs and the binary's cli/ sit above everything.
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name) in crate_paths(&text) {
            seen += 1;
            if let Some(target) = LAYERS.iter().position(|l| *l == name) {
                if target > level {
                    upward.push(format!(
                        "src/{}:{line}: {top} imports {name}, which is above it",
                        rel.display()
                    ));
                }
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} crate paths found: is the scan broken?"
    );
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
    // Every top-level module is placed in the layers, so a new one cannot slip past the check.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for module in lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
    {
        assert!(
            LAYERS.contains(&module),
            "lib.rs declares `{module}`, which LAYERS does not place"
        );
    }
}

#[test]
fn the_scan_finds_an_upward_import_where_there_is_one() {
    let found = crate_paths("use crate::offline::data::Pair; // crate::daemon in a comment\n");
    assert_eq!(found, vec![(1, "offline".to_string())]);
}

#[test]
fn no_module_file_outgrows_its_bound() {
    let src = common::root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text
            .lines()
            .take_while(|l| l.trim() != "#[cfg(test)]")
            .count();
        if lines > MAX_MODULE_LINES {
            long.push(format!("{}: {lines} lines", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_MODULE_LINES} lines before the tests:\n{}",
        long.join("\n")
    );
}
