//! Helpers shared by the integration tests: where the binaries and captures are, running a
//! subprocess with a deadline, reading pcaps with an independent library (pcap-file).

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
    // SAFETY: kill(2) on a pid we spawned; no memory is shared.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
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
