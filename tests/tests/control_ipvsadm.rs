//! ipvsadm compatibility against a running fnatd: an LVS-tutorial script runs unchanged and
//! prints exactly what ipvsadm prints; errors are ipvsadm's with its exit codes.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

const VIP: &str = "198.18.0.100";

/// The tutorial: clear, two services, reals in full-NAT, local addresses, list.
fn tutorial_script() -> String {
    format!(
        "set -e\n\
         ipvsadm -C\n\
         ipvsadm -A -t {VIP}:80 -s rr\n\
         ipvsadm -a -t {VIP}:80 -r 198.19.1.10:80 -b -w 1\n\
         ipvsadm -a -t {VIP}:80 -r 198.19.1.11:80 -b -w 1\n\
         ipvsadm -a -t {VIP}:80 -r 198.19.1.2 -b -w 2\n\
         ipvsadm -A -u {VIP}:53 -s wrr\n\
         ipvsadm -a -u {VIP}:53 -r 198.19.1.53:53 -b -w 5\n\
         ipvsadm --add-laddr -z 198.19.0.10 -t {VIP}:80\n\
         ipvsadm --add-laddr -z 198.19.0.10 -u {VIP}:53\n\
         ipvsadm -Ln\n"
    )
}

/// ipvsadm's `-Ln` for the tutorial's rules, built from its documented formats:
/// service rows `%s %s` (name cut at 33), real rows `  -> %-28s %-7s %-6d %-10u %-10u`.
fn expected_list() -> String {
    let real = |addr: &str, weight: u32| {
        format!(
            "  -> {addr:<28} {:<7} {weight:<6} {:<10} {:<10}\n",
            "FullNat", 0, 0
        )
    };
    let mut want = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    want.push_str(&format!("TCP  {VIP}:80 rr\n"));
    want.push_str(&real("198.19.1.2:80", 2));
    want.push_str(&real("198.19.1.10:80", 1));
    want.push_str(&real("198.19.1.11:80", 1));
    want.push_str(&format!("UDP  {VIP}:53 wrr\n"));
    want.push_str(&real("198.19.1.53:53", 5));
    want
}

fn run_script(dir: &TempDir, socket: &std::path::Path, script: &str) -> Finished {
    let links = ipvsadm_dir(dir);
    let path = format!(
        "{}:{}",
        links.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_with_deadline(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .env("FNAT_SOCKET", socket),
        Duration::from_secs(60),
    )
}

#[test]
fn the_lvs_tutorial_script_prints_what_ipvsadm_prints() {
    let dir = TempDir::new("ctl-tutorial");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let done = run_script(&dir, &socket, &tutorial_script());
    assert_eq!(done.code(), Some(0), "stderr:\n{}", done.stderr);
    assert_eq!(done.stdout, expected_list());

    let links = ipvsadm_dir(&dir);
    // -S -n: no header, ipvsadm's rule lines, plus the local-address lines.
    let saved = ipvsadm(&links, &socket, &["-S", "-n"]);
    assert_eq!(
        saved.stdout,
        format!(
            "-A -t {VIP}:80 -s rr\n\
             -a -t {VIP}:80 -r 198.19.1.2:80 -b -w 2\n\
             -a -t {VIP}:80 -r 198.19.1.10:80 -b -w 1\n\
             -a -t {VIP}:80 -r 198.19.1.11:80 -b -w 1\n\
             -P -t {VIP}:80 -z 198.19.0.10\n\
             -A -u {VIP}:53 -s wrr\n\
             -a -u {VIP}:53 -r 198.19.1.53:53 -b -w 5\n\
             -P -u {VIP}:53 -z 198.19.0.10\n"
        )
    );
    let t = ipvsadm(&links, &socket, &["-L", "--timeout"]);
    assert_eq!(t.stdout, "Timeout (tcp tcpfin udp): 900 120 300\n");
    let set = ipvsadm(&links, &socket, &["--set", "1000", "0", "30"]);
    assert_eq!(set.code(), Some(0), "{}", set.stderr);
    let t = ipvsadm(&links, &socket, &["-L", "--timeout"]);
    assert_eq!(t.stdout, "Timeout (tcp tcpfin udp): 1000 120 30\n");

    // One service, edits, thresholds view.
    assert_eq!(
        ipvsadm(
            &links,
            &socket,
            &["-E", "-t", "198.18.0.100:80", "-s", "wrr"]
        )
        .code(),
        Some(0)
    );
    assert_eq!(
        ipvsadm(
            &links,
            &socket,
            &[
                "-e",
                "-t",
                "198.18.0.100:80",
                "-r",
                "198.19.1.10:80",
                "-w",
                "7"
            ]
        )
        .code(),
        Some(0)
    );
    let one = ipvsadm(&links, &socket, &["-L", "-n", "-t", "198.18.0.100:80"]);
    assert!(
        one.stdout
            .starts_with("Prot LocalAddress:Port Scheduler Flags\n"),
        "{}",
        one.stdout
    );
    assert!(
        one.stdout.contains(&format!("TCP  {VIP}:80 wrr\n")),
        "{}",
        one.stdout
    );
    assert!(
        one.stdout.contains(&format!(
            "  -> {:<28} {:<7} {:<6} ",
            "198.19.1.10:80", "FullNat", 7
        )),
        "{}",
        one.stdout
    );
    let thr = ipvsadm(&links, &socket, &["-Ln", "--thresholds"]);
    assert!(
        thr.stdout.contains(&format!(
            "  -> {:<28} {:<10} {:<10} {:<10} {:<10}\n",
            "198.19.1.53:53", 0, 0, 0, 0
        )),
        "{}",
        thr.stdout
    );
    let stats = ipvsadm(&links, &socket, &["-Ln", "--stats"]);
    assert!(
        stats.stdout.contains(&format!(
            "{:<33}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
            format!("TCP  {VIP}:80"),
            0,
            0,
            0,
            0,
            0
        )),
        "{}",
        stats.stdout
    );
    let rate = ipvsadm(&links, &socket, &["-Ln", "--rate"]);
    assert!(
        rate.stdout
            .contains("      CPS    InPPS   OutPPS    InBPS   OutBPS\n"),
        "{}",
        rate.stdout
    );
    let conns = ipvsadm(&links, &socket, &["-Lnc"]);
    assert_eq!(conns.code(), Some(0), "{}", conns.stderr);
    let laddrs = ipvsadm(&links, &socket, &["-G"]);
    assert!(
        laddrs.stdout.starts_with(&format!(
            "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
            "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
        )),
        "{}",
        laddrs.stdout
    );
    assert!(
        laddrs
            .stdout
            .contains(&format!("{:<20} {:<8} \n", format!("{VIP}:80"), 1)),
        "{}",
        laddrs.stdout
    );
    assert_eq!(ipvsadm(&links, &socket, &["-Z"]).code(), Some(0));
    daemon.stop();
}

#[test]
fn errors_are_ipvsadm_messages_with_its_exit_codes() {
    let dir = TempDir::new("ctl-errors");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    let before = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    let cases: [(&[&str], &str, i32); 9] = [
        (
            &["-A", "-t", "198.18.0.100:80", "-s", "rr"],
            "Service already exists\n",
            255,
        ),
        (&["-D", "-t", "198.18.0.1:81"], "No such service\n", 255),
        (
            &["-a", "-t", "198.18.0.1:81", "-r", "10.0.0.1:80", "-b"],
            "Service not defined\n",
            255,
        ),
        (
            &["-a", "-t", "198.18.0.100:80", "-r", "198.19.1.10:80", "-b"],
            "Destination already exists\n",
            255,
        ),
        (
            &["-d", "-t", "198.18.0.100:80", "-r", "198.19.1.99:80"],
            "No such destination\n",
            255,
        ),
        (
            &[
                "-e",
                "-t",
                "198.18.0.100:80",
                "-r",
                "198.19.1.99:80",
                "-w",
                "2",
            ],
            "No such destination\n",
            255,
        ),
        (&["-L", "-n", "-t", "198.18.0.1:81"], "No such service\n", 1),
        (
            &["-A", "-t", "198.18.0.300:80"],
            "illegal virtual server address[:port] specified\n",
            2,
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.100:80",
                "-r",
                "198.19.1.10:80",
                "-w",
                "2147483648",
            ],
            "illegal weight specified\n",
            2,
        ),
    ];
    for (args, stderr, code) in cases {
        let done = ipvsadm(&links, &socket, args);
        assert_eq!(
            (done.stderr.as_str(), done.code()),
            (stderr, Some(code)),
            "ipvsadm {args:?}"
        );
    }
    // Direct routing: only to a real server on a connected network, on the service's port.
    for (real, says) in [
        ("198.19.1.20:80", "not on a connected network"),
        ("198.19.0.20:8080", "direct routing (-g) keeps the port"),
    ] {
        let done = ipvsadm(
            &links,
            &socket,
            &["-a", "-t", "198.18.0.100:80", "-r", real, "-g"],
        );
        assert_ne!(done.code(), Some(0), "{real}");
        assert!(done.stderr.contains(says), "{real}: {}", done.stderr);
    }
    assert_eq!(
        ipvsadm(&links, &socket, &["-Ln"]).stdout,
        before,
        "refused changes changed the rules"
    );
    // No daemon: ipvsadm's "Can't initialize ipvs" with exit 2.
    let nowhere = ipvsadm(&links, &dir.join("nothing.sock"), &["-Ln"]);
    assert_eq!(nowhere.code(), Some(2));
    assert!(
        nowhere.stderr.starts_with("Can't initialize ipvs: "),
        "{}",
        nowhere.stderr
    );
    daemon.stop();
}

#[test]
fn native_commands_set_up_the_same_service() {
    let dir = TempDir::new("ctl-native");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let ok = |args: &[&str]| {
        let done = fnatctl(&socket, args);
        assert_eq!(done.code(), Some(0), "fnatctl {args:?}: {}", done.stderr);
        done.stdout
    };
    ok(&["flush"]);
    ok(&["service", "add", "tcp/198.18.0.100:80", "--scheduler", "rr"]);
    ok(&[
        "real",
        "add",
        "tcp/198.18.0.100:80",
        "198.19.1.10:80",
        "--weight",
        "1",
    ]);
    ok(&[
        "real",
        "add",
        "tcp/198.18.0.100:80",
        "198.19.1.11:80",
        "--weight",
        "1",
    ]);
    ok(&[
        "real",
        "add",
        "tcp/198.18.0.100:80",
        "198.19.1.2:80",
        "--weight",
        "2",
    ]);
    ok(&["service", "add", "udp/198.18.0.100:53", "-s", "wrr"]);
    ok(&[
        "real",
        "add",
        "udp/198.18.0.100:53",
        "198.19.1.53:53",
        "-w",
        "5",
    ]);
    ok(&["laddr", "add", "tcp/198.18.0.100:80", "198.19.0.10"]);
    ok(&["laddr", "add", "udp/198.18.0.100:53", "198.19.0.10"]);
    let links = ipvsadm_dir(&dir);
    let via_ipvsadm = run_script(&dir, &socket, &tutorial_script());
    assert_eq!(via_ipvsadm.code(), Some(0));
    // The tutorial starts with -C, so both ways must reach the same rules.
    let native_list = ok(&["service", "list"]);
    assert_eq!(native_list, ipvsadm(&links, &socket, &["-Ln"]).stdout);
    let status = ok(&["status"]);
    assert!(
        status.contains("services: 2") && status.contains("real servers: 4"),
        "{status}"
    );
    let json = ok(&["--json", "service", "list"]);
    assert!(json.contains("\"addr\": \"tcp/198.18.0.100:80\""), "{json}");
    assert!(ok(&["timeout", "get"]).starts_with("Timeout (tcp tcpfin udp): "));
    ok(&["timeout", "set", "--udp", "60"]);
    assert!(ok(&["timeout", "get"]).ends_with(" 60\n"));
    ok(&[
        "real",
        "edit",
        "tcp/198.18.0.100:80",
        "198.19.1.2:80",
        "--weight",
        "0",
    ]);
    ok(&["laddr", "list"]);
    ok(&["conn", "list", "--client", "1.2.3.4"]);
    ok(&["stats"]);
    ok(&["zero"]);
    let dup = fnatctl(
        &socket,
        &["service", "add", "tcp/198.18.0.100:80", "-s", "rr"],
    );
    assert_eq!(dup.code(), Some(1));
    assert!(
        dup.stderr.contains("Service already exists"),
        "{}",
        dup.stderr
    );
    ok(&["real", "del", "tcp/198.18.0.100:80", "198.19.1.2:80"]);
    ok(&["laddr", "del", "udp/198.18.0.100:53", "198.19.0.10"]);
    ok(&["service", "del", "udp/198.18.0.100:53"]);
    daemon.stop();
}
