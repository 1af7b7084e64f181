//! `fnatd replay`: every port's device is swapped for a net_pcap device with one RX and one TX
//! queue per worker. A queue named with `--rx PORT[:QUEUE]=FILE` reads that capture (the others
//! read an empty one); a queue named with `--tx PORT[:QUEUE]=FILE` writes there (the others
//! write nowhere). Workers process frames in one global capture-time order, so runs are
//! deterministic whatever the number of workers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::AppConfig;

/// `PORT[:QUEUE]=FILE` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFile {
    pub port: String,
    /// The queue (= worker); none means queue 0, which is the only one with a single worker.
    pub queue: Option<u16>,
    pub file: PathBuf,
}

impl std::str::FromStr for PortFile {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("'{text}' is not PORT=FILE or PORT:QUEUE=FILE");
        let (target, file) = text.split_once('=').ok_or_else(usage)?;
        let (port, queue) = match target.split_once(':') {
            Some((port, queue)) => (port, Some(queue.parse::<u16>().map_err(|_| usage())?)),
            None => (target, None),
        };
        if port.is_empty() || file.is_empty() {
            return Err(usage());
        }
        Ok(PortFile {
            port: port.to_string(),
            queue,
            file: PathBuf::from(file),
        })
    }
}

/// A pcap file with no packets, for ports that have no `--rx` capture.
const EMPTY_PCAP: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, // magic, microsecond resolution, little endian
    2, 0, 4, 0, // version 2.4
    0, 0, 0, 0, // this zone
    0, 0, 0, 0, // sigfigs
    0xff, 0xff, 0, 0, // snaplen 65535
    1, 0, 0, 0, // linktype Ethernet
];

/// Scratch files of a replay (the empty capture), removed when dropped.
pub struct ReplayScratch {
    dir: PathBuf,
}

impl Drop for ReplayScratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Rewrites `cfg` for replay. Errors name the offending option.
pub fn prepare(
    cfg: &mut AppConfig,
    rx: &[PortFile],
    tx: &[PortFile],
) -> Result<ReplayScratch, String> {
    let workers = usize::from(cfg.dataplane.workers);
    // (port, queue) → file
    let mut rx_files: BTreeMap<(usize, usize), PathBuf> = BTreeMap::new();
    let mut tx_files: BTreeMap<(usize, usize), PathBuf> = BTreeMap::new();
    for (flag, list, map) in [("--rx", rx, &mut rx_files), ("--tx", tx, &mut tx_files)] {
        for pf in list {
            let shown = format!(
                "{flag} {}{}={}",
                pf.port,
                pf.queue.map_or(String::new(), |q| format!(":{q}")),
                pf.file.display()
            );
            let Some(port) = cfg.port_index(&pf.port) else {
                let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "{shown}: the config has no port '{}' (ports: {})",
                    pf.port,
                    names.join(", ")
                ));
            };
            let queue = match pf.queue {
                Some(q) if usize::from(q) >= workers => {
                    return Err(format!(
                        "{shown}: queue {q} does not exist with {workers} worker(s)"
                    ));
                }
                Some(q) => usize::from(q),
                // Outputs of several queues cannot share one file: make the user say which.
                None if flag == "--tx" && workers > 1 => {
                    return Err(format!(
                        "{shown}: with {workers} workers each TX queue writes its own file: use {}:QUEUE=FILE",
                        pf.port
                    ));
                }
                None => 0,
            };
            if map.insert((port, queue), pf.file.clone()).is_some() {
                return Err(format!("{shown}: that port and queue are named twice"));
            }
            check_path(flag, &pf.file)?;
        }
    }
    for file in rx_files.values() {
        fs::File::open(file).map_err(|e| format!("--rx {}: {e}", file.display()))?;
    }
    for file in tx_files.values() {
        // Checked before creating the output, which would truncate an input given twice.
        if rx_files.values().any(|f| same_file(f, file)) {
            return Err(format!("--tx {}: is also an --rx input", file.display()));
        }
        if tx_files.values().filter(|f| same_file(f, file)).count() > 1 {
            return Err(format!("--tx {}: named for two queues", file.display()));
        }
        fs::File::create(file).map_err(|e| format!("--tx {}: {e}", file.display()))?;
    }

    let dir = std::env::temp_dir().join(format!("fnatd-replay-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let scratch = ReplayScratch { dir };
    let empty = scratch.dir.join("empty.pcap");
    fs::write(&empty, EMPTY_PCAP).map_err(|e| format!("writing {}: {e}", empty.display()))?;

    for (i, port) in cfg.ports.iter_mut().enumerate() {
        let mut device = format!("net_pcap{i}");
        for q in 0..workers {
            let rx = rx_files.get(&(i, q)).unwrap_or(&empty);
            device.push_str(&format!(",rx_pcap={}", rx.display()));
        }
        for q in 0..workers {
            let tx = tx_files
                .get(&(i, q))
                .map_or(Path::new("/dev/null"), |p| p.as_path());
            device.push_str(&format!(",tx_pcap={}", tx.display()));
        }
        port.device = device;
    }
    Ok(scratch)
}

/// Device arguments are comma-separated, so a path must not contain one.
fn check_path(flag: &str, path: &Path) -> Result<(), String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{flag}: {} is not UTF-8", path.display()))?;
    if text.contains(',') {
        return Err(format!(
            "{flag}: '{text}' contains a comma, which DPDK device arguments cannot carry"
        ));
    }
    Ok(())
}

/// True when `a` (existing) and `b` (perhaps not yet created) name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| -> Option<PathBuf> {
        fs::canonicalize(p).ok().or_else(|| {
            let parent = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(fs::canonicalize(parent).ok()?.join(p.file_name()?))
        })
    };
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_file() {
        let pf: PortFile = "a=/tmp/x.pcap".parse().unwrap();
        assert_eq!(pf.port, "a");
        assert_eq!(pf.queue, None);
        assert_eq!(pf.file, PathBuf::from("/tmp/x.pcap"));
        let pf: PortFile = "lan:2=out.pcap".parse().unwrap();
        assert_eq!((pf.port.as_str(), pf.queue), ("lan", Some(2)));
        assert!("lan:x=out.pcap".parse::<PortFile>().is_err());
        assert!("a".parse::<PortFile>().is_err());
        assert!("=x".parse::<PortFile>().is_err());
        assert!("a=".parse::<PortFile>().is_err());
    }

    #[test]
    fn empty_pcap_is_a_valid_header() {
        assert_eq!(
            u32::from_le_bytes(EMPTY_PCAP[0..4].try_into().unwrap()),
            0xa1b2c3d4
        );
        assert_eq!(
            u32::from_le_bytes(EMPTY_PCAP[20..24].try_into().unwrap()),
            1
        );
    }
}
