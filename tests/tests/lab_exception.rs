//! The exception path through real kernel stacks: fnatd's ports get kernel twins in the
//! gateway namespace (`[[port]] kernel_interface`), and the gateway's own kernel talks on the
//! data network through them: `ping` and `curl` from the gateway reach a real server, and a
//! TCP session from the client to the port's address reaches a listener on the gateway's
//! kernel; the load balancing goes on beside it. With one worker and with two. Needs root and
//! network namespaces, and fails loudly without them.

mod lab_support;

use std::time::Duration;

use lab_support::*;

const RS1: &str = "198.19.1.11";
/// fnatd's Prometheus endpoint, inside the gateway namespace.
const METRICS: &str = "127.0.0.1:9155";

/// The value of the sample `name{interface="dev"}` in a scrape.
fn kernel_metric(scrape: &str, name: &str, dev: &str) -> u64 {
    let prefix = format!("{name}{{interface=\"{dev}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"))
}

fn exception_path(workers: u32) {
    let lab = Lab::up(
        2,
        &[
            ("LAB_KERNEL_TWIN", "1".to_string()),
            ("LAB_WORKERS", workers.to_string()),
            ("LAB_METRICS", METRICS.to_string()),
        ],
    );
    let p = lab.prefix.clone();
    let (kw, kl) = (format!("{p}kw"), format!("{p}kl"));

    // The twins carry their ports' addresses.
    let addrs = lab.run("g", &["ip", "-br", "addr"], Duration::from_secs(5));
    let line = |dev: &str| {
        addrs
            .stdout
            .lines()
            .find(|l| l.starts_with(dev))
            .unwrap_or_else(|| panic!("no twin {dev} in:\n{}", addrs.stdout))
            .to_string()
    };
    assert!(line(&kw).contains("198.18.0.1/24"), "{}", addrs.stdout);
    assert!(line(&kl).contains("198.19.1.1/24"), "{}", addrs.stdout);

    // ping from the gateway's kernel to a real server: ARP and ICMP both ways through the
    // twin (the engine answers ARP for the port and passes the replies to the twin).
    let ping = lab.run(
        "g",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", &kl, RS1],
        Duration::from_secs(20),
    );
    assert!(
        ping.status.success() && ping.stdout.contains(" 0% packet loss"),
        "ping from the twin: {}\n{}",
        ping.stdout,
        ping.stderr
    );

    // curl from the gateway's kernel to the real server, directly (not through a VIP).
    let curl = lab.run(
        "g",
        &["curl", "-sS", "-m", "5", &format!("http://{RS1}/")],
        Duration::from_secs(10),
    );
    assert!(
        curl.status.success(),
        "curl from the gateway: {}",
        curl.stderr
    );
    assert_eq!(curl.stdout.trim(), "rs1");

    // An ssh-like session: the client connects to the port's own address, a listener on the
    // gateway's kernel answers (socat echoing what it reads).
    let mut listener = lab
        .cmd("g", "socat")
        .args([
            &format!("TCP4-LISTEN:2222,bind={GW_WAN},reuseaddr,fork"),
            "EXEC:cat",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat listener");
    let mut answer = String::new();
    for _ in 0..50 {
        let session = lab.run(
            "c",
            &[
                "sh",
                "-c",
                &format!(
                    "printf 'hello twin\\n' | socat -t 2 - TCP4:{GW_WAN}:2222,connect-timeout=2"
                ),
            ],
            Duration::from_secs(10),
        );
        answer = session.stdout.clone();
        if answer.contains("hello twin") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = listener.kill();
    let _ = listener.wait();
    assert_eq!(
        answer.trim(),
        "hello twin",
        "socat session to the port address"
    );

    // Prometheus sees the exception path's traffic.
    let scrape = lab.run(
        "g",
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            &format!("http://{METRICS}/metrics"),
        ],
        Duration::from_secs(10),
    );
    assert!(scrape.status.success(), "scrape: {}", scrape.stderr);
    for dev in [&kw, &kl] {
        assert!(kernel_metric(&scrape.stdout, "fnat_kernel_delivered_packets_total", dev) > 0);
        assert!(kernel_metric(&scrape.stdout, "fnat_kernel_sent_packets_total", dev) > 0);
    }

    // The load balancer is unaffected.
    let answers: Vec<String> = (0..4).map(|_| lab.curl(VIP)).collect();
    assert!(
        answers.iter().all(|a| a == "rs1" || a == "rs2"),
        "{answers:?}"
    );

    let log = lab.down();
    assert_clean_exit(&log);
    let books = fnat_tests::Books::parse(&log);
    books.assert_sound(&log);
    assert!(
        books.to_kernel > 0 && books.from_kernel > 0,
        "{books:?}\n{log}"
    );
    assert!(
        log.contains(&format!("Kernel twin {kw}")) && log.contains(&format!("Kernel twin {kl}")),
        "{log}"
    );
}

#[test]
fn lab_exception_path_one_worker() {
    exception_path(1);
}

#[test]
fn lab_exception_path_two_workers() {
    exception_path(2);
}
