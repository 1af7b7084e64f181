//! `fnatctl export-keepalived`: the live rules written as a keepalived.conf that fnatd reads
//! back as the same services (interfaces in it name fnatd ports); what keepalived.conf
//! cannot say is refused naming the rule and the setting.

use std::time::Duration;

use fnat_tests::*;

/// keepalived.conf exercising what the export writes: TCP and UDP, port 0, persistence with
/// granularity, scheduler flags, weights and thresholds, DPVS's
/// local_address_group with fnatd port names; ipvsadm timeouts set at run time.
const KEEPALIVED: &str = r#"
local_address_group lips {
    198.19.0.10 lan
    198.19.0.11 lan
}
virtual_server 198.18.0.100 80 {
    lb_algo wrr
    lb_kind FNAT
    protocol TCP
    persistence_timeout 60
    persistence_granularity 255.255.255.0
    laddr_group_name lips
    real_server 198.19.1.10 8080 {
        weight 3
        uthreshold 100
        lthreshold 50
    }
    real_server 198.19.1.11 8080 {
        weight 0
    }
}
virtual_server 198.18.0.100 53 {
    lb_algo sh
    sh-port
    lb_kind FNAT
    protocol UDP
    laddr_group_name lips
    real_server 198.19.1.10 53 {
        weight 1
    }
}
virtual_server 198.18.0.101 0 {
    lb_algo rr
    lb_kind FNAT
    persistence_timeout 300
    protocol TCP
    laddr_group_name lips
    real_server 198.19.1.12 0 {
        weight 2
    }
}
"#;

fn saved(socket: &std::path::Path) -> String {
    let done = fnatctl(socket, &["save"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    done.stdout
}

#[test]
fn exported_keepalived_conf_reads_back_as_the_same_rules() {
    let dir = TempDir::new("ka-export");
    let socket = dir.join("ctl.sock");
    let original = dir.join("keepalived.conf");
    std::fs::write(&original, KEEPALIVED).unwrap();
    let exported = dir.join("exported.conf");

    let daemon = Daemon::start(
        &config("null-keepalived.toml"),
        &socket,
        &["--keepalived", original.to_str().unwrap()],
    );
    // ipvsadm's timeouts set at run time are keepalived's lvs_timeouts.
    let done = fnatctl(&socket, &["timeout", "set", "--tcp", "100", "--udp", "30"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let before = saved(&socket);
    assert!(before.contains("198.19.1.12"), "{before}");
    let done = fnatctl(&socket, &["export-keepalived", exported.to_str().unwrap()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    // Standard output gets the same text.
    let shown = fnatctl(&socket, &["export-keepalived"]);
    assert_eq!(shown.stdout, std::fs::read_to_string(&exported).unwrap());
    assert!(
        shown.stdout.contains("lvs_timeouts tcp 100 udp 30"),
        "{}",
        shown.stdout
    );
    daemon.stop();

    let daemon = Daemon::start(
        &config("null-keepalived.toml"),
        &socket,
        &["--keepalived", exported.to_str().unwrap()],
    );
    assert_eq!(saved(&socket), before, "exported:\n{}", shown.stdout);

    // Something keepalived.conf cannot carry: refused, naming it; nothing written.
    let done = fnatctl(
        &socket,
        &[
            "service",
            "edit",
            "tcp/198.18.0.100:80",
            "--expire-on-removal",
        ],
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let refused = dir.join("refused.conf");
    let done = run_with_deadline(
        std::process::Command::new(bin("fnatctl"))
            .arg("--socket")
            .arg(&socket)
            .args(["export-keepalived", refused.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    assert_ne!(done.code(), Some(0));
    assert!(
        done.stderr
            .contains("tcp/198.18.0.100:80: expire_on_removal cannot be written"),
        "{}",
        done.stderr
    );
    assert!(!refused.exists());
    daemon.stop();
}

/// What the engine cannot run yet (here one-packet scheduling) is refused with the
/// keepalived.conf line of its virtual server, exit 2, like every other config error.
#[test]
fn engine_refusals_name_the_keepalived_line() {
    let dir = TempDir::new("ka-engine-refusal");
    let path = dir.join("ops.conf");
    std::fs::write(
        &path,
        "virtual_server 198.18.0.100 53 {\n    lb_algo rr\n    lb_kind FNAT\n    protocol UDP\n    ops\n    real_server 198.19.1.10 53 {\n        weight 1\n    }\n}\n",
    )
    .unwrap();
    let done = run_with_deadline(
        std::process::Command::new(bin("fnatd"))
            .arg("check")
            .arg("--config")
            .arg(config("null-keepalived.toml"))
            .arg("--keepalived")
            .arg(&path),
        Duration::from_secs(20),
    );
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains(&format!(
            "{}:1: key `virtual_server`: udp/198.18.0.100:53: one-packet scheduling",
            path.display()
        )),
        "{}",
        done.stderr
    );
}

/// `global_defs { lvs_timeouts … }` mistakes name the file and line, exit 2.
#[test]
fn lvs_timeouts_mistakes_name_the_line() {
    let dir = TempDir::new("ka-lvs-timeouts");
    for (i, (line, expected)) in [
        (
            "lvs_timeouts tcp 0",
            ":2: key `lvs_timeouts`: timeout tcp must be 1 to",
        ),
        (
            "lvs_timeouts tcp soon",
            ":2: key `lvs_timeouts`: 'soon' is not a number",
        ),
        (
            "lvs_timeouts sctp 5",
            ":2: key `lvs_timeouts`: 'sctp' is not tcp, tcpfin or udp",
        ),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(&format!("t{i}.conf"));
        std::fs::write(&path, format!("global_defs {{\n    {line}\n}}\n")).unwrap();
        let done = run_with_deadline(
            std::process::Command::new(bin("fnatd"))
                .arg("check")
                .arg("--config")
                .arg(config("null-keepalived.toml"))
                .arg("--keepalived")
                .arg(&path),
            Duration::from_secs(20),
        );
        assert_eq!(done.code(), Some(2), "{line}: {}", done.stderr);
        assert!(
            done.stderr
                .contains(&format!("{}{expected}", path.display())),
            "{line}: {}",
            done.stderr
        );
    }
}

/// A refusal about one real server names that real server's line.
#[test]
fn real_server_refusals_name_the_real_servers_line() {
    let dir = TempDir::new("ka-real-line");
    let path = dir.join("dup.conf");
    std::fs::write(
        &path,
        "virtual_server 198.18.0.100 80 {\n    lb_algo rr\n    lb_kind FNAT\n    real_server 198.19.1.10 80 {\n        weight 1\n    }\n    real_server 198.19.1.10 80 {\n        weight 2\n    }\n}\n",
    )
    .unwrap();
    let done = run_with_deadline(
        std::process::Command::new(bin("fnatd"))
            .arg("check")
            .arg("--config")
            .arg(config("null-keepalived.toml"))
            .arg("--keepalived")
            .arg(&path),
        Duration::from_secs(20),
    );
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("{}:7: key `real_server`:", path.display())),
        "{}",
        done.stderr
    );
}
