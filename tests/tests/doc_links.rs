//! Every link in the repository's Markdown (README.md, docs/, and every other tracked .md)
//! resolves to a file or directory inside the repository: no web links, no `../shared`.

use std::path::{Path, PathBuf};

use fnat_tests::*;

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Targets of `[text](target)` links (inline code spans skipped).
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Drop inline code spans.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_doc_link_resolves_inside_the_repository() {
    let repo = root().canonicalize().expect("repo root");
    let mut files = Vec::new();
    markdown_files(&repo, &mut files);
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("README.md")));
    assert!(files.iter().any(|f| f.ends_with("docs/configuration.md")));
    let mut bad = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read md");
        let shown = file
            .strip_prefix(&repo)
            .unwrap_or(file)
            .display()
            .to_string();
        if text.contains("../shared") {
            bad.push(format!(
                "{shown}: mentions ../shared (outside the repository)"
            ));
        }
        for target in links(&text) {
            checked += 1;
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() {
                continue; // an anchor in the same page
            }
            if path.contains("://") || path.starts_with("mailto:") {
                bad.push(format!("{shown}: link outside the repository: {target}"));
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            match resolved.canonicalize() {
                Ok(p) if p.starts_with(&repo) => {}
                Ok(p) => bad.push(format!(
                    "{shown}: {target} leaves the repository ({})",
                    p.display()
                )),
                Err(_) => bad.push(format!("{shown}: {target} does not exist")),
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: is the parser broken?"
    );
    assert!(bad.is_empty(), "broken doc links:\n{}", bad.join("\n"));
}

#[test]
fn the_link_parser_sees_links_and_skips_code() {
    let text = "see [a](docs/a.md) and `[b](x)`\n```\n[c](y)\n```\n[d](e.md#f)";
    assert_eq!(
        links(text),
        vec!["docs/a.md".to_string(), "e.md#f".to_string()]
    );
}
