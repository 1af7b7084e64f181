//! The namespace lab from the tests' side: `scripts/lab/lab.sh` builds it (client, gateway
//! running fnatd on af_packet, real servers with nginx/python, socat echo), these helpers run
//! commands in its namespaces, and dropping a [`Lab`] tears it down on every exit path,
//! panics included. Tests that need root or network namespaces fail loudly without them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fnat_tests::{bin, root, run_with_deadline};

pub const VIP: &str = "198.18.10.100";
pub const VIP2: &str = "198.18.10.101";
pub const GW_WAN: &str = "198.18.0.1";

/// Fails the test (never skips) when the lab cannot run here.
pub fn require_root_and_netns() {
    let euid = nix::unistd::geteuid().as_raw();
    assert_eq!(
        euid, 0,
        "the lab tests need root (network namespaces, veths, DPDK): run them as root (make test)"
    );
    let ok = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`ip netns` does not work here: the lab tests need network namespaces"
    );
}

pub struct Lab {
    pub prefix: String,
    down: bool,
    /// The script that built it (and removes it): scripts/lab/lab.sh unless `up_script`.
    script: PathBuf,
}

fn script() -> PathBuf {
    root().join("scripts/lab/lab.sh")
}

/// A prefix unique to this process and call: namespaces and veths of parallel tests differ.
fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("ft{:04x}{n}", std::process::id() & 0xffff)
}

impl Lab {
    /// Builds a lab with `servers` real servers; `env` adds lab.sh settings.
    pub fn up(servers: u32, env: &[(&str, String)]) -> Lab {
        Lab::up_script(script(), servers, env)
    }

    /// Builds a lab with another script of scripts/lab taking `up` and `down PREFIX` as
    /// lab.sh does (e.g. scaleout.sh).
    pub fn up_script(script: PathBuf, servers: u32, env: &[(&str, String)]) -> Lab {
        require_root_and_netns();
        let prefix = unique_prefix();
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg("up")
            .env("LAB_PREFIX", &prefix)
            .env("LAB_SERVERS", servers.to_string())
            .env("FNATD", bin("fnatd"))
            .env("LAB_KEEP_STATE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // From here on, the guard removes whatever `up` built, even when it fails.
        let lab = Lab {
            prefix: prefix.clone(),
            down: false,
            script,
        };
        let done = run_with_deadline(&mut cmd, Duration::from_secs(90));
        assert!(
            done.status.success(),
            "lab.sh up failed:\n{}\n{}",
            done.stdout,
            done.stderr
        );
        lab
    }

    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/fnat-lab-{}", self.prefix))
    }

    pub fn socket(&self) -> PathBuf {
        self.state_dir().join("ctl.sock")
    }

    /// A command to run in a lab namespace (`c`, `g`, `s1`, ...).
    pub fn cmd(&self, role: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}{role}", self.prefix), program]);
        c
    }

    /// Runs a program in a namespace with a deadline; returns its output (any exit code).
    pub fn run(&self, role: &str, args: &[&str], limit: Duration) -> fnat_tests::Finished {
        let mut c = self.cmd(role, args[0]);
        c.args(&args[1..]);
        run_with_deadline(&mut c, limit)
    }

    /// `curl http://URL` from the client: the body, trimmed. Panics on failure.
    pub fn curl(&self, url: &str) -> String {
        let done = self.run(
            "c",
            &["curl", "-sS", "-m", "5", &format!("http://{url}")],
            Duration::from_secs(10),
        );
        assert!(done.status.success(), "curl {url}: {}", done.stderr);
        done.stdout.trim().to_string()
    }

    /// `n` HTTP requests from the client, one new connection each (Python's http.client):
    /// how many answers named each server.
    pub fn count_answers(&self, url: &str, n: u32) -> BTreeMap<String, u32> {
        let (host, port) = url.split_once(':').unwrap_or((url, "80"));
        let py = format!(
            "import http.client\nc={{}}\nfor i in range({n}):\n    k=http.client.HTTPConnection('{host}',{port},timeout=5)\n    k.request('GET','/')\n    b=k.getresponse().read().decode().strip()\n    k.close()\n    c[b]=c.get(b,0)+1\nfor b,v in sorted(c.items()):\n    print(b,v)\n"
        );
        let done = self.run(
            "c",
            &["/usr/bin/python3", "-c", &py],
            Duration::from_secs(120),
        );
        assert!(done.status.success(), "http client: {}", done.stderr);
        done.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }

    /// `fnatctl --socket SOCKET --json ARGS`, which must succeed, as JSON.
    pub fn fnatctl_json_at(&self, socket: &std::path::Path, args: &[&str]) -> serde_json::Value {
        let out = Command::new(bin("fnatctl"))
            .arg("--socket")
            .arg(socket)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("fnatctl");
        assert!(
            out.status.success(),
            "fnatctl {args:?} on {}: {}",
            socket.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("fnatctl JSON")
    }

    /// `fnatctl --json ARGS` on the lab's fnatd.
    pub fn fnatctl_json(&self, args: &[&str]) -> serde_json::Value {
        self.fnatctl_json_at(&self.socket(), args)
    }

    /// `fnatctl --json ARGS` on appliance `x` (`a`, `b`) of a two-appliance lab.
    pub fn appliance_json(&self, x: &str, args: &[&str]) -> serde_json::Value {
        self.fnatctl_json_at(&self.state_dir().join(format!("{x}.sock")), args)
    }

    /// `fnatctl --socket <lab socket> ipvsadm ARGS`.
    pub fn ipvsadm(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin("fnatctl"));
        c.arg("--socket")
            .arg(self.socket())
            .arg("ipvsadm")
            .args(args);
        c.stdin(Stdio::null());
        c.output().expect("running fnatctl")
    }

    /// Stops fnatd (SIGTERM, it prints its statistics), removes the lab, returns fnatd's log.
    pub fn down(mut self) -> String {
        self.teardown();
        let log = std::fs::read_to_string(self.state_dir().join("fnatd.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(self.state_dir());
        log
    }

    /// Stops everything (SIGTERM first: each fnatd prints its statistics), removes the lab,
    /// returns the logs `names` of its state directory (e.g. `fnatd-a.log`).
    pub fn down_logs(mut self, names: &[&str]) -> Vec<String> {
        self.teardown();
        let logs = names
            .iter()
            .map(|n| std::fs::read_to_string(self.state_dir().join(n)).unwrap_or_default())
            .collect();
        let _ = std::fs::remove_dir_all(self.state_dir());
        logs
    }

    fn teardown(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["down", &self.prefix])
            .env("LAB_KEEP_STATE", "1")
            .stdin(Stdio::null())
            .output();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
        if std::thread::panicking() {
            eprintln!(
                "lab {} state kept for inspection in {}",
                self.prefix,
                self.state_dir().display()
            );
        } else {
            let _ = std::fs::remove_dir_all(self.state_dir());
        }
    }
}

/// The number after `label` in fnatd's exit report (e.g. "requests sent").
pub fn report_number(log: &str, label: &str) -> u64 {
    let at = log
        .find(label)
        .unwrap_or_else(|| panic!("'{label}' not in fnatd's report:\n{log}"));
    log[at + label.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{label}':\n{log}"))
}

/// Checks fnatd's exit report: the books balance, no mbuf leaked.
pub fn assert_clean_exit(log: &str) {
    assert!(log.contains("mbufs leaked: 0"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("accounted: RX"))
        .unwrap_or_else(|| panic!("no accounting line:\n{log}"));
    assert!(!line.contains("!="), "accounting does not balance: {line}");
}

/// Waits until `ok` holds, at most `limit` (the test fails saying what it waited for);
/// returns the time it took.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// keepalived's notify FIFO as a test reads it: a thread reading it line by line into a
/// `Vec<String>`. The reader holds it open read-write, so fnatd's non-blocking writer always
/// finds a reader and the thread never sees an end of file; it ends with the process.
pub struct FifoLines {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FifoLines {
    /// Reads the FIFO at `path`, made first (mkfifo) when it does not exist yet.
    pub fn open(path: &std::path::Path) -> FifoLines {
        if !path.exists() {
            let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
            assert!(made.success(), "mkfifo {}", path.display());
        }
        FifoLines::read(path)
    }

    /// Reads the FIFO fnatd made at `path` (fails if there is none, or it is no FIFO).
    pub fn existing(path: &std::path::Path) -> FifoLines {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}: fnatd made no notify FIFO", path.display()));
        assert!(
            meta.file_type().is_fifo(),
            "{} is not a FIFO: {meta:?}",
            path.display()
        );
        FifoLines::read(path)
    }

    fn read(path: &std::path::Path) -> FifoLines {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(file).lines() {
                let Ok(line) = line else { return };
                out.lock().unwrap().push(line);
            }
        });
        FifoLines { lines }
    }

    /// Whether the line was read (exactly).
    pub fn has(&self, line: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l == line)
    }

    /// Every line read so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}
