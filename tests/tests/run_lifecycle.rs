//! `fnatd run` on virtual devices: it forwards, stops cleanly on SIGTERM/SIGINT with exit 0,
//! prints its statistics, and leaves nothing in /var/run/dpdk.

use std::process::{Command, Stdio};
use std::time::Duration;

use fnat_tests::*;

fn run_then_signal(config_path: &std::path::Path, sig: i32) -> Finished {
    let before = dpdk_runtime_entries();
    // A control socket of its own: the default one would be shared by tests run in parallel
    // (and by an fnatd already running on this machine), and the second would be refused.
    let sock_dir = TempDir::new("run-sock");
    let child = Command::new(bin("fnatd"))
        .arg("run")
        .arg("--config")
        .arg(config_path)
        .arg("--socket")
        .arg(sock_dir.join("ctl.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fnatd");
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), sig);
    let done = wait_with_deadline(child, Duration::from_secs(20));
    assert_eq!(
        done.code(),
        Some(0),
        "stderr:\n{}\nstdout:\n{}",
        done.stderr,
        done.stdout
    );
    assert_eq!(
        dpdk_runtime_entries(),
        before,
        "fnatd left files in /var/run/dpdk"
    );
    done
}

/// net_null ports produce frames endlessly: both workers forward them until SIGTERM.
#[test]
fn two_workers_on_null_ports_forward_and_stop_on_sigterm() {
    let done = run_then_signal(&config("null.toml"), libc::SIGTERM);
    let (rx_a, tx_a) = port_counts(&done.stdout, 0);
    let (rx_b, tx_b) = port_counts(&done.stdout, 1);
    assert!(
        rx_a > 1000 && rx_b > 1000,
        "ports received too little:\n{}",
        done.stdout
    );
    assert!(tx_a > 0 && tx_b > 0, "nothing forwarded:\n{}", done.stdout);
    assert!(done.stdout.contains("accounted: RX"), "{}", done.stdout);
    assert!(
        !done.stdout.contains("!="),
        "accounting must balance:\n{}",
        done.stdout
    );
}

/// Two workers, each with its own queue on net_ring ports (idle: nothing sends), stop on SIGINT.
#[test]
fn two_workers_on_ring_ports_stop_on_sigint() {
    let dir = TempDir::new("run-ring");
    let cfg = dir.join("ring.toml");
    std::fs::write(
        &cfg,
        "[dataplane]\nworkers = 2\n\n[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\n\n\
         [[port]]\nname = \"b\"\ndevice = \"net_ring1\"\n\n[forward]\na = \"b\"\nb = \"a\"\n",
    )
    .unwrap();
    let done = run_then_signal(&cfg, libc::SIGINT);
    assert_eq!(port_counts(&done.stdout, 0), (0, 0), "{}", done.stdout);
    assert!(
        done.stdout.contains(
            "accounted: RX 0 + originated 0 = forwarded 0 + dropped 0 + consumed 0 + held 0"
        ),
        "{}",
        done.stdout
    );
}
