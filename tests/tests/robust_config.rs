//! Hostile config files found by fuzzing (fuzz, target `config_parse`): fnatd
//! must reject them with exit 2 and a message that names the file, the line and a reason.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

fn check(dir: &TempDir, name: &str, text: &[u8]) -> Finished {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(bin("fnatd"));
    cmd.arg("check").arg("--config").arg(&path);
    run_with_deadline(&mut cmd, Duration::from_secs(30))
}

#[test]
fn a_nul_byte_in_a_comment_is_rejected_with_a_reason() {
    // Found by the fuzzer: the TOML error for it has an empty message, and fnatd said only
    // "file:2: " without a reason.
    let dir = TempDir::new("config-nul");
    let run = check(
        &dir,
        "nul.toml",
        b"# a comment\n# with a \0 NUL\n[dataplane]\nworkers = 1\n",
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr);
    let msg = run.stderr.trim();
    assert!(msg.contains("nul.toml:2"), "names the file and line: {msg}");
    let reason = msg.rsplit("nul.toml:2:").next().unwrap_or("").trim();
    assert!(!reason.is_empty(), "gives a reason: {msg}");
}

#[test]
fn control_characters_and_invalid_utf8_are_rejected_not_fatal() {
    let dir = TempDir::new("config-garbage");
    let cases: [(&str, &[u8]); 4] = [
        ("ctl.toml", b"[dataplane]\nworkers = 1 # \x01\n"),
        ("utf8.toml", b"[dataplane]\nworkers = \"\xc3\x28\"\n"),
        ("deep.toml", &[b'['; 5000]),
        ("empty-key.toml", b"[dataplane]\n\"\" = 1\n"),
    ];
    for (name, text) in cases {
        let run = check(&dir, name, text);
        assert_eq!(run.code(), Some(2), "{name}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(name), "{name}: {}", run.stderr);
    }
}
