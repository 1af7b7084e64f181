//! `fnatd replay --progress`: on a terminal (a pty from util-linux's `script`) a bar with the
//! captures' frame total, rate and ETA; with stderr not a terminal, nothing but the usual
//! statistics. Either way every frame is replayed.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

const FRAMES: u32 = 200_000;

fn capture(dir: &TempDir) -> std::path::PathBuf {
    let frame = tcp_frame(
        [2, 0, 0, 0, 0, 0xfe],
        [2, 0, 0, 0, 0, 1],
        (Ipv4Addr::new(198, 18, 0, 2), 40000),
        (Ipv4Addr::new(198, 18, 0, 100), 80),
        "A",
        1,
        &[],
    );
    let frames: Vec<CapturedFrame> = (0..FRAMES)
        .map(|i| CapturedFrame {
            ts_ns: 1_000_000_000 + u128::from(i) * 1_000,
            data: frame.clone(),
        })
        .collect();
    let path = dir.join("in.pcap");
    write_pcap(&path, &frames);
    path
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let dir = TempDir::new("progress");
    let input = capture(&dir);
    let replay = format!(
        "{} replay --config {} --rx a={} --tx b={} --progress",
        bin("fnatd").display(),
        config("passthrough.toml").display(),
        input.display(),
        dir.join("out.pcap").display()
    );

    // On a terminal: the bar (frames out of the total, rate, ETA).
    let tty = run_with_deadline(
        Command::new("script").args(["-qec", &replay, "/dev/null"]),
        Duration::from_secs(120),
    );
    assert_eq!(tty.code(), Some(0), "{}{}", tty.stdout, tty.stderr);
    assert!(
        tty.stdout.contains("/200,000 frames"),
        "no bar on the terminal:\n{}",
        tty.stdout
    );
    assert!(tty.stdout.contains("ETA"), "{}", tty.stdout);
    assert_eq!(
        port_counts(&tty.stdout.replace('\r', ""), 0).0,
        u64::from(FRAMES)
    );

    // Not a terminal: stderr stays empty, stdout has the statistics only.
    let piped = run_with_deadline(
        Command::new("sh").arg("-c").arg(&replay),
        Duration::from_secs(120),
    );
    assert_eq!(piped.code(), Some(0), "{}", piped.stderr);
    assert_eq!(piped.stderr, "", "progress output without a terminal");
    assert!(!piped.stdout.contains("frames  "), "{}", piped.stdout);
    assert_eq!(port_counts(&piped.stdout, 0).0, u64::from(FRAMES));
}
