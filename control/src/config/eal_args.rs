//! Builds the EAL argument list from the validated config: lcore placement, memory, devices.

use super::values::is_pci_address;
use super::{EalSettings, PortSpec};

/// EAL arguments (argv[0] included) for these settings and ports.
///
/// lcore 0 is the main lcore (control), lcores 1..=N the workers, each mapped to its CPU with
/// `--lcores`, so more workers than CPUs still run (they share CPUs). Without hugepages we pass
/// `--no-huge -m` and `--no-shconf` unless a file prefix is set, so runs leave nothing in
/// /var/run/dpdk and can go in parallel.
pub fn eal_args(eal: &EalSettings, ports: &[PortSpec]) -> Vec<String> {
    let mut lcores = format!("0@{}", eal.main_cpu);
    for (i, cpu) in eal.worker_cpus.iter().enumerate() {
        lcores.push_str(&format!(",{}@{}", i + 1, cpu));
    }
    let mut args = vec![
        "fnatd".to_string(),
        format!("--lcores={lcores}"),
        "--main-lcore=0".to_string(),
    ];
    if eal.hugepages {
        args.push(format!("--socket-mem={}", eal.memory_mb));
    } else {
        args.extend([
            "--no-huge".to_string(),
            "-m".to_string(),
            eal.memory_mb.to_string(),
        ]);
    }
    match &eal.file_prefix {
        Some(prefix) => args.push(format!("--file-prefix={prefix}")),
        None if !eal.hugepages => args.push("--no-shconf".to_string()),
        None => {}
    }
    if !ports.iter().any(|p| is_pci_address(&p.device)) {
        args.push("--no-pci".to_string());
    }
    for port in ports {
        if is_pci_address(&port.device) {
            args.extend(["-a".to_string(), port.device.clone()]);
        } else {
            args.push(format!("--vdev={}", port.device));
        }
    }
    for (i, port) in ports.iter().enumerate() {
        if let Some(name) = &port.kernel_interface {
            args.push(format!("--vdev={},iface={name}", twin_device(i)));
        }
    }
    args.push(format!("--log-level={}", eal.log_level));
    args.extend(eal.extra_args.iter().cloned());
    args
}

/// The DPDK device name of port `index`'s kernel twin (a `net_tap` vdev).
pub fn twin_device(index: usize) -> String {
    format!("net_tap_twin{index}")
}
