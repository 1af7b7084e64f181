//! `fnatd replay`: every port's device is swapped for a net_pcap device reading the capture
//! named with `--rx` (or an empty one) and writing to the file named with `--tx` (or nowhere).
//! Replay runs one worker, so its output order is the input order and runs are deterministic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::AppConfig;

/// `PORT=FILE` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFile {
    pub port: String,
    pub file: PathBuf,
}

impl std::str::FromStr for PortFile {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((port, file)) if !port.is_empty() && !file.is_empty() => Ok(PortFile {
                port: port.to_string(),
                file: PathBuf::from(file),
            }),
            _ => Err(format!("'{text}' is not PORT=FILE")),
        }
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
    let mut rx_files = BTreeMap::new();
    let mut tx_files = BTreeMap::new();
    for (flag, list, map) in [("--rx", rx, &mut rx_files), ("--tx", tx, &mut tx_files)] {
        for pf in list {
            if cfg.port_index(&pf.port).is_none() {
                let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "{flag} {}={}: the config has no port '{}' (ports: {})",
                    pf.port,
                    pf.file.display(),
                    pf.port,
                    names.join(", ")
                ));
            }
            if map.insert(pf.port.clone(), pf.file.clone()).is_some() {
                return Err(format!("{flag}: port '{}' is named twice", pf.port));
            }
            check_path(flag, &pf.file)?;
        }
    }
    for (port, file) in &rx_files {
        fs::File::open(file).map_err(|e| format!("--rx {port}={}: {e}", file.display()))?;
    }
    for (port, file) in &tx_files {
        // Checked before creating the output, which would truncate an input given twice.
        if rx_files.values().any(|f| same_file(f, file)) {
            return Err(format!(
                "--tx {port}={}: is also an --rx input",
                file.display()
            ));
        }
        fs::File::create(file).map_err(|e| format!("--tx {port}={}: {e}", file.display()))?;
    }

    let dir = std::env::temp_dir().join(format!("fnatd-replay-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let scratch = ReplayScratch { dir };
    let empty = scratch.dir.join("empty.pcap");
    fs::write(&empty, EMPTY_PCAP).map_err(|e| format!("writing {}: {e}", empty.display()))?;

    for (i, port) in cfg.ports.iter_mut().enumerate() {
        let rx = rx_files.get(&port.name).unwrap_or(&empty);
        let tx = tx_files
            .get(&port.name)
            .map_or(Path::new("/dev/null"), |p| p.as_path());
        port.device = format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display()
        );
    }
    // One worker: the single RX queue of a capture feeds one engine, in order.
    cfg.dataplane.workers = 1;
    cfg.eal.worker_cpus.truncate(1);
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
        assert_eq!(pf.file, PathBuf::from("/tmp/x.pcap"));
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
