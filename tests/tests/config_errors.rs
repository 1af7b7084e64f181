//! A malformed config makes `fnatd run` exit 2 with a message naming the file and the key.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

const GOOD: &str = "[dataplane]\nworkers = 1\n\n[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\n\
addresses = [\"198.18.0.1/24\"]\n\n[[port]]\nname = \"b\"\ndevice = \"net_ring1\"\n\n\
[forward]\na = \"b\"\nb = \"a\"\n";

/// Runs `fnatd run` on `text` and returns (exit code, stderr).
fn run_config(text: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new("config");
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(bin("fnatd"));
    cmd.arg("run").arg("--config").arg(&path);
    let done = run_with_deadline(&mut cmd, Duration::from_secs(20));
    (done.code(), done.stderr, path.display().to_string())
}

fn assert_rejected(text: &str, expected: &[&str]) {
    let (code, stderr, path) = run_config(text);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&path),
        "the message names the file: {stderr}"
    );
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
}

#[test]
fn the_good_config_is_accepted_by_check() {
    let dir = TempDir::new("config-good");
    let path = dir.join("good.toml");
    std::fs::write(&path, GOOD).unwrap();
    let mut cmd = Command::new(bin("fnatd"));
    cmd.arg("check").arg("--config").arg(&path);
    let done = run_with_deadline(&mut cmd, Duration::from_secs(20));
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
}

#[test]
fn bad_toml_syntax() {
    assert_rejected(&GOOD.replace("workers = 1", "workers = "), &[":2:"]);
}

#[test]
fn unknown_key() {
    assert_rejected(
        &GOOD.replace("workers = 1", "workers = 1\nwrokers = 2"),
        &["wrokers", "unknown field"],
    );
}

#[test]
fn missing_port_device() {
    assert_rejected(
        &GOOD.replace("device = \"net_ring1\"\n", ""),
        &["port[1].device", "missing"],
    );
}

#[test]
fn invalid_address() {
    assert_rejected(
        &GOOD.replace("198.18.0.1/24", "198.18.0.999/24"),
        &["port[0].addresses[0]", "198.18.0.999"],
    );
}

#[test]
fn invalid_mac_and_unknown_forward_target() {
    assert_rejected(
        &GOOD.replace("name = \"b\"", "name = \"b\"\nmac = \"02:00\""),
        &["port[1].mac"],
    );
    assert_rejected(
        &GOOD.replace("b = \"a\"", "b = \"z\""),
        &["forward.b", "'z'"],
    );
}

#[test]
fn missing_file() {
    let mut cmd = Command::new(bin("fnatd"));
    cmd.args(["run", "--config", "/nonexistent/fnat.toml"]);
    let done = run_with_deadline(&mut cmd, Duration::from_secs(20));
    assert_eq!(done.code(), Some(2));
    assert!(
        done.stderr.contains("/nonexistent/fnat.toml"),
        "{}",
        done.stderr
    );
}
