//! The house keeps its shape: the rule model (fnat-proto) and the control plane
//! (fnat-control) never link DPDK, so they are unit-tested and fuzzed without EAL; the fuzz
//! workspace reaches the config and the protocol through them, not through fnatd. `unsafe`
//! stays where the FFI is: every other crate forbids it in all its targets.

use std::process::Command;

use fnat_tests::root;

#[test]
fn the_model_and_the_control_plane_do_not_link_dpdk() {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    for krate in ["fnat-proto", "fnat-control"] {
        // Every kind of dependency, dev-dependencies included.
        let out = Command::new(cargo)
            .current_dir(root())
            .args(["tree", "--offline", "-p", krate, "--prefix", "none"])
            .output()
            .expect("running cargo tree");
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo tree -p {krate}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(tree.contains(krate), "{tree}");
        for linked in ["dpdk-bindings", "fnatd "] {
            assert!(
                !tree.lines().any(|l| l.starts_with(linked)),
                "{krate} depends on {linked}:\n{tree}"
            );
        }
    }
}

#[test]
fn the_fuzz_targets_do_not_link_dpdk() {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest.lines().filter(|l| l.contains("path = ")).collect();
    assert!(
        deps.iter().any(|l| l.starts_with("fnat-control ")),
        "{deps:?}"
    );
    for l in &deps {
        assert!(
            !l.starts_with("fnatd ") && !l.starts_with("dpdk-bindings "),
            "the fuzz workspace links DPDK through: {l}"
        );
    }
}

/// What a manifest's `[lints]` say about `unsafe`: (`unsafe_code` level, clippy's
/// `undocumented_unsafe_blocks` level).
fn unsafe_lints(manifest: &std::path::Path) -> (Option<String>, Option<String>) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let level = |tool: &str, lint: &str| {
        let v = doc.get("lints")?.get(tool)?.get(lint)?;
        // `lint = "deny"` or `lint = { level = "deny", ... }`.
        v.as_str()
            .or_else(|| v.get("level")?.as_str())
            .map(str::to_owned)
    };
    (
        level("rust", "unsafe_code"),
        level("clippy", "undocumented_unsafe_blocks"),
    )
}

#[test]
fn every_crate_forbids_unsafe_or_documents_each_block() {
    let root = root();
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    let mut crates: Vec<String> = members
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    crates.push("fuzz".into());
    for krate in &crates {
        let (unsafe_code, undocumented) = unsafe_lints(&root.join(krate).join("Cargo.toml"));
        if krate == "dpdk-bindings" {
            // The one crate with FFI: each `unsafe` block says why it is sound.
            assert_eq!(undocumented.as_deref(), Some("deny"), "{krate}");
        } else {
            // `[lints]` cover every target: library, binaries, tests, examples.
            assert_eq!(unsafe_code.as_deref(), Some("forbid"), "{krate}");
        }
    }
}
