//! Every forwarding method through the ipvsadm face of a running fnatd: -g (the default),
//! -m, -i with IPIP/GUE/GRE and its --tun-* options, -b; listed in ipvsadm's Forward column
//! and with --tun-info (formats written here from upstream ipvsadm's printf formats), saved
//! with -S so that -R restores them; and the native `fnatctl real add --method`.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

const SVC: &str = "198.18.0.100:90";

const RULES: [&str; 8] = [
    "-C",
    "-A -t 198.18.0.100:90 -s rr",
    // No method: ipvsadm's default, gatewaying (198.19.0.0/24 is lan's own network).
    "-a -t 198.18.0.100:90 -r 198.19.0.20",
    "-a -t 198.18.0.100:90 -r 198.19.1.21:8080 -m -w 2",
    "-a -t 198.18.0.100:90 -r 198.19.1.22 -i",
    "-a -t 198.18.0.100:90 -r 198.19.1.23 -i --tun-type gue --tun-port 6080 --tun-csum",
    "-a -t 198.18.0.100:90 -r 198.19.1.24 --ipip --tun-type gre --tun-nocsum -w 3",
    "-a -t 198.18.0.100:90 -r 198.19.1.25 -b",
];

/// (real, Forward, TunnelInfo, weight), in ipvsadm's order (address, then port).
const REALS: [(&str, &str, &str, u32); 6] = [
    ("198.19.0.20:90", "Route", "N/A", 1),
    ("198.19.1.21:8080", "Masq", "N/A", 2),
    ("198.19.1.22:90", "Tunnel", "ipip", 1),
    ("198.19.1.23:90", "Tunnel", "gue:6080:csum", 1),
    ("198.19.1.24:90", "Tunnel", "gre:nocsum", 3),
    ("198.19.1.25:90", "FullNat", "N/A", 1),
];

fn ok(links: &std::path::Path, socket: &std::path::Path, args: &[&str]) -> String {
    let done = ipvsadm(links, socket, args);
    assert_eq!(done.code(), Some(0), "ipvsadm {args:?}: {}", done.stderr);
    done.stdout
}

fn listing() -> String {
    let mut want = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    want.push_str("TCP  198.18.0.100:80 rr\n");
    for rs in ["198.19.1.10:80", "198.19.1.11:80"] {
        want.push_str(&format!(
            "  -> {rs:<28} {:<7} {:<6} {:<10} {:<10}\n",
            "FullNat", 1, 0, 0
        ));
    }
    want.push_str(&format!("TCP  {SVC} rr\n"));
    for (rs, fwd, _, w) in REALS {
        want.push_str(&format!(
            "  -> {rs:<28} {fwd:<7} {w:<6} {:<10} {:<10}\n",
            0, 0
        ));
    }
    want
}

#[test]
fn every_method_is_listed_saved_and_restored() {
    let dir = TempDir::new("ipvsadm-methods");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    // The config's own service first (its reals are full-NAT: the config's default).
    let base = ok(&links, &socket, &["-S", "-n"]);
    for line in RULES {
        let args: Vec<&str> = line.split_whitespace().collect();
        ok(&links, &socket, &args);
    }
    // -C cleared the config's service: put it back as it was.
    let restored = run_with_input(
        Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &base,
        Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);

    let listed = ok(&links, &socket, &["-Ln"]);
    assert_eq!(listed, listing());

    // --tun-info: `  -> %-28s %-7s %-13s %-6d %-10u %-10u` (one service: no version line).
    let tun = ok(&links, &socket, &["-Ln", "-t", SVC, "--tun-info"]);
    let mut want = String::from(
        "Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
    );
    want.push_str(&format!("TCP  {SVC} rr\n"));
    for (rs, fwd, info, w) in REALS {
        want.push_str(&format!(
            "  -> {rs:<28} {fwd:<7} {info:<13} {w:<6} {:<10} {:<10}\n",
            0, 0
        ));
    }
    assert_eq!(tun, want);

    // -S writes each method's switch and the tunnel options.
    let saved = ok(&links, &socket, &["-S", "-n"]);
    for line in [
        "-a -t 198.18.0.100:90 -r 198.19.0.20:90 -g -w 1\n",
        "-a -t 198.18.0.100:90 -r 198.19.1.21:8080 -m -w 2\n",
        "-a -t 198.18.0.100:90 -r 198.19.1.22:90 -i -w 1 --tun-type ipip\n",
        "-a -t 198.18.0.100:90 -r 198.19.1.23:90 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n",
        "-a -t 198.18.0.100:90 -r 198.19.1.24:90 -i -w 3 --tun-type gre --tun-nocsum\n",
        "-a -t 198.18.0.100:90 -r 198.19.1.25:90 -b -w 1\n",
    ] {
        assert!(saved.contains(line), "{line:?} not in\n{saved}");
    }
    // -C, -R: the same rules, listed and saved alike.
    ok(&links, &socket, &["-C"]);
    let restored = run_with_input(
        Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &saved,
        Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(ok(&links, &socket, &["-S", "-n"]), saved);
    assert_eq!(ok(&links, &socket, &["-Ln"]), listed);

    // -e changes the method; leaving -i drops the tunnel options.
    ok(
        &links,
        &socket,
        &["-e", "-t", SVC, "-r", "198.19.1.23:90", "-m"],
    );
    let saved = ok(&links, &socket, &["-S", "-n"]);
    assert!(
        saved.contains("-a -t 198.18.0.100:90 -r 198.19.1.23:90 -m -w 1\n"),
        "{saved}"
    );

    // The native face: full-NAT unless told otherwise.
    let done = fnatctl(
        &socket,
        &["real", "add", "tcp/198.18.0.100:90", "198.19.1.26:90"],
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let done = fnatctl(
        &socket,
        &[
            "real",
            "add",
            "tcp/198.18.0.100:90",
            "198.19.1.27:90",
            "--method",
            "tun",
            "--tunnel-type",
            "gue",
            "--tunnel-port",
            "7777",
        ],
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let saved = ok(&links, &socket, &["-S", "-n"]);
    assert!(
        saved.contains("-a -t 198.18.0.100:90 -r 198.19.1.26:90 -b -w 1\n"),
        "{saved}"
    );
    assert!(
        saved.contains(
            "-a -t 198.18.0.100:90 -r 198.19.1.27:90 -i -w 1 --tun-type gue --tun-port 7777 --tun-nocsum\n"
        ),
        "{saved}"
    );
    let help = fnatctl(&socket, &["real", "add", "--help"]);
    assert!(
        help.stdout.contains("full NAT unless --method"),
        "{}",
        help.stdout
    );
    daemon.stop();
}

/// Proxy Protocol and TOA go into fnatd's full-NAT rewrite: ipvsadm refuses them on a service
/// whose real servers use another method, and another method's real server on a service that
/// has them, whichever comes first; the refused change leaves the rules as they were.
#[test]
fn client_address_options_need_full_nat_real_servers() {
    let dir = TempDir::new("ipvsadm-pp-method");
    let socket = dir.join("ctl.sock");
    let _daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    ok(&links, &socket, &["-A", "-t", SVC, "-s", "rr"]);
    ok(
        &links,
        &socket,
        &["-a", "-t", SVC, "-r", "198.19.1.21:8080", "-m"],
    );
    let before = ok(&links, &socket, &["-S", "-n"]);
    for option in [&["--proxy-protocol", "v2"][..], &["--toa"][..]] {
        let mut args = vec!["-E", "-t", SVC, "-s", "rr"];
        args.extend_from_slice(option);
        let done = ipvsadm(&links, &socket, &args);
        assert_ne!(done.code(), Some(0), "{option:?} on a NAT service");
        assert!(
            done.stderr.contains("needs full-NAT real servers")
                && done
                    .stderr
                    .contains("198.19.1.21:8080 forwards by nat (-m)"),
            "{option:?}: {}",
            done.stderr
        );
        assert_eq!(ok(&links, &socket, &["-S", "-n"]), before, "unchanged");
    }
    // The other order: the option first, then a DR real server.
    ok(
        &links,
        &socket,
        &["-d", "-t", SVC, "-r", "198.19.1.21:8080"],
    );
    ok(
        &links,
        &socket,
        &["-E", "-t", SVC, "-s", "rr", "--proxy-protocol", "v1"],
    );
    ok(
        &links,
        &socket,
        &["-a", "-t", SVC, "-r", "198.19.1.25", "-b"],
    );
    let done = ipvsadm(
        &links,
        &socket,
        &["-a", "-t", SVC, "-r", "198.19.0.20", "-g"],
    );
    assert_ne!(done.code(), Some(0));
    assert!(
        done.stderr
            .contains("proxy_protocol (--proxy-protocol) needs full-NAT real servers")
            && done.stderr.contains("198.19.0.20:90 forwards by dr (-g)"),
        "{}",
        done.stderr
    );
    let done = ipvsadm(
        &links,
        &socket,
        &["-e", "-t", SVC, "-r", "198.19.1.25", "-i"],
    );
    assert_ne!(done.code(), Some(0), "editing a real server to TUN");
    assert!(
        done.stderr.contains("forwards by tun (-i)"),
        "{}",
        done.stderr
    );
}
