//! ipvsadm's list and save formats against a running fnatd, each written here from
//! upstream ipvsadm's printf formats (ipvsadm.c: print_title, print_service_entry,
//! print_sched_flags, print_largenum) rather than from fnat's own code.

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

const RULES: [&str; 12] = [
    "-C",
    "-A -t 198.18.0.100:81 -s sh --sched-flags sh-fallback,sh-port",
    "-a -t 198.18.0.100:81 -r 198.19.1.21:81 -b -w 2 -x 500 -y 100",
    "-a -t 198.18.0.100:81 -r 198.19.1.20:81 -b -w 1",
    "-A -t 198.18.0.100:82 -s mh -b mh-port -p 600 -M 255.255.255.0",
    "-a -t 198.18.0.100:82 -r 198.19.1.22:8082 -b -w 3",
    "-A -t 198.18.0.100:83 -s rr -b flag-1,flag-3",
    "-A -t 198.18.0.100:84 -s sh --sched-flags flag-3",
    "-A -u 198.18.0.100:53 -s wrr -p",
    "-a -u 198.18.0.100:53 -r 198.19.1.53:53 -b -w 0",
    "-A -t 198.18.0.99:80 -s lc",
    "-a -t 198.18.0.99:80 -r 198.19.1.30:80 -b",
];

fn setup(tag: &str) -> (TempDir, Daemon, std::path::PathBuf, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    for line in RULES {
        let args: Vec<&str> = line.split_whitespace().collect();
        let done = ipvsadm(&links, &socket, &args);
        assert_eq!(done.code(), Some(0), "ipvsadm {line}: {}", done.stderr);
    }
    (dir, daemon, links, socket)
}

fn ok(links: &std::path::Path, socket: &std::path::Path, args: &[&str]) -> String {
    let done = ipvsadm(links, socket, args);
    assert_eq!(done.code(), Some(0), "ipvsadm {args:?}: {}", done.stderr);
    done.stdout
}

const VERSION: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// The service rows of `-L`: `%s %s`, ` (` flags `)`, ` persistent %u`, ` mask %s`.
/// print_sched_flags names sh's and mh's flags by their own names and prints nothing for a
/// flag-3 on sh (hence `sh ()`). Sorted by protocol, address, port (ipvs_cmp_services).
const SERVICE_ROWS: [&str; 6] = [
    "TCP  198.18.0.99:80 lc",
    "TCP  198.18.0.100:81 sh (sh-fallback,sh-port)",
    "TCP  198.18.0.100:82 mh (mh-port) persistent 600 mask 255.255.255.0",
    "TCP  198.18.0.100:83 rr (flag-1,flag-3)",
    "TCP  198.18.0.100:84 sh ()",
    "UDP  198.18.0.100:53 wrr persistent 360",
];

/// Reals per service row above, sorted by address then port (ipvs_cmp_dests):
/// (address:port, weight, upper, lower).
fn reals_of(row: usize) -> Vec<(&'static str, u32, u32, u32)> {
    match row {
        0 => vec![("198.19.1.30:80", 1, 0, 0)],
        1 => vec![("198.19.1.20:81", 1, 0, 0), ("198.19.1.21:81", 2, 500, 100)],
        2 => vec![("198.19.1.22:8082", 3, 0, 0)],
        5 => vec![("198.19.1.53:53", 0, 0, 0)],
        _ => vec![],
    }
}

/// A whole listing: version line, `title`, then each service row with its reals' rows.
fn listing(
    title: &str,
    service: impl Fn(&str) -> String,
    real: impl Fn(&str, u32, u32, u32) -> String,
) -> String {
    let mut want = format!("{VERSION}{title}");
    for (i, row) in SERVICE_ROWS.iter().enumerate() {
        want.push_str(&service(row));
        for (name, w, u, l) in reals_of(i) {
            want.push_str(&real(name, w, u, l));
        }
    }
    want
}

/// `%-33s` of the service column alone (the row up to the scheduler).
fn column(row: &str) -> String {
    let mut words = row.split_whitespace();
    let (proto, addr) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    format!("{:<33}", format!("{proto:<4} {addr}"))
}

#[test]
fn every_list_view_prints_ipvsadm_formats() {
    let (_dir, daemon, links, socket) = setup("ctl-formats-list");
    let plain = listing(
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        |row| format!("{row}\n"),
        |name, w, _, _| format!("  -> {name:<28} {:<7} {w:<6} {:<10} {:<10}\n", "FullNat", 0, 0),
    );
    assert_eq!(ok(&links, &socket, &["-Ln"]), plain);
    assert_eq!(
        ok(&links, &socket, &["-Ln", "--sort"]),
        plain,
        "--sort does nothing"
    );

    let thresholds = listing(
        &format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        |row| format!("{row}\n"),
        |name, _, u, l| format!("  -> {name:<28} {u:<10} {l:<10} {:<10} {:<10}\n", 0, 0),
    );
    assert_eq!(ok(&links, &socket, &["-Ln", "--thresholds"]), thresholds);

    let persistent = listing(
        &format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        |row| format!("{row}\n"),
        |name, w, _, _| format!("  -> {name:<28} {w:<9} {:<11} {:<10} {:<10}\n", 0, 0, 0),
    );
    assert_eq!(
        ok(&links, &socket, &["-Ln", "--persistent-conn"]),
        persistent
    );

    // --stats and --rate: `%-33s` then print_largenum ×5 for services; reals `  -> %-28s`
    // then print_largenum ×5 (--stats) or `%8llu` ×3 and print_largenum ×2 (--rate).
    let numbers = |title: [&str; 5], rate: bool| {
        listing(
            &format!(
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
                "Prot LocalAddress:Port", title[0], title[1], title[2], title[3], title[4]
            ),
            |row| format!("{}{:>9}{:>9}{:>9}{:>9}{:>9}\n", column(row), 0, 0, 0, 0, 0),
            move |name, _, _, _| {
                if rate {
                    format!(
                        "  -> {name:<28} {:>8} {:>8} {:>8}{:>9}{:>9}\n",
                        0, 0, 0, 0, 0
                    )
                } else {
                    format!("  -> {name:<28}{:>9}{:>9}{:>9}{:>9}{:>9}\n", 0, 0, 0, 0, 0)
                }
            },
        )
    };
    let stats = numbers(["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"], false);
    assert_eq!(ok(&links, &socket, &["-Ln", "--stats"]), stats);
    assert_eq!(ok(&links, &socket, &["-Ln", "--stats", "--exact"]), stats);
    assert_eq!(
        ok(&links, &socket, &["-Ln", "--stats", "-X"]),
        stats,
        "-X is --exact"
    );
    let rate = numbers(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"], true);
    assert_eq!(ok(&links, &socket, &["-Ln", "--rate"]), rate);

    // One service: print_title, then that service alone (no version line), in any view.
    let one = ok(
        &links,
        &socket,
        &["-Ln", "--thresholds", "-t", "198.18.0.100:81"],
    );
    assert_eq!(
        one,
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n{}\n\
             \x20 -> {:<28} {:<10} {:<10} {:<10} {:<10}\n  -> {:<28} {:<10} {:<10} {:<10} {:<10}\n",
            "Prot LocalAddress:Port",
            "Uthreshold",
            "Lthreshold",
            "ActiveConn",
            "InActConn",
            SERVICE_ROWS[1],
            "198.19.1.20:81",
            0,
            0,
            0,
            0,
            "198.19.1.21:81",
            500,
            100,
            0,
            0
        )
    );
    // -c: the kernel's connection listing (ip_vs_conn's header, `%-11s %-18s %-18s %s`),
    // whichever way the switches are written; no sessions here, so no `local` column.
    let conn_header = "IPVS connection entries\n\
                       pro expire state       source             virtual            destination\n";
    for args in [
        &["-Lnc"][..],
        &["-L", "-n", "-c"],
        &["-Ln", "-c"],
        &["-l", "-c", "-n"],
    ] {
        assert_eq!(ok(&links, &socket, args), conn_header, "{args:?}");
    }
    daemon.stop();
}

/// `--nosort`: the kernel and DPVS keep a service's destinations newest first and list
/// them so; services come as configured (their hash-table order has no equivalent).
#[test]
fn nosort_lists_services_as_configured_and_reals_newest_first() {
    let (_dir, daemon, links, socket) = setup("ctl-formats-nosort");
    let text = ok(&links, &socket, &["-Ln", "--nosort"]);
    let rows: Vec<&str> = text.lines().skip(3).collect();
    let real = |name: &str, w: u32| {
        format!(
            "  -> {name:<28} {:<7} {w:<6} {:<10} {:<10}",
            "FullNat", 0, 0
        )
    };
    assert_eq!(
        rows,
        [
            SERVICE_ROWS[1].to_string(),
            real("198.19.1.20:81", 1),
            real("198.19.1.21:81", 2),
            SERVICE_ROWS[2].to_string(),
            real("198.19.1.22:8082", 3),
            SERVICE_ROWS[3].to_string(),
            SERVICE_ROWS[4].to_string(),
            SERVICE_ROWS[5].to_string(),
            real("198.19.1.53:53", 0),
            SERVICE_ROWS[0].to_string(),
            real("198.19.1.30:80", 1),
        ]
    );
    daemon.stop();
}

/// `-S`: ipvsadm's FMT_RULE lines, `-A SVC -s SCHED` then ` -p %u`, ` -M %s`, ` -o`, then
/// ` -b ` and the scheduler flags last; `-a SVC -r RS FWD -w %d`. fnat's additions, so that
/// `-R` restores everything: `-x`/`-y` when set, `-P` lines, and a flag-3 on sh that
/// ipvsadm would leave out (writing a bare `-b `).
#[test]
fn save_prints_ipvsadm_rule_lines_that_restore() {
    let (_dir, daemon, links, socket) = setup("ctl-formats-save");
    let want = "\
-A -t 198.18.0.99:80 -s lc
-a -t 198.18.0.99:80 -r 198.19.1.30:80 -b -w 1
-A -t 198.18.0.100:81 -s sh -b sh-fallback,sh-port
-a -t 198.18.0.100:81 -r 198.19.1.20:81 -b -w 1
-a -t 198.18.0.100:81 -r 198.19.1.21:81 -b -w 2 -x 500 -y 100
-A -t 198.18.0.100:82 -s mh -p 600 -M 255.255.255.0 -b mh-port
-a -t 198.18.0.100:82 -r 198.19.1.22:8082 -b -w 3
-A -t 198.18.0.100:83 -s rr -b flag-1,flag-3
-A -t 198.18.0.100:84 -s sh -b flag-3
-A -u 198.18.0.100:53 -s wrr -p 360
-a -u 198.18.0.100:53 -r 198.19.1.53:53 -b -w 0
";
    let saved = ok(&links, &socket, &["-S", "-n"]);
    assert_eq!(saved, want);
    let listed = ok(&links, &socket, &["-Ln", "--thresholds"]);
    ok(&links, &socket, &["-C"]);
    let restored = run_with_input(
        Command::new(links.join("ipvsadm"))
            .arg("-R")
            .env("FNAT_SOCKET", &socket),
        &saved,
        Duration::from_secs(30),
    );
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(ok(&links, &socket, &["-S", "-n"]), want);
    assert_eq!(ok(&links, &socket, &["-Ln", "--thresholds"]), listed);
    daemon.stop();
}

#[test]
fn scheduler_flags_and_save_options_are_checked_as_ipvsadm_checks_them() {
    let (_dir, daemon, links, socket) = setup("ctl-formats-errors");
    let before = ok(&links, &socket, &["-S", "-n"]);
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "-A",
                "-t",
                "198.18.0.100:90",
                "-s",
                "rr",
                "--sched-flags",
                "sh-port",
            ],
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            // No -s: ipvsadm checks against its default scheduler, wlc.
            &[
                "-A",
                "-t",
                "198.18.0.100:90",
                "--sched-flags",
                "mh-fallback",
            ],
            "incompatible scheduler flag `mh-fallback'\n",
        ),
        (
            &[
                "-A",
                "-t",
                "198.18.0.100:90",
                "-s",
                "sh",
                "--sched-flags",
                "sh-port,fast",
            ],
            "invalid scheduler flag `fast'\n",
        ),
        (
            &["-S", "--nosort"],
            "Illegal 'nosort' option with the 'save' command\n",
        ),
    ];
    for (args, stderr) in cases {
        let done = ipvsadm(&links, &socket, args);
        assert_eq!(
            (done.stderr.as_str(), done.code()),
            (stderr, Some(2)),
            "ipvsadm {args:?}"
        );
    }
    assert_eq!(ok(&links, &socket, &["-S", "-n"]), before);
    daemon.stop();
}
