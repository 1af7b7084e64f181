//! SNAT (DPVS's match service) through every face of a running fnatd: `ipvsadm -A -H … /
//! -a -H … -J`, its `-Ln` listing and `-S` lines that `-R` restores, the refusals that name
//! the reason, and the native `fnatctl service add match/…`.

use fnat_tests::*;

const MATCH: &str = "proto=tcp,src-range=198.19.0.2-198.19.0.200,oif=wan";

fn ok(links: &std::path::Path, socket: &std::path::Path, args: &[&str]) -> String {
    let done = ipvsadm(links, socket, args);
    assert_eq!(done.code(), Some(0), "ipvsadm {args:?}: {}", done.stderr);
    done.stdout
}

#[test]
fn snat_match_services_through_ipvsadm_and_fnatctl() {
    let dir = TempDir::new("ipvsadm-snat");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    ok(&links, &socket, &["-C"]);
    ok(&links, &socket, &["-A", "-H", MATCH, "-s", "rr"]);
    ok(
        &links,
        &socket,
        &["-a", "-H", MATCH, "-r", "198.18.0.1:0", "-J"],
    );
    ok(
        &links,
        &socket,
        &["-a", "--match", MATCH, "-r", "198.18.0.51:0", "-w", "2"],
    );
    let listing = "IP Virtual Server version 1.2.1 (size=4096)\n\
                   Prot LocalAddress:Port Scheduler Flags\n\
                   \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                   MATCH proto=tcp,src-range=198.19.0.2-198.19.0.200,oif=wan rr\n\
                   \x20 -> 198.18.0.1:0                 SNAT    1      0          0         \n\
                   \x20 -> 198.18.0.51:0                SNAT    2      0          0         \n";
    assert_eq!(ok(&links, &socket, &["-Ln"]), listing);

    // -S writes it back; -R restores it exactly.
    let saved = ok(&links, &socket, &["-S", "-n"]);
    assert_eq!(
        saved,
        format!(
            "-A -H {MATCH} -s rr\n-a -H {MATCH} -r 198.18.0.1:0 -J -w 1\n-a -H {MATCH} -r 198.18.0.51:0 -J -w 2\n"
        )
    );
    ok(&links, &socket, &["-C"]);
    let restore = std::process::Command::new(links.join("ipvsadm"))
        .arg("-R")
        .env("FNAT_SOCKET", &socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(saved.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(restore.success());
    assert_eq!(ok(&links, &socket, &["-Ln"]), listing);

    // Refusals name the reason and change nothing.
    ok(
        &links,
        &socket,
        &["-A", "-t", "198.18.0.100:80", "-s", "rr"],
    );
    for (args, want) in [
        (
            vec!["-A", "-H", "proto=tcp,oif=dpdk9", "-s", "rr"],
            "oif 'dpdk9' is not a port of this fnatd (ports: wan, lan)",
        ),
        (
            vec!["-A", "-H", "proto=udp", "-s", "rr"],
            "names no src-range, dst-range, iif or oif",
        ),
        (
            vec!["-a", "-t", "198.18.0.100:80", "-r", "198.19.0.20:80", "-J"],
            "is not a match service: SNAT addresses (-J) belong to match services (-H)",
        ),
        (
            vec!["-a", "-H", MATCH, "-r", "198.18.0.52:0", "-m"],
            "is a match service: its real servers are SNAT addresses (-J), not Masq",
        ),
    ] {
        let done = ipvsadm(&links, &socket, &args);
        assert_ne!(done.code(), Some(0), "{args:?} accepted");
        assert!(done.stderr.contains(want), "{args:?}: {}", done.stderr);
    }
    ok(&links, &socket, &["-D", "-t", "198.18.0.100:80"]);
    assert_eq!(ok(&links, &socket, &["-Ln"]), listing);

    // The native face: the same service by its text.
    let done = fnatctl(
        &socket,
        &[
            "service",
            "add",
            "match/proto=udp,iif=lan",
            "--scheduler",
            "rr",
        ],
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let done = fnatctl(
        &socket,
        &["real", "add", "match/proto=udp,iif=lan", "198.18.0.1:0"],
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let list = ok(&links, &socket, &["-Ln"]);
    assert!(
        list.contains(
            "MATCH proto=udp,iif=lan rr\n  -> 198.18.0.1:0                 SNAT    1      "
        ),
        "{list}"
    );
    // `fnatctl save` writes it as TOML, `restore` reads it back to the same rules.
    let before = ok(&links, &socket, &["-Ln"]);
    let file = dir.join("rules.toml");
    let file_arg = file.display().to_string();
    let done = fnatctl(&socket, &["save", &file_arg]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("match/proto=udp,iif=lan"), "{text}");
    assert!(text.contains("forward = \"snat\""), "{text}");
    ok(&links, &socket, &["-C"]);
    let done = fnatctl(&socket, &["restore", &file_arg]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(ok(&links, &socket, &["-Ln"]), before);
    daemon.stop();
}
