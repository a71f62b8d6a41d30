//! The crate's modules depend on each other without cycles: between top-level modules, and
//! between the submodules of [`crate::config`] and [`crate::control`].
//!
//! Read from the source: every `use` path and every inline `crate::`/`super::`/`self::` path
//! (comments and string literals skipped) is resolved to the module it names. A path into a
//! module's own file (`crate::control::AppState`) is followed through that file's `pub use`
//! re-exports to the submodule that defines the item. A module's own file (`mod.rs`) may
//! declare and re-export its submodules; anything else it uses counts as its dependency.
//! Test-only code counts as well: a test that needs a cycle shows a boundary in the wrong place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a cycle is not allowed: the crate root, and these modules' children.
const CHECKED: &[&[&str]] = &[&[], &["config"], &["control"]];

/// One source file: its module path and the paths it uses.
struct Source {
    module: Vec<String>,
    /// (absolute path, is a `pub use` re-export)
    uses: Vec<(Vec<String>, bool)>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` is the root.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    match parts.last().map(String::as_str) {
        Some("main") if parts.len() == 1 => return None,
        Some("lib") if parts.len() == 1 => parts.clear(),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts)
}

/// The code without comments, string and character literals (each replaced by a space), so
/// that a doc link or a URL is not read as a path.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |n| n + 2);
            out.push(' ');
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..]
                .find(&close)
                .map_or(rest.len(), |n| body + n + close.len());
            out.push(' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap_or(1);
            out.push(' ');
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"` ...: the number of `#`.
fn raw_string_start(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s);
    let s = s.strip_prefix('r')?;
    let hashes = s.bytes().take_while(|&c| c == b'#').count();
    (s.as_bytes().get(hashes) == Some(&b'"')).then_some(hashes)
}

/// Length of a character literal at the start of `s` (`'a'`, `'\n'`, `'\''`), or `None` for a
/// lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'\\') {
        let end = s[2..].find('\'')? + 2;
        return Some(end + 1);
    }
    let c = s[1..].chars().next()?;
    (s.as_bytes().get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

/// Expand a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let segments = |p: &str| -> Vec<String> {
        p.split(" as ")
            .next()
            .unwrap_or(p)
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let Some(open) = tree.find('{') else {
        return vec![segments(&tree)];
    };
    let prefix = segments(&tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand(p)
                .into_iter()
                .map(|tail| prefix.iter().cloned().chain(tail).collect())
        })
        .collect()
}

/// `crate::`, `super::` and `self::` made absolute against `module`; other first segments are
/// kept (a child module, an external crate or a local name: [`resolve_child`] decides).
fn absolute(module: &[String], path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {
            // Relative: a child of `module`, or an external crate. Marked for `resolve_child`.
            base.clear();
            base.push("?".into());
            base.extend(module.iter().cloned());
            base.push("::".into());
        }
    }
    base.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    base
}

/// Every path a file uses.
fn read_source(module: Vec<String>, text: &str) -> Source {
    let code = strip(text);
    let mut uses = Vec::new();
    // Inline modules (`mod tests { … }`) at column 0: code after them is one level deeper.
    let mut current = module.clone();
    let mut statement = String::new();
    let mut in_use: Option<bool> = None;
    for line in code.lines() {
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix('{')) {
            current = module
                .iter()
                .cloned()
                .chain([name.trim().to_string()])
                .collect();
        }
        let t = line.trim_start();
        if in_use.is_none() {
            let public = t.starts_with("pub use ");
            if public || t.starts_with("use ") || t.starts_with("pub(crate) use ") {
                in_use = Some(public);
                statement.clear();
                statement.push_str(&t[t.find("use ").unwrap_or(0) + 4..]);
            } else {
                inline_paths(t, &current, &mut uses);
                continue;
            }
        } else {
            statement.push_str(t);
        }
        if let Some(end) = statement.find(';') {
            let public = in_use.take().unwrap_or(false);
            for p in expand(&statement[..end]) {
                uses.push((absolute(&current, &p), public && current == module));
            }
        }
    }
    Source { module, uses }
}

/// `crate::a::b`, `super::a`, `self::a` anywhere in a line of code.
fn inline_paths(line: &str, module: &[String], uses: &mut Vec<(Vec<String>, bool)>) {
    let b = line.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(n) = line[from..].find(start) {
            let i = from + n;
            from = i + start.len();
            if i > 0 && (b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b':' | b'$'))
            {
                continue;
            }
            let end = line[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(line.len(), |e| i + e);
            let path: Vec<String> = line[i..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            uses.push((absolute(module, &path), false));
        }
    }
}

struct Crate {
    sources: Vec<Source>,
    modules: BTreeSet<Vec<String>>,
    /// (module, item name) → the absolute path it re-exports.
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut sources = Vec::new();
        for f in files {
            let (Some(module), Ok(text)) = (module_of(src, &f), std::fs::read_to_string(&f)) else {
                continue;
            };
            sources.push(read_source(module, &text));
        }
        let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
        let mut krate = Crate {
            sources,
            modules,
            reexports: BTreeMap::new(),
        };
        let mut reexports = BTreeMap::new();
        for s in &krate.sources {
            for (p, public) in &s.uses {
                if *public {
                    if let Some(name) = p.last() {
                        reexports.insert((s.module.clone(), name.clone()), krate.resolve_child(p));
                    }
                }
            }
        }
        krate.reexports = reexports;
        krate
    }

    /// A relative path (marked by [`absolute`]) names a child module of the module it was
    /// written in, or something outside the crate (then it is dropped).
    fn resolve_child(&self, p: &[String]) -> Vec<String> {
        if p.first().map(String::as_str) != Some("?") {
            return p.to_vec();
        }
        let Some(mark) = p.iter().position(|s| s == "::") else {
            return Vec::new();
        };
        let (module, path) = (&p[1..mark], &p[mark + 1..]);
        match path.first() {
            Some(first)
                if self
                    .modules
                    .contains(&module.iter().chain([first]).cloned().collect::<Vec<_>>()) =>
            {
                module.iter().chain(path).cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The child of `parent` that `path` lands in, following re-exports of `parent`'s file.
    fn child_of(&self, parent: &[String], path: &[String]) -> Option<String> {
        let path = self.resolve_child(path);
        let rest = path.strip_prefix(parent)?;
        let first = rest.first()?;
        let child: Vec<String> = parent.iter().chain([first]).cloned().collect();
        if self.modules.contains(&child) {
            return Some(first.clone());
        }
        match self.reexports.get(&(parent.to_vec(), first.clone())) {
            Some(target) if target.as_slice() != path.as_slice() => self.child_of(parent, target),
            // Defined in the parent's own file.
            _ => Some("(self)".into()),
        }
    }

    /// Edges between the children of `parent` (files of `parent` itself count as `(self)`,
    /// without their re-exports).
    fn edges(&self, parent: &[String]) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in &self.sources {
            let Some(rest) = s.module.strip_prefix(parent) else {
                continue;
            };
            let from = rest.first().cloned().unwrap_or_else(|| "(self)".into());
            for (p, public) in &s.uses {
                if *public && rest.is_empty() {
                    continue;
                }
                if let Some(to) = self.child_of(parent, p) {
                    if to != from {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
        edges
    }
}

/// A cycle in `edges`, as a list of nodes, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    return Some(stack[from..].iter().cloned().chain([m.clone()]).collect());
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn module_dependencies_have_no_cycles() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for parent in CHECKED {
        let parent: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
        let edges = krate.edges(&parent);
        assert!(
            !edges.is_empty(),
            "no dependencies found under {parent:?}: the reader is broken"
        );
        if let Some(cycle) = find_cycle(&edges) {
            let shown: Vec<String> = edges
                .iter()
                .map(|(k, v)| format!("  {k} -> {v:?}"))
                .collect();
            panic!(
                "import cycle under crate::{}: {}\n{}",
                parent.join("::"),
                cycle.join(" -> "),
                shown.join("\n")
            );
        }
    }
}

#[test]
fn the_reader_sees_known_dependencies_and_cycles() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let top = krate.edges(&[]);
    assert!(
        top["server"].contains("config") && top["proxy"].contains("cache"),
        "{top:?}"
    );
    // Through a re-export: `crate::control::ControlConfig` is defined in `control::settings`.
    let control = krate.edges(&["control".to_string()]);
    assert!(control["api"].contains("settings"), "{control:?}");
    let mut cyclic = BTreeMap::new();
    cyclic.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    cyclic.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    assert_eq!(expand("crate::a::{b, c::{d, e as f}}").len(), 3);
    assert_eq!(
        strip("let x = \"crate::a\"; // crate::b\ncrate::c"),
        "let x =  ; \ncrate::c"
    );
}
