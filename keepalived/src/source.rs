//! Files to logical lines, the way keepalived reads them.
//!
//! - `#` and `!` start a comment outside double quotes; `\#` and `\!` are the characters.
//! - A line ending in `\` continues on the next.
//! - `include PATTERN` (and keepalived 2.3's `includer`/`includem`/`includew`/`includeb`/
//!   `includea`) reads every file the glob matches, in order; a relative pattern is relative
//!   to the directory of the file that names it.
//! - `@ID line` keeps the line only when the config id is `ID`; `@^ID line` only when it is not.
//! - `$NAME=value` defines a parameter (a value ending in `\` continues on the next lines);
//!   `$NAME` followed by white space or the end, and `${NAME}` anywhere, are replaced by it,
//!   recursively. An undefined parameter stays as written, as keepalived leaves it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostics, Location};

/// One logical line: comments removed, continuations joined, parameters substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub at: Location,
    pub text: String,
}

/// How deep `include` may nest (a file including itself stops here, with an error).
const MAX_INCLUDE_DEPTH: usize = 16;
/// How many substitutions one line may take (a parameter naming itself stops here).
const MAX_SUBSTITUTIONS: usize = 256;
/// Largest file read (keepalived.conf files are a few kilobytes; this bounds a mistake).
const MAX_FILE_BYTES: u64 = 16 << 20;

pub struct Reader<'d> {
    config_id: String,
    params: HashMap<String, String>,
    diags: &'d mut Diagnostics,
    lines: Vec<Line>,
}

impl<'d> Reader<'d> {
    /// `config_id` is keepalived's `-i`: by default the host name up to its first dot.
    pub fn new(config_id: &str, diags: &'d mut Diagnostics) -> Self {
        Reader {
            config_id: config_id.to_string(),
            params: HashMap::new(),
            diags,
            lines: Vec::new(),
        }
    }

    /// Reads `path` and everything it includes.
    pub fn read_file(mut self, path: &Path) -> Vec<Line> {
        let at = Location {
            file: Arc::new(path.to_path_buf()),
            line: 0,
        };
        self.file(path, &at, 0);
        self.lines
    }

    /// Reads `text` as if it were the file `name`; includes are relative to the current
    /// directory.
    pub fn read_str(mut self, name: &str, text: &str) -> Vec<Line> {
        self.text(Arc::new(PathBuf::from(name)), text, Path::new("."), 0);
        self.lines
    }

    fn file(&mut self, path: &Path, from: &Location, depth: usize) {
        let text = match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                self.diags.error(
                    from,
                    "include",
                    format!("{}: larger than 16 MiB", path.display()),
                );
                return;
            }
            _ => match std::fs::read(path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    self.diags
                        .error(from, "", format!("cannot read {}: {e}", path.display()));
                    return;
                }
            },
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        self.text(Arc::new(path.to_path_buf()), &text, &dir, depth);
    }

    fn text(&mut self, file: Arc<PathBuf>, text: &str, dir: &Path, depth: usize) {
        let mut physical = text.split('\n').enumerate().peekable();
        while let Some((index, raw)) = physical.next() {
            let at = Location {
                file: Arc::clone(&file),
                line: index as u32 + 1,
            };
            let (mut line, mut continued) = decomment(raw);
            let definition = is_definition(&line);
            while continued {
                let Some((_, next)) = physical.next() else {
                    break;
                };
                let (more, again) = decomment(next);
                // A multi-line parameter keeps its lines; any other statement is one line.
                line.push(if definition { '\n' } else { ' ' });
                line.push_str(&more);
                continued = again;
            }
            if line.is_empty() {
                continue;
            }
            if let Some(pattern) = include_pattern(&line) {
                self.include(pattern, dir, &at, depth);
                continue;
            }
            self.logical(line, &at, 0);
        }
    }

    /// One logical line after comments: conditionals, definitions, substitution.
    fn logical(&mut self, line: String, at: &Location, substitutions: usize) {
        let Some(line) = self.conditional(line) else {
            return;
        };
        if let Some((name, value)) = definition(&line) {
            self.params.insert(name.to_string(), value.to_string());
            return;
        }
        let (text, used) = match self.substitute(&line, at, substitutions) {
            Some(v) => v,
            None => return,
        };
        if used > 0 && text.contains('\n') {
            // A multi-line parameter: each of its lines is read as a line of its own.
            for part in text.split('\n') {
                let part = part.trim();
                if !part.is_empty() {
                    self.logical(part.to_string(), at, substitutions + used);
                }
            }
            return;
        }
        if used > 0 && (text.starts_with('@') || is_definition(&text)) {
            self.logical(text, at, substitutions + used);
            return;
        }
        let text = text.trim().to_string();
        if !text.is_empty() {
            self.lines.push(Line {
                at: at.clone(),
                text,
            });
        }
    }

    /// The line without its `@ID ` prefix when it applies here, `None` when it does not.
    fn conditional(&self, line: String) -> Option<String> {
        let Some(rest) = line.strip_prefix('@') else {
            return Some(line);
        };
        let (negated, rest) = match rest.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let matches = rest[..end] == self.config_id;
        (matches != negated).then(|| rest[end..].trim_start().to_string())
    }

    /// `line` with every defined parameter replaced, and how many replacements were made;
    /// `None` (with an error) when substitution does not end.
    fn substitute(&mut self, line: &str, at: &Location, done: usize) -> Option<(String, usize)> {
        let mut text = line.to_string();
        let mut used = 0;
        let mut from = 0;
        while let Some(offset) = text[from..].find('$') {
            let start = from + offset;
            let Some((name, end)) = reference(&text, start) else {
                from = start + 1;
                continue;
            };
            let Some(value) = self.params.get(name) else {
                from = end;
                continue;
            };
            if done + used >= MAX_SUBSTITUTIONS {
                self.diags.error(
                    at,
                    name,
                    "parameter substitution does not end (a parameter refers to itself)",
                );
                return None;
            }
            text.replace_range(start..end, &value.clone());
            used += 1;
            // Replacement is recursive: look again from where the value starts.
            from = start;
        }
        Some((text, used))
    }

    fn include(&mut self, pattern: &str, dir: &Path, at: &Location, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                at,
                "include",
                format!("{pattern}: includes nested more than {MAX_INCLUDE_DEPTH} deep"),
            );
            return;
        }
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let paths = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                self.diags
                    .error(at, "include", format!("{pattern}: bad pattern: {e}"));
                return;
            }
        };
        let mut found: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if found.is_empty() {
            // keepalived's plain include does not fail on no match; say so all the same.
            self.diags
                .warning(at, "include", format!("{pattern}: no file matches"));
        }
        for path in found {
            self.file(&path, at, depth + 1);
        }
    }
}

/// A physical line without its comment and surrounding blanks, and whether it ends in `\`.
fn decomment(raw: &str) -> (String, bool) {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    let mut quoted = false;
    let mut chars = raw.chars().peekable();
    let mut continued = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => {
                    continued = true;
                    break;
                }
                Some(&next) if !quoted && (next == '#' || next == '!') => {
                    out.push(next);
                    chars.next();
                }
                Some(&next) => {
                    out.push(c);
                    out.push(next);
                    chars.next();
                }
            },
            '#' | '!' if !quoted => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim();
    // A `\` after trailing blanks still continues the line.
    if let Some(stripped) = trimmed.strip_suffix('\\') {
        if !continued && !trimmed.ends_with("\\\\") {
            return (stripped.trim_end().to_string(), true);
        }
    }
    (trimmed.to_string(), continued)
}

fn include_pattern(line: &str) -> Option<&str> {
    let mut words = line.splitn(2, [' ', '\t']);
    let keyword = words.next()?;
    matches!(
        keyword,
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
    .then(|| words.next().unwrap_or("").trim().trim_matches('"'))
}

fn is_definition(line: &str) -> bool {
    definition(line).is_some()
}

/// `$NAME=value` → (NAME, value).
fn definition(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('$')?;
    let eq = rest.find('=')?;
    let name = &rest[..eq];
    valid_name(name).then(|| (name, rest[eq + 1..].trim()))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parameter referred to at `text[start]` (a `$`): its name and where the reference ends.
fn reference(text: &str, start: usize) -> Option<(&str, usize)> {
    let rest = &text[start + 1..];
    if let Some(braced) = rest.strip_prefix('{') {
        let close = braced.find('}')?;
        let name = &braced[..close];
        return valid_name(name).then_some((name, start + 2 + close + 1));
    }
    let end = rest.find([' ', '\t', '\n']).unwrap_or(rest.len());
    let name = &rest[..end];
    valid_name(name).then_some((name, start + 1 + end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, id: &str) -> (Vec<String>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let lines = Reader::new(id, &mut diags).read_str("t.conf", text);
        (
            lines
                .into_iter()
                .map(|l| format!("{}:{}", l.at.line, l.text))
                .collect(),
            diags,
        )
    }

    #[test]
    fn comments_quotes_and_escapes() {
        let (lines, _) = read("a b # c\n! whole\nx \"q # kept\" ! gone\ny \\#1\n", "h");
        assert_eq!(lines, ["1:a b", "3:x \"q # kept\"", "4:y #1"]);
    }

    #[test]
    fn continuation_joins_lines_and_keeps_the_first_line_number() {
        let (lines, _) = read("real_server 1.2.3.4 \\\n  80 {\nz\n", "h");
        assert_eq!(lines, ["1:real_server 1.2.3.4 80 {", "3:z"]);
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@main router_id m\n@backup router_id b\n@^main peer 1\n@^backup peer 2\n";
        assert_eq!(read(text, "main").0, ["1:router_id m", "4:peer 2"]);
        assert_eq!(read(text, "backup").0, ["2:router_id b", "3:peer 1"]);
        assert_eq!(read(text, "other").0, ["3:peer 1", "4:peer 2"]);
    }

    #[test]
    fn parameters_substitute_recursively_at_use_time() {
        // The example of keepalived.conf(5).
        let text =
            "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n\
                    $ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n$UNDEF stays\n";
        assert_eq!(
            read(text, "h").0,
            ["3:10.2.0.100/32", "5:10.2.10.100/32", "6:$UNDEF stays"]
        );
    }

    #[test]
    fn multi_line_parameters_expand_to_lines_with_conditionals() {
        let text = "$INSTANCE= \\\nvrrp_instance VI_${NUM} { \\\n@high priority 130 \\\n@low priority 120 \\\n}\n$NUM=0\n$INSTANCE\n";
        assert_eq!(
            read(text, "high").0,
            ["7:vrrp_instance VI_0 {", "7:priority 130", "7:}"]
        );
    }

    #[test]
    fn a_parameter_naming_itself_is_an_error_not_a_hang() {
        let (lines, diags) = read("$A=x $A\n$A\n", "h");
        assert!(lines.is_empty());
        assert!(diags.has_errors(), "{:?}", diags.list);
    }

    #[test]
    fn includes_are_relative_to_the_including_file_and_sorted() {
        let dir = std::env::temp_dir().join(format!("fnat-ka-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("main.conf"),
            "first\ninclude conf.d/*.conf\nlast\n",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "from b\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "from a\ninclude ../loop.conf\n").unwrap();
        std::fs::write(dir.join("loop.conf"), "include conf.d/a.conf\n").unwrap();
        let mut diags = Diagnostics::default();
        let lines = Reader::new("h", &mut diags).read_file(&dir.join("main.conf"));
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts.first(), Some(&"first"));
        assert_eq!(texts.last(), Some(&"last"));
        assert!(texts.contains(&"from b"));
        // a.conf and loop.conf include each other: bounded, and an error says so.
        assert!(
            diags.list.iter().any(|d| d.message.contains("nested")),
            "{:?}",
            diags.list
        );
        let b = lines.iter().find(|l| l.text == "from b").unwrap();
        assert!(b.at.file.ends_with("conf.d/b.conf") && b.at.line == 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
