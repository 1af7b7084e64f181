//! keepalived.conf as a source of services (`fnatd … --keepalived FILE`): the tutorial's
//! config runs through the one rule model (ipvsadm lists what keepalived said), keepalived's
//! warnings name file and line, what fnat cannot do yet is refused with the line, and
//! `reload` re-reads it: a good edit is applied, a broken one changes nothing.

use std::time::Duration;

use fnat_tests::*;

const SEED: &str = "keepalived-seed.conf";

fn fnatd_check(keepalived: &std::path::Path) -> Finished {
    run_with_deadline(
        std::process::Command::new(bin("fnatd"))
            .arg("check")
            .arg("--config")
            .arg(config("null-keepalived.toml"))
            .arg("--keepalived")
            .arg(keepalived),
        Duration::from_secs(20),
    )
}

#[test]
fn the_tutorial_keepalived_conf_runs_and_ipvsadm_lists_it() {
    let dir = TempDir::new("ka-seed");
    let socket = dir.join("ctl.sock");
    let seed = config(SEED);
    let daemon = Daemon::start(
        &config("null-keepalived.toml"),
        &socket,
        &["--keepalived", seed.to_str().unwrap()],
    );
    let links = ipvsadm_dir(&dir);
    let done = ipvsadm(&links, &socket, &["-Ln"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let listing = done.stdout;
    assert!(
        listing.contains("TCP  198.18.0.100:80 wrr persistent 60"),
        "{listing}"
    );
    for rs in ["198.19.1.10:80", "198.19.1.11:80"] {
        let row = listing
            .lines()
            .find(|l| l.contains(rs))
            .unwrap_or_else(|| panic!("{rs} missing:\n{listing}"));
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns[2..4], ["FullNat", "100"], "{row}");
    }
    let done = fnatctl(&socket, &["ipvsadm", "-S", "-n"]);
    assert!(
        done.stdout.contains("-A -t 198.18.0.100:80 -s wrr -p 60"),
        "{}",
        done.stdout
    );
    let stopped = daemon.stop();
    // keepalived's own habit: what is read but not applied is said, with file and line.
    let stderr = stopped.stderr;
    let shown = seed.display().to_string();
    assert!(
        stderr.contains(&format!("{shown}:17: warning: vrrp_instance: VRRP")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{shown}:46: warning: TCP_CHECK: health checks are not run yet"
        )),
        "{stderr}"
    );
}

#[test]
fn what_fnat_cannot_do_yet_is_refused_naming_file_and_line() {
    let dir = TempDir::new("ka-refuse");
    let seed = std::fs::read_to_string(config(SEED)).unwrap();
    let cases = [
        // DR to real servers behind a router: the one road refuses it (DR only changes the
        // Ethernet destination).
        (
            seed.replace("lb_kind FNAT", "lb_kind DR"),
            ":44: key `real_server`: tcp/198.18.0.100:80: real server 198.19.1.10:80 uses direct routing (-g, Route) but is not on a connected network",
        ),
        (
            seed.replace("198.19.1.11 80 {", "198.19.1.311 80 {"),
            ":54: key `real_server`: '198.19.1.311' is not an IP address",
        ),
        (
            seed.replace("laddr_group_name laddr_lan", "laddr_group_name nowhere"),
            ":36: key `laddr_group_name`: no local_address_group is named nowhere",
        ),
        (
            seed.replace("lb_algo wrr", "lb_algo twos"),
            ":36: key `lvs_sched`: unknown scheduler",
        ),
        (format!("{seed}\n}}\n"), "extra '}'"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(&format!("case{i}.conf"));
        std::fs::write(&path, text).unwrap();
        let done = fnatd_check(&path);
        assert_eq!(done.code(), Some(2), "case {i}: {}", done.stderr);
        assert!(
            done.stderr.contains(expected),
            "case {i}: expected {expected:?} in:\n{}",
            done.stderr
        );
        assert!(
            done.stderr.contains(&format!("case{i}.conf")),
            "names the file: {}",
            done.stderr
        );
    }
}

#[test]
fn reload_rereads_the_keepalived_conf_all_or_nothing() {
    let dir = TempDir::new("ka-reload");
    let socket = dir.join("ctl.sock");
    let ka = dir.join("keepalived.conf");
    let seed = std::fs::read_to_string(config(SEED)).unwrap();
    std::fs::write(&ka, &seed).unwrap();
    let _daemon = Daemon::start(
        &config("null-keepalived.toml"),
        &socket,
        &["--keepalived", ka.to_str().unwrap()],
    );
    let listing = || fnatctl(&socket, &["ipvsadm", "-Ln"]).stdout;
    let before = listing();

    std::fs::write(&ka, seed.replace("lb_kind FNAT", "lb_kind NOPE")).unwrap();
    let done = fnatctl(&socket, &["reload"]);
    assert_ne!(
        done.code(),
        Some(0),
        "a broken keepalived.conf must be refused"
    );
    assert!(
        done.stderr.contains("keepalived.conf:39: key `lb_kind`"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("unchanged"), "{}", done.stderr);
    assert_eq!(listing(), before);

    let edited = seed
        .replace("weight 100", "weight 7")
        .replace("lb_algo wrr", "lb_algo rr");
    std::fs::write(&ka, edited).unwrap();
    let done = fnatctl(&socket, &["reload"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let after = listing();
    assert!(
        after.contains("TCP  198.18.0.100:80 rr persistent 60"),
        "{after}"
    );
    assert_eq!(
        after.matches(" 7 ").count(),
        2,
        "both weights now 7:\n{after}"
    );
}

#[test]
fn keepalived_nat_and_tunnel_methods_reach_the_rules() {
    let dir = TempDir::new("ka-methods");
    let socket = dir.join("ctl.sock");
    let seed = std::fs::read_to_string(config(SEED)).unwrap();
    for (kind, forward, save) in [
        ("NAT", "Masq", "-m -w 100\n"),
        ("TUN", "Tunnel", "-i -w 100 --tun-type ipip\n"),
        (
            "TUN type gue port 6080 csum",
            "Tunnel",
            "-i -w 100 --tun-type gue --tun-port 6080 --tun-csum\n",
        ),
        (
            "TUN type gre",
            "Tunnel",
            "-i -w 100 --tun-type gre --tun-nocsum\n",
        ),
    ] {
        let ka = dir.join("keepalived.conf");
        std::fs::write(
            &ka,
            seed.replace("lb_kind FNAT", &format!("lb_kind {kind}")),
        )
        .unwrap();
        let daemon = Daemon::start(
            &config("null-keepalived.toml"),
            &socket,
            &["--keepalived", ka.to_str().unwrap()],
        );
        let links = ipvsadm_dir(&dir);
        let listing = ipvsadm(&links, &socket, &["-Ln"]).stdout;
        let row = listing
            .lines()
            .find(|l| l.contains("198.19.1.10:80"))
            .unwrap_or_else(|| panic!("{kind}: missing:\n{listing}"));
        assert_eq!(
            row.split_whitespace().nth(2),
            Some(forward),
            "{kind}: {row}"
        );
        let saved = ipvsadm(&links, &socket, &["-S", "-n"]).stdout;
        assert!(
            saved.contains(&format!("-a -t 198.18.0.100:80 -r 198.19.1.10:80 {save}")),
            "{kind}: {saved}"
        );
        daemon.stop();
    }
}
