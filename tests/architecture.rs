//! The module map of docs/architecture.md, enforced: a module imports only modules of lower
//! layers (DESIGN.md, "Modules and the direction of dependence"), so no cycle can form.
//!
//! The sources are read as text: comments and literals are blanked, the rest is cut into
//! identifiers and punctuation, and every path that starts at the crate root is collected:
//! `crate::x::…` anywhere (imports and expressions), `use crate::{x, y::z}` groups, `super::`
//! chains that climb to the root, and `modelgate::x` in the binary.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Top to bottom. A module may import any module of a lower layer, none of its own or a
/// higher one. docs/architecture.md shows the same table.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli"],
    &["app"],
    &["grpc"],
    &["http"],
    &["health", "doctor"],
    &["events", "ratelimit"],
    &["auth"],
    &["v2"],
    &["models"],
    &["store", "redis", "telemetry"],
    &["config"],
    &["resilience"],
    &["metrics"],
    &["vocabulary"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One reference from a file to a top-level module.
#[derive(Debug)]
struct Reference {
    target: String,
    line: usize,
}

/// Why `module` may not use `target`, or `None` when it may.
fn violation(module: &str, target: &str) -> Option<String> {
    let Some(target_layer) = layer_of(target) else {
        return Some(format!("`{target}` is not in the module map"));
    };
    let Some(own_layer) = layer_of(module) else {
        return Some(format!("`{module}` is not in the module map"));
    };
    (target_layer <= own_layer).then(|| {
        format!(
            "`{module}` (layer {}) may not import `{target}` (layer {})",
            own_layer + 1,
            target_layer + 1
        )
    })
}

/// `text` with comments, string, byte-string and char literals replaced by spaces (newlines
/// kept, so that line numbers still hold). Lifetimes stay.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let starts_token = i == 0 || !is_ident(chars[i - 1]);
        let raw_string = starts_token
            .then(|| raw_string_start(&chars[i..]))
            .flatten();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some((prefix, hashes)) = raw_string {
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            i += prefix;
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            i += closing.len();
        } else if c == '"' || (starts_token && matches!(c, 'b' | 'c') && next == Some('"')) {
            i += if c == '"' { 1 } else { 2 };
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for _ in 0..skip {
                    if let Some(&c) = chars.get(i) {
                        blank(&mut out, c);
                    }
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // Past the backslash and the escaped character, which may be a quote.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
            continue;
        }
        out.push(' ');
    }
    out
}

/// For `r"`, `r#"`, `br##"`, …: the length of the opening and the number of `#`.
fn raw_string_start(chars: &[char]) -> Option<(usize, usize)> {
    let after_b = usize::from(chars.first() == Some(&'b'));
    if chars.get(after_b) != Some(&'r') {
        return None;
    }
    let hashes = chars[after_b + 1..]
        .iter()
        .take_while(|&&c| c == '#')
        .count();
    let quote = after_b + 1 + hashes;
    (chars.get(quote) == Some(&'"')).then_some((quote + 1, hashes))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Identifiers, `::` and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((Token::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// The top-level modules named by paths in one file. `root` is how the file names the crate
/// (`crate`, or `modelgate` in the binary); `depth` is how many `super::` reach the crate root
/// from the file's own module (1 for `src/app.rs` and `src/auth/mod.rs`, 2 for
/// `src/auth/cache.rs`).
fn references(source: &str, root: &str, depth: usize) -> Vec<Reference> {
    let tokens = tokens(&blank_comments_and_literals(source));
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(name), _)) => Some(name.as_str()),
        _ => None,
    };
    let is = |i: usize, token: Token| tokens.get(i).map(|(t, _)| t) == Some(&token);
    let mut found = Vec::new();
    // Brace depths at which inline `mod name {` blocks close: each adds one `super::`.
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut braces = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Punct('{') => {
                if i >= 2 && ident(i - 2) == Some("mod") && ident(i - 1).is_some() {
                    inline_modules.push(braces);
                }
                braces += 1;
            }
            Token::Punct('}') => {
                braces = braces.saturating_sub(1);
                if inline_modules.last() == Some(&braces) {
                    inline_modules.pop();
                }
            }
            _ => {}
        }
        // A path starts here unless it continues one (`a::crate` is not Rust) or is a macro's
        // `$crate`.
        let continues = i > 0 && (is(i - 1, Token::PathSep) || is(i - 1, Token::Punct('$')));
        if continues {
            i += 1;
            continue;
        }
        let mut at = i;
        let reaches_root = if ident(i) == Some(root) {
            at += 1;
            true
        } else {
            let mut supers = 0;
            while ident(at) == Some("super") && is(at + 1, Token::PathSep) {
                supers += 1;
                at += 2;
            }
            // Step back onto the last `::`, as after `crate`.
            at = at.saturating_sub(1);
            supers > 0 && supers == depth + inline_modules.len()
        };
        if reaches_root && is(at, Token::PathSep) {
            let line = tokens[at].1;
            match &tokens.get(at + 1).map(|(t, _)| t) {
                Some(Token::Ident(name)) => found.push(Reference {
                    target: name.clone(),
                    line,
                }),
                Some(Token::Punct('{')) => found.extend(
                    group_heads(&tokens[at + 2..])
                        .into_iter()
                        .map(|target| Reference { target, line }),
                ),
                _ => {}
            }
        }
        i += 1;
    }
    found
}

/// The first segment of each item of a `{a, b::c, d::{e, f}}` group, from after its `{`.
fn group_heads(tokens: &[(Token, usize)]) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (token, _) in tokens {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') if depth == 0 => break,
            Token::Punct('}') => depth -= 1,
            Token::Punct(',') if depth == 0 => item_start = true,
            Token::Ident(name) if depth == 0 && item_start => {
                heads.push(name.clone());
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to and its depth below the crate root; `None` for
/// `lib.rs`, which only declares the modules.
fn module_of(relative: &Path) -> Option<(String, usize)> {
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let first = parts.first()?;
    if first == "lib.rs" {
        return None;
    }
    let module = first.trim_end_matches(".rs").to_string();
    let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod.rs"));
    Some((module, depth))
}

#[test]
fn no_module_imports_a_higher_or_sibling_layer() {
    let src = src();
    let mut problems = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("under src");
        let Some((module, depth)) = module_of(relative) else {
            continue;
        };
        let root = if module == "main" {
            "modelgate"
        } else {
            "crate"
        };
        let source = fs::read_to_string(&file).expect("readable source");
        for reference in references(&source, root, depth) {
            if reference.target == module {
                continue;
            }
            if let Some(why) = violation(&module, &reference.target) {
                problems.push(format!(
                    "src/{}:{}: {why}",
                    relative.display(),
                    reference.line
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "imports against the module map (docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_module_on_disk_is_in_the_map_and_every_mapped_module_exists() {
    let on_disk: BTreeSet<String> = rust_files(&src())
        .iter()
        .filter_map(|file| module_of(file.strip_prefix(src()).ok()?))
        .map(|(module, _)| module)
        .collect();
    let mapped: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().map(|m| m.to_string()))
        .collect();
    assert_eq!(on_disk, mapped, "src/ and the module map disagree");
}

/// The `| layer | `module` | job |` rows of the doc's module map, as layers.
fn documented_layers(doc: &str) -> Vec<Vec<String>> {
    let mut layers: Vec<Vec<String>> = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(number), Some(module)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        let Some(name) = module.split('`').nth(1) else {
            continue;
        };
        if layers.len() < number {
            layers.resize(number, Vec::new());
        }
        layers[number - 1].push(name.to_string());
    }
    layers
}

#[test]
fn docs_architecture_lists_the_same_layers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let doc = fs::read_to_string(&path).expect("docs/architecture.md");
    let expected: Vec<Vec<String>> = LAYERS
        .iter()
        .map(|layer| layer.iter().map(|m| m.to_string()).collect())
        .collect();
    assert_eq!(documented_layers(&doc), expected);
}

#[test]
fn the_scanner_finds_paths_in_groups_and_expressions_but_not_in_comments_or_strings() {
    let source = r##"
        use crate::{config::{A, B}, metrics, store::Store};
        use crate :: auth::Principal;
        // crate::http in a comment
        /* crate::app in /* a nested */ block */
        pub(crate) fn f() {
            let _ = "crate::cli in a string";
            let _ = r#"crate::doctor in a raw "string""#;
            let _ = ('"', '\'', b'"');
            let _ = "http://example"; crate::models::load();
            metrics::counter!(crate::metrics::NAME).increment(1);
            let _ = super::events::Record::new();
        }
        fn g<'a>(x: &'a str) -> &'a str { crate::vocabulary::f(x) }
        mod tests {
            use super::*;
            use super::super::ratelimit::Quota;
        }
        macro_rules! m { () => { $crate::health::x() } }
    "##;
    let targets: Vec<String> = references(source, "crate", 1)
        .into_iter()
        .map(|r| r.target)
        .collect();
    assert_eq!(
        targets,
        [
            "config",
            "metrics",
            "store",
            "auth",
            "models",
            "metrics",
            "events",
            "vocabulary",
            "ratelimit"
        ]
    );
    // One level deeper (`src/auth/cache.rs`), one `super` stays inside the module.
    let deeper: Vec<String> = references("use super::events::X;", "crate", 2)
        .into_iter()
        .map(|r| r.target)
        .collect();
    assert!(deeper.is_empty(), "{deeper:?}");
}

#[test]
fn an_import_upwards_or_within_a_layer_is_a_violation() {
    assert!(violation("store", "auth").is_some());
    assert!(violation("store", "events").is_some());
    assert!(violation("health", "doctor").is_some());
    assert!(violation("vocabulary", "config").is_some());
    assert!(violation("auth", "nonexistent").is_some());
    assert_eq!(violation("auth", "store"), None);
    assert_eq!(violation("app", "vocabulary"), None);
}
