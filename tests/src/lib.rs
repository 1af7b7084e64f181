//! Helpers shared by the integration tests: where the binaries and captures are, running a
//! subprocess with a deadline, reading pcaps with an independent library (pcap-file).

#![forbid(unsafe_code)]

pub mod rule_sets;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a workspace binary built in the same profile as this test (`cargo build --workspace`
/// builds it; `make test` does that first). Panics loudly when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// A config shipped in `configs/`.
pub fn config(name: &str) -> PathBuf {
    root().join("configs").join(name)
}

/// Where Debian's python3-dpkt package installs its example captures (BSD-3-Clause): real
/// captures that nobody in this project wrote, fetched at set-up time rather than committed.
pub const DPKT_CAPTURES: &str = "/usr/share/doc/python3-dpkt/examples/data";

/// A real capture from python3-dpkt. Panics (never skips) when the package is missing.
pub fn real_capture(name: &str) -> PathBuf {
    let path = Path::new(DPKT_CAPTURES).join(name);
    assert!(
        path.exists(),
        "{} is missing: apt-get install python3-dpkt (scripts/setup-debian.sh does)",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fnat-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished subprocess left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Finished {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    wait_with_deadline(child, limit)
}

/// Waits for `child`, killing it (and failing the test) after `limit`. Output is read on
/// threads so a chatty child cannot block on a full pipe.
pub fn wait_with_deadline(mut child: Child, limit: Duration) -> Finished {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!("subprocess still running after {limit:?}; killed.\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Sends `signal` to the process `pid` (one this test started).
pub fn signal(pid: u32, signal: i32) {
    let sig = nix::sys::signal::Signal::try_from(signal).expect("a known signal number");
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    if let Err(e) = nix::sys::signal::kill(pid, sig) {
        panic!("kill({pid}, {signal}) failed: {e}");
    }
}

/// A frame from a capture, with its timestamp in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    pub ts_ns: u128,
    pub data: Vec<u8>,
}

/// Reads every frame of a pcap file with the pcap-file crate.
pub fn read_pcap(path: &Path) -> Vec<CapturedFrame> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file)
        .unwrap_or_else(|e| panic!("{} is not a pcap: {e}", path.display()));
    let mut frames = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert_eq!(
            pkt.data.len() as u32,
            pkt.orig_len,
            "{}: a truncated record (caplen < len)",
            path.display()
        );
        frames.push(CapturedFrame {
            ts_ns: pkt.timestamp.as_nanos(),
            data: pkt.data.into_owned(),
        });
    }
    frames
}

/// Writes frames to a pcap file (Ethernet, microsecond timestamps) with pcap-file.
pub fn write_pcap(path: &Path, frames: &[CapturedFrame]) {
    let file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut writer = pcap_file::pcap::PcapWriter::with_header(file, header).expect("pcap header");
    for f in frames {
        let ts = Duration::from_nanos(f.ts_ns as u64);
        let pkt = pcap_file::pcap::PcapPacket::new(ts, f.data.len() as u32, &f.data);
        writer.write_packet(&pkt).expect("write packet");
    }
}

/// The entries of DPDK's runtime directory, to check a run leaves nothing behind.
pub fn dpdk_runtime_entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/var/run/dpdk")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Labs running in parallel come and go under their own file prefixes; a run
                // without one (what these tests start) would leave DPDK's default, `rte`.
                .filter(|name| name == "rte")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `RX-packets` and `TX-packets` numbers of the forward-statistics block of port `index`.
pub fn port_counts(stdout: &str, index: usize) -> (u64, u64) {
    let marker = format!("Forward statistics for port {index:<2}");
    let block = stdout
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no stats block for port {index} in:\n{stdout}"))
        .1;
    let number_after = |label: &str| -> u64 {
        block
            .split_once(label)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} for port {index} in:\n{stdout}"))
    };
    (number_after("RX-packets:"), number_after("TX-packets:"))
}

/// An Ethernet + IPv4 + TCP frame taken apart by etherparse (the independent oracle).
#[derive(Debug, Clone)]
pub struct TcpFrame {
    pub eth: etherparse::Ethernet2Header,
    pub ip: etherparse::Ipv4Header,
    pub tcp: etherparse::TcpHeader,
    pub payload: Vec<u8>,
    /// Bytes after the IP packet (Ethernet padding).
    pub trailer: Vec<u8>,
}

impl TcpFrame {
    /// Parses `frame`; `None` when it is not Ethernet/IPv4/TCP.
    pub fn parse(frame: &[u8]) -> Option<TcpFrame> {
        let (eth, rest) = etherparse::Ethernet2Header::from_slice(frame).ok()?;
        if eth.ether_type != etherparse::EtherType::IPV4 {
            return None;
        }
        let (ip, _) = etherparse::Ipv4Header::from_slice(rest).ok()?;
        if ip.protocol != etherparse::IpNumber::TCP {
            return None;
        }
        let total = usize::from(ip.total_len);
        let packet = rest.get(..total)?;
        let trailer = rest.get(total..)?.to_vec();
        let (tcp, payload) = etherparse::TcpHeader::from_slice(&packet[ip.header_len()..]).ok()?;
        Some(TcpFrame {
            eth,
            ip,
            tcp,
            payload: payload.to_vec(),
            trailer,
        })
    }

    /// True when the IPv4 header checksum and the TCP checksum are both right.
    pub fn checksums_valid(&self) -> bool {
        self.ip.header_checksum == self.ip.calc_header_checksum()
            && self.tcp.calc_checksum_ipv4(&self.ip, &self.payload).ok() == Some(self.tcp.checksum)
    }

    /// Serializes with freshly computed checksums (padding kept).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut ip = self.ip.clone();
        ip.header_checksum = ip.calc_header_checksum();
        let mut tcp = self.tcp.clone();
        tcp.checksum = tcp
            .calc_checksum_ipv4(&ip, &self.payload)
            .expect("tcp checksum");
        let mut out = Vec::new();
        self.eth.write(&mut out).unwrap();
        ip.write(&mut out).unwrap();
        tcp.write(&mut out).unwrap();
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(&self.trailer);
        out
    }
}

/// Runs tshark over `pcap` with checksum validation on and returns the frames it calls bad
/// (IP or TCP/UDP checksum). A second, independent reader of the output.
pub fn tshark_bad_checksums(pcap: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args([
            "-o", "ip.check_checksum:TRUE",
            "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE",
            "-Y", "ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\"",
        ])
        .output()
        .expect("tshark must be installed (apt-get install tshark; scripts/setup-debian.sh does)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

// ---- Helpers for the robustness tests (robust_*.rs) ----

/// A drop counter's value from the `Drops by reason:` block fnatd prints at exit.
pub fn drop_counter(stdout: &str, reason: &str) -> u64 {
    let block = stdout
        .split_once("Drops by reason:")
        .unwrap_or_else(|| panic!("no drop counters in:\n{stdout}"))
        .1;
    block
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(reason))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no counter {reason} in:\n{stdout}"))
}

/// The books fnatd prints at exit: `accounted: RX n [+ originated n] = forwarded n + dropped n
/// [+ consumed n + held n]` and `mbufs leaked: n`. Terms a version does not print are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Books {
    pub rx: u64,
    /// Frames the engine built itself (ARP requests, gratuitous ARPs).
    pub originated: u64,
    pub forwarded: u64,
    pub dropped: u64,
    /// Frames the engine absorbed by design (ARP it learned from).
    pub consumed: u64,
    /// Frames still waiting for a neighbour at exit.
    pub held: u64,
    /// The exception path (printed only with a kernel twin): frames the kernel twins sent,
    /// and frames handed to them.
    pub from_kernel: u64,
    pub to_kernel: u64,
    /// True when the line says `=` (fnatd's own check).
    pub balanced: bool,
    pub mbufs_leaked: u64,
}

impl Books {
    /// Parses the books from fnatd's exit report; panics when a line is missing or malformed.
    pub fn parse(stdout: &str) -> Books {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("accounted:"))
            .unwrap_or_else(|| panic!("no accounted: line in:\n{stdout}"));
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let mut books = Books::default();
        let mut relation = None;
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "+" => i += 1,
                "=" | "!=" => {
                    relation = Some(words[i] == "=");
                    i += 1;
                }
                label => {
                    let n: u64 = words
                        .get(i + 1)
                        .and_then(|w| w.parse().ok())
                        .unwrap_or_else(|| panic!("malformed line {line:?}"));
                    let field = match label {
                        "RX" => &mut books.rx,
                        "originated" => &mut books.originated,
                        "forwarded" => &mut books.forwarded,
                        "dropped" => &mut books.dropped,
                        "consumed" => &mut books.consumed,
                        "held" => &mut books.held,
                        "from_kernel" => &mut books.from_kernel,
                        "to_kernel" => &mut books.to_kernel,
                        other => panic!("unknown term {other} in {line:?}"),
                    };
                    *field = n;
                    i += 2;
                }
            }
        }
        books.balanced = relation.unwrap_or_else(|| panic!("no = in {line:?}"));
        books.mbufs_leaked = stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("mbufs leaked:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `mbufs leaked:` line in:\n{stdout}"));
        books
    }

    /// Asserts what must hold after every run: the books balance exactly and nothing leaked.
    pub fn assert_sound(&self, stdout: &str) {
        assert!(
            self.balanced
                && self.rx + self.originated + self.from_kernel
                    == self.forwarded + self.to_kernel + self.dropped + self.consumed + self.held,
            "books do not balance: {self:?}\n{stdout}"
        );
        assert_eq!(self.mbufs_leaked, 0, "mbufs leaked\n{stdout}");
    }

    /// Asserts that the engine neither built nor absorbed frames of its own (the robustness
    /// labs use static neighbours only), so RX = forwarded + dropped exactly.
    pub fn assert_no_engine_frames(&self, stdout: &str) {
        assert_eq!(
            (self.originated, self.consumed, self.held),
            (0, 0, 0),
            "originated, consumed, held\n{stdout}"
        );
    }
}

/// The two-port full-NAT lab the robustness tests replay through, as a config file text.
///
/// wan (port 0, 02:00:00:00:00:01) owns 198.18.0.1/24 and the VIP 198.18.0.100; lan (port 1,
/// 02:00:00:00:00:02) owns 198.19.0.1/24 and the local address 198.19.0.10. Services: TCP
/// VIP:80 and UDP VIP:53, both to the one real server 198.19.1.10 (02:00:00:00:01:10) on port
/// 80 / 53. Clients are reached through 198.18.0.254 (02:00:00:00:00:fe). `dataplane`,
/// `session` and `timeouts` are the bodies of those sections (may be empty); `eal` likewise.
pub fn fnat_lab_config(eal: &str, dataplane: &str, session: &str, timeouts: &str) -> String {
    format!(
        r#"# written by a robustness test
[eal]
{eal}

[dataplane]
{dataplane}

[[port]]
name = "wan"
device = "net_ring0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_ring1"
mac = "02:00:00:00:00:02"
addresses = ["198.19.0.1/24", "198.19.0.10"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
local_addresses = ["198.19.0.10"]
real = [ {{ address = "198.19.1.10", port = 80 }} ]

[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
local_addresses = ["198.19.0.10"]
real = [ {{ address = "198.19.1.10", port = 53 }} ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"

[[route]]
prefix = "0.0.0.0/0"
port = "wan"
via = "198.18.0.254"

[[neighbour]]
address = "198.19.1.10"
mac = "02:00:00:00:01:10"
port = "lan"

[[neighbour]]
address = "198.18.0.254"
mac = "02:00:00:00:00:fe"
port = "wan"

[session]
{session}

[timeouts]
{timeouts}
"#
    )
}

/// Addresses of [`fnat_lab_config`].
pub mod lab {
    use std::net::Ipv4Addr;
    pub const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    pub const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    pub const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
    pub const WAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    pub const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
    pub const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
}

/// Runs `fnatd replay --config CONFIG ARGS…` (e.g. `--rx=wan=IN.pcap`), killing it and failing
/// the test after `limit`.
pub fn fnatd_replay(config: &Path, args: &[String], limit: Duration) -> Finished {
    let mut cmd = Command::new(bin("fnatd"));
    cmd.arg("replay").arg("--config").arg(config).args(args);
    run_with_deadline(&mut cmd, limit)
}

/// [`fnatd_replay`], failing the test unless it exits 0.
pub fn fnatd_replay_ok(config: &Path, args: &[String], limit: Duration) -> Finished {
    let run = fnatd_replay(config, args, limit);
    assert_eq!(
        run.code(),
        Some(0),
        "fnatd replay failed\nstderr:\n{}\nstdout:\n{}",
        run.stderr,
        run.stdout
    );
    run
}

/// Writes `config` into `dir` and runs [`fnatd_replay_ok`] with it.
pub fn replay_with_config(
    dir: &TempDir,
    config: &str,
    args: &[String],
    limit: Duration,
) -> Finished {
    let path = dir.join("fnatd.toml");
    std::fs::write(&path, config).expect("write config");
    fnatd_replay_ok(&path, args, limit)
}

/// The capture timestamp (µs) of flow `i`'s `step`-th frame in a synthetic replay input: flows
/// 10 µs apart, their steps 1 µs apart.
pub fn replay_ts(i: u32, step: u32) -> u128 {
    1_800_000_000_000_000_000 + u128::from(i * 10 + step) * 1_000
}

/// A TCP frame built by etherparse: `flags` letters S A F R P.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (std::net::Ipv4Addr, u16),
    dst: (std::net::Ipv4Addr, u16),
    flags: &str,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, seq, 64240);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            other => panic!("unknown TCP flag letter {other}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("etherparse writes tcp");
    out
}

/// Runs `cmd` with `input` on its standard input, killing it (and failing the test) after
/// `limit`.
pub fn run_with_input(cmd: &mut Command, input: &str, limit: Duration) -> Finished {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let done = wait_with_deadline(child, limit);
    let _ = writer.join();
    done
}

/// A `fnatd run` subprocess serving its control socket; stopped with SIGTERM (or killed when
/// dropped early).
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `fnatd run --config CONFIG --socket SOCKET EXTRA…` and waits until the socket
    /// answers.
    pub fn start(config: &Path, socket: &Path, extra: &[&str]) -> Daemon {
        Self::start_from(Command::new(bin("fnatd")), config, socket, extra)
    }

    /// As [`Daemon::start`], in a network namespace of its own with no interface up (needs
    /// root): its health checks, if any, reach nothing outside (no probe leaves the machine).
    pub fn start_isolated(config: &Path, socket: &Path, extra: &[&str]) -> Daemon {
        let mut c = Command::new("unshare");
        c.arg("--net").arg("--").arg(bin("fnatd"));
        Self::start_from(c, config, socket, extra)
    }

    fn start_from(mut command: Command, config: &Path, socket: &Path, extra: &[&str]) -> Daemon {
        let child = command
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fnatd");
        let mut daemon = Daemon {
            child: Some(child),
            socket: socket.to_path_buf(),
        };
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            if let Some(Ok(Some(_))) = daemon.child.as_mut().map(|c| c.try_wait()) {
                let done = wait_with_deadline(daemon.child.take().unwrap(), Duration::from_secs(5));
                panic!(
                    "fnatd exited before serving {}:\n{}",
                    socket.display(),
                    done.stderr
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "fnatd did not open {} in 30 s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> Finished {
        let child = self.child.take().expect("running");
        signal(child.id(), libc::SIGTERM);
        let done = wait_with_deadline(child, Duration::from_secs(30));
        assert_eq!(
            done.code(),
            Some(0),
            "fnatd did not stop cleanly:\n{}",
            done.stderr
        );
        done
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A directory holding an `ipvsadm` symlink to fnatctl, to put first on PATH.
pub fn ipvsadm_dir(dir: &TempDir) -> PathBuf {
    let link_dir = dir.join("bin");
    std::fs::create_dir_all(&link_dir).expect("create bin dir");
    let link = link_dir.join("ipvsadm");
    if !link.exists() {
        std::os::unix::fs::symlink(bin("fnatctl"), &link).expect("symlink ipvsadm");
    }
    link_dir
}

/// Runs `ipvsadm ARGS` (the fnatctl symlink in `link_dir`) against `socket`.
pub fn ipvsadm(link_dir: &Path, socket: &Path, args: &[&str]) -> Finished {
    run_with_deadline(
        Command::new(link_dir.join("ipvsadm"))
            .args(args)
            .env("FNAT_SOCKET", socket),
        Duration::from_secs(30),
    )
}

/// Runs `fnatctl --socket SOCKET ARGS`.
pub fn fnatctl(socket: &Path, args: &[&str]) -> Finished {
    run_with_deadline(
        Command::new(bin("fnatctl"))
            .arg("--socket")
            .arg(socket)
            .args(args),
        Duration::from_secs(30),
    )
}

/// Sends raw request lines on one connection and returns the reply lines.
pub fn control_exchange(socket: &Path, lines: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut replies = Vec::new();
    for line in lines {
        stream.write_all(line.as_bytes()).expect("write");
        stream.write_all(b"\n").expect("write");
        let mut reply = String::new();
        reader.read_line(&mut reply).expect("read reply");
        replies.push(reply);
    }
    replies
}

/// Every number of the forward-statistics block of port `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStats {
    pub rx: u64,
    pub rx_dropped: u64,
    pub tx: u64,
    pub tx_dropped: u64,
}

/// Parses the forward-statistics block of port `index` from fnatd's exit report.
pub fn port_stats(stdout: &str, index: usize) -> PortStats {
    let marker = format!("Forward statistics for port {index:<2}");
    let block = stdout
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no stats block for port {index} in:\n{stdout}"))
        .1;
    let block = block.split("Forward statistics").next().unwrap_or(block);
    let number_after = |label: &str| -> u64 {
        block
            .split_once(label)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} for port {index} in:\n{stdout}"))
    };
    PortStats {
        rx: number_after("RX-packets:"),
        rx_dropped: number_after("RX-dropped:"),
        tx: number_after("TX-packets:"),
        tx_dropped: number_after("TX-dropped:"),
    }
}

/// A small deterministic PRNG (xorshift64*) for generated captures: same seed, same capture.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Captures for [`fnat_lab_config`]'s two ports, built frame by frame with etherparse.
#[derive(Debug, Default, Clone)]
pub struct LabCapture {
    /// Frames arriving on wan (from clients, through the router).
    pub wan: Vec<CapturedFrame>,
    /// Frames arriving on lan (from the real server).
    pub lan: Vec<CapturedFrame>,
}

impl LabCapture {
    /// A client's TCP segment to VIP:80 (`flags` letters S A F R P).
    pub fn client(
        &mut self,
        ts_ns: u128,
        src: (std::net::Ipv4Addr, u16),
        flags: &str,
        payload: &[u8],
    ) {
        let data = tcp_frame(
            lab::ROUTER_MAC,
            lab::WAN_MAC,
            src,
            (lab::VIP, 80),
            flags,
            1,
            payload,
        );
        self.wan.push(CapturedFrame { ts_ns, data });
    }

    /// The real server's TCP segment from RS:80 to LIP:`lport`.
    pub fn server(&mut self, ts_ns: u128, lport: u16, flags: &str, payload: &[u8]) {
        let data = tcp_frame(
            lab::RS_MAC,
            lab::LAN_MAC,
            (lab::RS, 80),
            (lab::LIP, lport),
            flags,
            1,
            payload,
        );
        self.lan.push(CapturedFrame { ts_ns, data });
    }

    /// An ICMP echo request to the VIP (answered): a harmless frame that moves the clock.
    pub fn echo(&mut self, ts_ns: u128) {
        let mut data = Vec::new();
        etherparse::PacketBuilder::ethernet2(lab::ROUTER_MAC, lab::WAN_MAC)
            .ipv4([203, 0, 113, 250], lab::VIP.octets(), 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut data, b"tick")
            .expect("etherparse writes icmp");
        self.wan.push(CapturedFrame { ts_ns, data });
    }

    /// Frames in both captures.
    pub fn len(&self) -> usize {
        self.wan.len() + self.lan.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes both captures into `dir` and returns the `--rx`/`--tx` arguments for a
    /// one-worker replay (outputs: `wan-out.pcap`, `lan-out.pcap` in `dir`).
    pub fn write(&self, dir: &TempDir) -> Vec<String> {
        let (wan_in, lan_in) = (dir.join("wan-in.pcap"), dir.join("lan-in.pcap"));
        write_pcap(&wan_in, &self.wan);
        write_pcap(&lan_in, &self.lan);
        vec![
            format!("--rx=wan={}", wan_in.display()),
            format!("--rx=lan={}", lan_in.display()),
            format!("--tx=wan={}", dir.join("wan-out.pcap").display()),
            format!("--tx=lan={}", dir.join("lan-out.pcap").display()),
        ]
    }
}

/// TCP frames of a capture that carry `prefix` at the start of their payload, parsed.
pub fn tcp_with_payload(frames: &[CapturedFrame], prefix: &[u8]) -> Vec<TcpFrame> {
    frames
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .filter(|t| t.payload.starts_with(prefix))
        .collect()
}

/// Files that stand in for the system's name-service files in [`ipvsadm_with_etc`]: each
/// is bind-mounted over `/etc/<name>` in a private mount namespace.
pub const ETC_FILES: [&str; 4] = ["hosts", "services", "nsswitch.conf", "resolv.conf"];

/// Writes `hosts`, `services`, `nsswitch.conf` and `resolv.conf` (in [`ETC_FILES`] order)
/// into `dir/etc` and returns that directory, for [`ipvsadm_with_etc`].
pub fn write_etc(dir: &TempDir, files: [&str; 4]) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).expect("create etc dir");
    for (name, text) in ETC_FILES.iter().zip(files) {
        std::fs::write(etc.join(name), text).unwrap_or_else(|e| panic!("write etc/{name}: {e}"));
    }
    etc
}

/// Runs `ipvsadm ARGS` (the fnatctl symlink in `link_dir`) against `socket` inside
/// `unshare --mount`, where every file of [`ETC_FILES`] is the one in `etc` (bind mounts in
/// the new namespace only: the machine's own files are never touched), with `input` on its
/// standard input. The test fails loudly when the namespace or a mount cannot be made.
pub fn ipvsadm_with_etc(
    link_dir: &Path,
    socket: &Path,
    etc: &Path,
    args: &[&str],
    input: &str,
) -> Finished {
    const READY: &str = "fnat-test: /etc files mounted\n";
    let script = format!(
        "set -e\nfor f in {}; do mount --bind \"$ETC/$f\" \"/etc/$f\"; done\n\
         printf '{}' >&2\nexec \"$IPVSADM\" \"$@\"\n",
        ETC_FILES.join(" "),
        READY.trim_end().to_owned() + "\\n"
    );
    let mut done = run_with_input(
        Command::new("unshare")
            .arg("--mount")
            .arg("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .env("ETC", etc)
            .env("IPVSADM", link_dir.join("ipvsadm"))
            .env("FNAT_SOCKET", socket),
        input,
        Duration::from_secs(60),
    );
    match done.stderr.find(READY) {
        Some(at) => {
            done.stderr.replace_range(at..at + READY.len(), "");
        }
        None => panic!(
            "could not run ipvsadm with private /etc files (unshare --mount and mount --bind \
             need root): exit {:?}\n{}",
            done.code(),
            done.stderr
        ),
    }
    done
}
