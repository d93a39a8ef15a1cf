//! The layer rule of docs/ARCHITECTURE.md, checked: every `crate::<module>` a file under
//! `src/<m>/` (or `src/<m>.rs`) names must be in the "may call" cell of `<m>`'s row of the
//! table there. The table is parsed from the document itself, so the code and the document
//! cannot drift apart silently: a new arrow is either written down or refused here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Backticked names in `cell`, ignoring anything in parentheses (comments in the table).
fn names(cell: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// module -> modules it may call, from the "may call" table.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| module | may call |") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        if cells.len() != 2 || cells[0].contains("---") {
            continue;
        }
        let callees: BTreeSet<String> = names(cells[1]).into_iter().collect();
        for m in names(cells[0]) {
            out.insert(m, callees.clone());
        }
    }
    assert!(
        out.len() >= 8,
        "layer table not found in docs/ARCHITECTURE.md: {out:?}"
    );
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The identifier `s` starts with (after blanks), if any.
fn leading_ident(s: &str) -> Option<String> {
    let head: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!head.is_empty()).then_some(head)
}

/// The crate-level modules `text` refers to as `crate::x` or `crate::{x, y::z}`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.extend(leading_ident(rest));
            continue;
        };
        // `crate::{a, b::{c, d}, e}`: the first name of each top-level item.
        let mut depth = 0usize;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' | ',' if depth == 0 => {
                    out.extend(leading_ident(&item));
                    item.clear();
                    if c == '}' {
                        break;
                    }
                }
                '}' => depth -= 1,
                _ if depth == 0 => item.push(c),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_module_calls_only_what_the_architecture_document_allows() {
    let allowed = allowed();
    let src = root().join("src");
    let mut violations = Vec::new();
    for (module, may) in &allowed {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(
            !files.is_empty(),
            "docs/ARCHITECTURE.md names `{module}`, src has no such module"
        );
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for r in referenced(&text) {
                if r != *module && !may.contains(&r) && allowed.contains_key(&r) {
                    violations.push(format!(
                        "{} uses crate::{r}, which `{module}` may not call",
                        f.strip_prefix(root()).unwrap_or(&f).display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations (fix the code or, if the arrow is right, the table in \
         docs/ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_reference_parser_sees_every_form_of_a_crate_path() {
    let r = referenced(
        "use crate::log::x;\nuse crate::{shard::{a, b}, metrics as m, config};\nfn f() { crate::runtime::spawn(); }",
    );
    let want: BTreeSet<String> = ["log", "shard", "metrics", "config", "runtime"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(r, want);
    assert_eq!(
        names("`log` (types, `x`), `runtime`"),
        vec!["log", "runtime"]
    );
}
