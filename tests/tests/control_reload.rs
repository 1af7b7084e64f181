//! Config reload (`fnatctl reload` and SIGHUP): a valid file replaces the services, a broken
//! one changes nothing and says why. And a state file is never left corrupt, however hard the
//! daemon is killed while rules change.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnat_tests::*;

/// null-fnat.toml with a state file (when given), written to `dir`.
fn write_config(dir: &TempDir, state_file: Option<&Path>) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(config("null-fnat.toml")).unwrap();
    if let Some(state) = state_file {
        assert!(
            text.contains("\n[control]\n"),
            "null-fnat.toml has a [control] table"
        );
        let with_state = format!("\n[control]\nstate_file = \"{}\"\n", state.display());
        text = text.replace("\n[control]\n", &with_state);
    }
    let path = dir.join("fnat.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn listing(socket: &Path) -> String {
    let done = fnatctl(socket, &["ipvsadm", "-Ln"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    done.stdout
}

#[test]
fn reload_applies_a_valid_config_and_a_broken_one_changes_nothing() {
    let dir = TempDir::new("ctl-reload");
    let cfg = write_config(&dir, None);
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&cfg, &socket, &[]);
    let before = listing(&socket);
    assert!(before.contains("198.18.0.100:80"), "{before}");

    // A broken file: rejected with the config error, nothing changes.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("workers = 2", "workers = 2\nwrokers = 3"),
    )
    .unwrap();
    let done = fnatctl(&socket, &["reload"]);
    assert_ne!(done.code(), Some(0), "a broken config must be refused");
    assert!(
        done.stderr.contains(&cfg.display().to_string()),
        "names the file: {}",
        done.stderr
    );
    assert!(
        done.stderr.contains("wrokers"),
        "names the key: {}",
        done.stderr
    );
    assert!(done.stderr.contains("unchanged"), "{}", done.stderr);
    assert_eq!(listing(&socket), before);
    // The same through SIGHUP: the daemon says why and keeps its rules.
    signal(daemon.pid(), libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listing(&socket), before);

    // A valid file with one more service and another weight: applied as one change.
    let extra = "\n[[service]]\nvip = \"198.18.0.100\"\nport = 443\nprotocol = \"tcp\"\nscheduler = \"rr\"\n\
                 local_addresses = [\"198.19.0.10\"]\nreal = [ { address = \"198.19.1.10\", port = 443 } ]\n";
    std::fs::write(&cfg, format!("{good}{extra}")).unwrap();
    let done = fnatctl(&socket, &["reload"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let after = listing(&socket);
    assert!(after.contains("198.18.0.100:443"), "{after}");
    assert!(after.contains("198.18.0.100:80"), "{after}");

    // SIGHUP with a valid file: back to the original services.
    std::fs::write(&cfg, &good).unwrap();
    signal(daemon.pid(), libc::SIGHUP);
    let start = Instant::now();
    while listing(&socket) != before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload:\n{}",
            listing(&socket)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = daemon.stop();
    assert!(stopped.stderr.contains("SIGHUP"), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("wrokers"),
        "SIGHUP says why it refused: {}",
        stopped.stderr
    );
    assert!(
        stopped.stderr.contains("config reloaded"),
        "{}",
        stopped.stderr
    );
}

/// Rules change as fast as a client can send them while the daemon is SIGKILLed at varying
/// moments; every time, the next daemon starts from the state file (a corrupt one would stop
/// it) with a rule set that lists.
#[test]
fn sigkill_during_changes_never_corrupts_the_state_file() {
    let dir = TempDir::new("ctl-sigkill");
    let state = dir.join("state.toml");
    let cfg = write_config(&dir, Some(&state));
    let socket = dir.join("ctl.sock");
    for round in 0..8u64 {
        let daemon = Daemon::start(&cfg, &socket, &[]);
        assert!(listing(&socket).contains("198.18.0.100:80"));
        // A writer adding and removing reals through the socket, until the daemon dies.
        let writer_socket = socket.clone();
        // The kill is timed from the first change that went through, not from the start: on
        // a loaded machine the first fnatctl can take longer than the kill's delay.
        let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            let mut applied = 0u32;
            for i in 0..10_000u32 {
                // This round's own reals: added once, then their weights edited.
                let real = format!("198.19.{}.{}:80", 2 + round, 1 + i % 250);
                let weight = (i % 7).to_string();
                let args: Vec<&str> = if i < 250 {
                    vec![
                        "ipvsadm",
                        "-a",
                        "-t",
                        "198.18.0.100:80",
                        "-r",
                        &real,
                        "-b",
                        "-w",
                        "1",
                    ]
                } else {
                    vec![
                        "ipvsadm",
                        "-e",
                        "-t",
                        "198.18.0.100:80",
                        "-r",
                        &real,
                        "-b",
                        "-w",
                        &weight,
                    ]
                };
                let done = Command::new(bin("fnatctl"))
                    .arg("--socket")
                    .arg(&writer_socket)
                    .args(&args)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                if !done.status.success() {
                    break; // the daemon is gone
                }
                applied += 1;
                if applied == 1 {
                    let _ = first_tx.send(());
                }
            }
            applied
        });
        // No first change within a minute is a failure the assertion below reports.
        let _ = first_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50 + 97 * round));
        signal(daemon.pid(), libc::SIGKILL);
        drop(daemon);
        let applied = writer.join().unwrap();
        assert!(
            applied > 0,
            "round {round}: no change went through before the kill"
        );
        assert!(
            state.exists(),
            "round {round}: changes were made but no state file exists"
        );
    }
    // The last state file starts a daemon that lists the service with the reals the last
    // round added (so the state file, not the config, is what it started from).
    let daemon = Daemon::start(&cfg, &socket, &[]);
    let last = listing(&socket);
    assert!(last.contains("198.18.0.100:80"), "{last}");
    assert!(last.contains("198.19.9.1:80"), "{last}");
    daemon.stop();
}
