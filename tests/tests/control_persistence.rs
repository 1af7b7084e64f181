//! Save and restore round trips (ipvsadm -S/-R, fnatctl save/restore), the state file across
//! a restart, and `--rules FILE` at start.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

fn setup(links: &std::path::Path, socket: &std::path::Path) {
    let steps: [&[&str]; 6] = [
        &["-A", "-t", "198.18.0.100:443", "-s", "wrr"],
        &[
            "-a",
            "-t",
            "198.18.0.100:443",
            "-r",
            "198.19.1.20:8443",
            "-b",
            "-w",
            "3",
        ],
        &[
            "-a",
            "-t",
            "198.18.0.100:443",
            "-r",
            "198.19.1.21:8443",
            "-b",
            "-w",
            "0",
        ],
        &[
            "-P",
            "-t",
            "198.18.0.100:443",
            "-z",
            "198.19.0.10",
            "-F",
            "lan",
        ],
        &["-A", "-u", "198.18.0.100:53", "-s", "rr"],
        &["-a", "-u", "198.18.0.100:53", "-r", "198.19.1.53", "-b"],
    ];
    for args in steps {
        let done = ipvsadm(links, socket, args);
        assert_eq!(done.code(), Some(0), "ipvsadm {args:?}: {}", done.stderr);
    }
}

#[test]
fn save_then_clear_then_restore_gives_the_same_rules() {
    let dir = TempDir::new("ctl-saverestore");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    setup(&links, &socket);
    let listed = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    let saved = ipvsadm(&links, &socket, &["-S", "-n"]).stdout;
    assert!(
        saved.contains("-P -t 198.18.0.100:443 -z 198.19.0.10 -F lan\n"),
        "{saved}"
    );

    assert_eq!(ipvsadm(&links, &socket, &["-C"]).code(), Some(0));
    assert_eq!(
        ipvsadm(&links, &socket, &["-Ln"]).stdout.lines().count(),
        3,
        "-C leaves only the header"
    );
    let restored = run_with_input(
        Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &saved,
        Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(ipvsadm(&links, &socket, &["-Ln"]).stdout, listed);
    assert_eq!(ipvsadm(&links, &socket, &["-S", "-n"]).stdout, saved);

    // A rules file that fails half-way restores nothing.
    let bad = format!("-C\n{saved}-a -t 198.18.0.100:443 -r 198.19.1.20:8443 -b\n");
    let refused = run_with_input(
        Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &bad,
        Duration::from_secs(30),
    );
    assert_eq!(refused.code(), Some(255));
    assert!(
        refused.stderr.contains("Destination already exists"),
        "{}",
        refused.stderr
    );
    assert_eq!(ipvsadm(&links, &socket, &["-Ln"]).stdout, listed);

    // Native TOML save → flush → restore.
    let toml_file = dir.join("rules.toml");
    let toml_path = toml_file.to_str().unwrap();
    assert_eq!(fnatctl(&socket, &["save", toml_path]).code(), Some(0));
    assert_eq!(fnatctl(&socket, &["flush"]).code(), Some(0));
    let done = fnatctl(&socket, &["restore", toml_path]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(ipvsadm(&links, &socket, &["-Ln"]).stdout, listed);
    let stdout_save = fnatctl(&socket, &["save"]).stdout;
    assert_eq!(stdout_save, std::fs::read_to_string(&toml_file).unwrap());
    daemon.stop();
}

#[test]
fn the_state_file_survives_a_restart() {
    let dir = TempDir::new("ctl-state");
    let socket = dir.join("ctl.sock");
    let state = dir.join("state.toml");
    let cfg = dir.join("fnat.toml");
    let text = std::fs::read_to_string(config("null-fnat.toml")).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}state_file = \"{}\"\n", state.display()),
    )
    .unwrap();
    let links = ipvsadm_dir(&dir);

    let daemon = Daemon::start(&cfg, &socket, &[]);
    setup(&links, &socket);
    assert_eq!(
        ipvsadm(&links, &socket, &["-D", "-t", "198.18.0.100:80"]).code(),
        Some(0)
    );
    assert_eq!(
        ipvsadm(&links, &socket, &["--set", "800", "100", "200"]).code(),
        Some(0)
    );
    let listed = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    assert!(state.exists());
    daemon.stop();
    assert!(!socket.exists(), "a clean stop removes the socket");

    let daemon = Daemon::start(&cfg, &socket, &[]);
    assert_eq!(ipvsadm(&links, &socket, &["-Ln"]).stdout, listed);
    assert_eq!(
        ipvsadm(&links, &socket, &["-L", "--timeout"]).stdout,
        "Timeout (tcp tcpfin udp): 800 100 200\n"
    );
    daemon.stop();
}

#[test]
fn a_second_fnatd_on_a_live_socket_is_refused_and_a_stale_socket_replaced() {
    let dir = TempDir::new("ctl-socket");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let second = run_with_deadline(
        Command::new(bin("fnatd"))
            .args(["run", "--config"])
            .arg(config("null-fnat.toml"))
            .arg("--socket")
            .arg(&socket),
        Duration::from_secs(30),
    );
    assert_ne!(second.code(), Some(0));
    assert!(second.stderr.contains("another fnatd"), "{}", second.stderr);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    // Killed hard, it leaves a stale socket; the next fnatd replaces it.
    signal(daemon.pid(), libc::SIGKILL);
    drop(daemon);
    assert!(socket.exists());
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    daemon.stop();
}

#[test]
fn rules_file_at_start_is_applied_after_the_config() {
    let dir = TempDir::new("ctl-rulesfile");
    let socket = dir.join("ctl.sock");
    let rules = dir.join("lvs.rules");
    std::fs::write(
        &rules,
        "-A -t 198.18.0.100:8080 -s rr\n-a -t 198.18.0.100:8080 -r 198.19.1.30:80 -b -w 4\n\
         -P -t 198.18.0.100:8080 -z 198.19.0.10\n",
    )
    .unwrap();
    let daemon = Daemon::start(
        &config("null-fnat.toml"),
        &socket,
        &["--rules", rules.to_str().unwrap()],
    );
    let links = ipvsadm_dir(&dir);
    let listed = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    assert!(listed.contains("TCP  198.18.0.100:80 rr\n"), "{listed}");
    assert!(listed.contains("TCP  198.18.0.100:8080 rr\n"), "{listed}");
    assert!(
        listed.contains("  -> 198.19.1.30:80               FullNat 4 "),
        "{listed}"
    );
    daemon.stop();
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s rr\n").unwrap();
    let refused = run_with_deadline(
        Command::new(bin("fnatd"))
            .args(["run", "--config"])
            .arg(config("null-fnat.toml"))
            .arg("--socket")
            .arg(&socket)
            .arg("--rules")
            .arg(&rules),
        Duration::from_secs(30),
    );
    assert_eq!(refused.code(), Some(2));
    assert!(
        refused.stderr.contains("Service already exists"),
        "{}",
        refused.stderr
    );
}
