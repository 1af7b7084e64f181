//! Firewall-mark services from config file to workers and back: a `[[port_group]]` service
//! lists as `FWM  7`, reloads, takes ipvsadm's `-f 7` commands, keeps every attribute in
//! `save` and the state file, and fnatd starts again from its own state file after changes.

use std::path::Path;

use fnat_tests::*;

/// The two net_null ports of `configs/null-fnat.toml` with a port-group service: mark 7 on
/// 198.18.0.100 ports 80 and 443, a real server on port 0 with a weight above ipvsadm's own
/// limit, `expire_on_removal`; and a state file.
fn mark_config(dir: &TempDir) -> std::path::PathBuf {
    let state = dir.join("state.toml");
    let text = format!(
        r#"
[dataplane]
workers = 2
rx_desc = 512
tx_desc = 512

[[port]]
name = "wan"
device = "net_null0"
addresses = ["198.18.0.1/24", "198.18.0.100/32"]

[[port]]
name = "lan"
device = "net_null1"
addresses = ["198.19.0.1/24", "198.19.0.10/32"]

[[port_group]]
name = "web"
mark = 7
protocol = "tcp"
vip = "198.18.0.100"
ports = [80, 443]

[[service]]
fwmark = 7
persistent = true
expire_on_removal = true
local_addresses = ["198.19.0.10"]
real = [ {{ address = "198.19.1.10", port = 0, weight = 100000 }} ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"
via = "198.19.0.254"

[[neighbour]]
address = "198.19.0.254"
mac = "02:00:00:00:01:fe"
port = "lan"

[control]
state_file = "{}"
"#,
        state.display()
    );
    let cfg = dir.join("fnat.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// One real-server row of `-Ln` (ipvsadm's widths).
fn row(name: &str, weight: u32) -> String {
    format!(
        "  -> {name:<28} {:<7} {weight:<6} {:<10} {:<10}\n",
        "FullNat", 0, 0
    )
}

fn ok(done: Finished, what: &str) -> String {
    assert_eq!(
        done.code(),
        Some(0),
        "{what}: {}{}",
        done.stdout,
        done.stderr
    );
    done.stdout
}

const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  \
-> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

#[test]
fn a_port_group_service_lists_reloads_edits_saves_and_restarts() {
    let dir = TempDir::new("ctl-fwmark");
    let socket = dir.join("ctl.sock");
    let cfg = mark_config(&dir);
    let links = ipvsadm_dir(&dir);

    let daemon = Daemon::start(&cfg, &socket, &[]);
    let listed = ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln");
    assert_eq!(
        listed,
        format!(
            "{HEADER}FWM  7 wlc persistent 360\n{}",
            row("198.19.1.10:0", 100000)
        )
    );
    let reloaded = fnatctl(&socket, &["reload"]);
    assert_eq!(reloaded.code(), Some(0), "{}", reloaded.stderr);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln"), listed);

    ok(
        ipvsadm(
            &links,
            &socket,
            &["-a", "-f", "7", "-r", "198.19.1.11:0", "-b"],
        ),
        "-a -f 7",
    );
    let listed = ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln");
    assert!(listed.contains(&row("198.19.1.11:0", 1)), "{listed}");

    let saved = ok(fnatctl(&socket, &["save"]), "save");
    assert!(saved.contains("443"), "save keeps port 443:\n{saved}");
    assert!(
        saved.contains("expire_on_removal = true"),
        "save keeps expire_on_removal:\n{saved}"
    );
    let state = std::fs::read_to_string(dir.join("state.toml")).unwrap();
    let journal = std::fs::read_to_string(dir.join("state.toml.journal")).unwrap_or_default();
    let held = format!("{state}{journal}");
    assert!(held.contains("443"), "state file keeps port 443:\n{held}");
    assert!(
        held.contains("expire_on_removal"),
        "state file keeps expire_on_removal:\n{held}"
    );

    let before = ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S");
    daemon.stop();

    let daemon = Daemon::start(&cfg, &socket, &[]);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), before);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln"), listed);
    assert_eq!(ok(fnatctl(&socket, &["save"]), "save"), saved);
    // And the config it started with still reloads.
    let reloaded = fnatctl(&socket, &["reload"]);
    assert_eq!(reloaded.code(), Some(0), "{}", reloaded.stderr);
    daemon.stop();
}

fn run_lines(links: &Path, socket: &Path, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let done = match words[0] {
            "ipvsadm" => ipvsadm(links, socket, &words[1..]),
            "fnatctl" => fnatctl(socket, &words[1..]),
            other => panic!("unknown command {other}"),
        };
        assert_eq!(done.code(), Some(0), "{line}: {}", done.stderr);
    }
}

/// The LVS tutorial's firewall-mark steps (seed 001, section 9.3: `-g` there, `-b` here;
/// 192.168.0.0/24 mapped into 198.19.1.0/24, the VIP to 198.18.0.100), after the mark is
/// defined with `fnatctl mark add` instead of iptables.
#[test]
fn the_tutorial_firewall_mark_commands_run_unchanged() {
    let dir = TempDir::new("ctl-fwmark-tutorial");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    run_lines(
        &links,
        &socket,
        "ipvsadm -C
         fnatctl mark add 66 tcp 198.18.0.100 80,443
         ipvsadm -A -f 66 -s rr
         ipvsadm -a -f 66 -r 198.19.1.10 -b
         ipvsadm -a -f 66 -r 198.19.1.20 -b",
    );
    assert_eq!(
        ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln"),
        format!(
            "{HEADER}FWM  66 rr\n{}{}",
            row("198.19.1.10:0", 1),
            row("198.19.1.20:0", 1)
        )
    );
    let listed = ok(fnatctl(&socket, &["mark", "list"]), "mark list");
    assert!(listed.contains("66"), "{listed}");
    assert!(listed.contains("80,443"), "{listed}");

    // Every ipvsadm command takes -f as LVS does.
    run_lines(
        &links,
        &socket,
        "ipvsadm -E -f 66 -s wrr -p 600
         ipvsadm -e -f 66 -r 198.19.1.20 -b -w 3
         ipvsadm -Z -f 66
         ipvsadm -d -f 66 -r 198.19.1.10
         fnatctl mark add 67 udp 198.18.0.100 5000-5002",
    );
    // One service: ipvsadm leaves the version line out.
    let (_, columns) = HEADER.split_once('\n').unwrap();
    assert_eq!(
        ok(ipvsadm(&links, &socket, &["-L", "-n", "-f", "66"]), "-L -f"),
        format!(
            "{columns}FWM  66 wrr persistent 600\n{}",
            row("198.19.1.20:0", 3)
        )
    );
    // -S saves the marks, so -C then -R gives everything back.
    let saved = ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S");
    assert!(
        saved.starts_with(
            "--add-mark 66 tcp 198.18.0.100 80,443\n--add-mark 67 udp 198.18.0.100 5000-5002\n"
        ),
        "{saved}"
    );
    let listed = ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln");
    run_lines(&links, &socket, "ipvsadm -C");
    assert_eq!(
        ok(fnatctl(&socket, &["mark", "list"]), "mark list")
            .lines()
            .count(),
        1
    );
    let restored = run_with_input(
        std::process::Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &saved,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln"), listed);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), saved);

    // A mark in use cannot go; once its service is gone, it can.
    let refused = fnatctl(&socket, &["mark", "del", "66"]);
    assert_ne!(refused.code(), Some(0));
    assert!(
        refused
            .stderr
            .contains("firewall mark 66 is in use by service fwmark/66"),
        "{}",
        refused.stderr
    );
    run_lines(
        &links,
        &socket,
        "ipvsadm -D -f 66
         fnatctl mark del 66",
    );
    let marks = ok(fnatctl(&socket, &["mark", "list"]), "mark list");
    assert!(
        !marks.contains("80,443") && marks.contains("5000-5002"),
        "{marks}"
    );
    let undefined = ipvsadm(&links, &socket, &["-A", "-f", "66", "-s", "rr"]);
    assert_eq!(undefined.code(), Some(255), "{}", undefined.stderr);
    assert!(
        undefined.stderr.contains("firewall mark 66 is not defined"),
        "{}",
        undefined.stderr
    );
    daemon.stop();
}
