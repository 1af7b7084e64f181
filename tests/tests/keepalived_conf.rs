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
    // Its own network namespace: the seed's real servers are probed, and nothing leaves.
    let daemon = Daemon::start_isolated(
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
    // Both real servers are checked with the seed's TCP_CHECK (nothing answers in this
    // namespace: the first probe fails, and retry 3 keeps them in until the fourth).
    let start = std::time::Instant::now();
    let checkers = loop {
        let done = fnatctl(&socket, &["--json", "health"]);
        assert_eq!(done.code(), Some(0), "{}", done.stderr);
        let v: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
        let checkers = v["checkers"].as_array().cloned().unwrap_or_default();
        if checkers.len() == 2 && checkers.iter().all(|c| c["last_result"] == "failure") {
            break checkers;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "both checkers ran: {}",
            done.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let reals: Vec<&str> = checkers
        .iter()
        .map(|c| c["real"].as_str().unwrap())
        .collect();
    assert_eq!(reals, ["198.19.1.10:80", "198.19.1.11:80"]);
    for c in &checkers {
        assert_eq!(c["checker"], "TCP_CHECK");
        assert_eq!(c["state"], "up", "retry 3: still up after one failure: {c}");
        assert_eq!(c["consecutive_failures"], 1, "{c}");
    }
    let human = fnatctl(&socket, &["health"]).stdout;
    assert!(
        human.contains("198.19.1.11:80") && human.contains("TCP_CHECK"),
        "{human}"
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
        stderr.contains("fnatd: health: TCP connection to [198.19.1.10]:tcp:80 failed."),
        "keepalived's wording on standard error:\n{stderr}"
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
        // Proxy Protocol and TOA go into the full-NAT rewrite only.
        (
            seed.replace("    lb_kind FNAT\n", "    lb_kind NAT\n    proxy_protocol v2\n"),
            ":36: key `proxy_protocol`: tcp/198.18.0.100:80: proxy_protocol (--proxy-protocol) needs full-NAT real servers (-b, method = \"fullnat\"): 198.19.1.10:80 forwards by nat (-m)",
        ),
        (
            seed.replace("    lb_kind FNAT\n", "    lb_kind NAT\n    toa\n"),
            ":36: key `toa`: tcp/198.18.0.100:80: toa (--toa) needs full-NAT real servers",
        ),
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
    let _daemon = Daemon::start_isolated(
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

/// Where Debian's keepalived package puts keepalived's own doc/samples.
const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// keepalived's own sample configs (Debian's `keepalived` package, `make setup` installs
/// it): every one is read without a crash, and is either loaded (its virtual servers and
/// checkers counted) or refused with a reason naming the sample and its line. Fails loudly
/// when the samples are missing.
#[test]
fn keepalived_samples_load_or_are_refused_with_a_named_reason() {
    let dir = std::path::Path::new(SAMPLES);
    let mut samples: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{SAMPLES}: {e} (apt-get install keepalived; make setup)"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived.conf"))
        })
        .collect();
    samples.sort();
    assert!(samples.len() >= 20, "{samples:?}");
    let tmp = TempDir::new("ka-samples");
    let (mut loaded, mut refused, mut checkers) = (0, 0, 0u64);
    for sample in &samples {
        // As written, then with full-NAT as the method (keepalived's default NAT and DR are
        // refused until those methods exist), as the seed is mapped: deeper into each block.
        let text = std::fs::read(sample).unwrap();
        let fnat: String = String::from_utf8_lossy(&text)
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("lb_kind") || t.starts_with("lvs_method") {
                    "    lb_kind FNAT".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let name = sample.file_name().unwrap().to_str().unwrap();
        let mapped = tmp.join(&format!("{name}.fnat"));
        std::fs::write(&mapped, fnat).unwrap();
        for path in [sample.clone(), mapped] {
            let done = fnatd_check(&path);
            let shown = path.display().to_string();
            match done.code() {
                Some(0) => {
                    loaded += 1;
                    let line = done
                        .stdout
                        .lines()
                        .find(|l| l.starts_with("health checks: "))
                        .unwrap_or_else(|| panic!("{shown}: {}", done.stdout));
                    checkers += line["health checks: ".len()..]
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap();
                    eprintln!("{shown}: {line}");
                }
                Some(2) => {
                    refused += 1;
                    // file[:line]: key `KEYWORD`: reason
                    let named = done
                        .stderr
                        .lines()
                        .any(|l| l.contains(shown.as_str()) && l.contains("key `"));
                    assert!(
                        named,
                        "{shown}: refused without file and keyword:\n{}",
                        done.stderr
                    );
                    eprintln!("{shown}: {}", done.stderr.lines().last().unwrap_or(""));
                }
                other => panic!("{shown}: exit {other:?}\n{}\n{}", done.stdout, done.stderr),
            }
        }
    }
    eprintln!("{loaded} loaded ({checkers} checkers), {refused} refused with a reason");
    assert!(checkers >= 20, "the samples' checkers are read: {checkers}");
    assert!(loaded > 0, "some samples load");
}

/// The README's two-director keepalived.conf (section "High availability") reads without
/// errors or warnings and says what the section says: VI_1 with the VIP on wan, VI_2 with
/// the gateway and the local address on lan, one sync group of both, session sync on lan
/// following VI_1, the seed's election settings.
#[test]
fn the_readme_ha_keepalived_conf_reads_as_described() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## High availability")
        .nth(1)
        .expect("README has a High availability section");
    let conf = section
        .split("```")
        .nth(1)
        .expect("a code block with the keepalived.conf");
    let c = fnat_keepalived::read_str("README.md", conf, "h");
    // The seed's `state MASTER` with `nopreempt`: keepalived warns and starts as backup
    // too; nothing else.
    let others: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.keyword != "nopreempt")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    let names: Vec<_> = c
        .vrrp_instances
        .iter()
        .map(|v| (v.name.as_str(), v.interface.as_str(), v.virtual_router_id))
        .collect();
    assert_eq!(names, [("VI_1", "wan", 51), ("VI_2", "lan", 52)]);
    let vi1 = &c.vrrp_instances[0];
    assert_eq!((vi1.priority, vi1.advert_int.as_secs()), (100, 5));
    assert!(vi1.nopreempt && !vi1.start_as_master);
    assert_eq!(
        vi1.auth,
        fnat_keepalived::vrrp::VrrpAuth::Pass("1111".into())
    );
    assert_eq!(vi1.lvs_sync_daemon_interface.as_deref(), Some("lan"));
    assert_eq!(
        c.vrrp_instances[1].virtual_ipaddress,
        [
            "198.19.1.1".parse::<std::net::IpAddr>().unwrap(),
            "198.19.0.10".parse().unwrap()
        ]
    );
    assert_eq!(c.vrrp_sync_groups.len(), 1);
    assert_eq!(c.vrrp_sync_groups[0].members, ["VI_1", "VI_2"]);
    assert_eq!(c.virtual_servers.len(), 1);
}
