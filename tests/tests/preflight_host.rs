//! `fnatd preflight` on this machine: a config that puts a port on this machine's own NIC
//! (the first PCI network device sysfs lists) must be refused (exit 1) with what that NIC
//! needs here, checked against facts read independently (sysfs, /proc/meminfo).

use std::process::Command;
use std::time::Duration;

use fnat_tests::*;

/// The first PCI device of class "network controller" (0x02xxxx), with its kernel driver.
fn first_nic() -> Option<(String, String)> {
    let mut devs: Vec<_> = std::fs::read_dir("/sys/bus/pci/devices")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    devs.sort();
    devs.into_iter().find_map(|d| {
        let class = std::fs::read_to_string(d.join("class")).ok()?;
        if !class.trim().starts_with("0x02") {
            return None;
        }
        let driver = std::fs::read_link(d.join("driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Some((d.file_name()?.to_string_lossy().into_owned(), driver))
    })
}

#[test]
fn preflight_explains_this_machine() {
    let dir = TempDir::new("preflight");
    let (addr, driver) = first_nic().unwrap_or(("0000:7f:1f.7".into(), String::new()));
    let cfg = dir.join("fnatd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nhugepages = true\nmemory_mb = 512\n\n\
             [[port]]\nname = \"wan\"\ndevice = \"{addr}\"\n\n\
             [[port]]\nname = \"lan\"\ndevice = \"net_null0\"\n\n\
             [forward]\nwan = \"lan\"\nlan = \"wan\"\n\n\
             [control]\nsocket = \"{}\"\n",
            dir.join("run/ctl.sock").display()
        ),
    )
    .unwrap();
    let done = run_with_deadline(
        Command::new(bin("fnatd"))
            .args(["preflight", "--config"])
            .arg(&cfg),
        Duration::from_secs(30),
    );
    let out = done.stdout.clone();
    println!("{out}");
    assert_eq!(done.code(), Some(1), "{out}{}", done.stderr);
    // The NIC: its driver now, and the bind command (unless it already is vfio-pci's).
    if driver.is_empty()
        && !std::path::Path::new("/sys/bus/pci/devices")
            .join(&addr)
            .exists()
    {
        assert!(out.contains(&format!("no PCI device {addr}")), "{out}");
    } else if driver != "vfio-pci" {
        assert!(
            out.contains(&format!("{addr} has driver {driver}, DPDK needs vfio-pci")),
            "{out}"
        );
        assert!(
            out.contains(&format!("fix: dpdk-devbind.py --bind=vfio-pci {addr}")),
            "{out}"
        );
    }
    // Huge pages, from /proc/meminfo.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Total:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if total == 0 {
        assert!(
            out.contains("MISSING  huge pages: 0 MiB reserved on NUMA node"),
            "{out}"
        );
        assert!(
            out.contains("/hugepages/hugepages-2048kB/nr_hugepages"),
            "{out}"
        );
    }
    // Worker CPUs, from sysfs.
    let isolated = std::fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap();
    if isolated.trim().is_empty() {
        assert!(out.contains("are not isolated"), "{out}");
        assert!(out.contains("fix: add isolcpus="), "{out}");
    }
    // The socket's directory does not exist yet.
    assert!(
        out.contains(&format!(
            "MISSING  control socket: directory {} is not writable",
            dir.join("run").display()
        )),
        "{out}"
    );
    assert!(out.ends_with("item(s) missing\n"), "{out}");
}
