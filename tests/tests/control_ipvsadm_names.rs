//! ipvsadm without `-n` prints host and service names as ipvsadm does (the system's
//! resolver: /etc/hosts, /etc/services, nsswitch.conf), and takes them on its command line.
//! Every ipvsadm run here happens in a private mount namespace whose /etc/hosts, services,
//! nsswitch.conf and resolv.conf are the test's own (the machine's are never touched), so
//! the names are known and no lookup leaves the machine.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_tests::*;

const LONG_HOST: &str = "a-very-long-virtual-service-host-name.fnat.test";

const HOSTS: &str = "127.0.0.1 localhost
198.18.0.100 vip.fnat.test vip
198.18.0.101 a-very-long-virtual-service-host-name.fnat.test
198.19.1.10 rs1.fnat.test
198.19.1.11 rs2.fnat.test
198.19.1.13 rs3.fnat.test
198.19.1.53 ns1.fnat.test
";

/// 9001 has a UDP name only: names are per protocol.
const SERVICES: &str = "http 80/tcp www
domain 53/udp
fnat-alt 8080/tcp
fnat-udp 9001/udp
";

const FILES_ONLY: &str = "hosts: files\nservices: files\n";

/// The rules, given with numbers. (Firewall-mark services, whose reals ipvsadm names as
/// TCP, are refused by fnatd's control plane for now: the proto crate's unit tests cover
/// them.)
const RULES: [&str; 11] = [
    "-C",
    "-A -t 198.18.0.100:80 -s rr",
    "-a -t 198.18.0.100:80 -r 198.19.1.10:80 -b -w 1",
    "-a -t 198.18.0.100:80 -r 198.19.1.11:8080 -b -w 2",
    "-a -t 198.18.0.100:80 -r 198.19.1.12:8081 -b -w 3",
    "--add-laddr -z 198.19.0.10 -t 198.18.0.100:80",
    "-A -t 198.18.0.101:9001 -s wlc",
    "-a -t 198.18.0.101:9001 -r 198.19.1.13:9001 -b",
    "-A -u 198.18.0.100:53 -s wrr",
    "-a -u 198.18.0.100:53 -r 198.19.1.53:53 -b -w 5",
    "-A -u 198.18.0.100:9001 -s rr",
];

struct Setup {
    _dir: TempDir,
    daemon: Daemon,
    links: PathBuf,
    socket: PathBuf,
    etc: PathBuf,
}

fn setup(tag: &str, nsswitch: &str, resolv: &str) -> Setup {
    let dir = TempDir::new(tag);
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    for line in RULES {
        let args: Vec<&str> = line.split_whitespace().collect();
        let done = ipvsadm(&links, &socket, &args);
        assert_eq!(done.code(), Some(0), "ipvsadm {line}: {}", done.stderr);
    }
    let etc = write_etc(&dir, [HOSTS, SERVICES, nsswitch, resolv]);
    Setup {
        _dir: dir,
        daemon,
        links,
        socket,
        etc,
    }
}

impl Setup {
    fn ipvsadm(&self, args: &[&str]) -> Finished {
        ipvsadm_with_etc(&self.links, &self.socket, &self.etc, args, "")
    }
    fn ok(&self, args: &[&str]) -> String {
        let done = self.ipvsadm(args);
        assert_eq!(done.code(), Some(0), "ipvsadm {args:?}: {}", done.stderr);
        done.stdout
    }
}

/// A real's row of `-L`: `  -> %-28s %-7s %-6d %-10u %-10u` (name cut at 28).
fn real_row(name: &str, weight: u32) -> String {
    let name = &name[..name.len().min(28)];
    format!(
        "  -> {name:<28} {:<7} {weight:<6} {:<10} {:<10}\n",
        "FullNat", 0, 0
    )
}

/// ipvsadm's `-L` for [`RULES`] with [`HOSTS`] and [`SERVICES`], written from its formats:
/// `addrport_to_anyname` (`%s:%s` of host and service name, numbers where none), the
/// service column `%-4s %s` cut at 33, service names per protocol.
fn expected_named_list() -> String {
    let mut want = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    want.push_str("TCP  vip.fnat.test:http rr\n");
    want.push_str(&real_row("rs1.fnat.test:http", 1));
    want.push_str(&real_row("rs2.fnat.test:fnat-alt", 2));
    want.push_str(&real_row("198.19.1.12:8081", 3));
    let long = format!("{:<4} {LONG_HOST}:9001", "TCP");
    want.push_str(&format!("{} wlc\n", &long[..33]));
    want.push_str(&real_row("rs3.fnat.test:9001", 1));
    want.push_str("UDP  vip.fnat.test:domain wrr\n");
    want.push_str(&real_row("ns1.fnat.test:domain", 5));
    want.push_str("UDP  vip.fnat.test:fnat-udp rr\n");
    want
}

fn etc_hosts() -> String {
    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
}

#[test]
fn listings_without_n_print_host_and_service_names() {
    let real_hosts = etc_hosts();
    let s = setup("ctl-names-list", FILES_ONLY, "");
    let want = expected_named_list();
    assert_eq!(s.ok(&["-L"]), want);
    assert_eq!(s.ok(&["-l"]), want, "-l is -L");
    assert_eq!(s.ok(&[]), want, "no arguments lists as -L");
    // -n still prints numbers, in the same namespace.
    let numeric = s.ok(&["-Ln"]);
    assert!(
        numeric.contains("TCP  198.18.0.100:80 rr\n")
            && numeric.contains(&real_row("198.19.1.11:8080", 2)),
        "{numeric}"
    );
    assert!(!numeric.contains("fnat.test"), "{numeric}");
    // The other views name the same way: --stats rows are `%-33s` + 9-wide numbers.
    let stats = s.ok(&["-L", "--stats"]);
    assert!(
        stats.contains(&format!(
            "{:<33}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
            "UDP  vip.fnat.test:domain", 0, 0, 0, 0, 0
        )),
        "{stats}"
    );
    assert!(
        stats.contains(&format!(
            "  -> {:<28}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
            "ns1.fnat.test:domain", 0, 0, 0, 0, 0
        )),
        "{stats}"
    );
    // One service, named on the command line by host and service name.
    let one = s.ok(&["-L", "-t", "vip.fnat.test:http"]);
    assert!(
        one.starts_with("Prot LocalAddress:Port Scheduler Flags\n")
            && one.contains("\nTCP  vip.fnat.test:http rr\n")
            && !one.contains("UDP"),
        "{one}"
    );
    assert_eq!(etc_hosts(), real_hosts, "the machine's /etc/hosts changed");
    s.daemon.stop();
}

#[test]
fn save_without_n_writes_names_and_restore_reads_them() {
    let s = setup("ctl-names-save", FILES_ONLY, "");
    let numeric_save = s.ok(&["-S", "-n"]);
    let named = s.ok(&["-S"]);
    // ipvsadm's FMT_RULE lines with addrport_to_anyname's names (whole: no column cut).
    let want = format!(
        "-A -t vip.fnat.test:http -s rr\n\
         -a -t vip.fnat.test:http -r rs1.fnat.test:http -b -w 1\n\
         -a -t vip.fnat.test:http -r rs2.fnat.test:fnat-alt -b -w 2\n\
         -a -t vip.fnat.test:http -r 198.19.1.12:8081 -b -w 3\n\
         -P -t vip.fnat.test:http -z 198.19.0.10\n\
         -A -t {LONG_HOST}:9001 -s wlc\n\
         -a -t {LONG_HOST}:9001 -r rs3.fnat.test:9001 -b -w 1\n\
         -A -u vip.fnat.test:domain -s wrr\n\
         -a -u vip.fnat.test:domain -r ns1.fnat.test:domain -b -w 5\n\
         -A -u vip.fnat.test:fnat-udp -s rr\n"
    );
    assert_eq!(named, want);
    // -C, then -R of the named file gives back the same rules.
    s.ok(&["-C"]);
    assert_eq!(s.ok(&["-S", "-n"]), "");
    let restored = ipvsadm_with_etc(&s.links, &s.socket, &s.etc, &["-R"], &named);
    assert_eq!(restored.code(), Some(0), "{}", restored.stderr);
    assert_eq!(s.ok(&["-S", "-n"]), numeric_save);
    s.daemon.stop();
}

#[test]
fn names_on_the_command_line_resolve_like_ipvsadm() {
    let s = setup("ctl-names-input", FILES_ONLY, "");
    s.ok(&["-A", "-t", "vip:fnat-alt", "-s", "rr"]);
    s.ok(&[
        "-a",
        "-t",
        "vip.fnat.test:8080",
        "-r",
        "rs1.fnat.test:http",
        "-b",
    ]);
    // A real without a port takes the service's.
    s.ok(&[
        "-a",
        "-t",
        "198.18.0.100:fnat-alt",
        "-r",
        "rs2.fnat.test",
        "-b",
    ]);
    let list = s.ok(&["-Ln", "-t", "198.18.0.100:8080"]);
    assert!(
        list.contains("TCP  198.18.0.100:8080 rr\n")
            && list.contains(&real_row("198.19.1.10:80", 1))
            && list.contains(&real_row("198.19.1.11:8080", 1)),
        "{list}"
    );
    let cases: [(&[&str], &str); 3] = [
        (
            &["-A", "-t", "nowhere.fnat.test:80"],
            "illegal virtual server address[:port] specified\n",
        ),
        (
            // fnat-udp is a UDP name only.
            &["-A", "-t", "vip.fnat.test:fnat-udp"],
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-a", "-t", "vip:http", "-r", "rs1.fnat.test:gopher", "-b"],
            "illegal real server address[:port] specified\n",
        ),
    ];
    for (args, stderr) in cases {
        let done = s.ipvsadm(args);
        assert_eq!(
            (done.stderr.as_str(), done.code()),
            (stderr, Some(2)),
            "ipvsadm {args:?}"
        );
    }
    s.daemon.stop();
}

/// A name server on a loopback address that receives queries and never answers.
struct SilentNameServer {
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentNameServer {
    fn start(addr: &str) -> SilentNameServer {
        let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (s, q) = (Arc::clone(&stop), Arc::clone(&queries));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if sock.recv_from(&mut buf).is_ok() {
                    q.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        SilentNameServer {
            stop,
            queries,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentNameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ipvsadm hangs as long as the resolver does; fnatctl gives names a bounded time and
/// prints numbers for what has not answered.
#[test]
fn a_name_server_that_never_answers_does_not_hang_the_listing() {
    let dns = SilentNameServer::start("127.0.0.77:53");
    // Without a bound, each unanswered address would cost 30 s × 2 attempts.
    let s = setup(
        "ctl-names-slowdns",
        "hosts: files dns\nservices: files\n",
        "nameserver 127.0.0.77\noptions timeout:30 attempts:2\n",
    );
    let start = Instant::now();
    let list = s.ok(&["-L"]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "ipvsadm -L took {took:?} with a silent name server"
    );
    assert!(
        dns.queries.load(Ordering::Relaxed) > 0,
        "198.19.1.12 is in no hosts file: its lookup must have gone to the name server"
    );
    // /etc/hosts answered at once; the address only DNS could name is printed as a number.
    assert!(list.contains("TCP  vip.fnat.test:http rr\n"), "{list}");
    assert!(list.contains(&real_row("198.19.1.12:8081", 3)), "{list}");
    s.daemon.stop();
}
