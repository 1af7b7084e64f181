//! The house keeps its shape: the rule model (fnat-proto) and the control plane
//! (fnat-control) never link DPDK, so they are unit-tested and fuzzed without EAL; the fuzz
//! workspace reaches the config and the protocol through them, not through fnatd.

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
