//! Client allow/deny lists and the conn-rate cap from config file to daemon and back: the
//! config's lists, `fnatctl acl add|del|list`, DPVS's ipvsadm `-U/-V -k` and `-O/-Y -2`,
//! `--conn-rate`, `ipvsadm -S`, `fnatctl save` and the state file across a restart.

use fnat_tests::*;

fn acl_config(dir: &TempDir) -> std::path::PathBuf {
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

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
allow = ["198.18.0.0/24"]
deny = ["198.18.0.66"]
conn_rate = "100:200/24"
local_addresses = ["198.19.0.10"]
real = [ {{ address = "198.19.1.10", port = 80 }} ]

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

#[test]
fn client_lists_travel_through_fnatctl_ipvsadm_save_and_the_state_file() {
    let dir = TempDir::new("ctl-acl");
    let socket = dir.join("ctl.sock");
    let cfg = acl_config(&dir);
    let links = ipvsadm_dir(&dir);
    let svc = "tcp/198.18.0.100:80";

    let daemon = Daemon::start(&cfg, &socket, &[]);
    let listed = ok(fnatctl(&socket, &["acl", "list"]), "acl list");
    assert!(
        listed.contains("allow 1  deny 1  conn-rate 100:200/24"),
        "{listed}"
    );
    ok(
        fnatctl(
            &socket,
            &["acl", "add", svc, "deny", "198.18.0.77", "198.18.0.128/25"],
        ),
        "acl add",
    );
    ok(
        ipvsadm(
            &links,
            &socket,
            &["-O", "-t", "198.18.0.100:80", "-2", "198.18.5.0/24"],
        ),
        "-O",
    );
    ok(
        ipvsadm(
            &links,
            &socket,
            &["-V", "-t", "198.18.0.100:80", "-k", "198.18.0.66"],
        ),
        "-V",
    );
    // Mistakes are refused with the reason and change nothing.
    let again = fnatctl(&socket, &["acl", "add", svc, "deny", "198.18.0.77"]);
    assert_ne!(again.code(), Some(0));
    assert!(
        again.stderr.contains("already in the deny list"),
        "{}",
        again.stderr
    );
    let bad = ipvsadm(
        &links,
        &socket,
        &["-U", "-t", "198.18.0.100:80", "-k", "198.18.0.1/24"],
    );
    assert_ne!(bad.code(), Some(0));
    assert!(bad.stderr.contains("host bits"), "{}", bad.stderr);

    let saved = ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S");
    assert!(saved.contains("--conn-rate 100:200/24"), "{saved}");
    assert!(
        saved.contains("-O -t 198.18.0.100:80 -2 198.18.5.0/24"),
        "{saved}"
    );
    assert!(
        saved.contains("-U -t 198.18.0.100:80 -k 198.18.0.77"),
        "{saved}"
    );
    assert!(
        saved.contains("-U -t 198.18.0.100:80 -k 198.18.0.128/25"),
        "{saved}"
    );
    assert!(!saved.contains("198.18.0.66"), "{saved}");
    let toml = ok(fnatctl(&socket, &["save"]), "save");
    assert!(toml.contains("198.18.0.128/25"), "{toml}");
    let listed = ok(fnatctl(&socket, &["acl", "list", svc]), "acl list");
    daemon.stop();

    // The state file brings everything back.
    let daemon = Daemon::start(&cfg, &socket, &[]);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), saved);
    assert_eq!(
        ok(fnatctl(&socket, &["acl", "list", svc]), "acl list"),
        listed
    );
    // ipvsadm -R of the saved text onto a flushed daemon restores the same rules.
    ok(fnatctl(&socket, &["flush"]), "flush");
    let restored = run_with_input(
        std::process::Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &saved,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), saved);
    daemon.stop();
}
