//! The Debian package on this machine: install, start fnatd.service with the shipped null
//! config (through systemctl when systemd is PID 1, else the unit's commands run as systemd
//! runs them, with NOTIFY_SOCKET), `ipvsadm -Ln`, metrics, reload, stop, purge, nothing left
//! behind; a real ipvsadm survives. The steps are packaging/test-deb.sh; this runs it.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

#[test]
fn package_installs_runs_and_purges_cleanly() {
    // The package is built from the binaries the tests run (debug profile).
    for b in ["fnatd", "fnatctl"] {
        assert!(
            bin(b).exists(),
            "{} missing: cargo build --bins",
            bin(b).display()
        );
    }
    let done = run_with_deadline(
        Command::new("bash")
            .arg(root().join("packaging/test-deb.sh"))
            .args(["--profile", "debug"]),
        Duration::from_secs(300),
    );
    assert_eq!(
        done.code(),
        Some(0),
        "packaging/test-deb.sh:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    assert!(done.stdout.contains("test-deb: OK"), "{}", done.stdout);
}
