//! `fnatd preflight --config FILE`: what a deployment of this config needs from the machine and
//! what is missing, each missing item with the command that fixes it. Read-only: it looks at
//! sysfs, procfs and the PMD plugin directory, and changes nothing.
//!
//! Checked: huge pages (on the NUMA node of each NIC), each PCI port bound to vfio-pci (or its
//! bifurcated kernel driver), an IOMMU or vfio's no-IOMMU mode, the worker CPUs isolated from
//! the scheduler, each port's PMD plugin, the control socket's and state file's directories.

use std::path::{Path, PathBuf};

use crate::config::AppConfig;

/// Where the machine's facts are read (a fake tree in tests).
pub struct Host {
    pub sys: PathBuf,
    pub proc: PathBuf,
    /// DPDK's PMD plugin directories (`/usr/lib/<triplet>/dpdk/pmds-*`).
    pub pmd_dirs: Vec<PathBuf>,
    /// Kernel modules (`/lib/modules`).
    pub modules: PathBuf,
}

impl Host {
    /// This machine.
    pub fn real() -> Host {
        let mut pmd_dirs = Vec::new();
        for lib in list_dir(Path::new("/usr/lib")) {
            for d in list_dir(&lib.join("dpdk")) {
                if file_name(&d).starts_with("pmds-") {
                    pmd_dirs.push(d);
                }
            }
        }
        Host {
            sys: "/sys".into(),
            proc: "/proc".into(),
            pmd_dirs,
            modules: "/lib/modules".into(),
        }
    }
}

/// One item: satisfied or not, what was found, and the commands that fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub fix: Vec<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: Vec::new(),
    }
}

fn missing(what: impl Into<String>, fix: &[String]) -> Finding {
    Finding {
        ok: false,
        what: what.into(),
        fix: fix.to_vec(),
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A PCI address as DPDK takes it (`0000:03:00.0` or `03:00.0`), in sysfs's full form.
pub fn pci_address(device: &str) -> Option<String> {
    let name = device.split(',').next().unwrap_or(device);
    let full = match name.matches(':').count() {
        1 => format!("0000:{name}"),
        2 => name.to_string(),
        _ => return None,
    };
    let b = full.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    (full.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11]))
    .then(|| full.to_ascii_lowercase())
}

/// CPUs of a kernel cpulist (`1-3,5`).
fn cpulist(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// PMD names that may drive a PCI vendor's NICs (DPDK 22.11's plugin names).
fn pmds_for_vendor(vendor: &str) -> &'static [&'static str] {
    match vendor {
        "0x8086" => &["ixgbe", "i40e", "ice", "e1000", "igc", "iavf"],
        "0x15b3" => &["mlx5", "mlx4"],
        "0x1af4" => &["virtio"],
        "0x1d0f" => &["ena"],
        "0x15ad" => &["vmxnet3"],
        "0x14e4" => &["bnxt"],
        "0x1924" => &["sfc"],
        "0x19e5" => &["hns3", "hinic"],
        "0x1137" => &["enic"],
        "0x1425" => &["cxgbe"],
        "0x19ee" => &["nfp"],
        "0x1dd8" => &["ionic"],
        "0x177d" => &["thunderx"],
        "0x8088" => &["txgbe", "ngbe"],
        _ => &[],
    }
}

/// Debian's package for a PMD plugin (`librte-net-null23`, `librte-net-mlx5-23`).
fn pmd_package(pmd: &str) -> String {
    let name = pmd.replace('_', "-");
    if name.ends_with(|c: char| c.is_ascii_digit()) {
        format!("librte-net-{name}-23")
    } else {
        format!("librte-net-{name}23")
    }
}

/// The PMD of a virtual device name (`net_af_packet0` → `af_packet`).
fn vdev_pmd(device: &str) -> Option<String> {
    let name = device.split(',').next().unwrap_or(device);
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    match base {
        "virtio_user" => Some("virtio".into()),
        b => b.strip_prefix("net_").map(str::to_string),
    }
}

/// A `key=value` argument of a vdev (`iface=veth0`).
fn vdev_arg<'a>(device: &'a str, key: &str) -> Option<&'a str> {
    device
        .split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Drivers that keep the kernel driver bound (bifurcated): no vfio-pci, no IOMMU needed.
fn bifurcated(driver: &str) -> bool {
    matches!(driver, "mlx5_core" | "mlx4_core")
}

/// Every check for `cfg` on `host`, in the order an operator fixes them.
pub fn check(cfg: &AppConfig, host: &Host) -> Vec<Finding> {
    let mut out = Vec::new();
    let pci: Vec<(String, String)> = cfg
        .ports
        .iter()
        .filter_map(|p| pci_address(&p.device).map(|a| (p.name.clone(), a)))
        .collect();
    let mut needs_iommu = false;
    let mut numa_nodes: Vec<u32> = Vec::new();

    // NICs and their drivers.
    for (name, addr) in &pci {
        let dev = host.sys.join("bus/pci/devices").join(addr);
        if !dev.exists() {
            out.push(missing(
                format!("port {name}: no PCI device {addr} on this machine"),
                &["dpdk-devbind.py --status   # lists the NICs and their addresses".into()],
            ));
            continue;
        }
        let node = read_trim(&dev.join("numa_node"))
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| n.max(0) as u32);
        if !numa_nodes.contains(&node) {
            numa_nodes.push(node);
        }
        let driver = std::fs::read_link(dev.join("driver"))
            .map(|l| file_name(&l))
            .unwrap_or_default();
        let vendor = read_trim(&dev.join("vendor")).unwrap_or_default();
        // The kernel's interfaces on it: net/ directly, or under a child (virtio's virtioN/net).
        let mut ifaces: Vec<String> = list_dir(&dev.join("net"))
            .iter()
            .map(|p| file_name(p))
            .collect();
        for child in list_dir(&dev) {
            ifaces.extend(list_dir(&child.join("net")).iter().map(|p| file_name(p)));
        }
        if driver == "vfio-pci" {
            needs_iommu = true;
            out.push(ok(format!(
                "port {name}: {addr} bound to vfio-pci (NUMA node {node})"
            )));
        } else if bifurcated(&driver) {
            out.push(ok(format!(
                "port {name}: {addr} on {driver} (bifurcated: DPDK shares it with the kernel)"
            )));
        } else {
            needs_iommu = true;
            let held = if ifaces.is_empty() {
                String::new()
            } else {
                format!(
                    "; binding takes {} away from the kernel (make sure you do not log in through it)",
                    ifaces.join(", ")
                )
            };
            let now = if driver.is_empty() {
                "no driver".to_string()
            } else {
                format!("driver {driver}")
            };
            let mut fix = Vec::new();
            match vfio_pci(host) {
                Vfio::Registered => {}
                Vfio::Module => fix.push("modprobe vfio-pci".to_string()),
                Vfio::Absent(release) => {
                    fix.push(format!(
                        "this kernel ({release}) has no vfio-pci (not registered, no module under {}): boot a kernel built with CONFIG_VFIO_PCI",
                        host.modules.join(&release).display()
                    ));
                    if let Some(iface) = ifaces.first() {
                        fix.push(format!(
                            "or leave {addr} to the kernel and run the port on it: device = \"net_af_xdp0,iface={iface}\" (or net_af_packet0,iface={iface}), slower than vfio-pci"
                        ));
                    }
                }
            }
            fix.push(format!("dpdk-devbind.py --bind=vfio-pci {addr}"));
            out.push(missing(
                format!("port {name}: {addr} has {now}, DPDK needs vfio-pci{held}"),
                &fix,
            ));
        }
        // The PMD for this vendor.
        let candidates = pmds_for_vendor(&vendor);
        let present: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|p| pmd_present(host, p))
            .collect();
        if candidates.is_empty() {
            out.push(ok(format!(
                "port {name}: vendor {vendor} is not in preflight's list; check `dpdk-testpmd -a {addr}` finds it"
            )));
        } else if present.is_empty() {
            let fix: Vec<String> = candidates
                .iter()
                .map(|p| {
                    format!(
                        "apt-get install {}   # if the NIC is a {p} one",
                        pmd_package(p)
                    )
                })
                .collect();
            out.push(missing(
                format!(
                    "port {name}: no PMD plugin for vendor {vendor} ({})",
                    candidates.join(", ")
                ),
                &fix,
            ));
        } else {
            out.push(ok(format!(
                "port {name}: PMD plugin present ({})",
                present.join(", ")
            )));
        }
    }
    // Virtual devices: their PMD and what they attach to.
    for p in cfg
        .ports
        .iter()
        .filter(|p| pci_address(&p.device).is_none())
    {
        let Some(pmd) = vdev_pmd(&p.device) else {
            continue;
        };
        if pmd_present(host, &pmd) {
            out.push(ok(format!("port {}: PMD plugin {pmd} present", p.name)));
        } else {
            out.push(missing(
                format!("port {}: no PMD plugin {pmd} for {}", p.name, p.dpdk_name()),
                &[format!("apt-get install {}", pmd_package(&pmd))],
            ));
        }
        if let Some(iface) = vdev_arg(&p.device, "iface") {
            if host.sys.join("class/net").join(iface).exists() {
                out.push(ok(format!("port {}: interface {iface} exists", p.name)));
            } else {
                out.push(missing(
                    format!("port {}: no network interface {iface}", p.name),
                    &["ip link   # lists the interfaces; fix iface= in the port's device".into()],
                ));
            }
        }
    }

    // IOMMU (vfio-pci needs one, or the unsafe no-IOMMU mode in a VM without a vIOMMU).
    if needs_iommu {
        let iommus = list_dir(&host.sys.join("class/iommu"));
        let noiommu = read_trim(
            &host
                .sys
                .join("module/vfio/parameters/enable_unsafe_noiommu_mode"),
        );
        if !iommus.is_empty() {
            out.push(ok(format!(
                "IOMMU on ({})",
                iommus
                    .iter()
                    .map(|p| file_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        } else if noiommu.as_deref() == Some("Y") {
            out.push(ok(
                "no IOMMU, vfio's enable_unsafe_noiommu_mode is on (no DMA isolation)",
            ));
        } else {
            out.push(missing(
                "no IOMMU, and vfio's no-IOMMU mode is off: vfio-pci cannot take the NIC",
                &[
                    "on bare metal: add intel_iommu=on iommu=pt (AMD: amd_iommu=on) to GRUB_CMDLINE_LINUX in /etc/default/grub; update-grub; reboot".into(),
                    match vfio_pci(host) {
                        Vfio::Absent(_) => "in a VM without a vIOMMU: vfio's enable_unsafe_noiommu_mode=1, once the kernel has VFIO (this one has not)".into(),
                        _ => "in a VM without a vIOMMU: modprobe vfio enable_unsafe_noiommu_mode=1 (or echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)".into(),
                    },
                ],
            ));
        }
    }

    // Huge pages: PCI ports need them for DMA; the config may also ask for them.
    let need_huge = !pci.is_empty() || cfg.eal.hugepages;
    if need_huge {
        if numa_nodes.is_empty() {
            numa_nodes.push(0);
        }
        let want_mb = u64::from(cfg.eal.memory_mb);
        for node in &numa_nodes {
            let dir = host
                .sys
                .join(format!("devices/system/node/node{node}/hugepages"));
            let mut have_mb = 0u64;
            for size_dir in list_dir(&dir) {
                let kb: u64 = file_name(&size_dir)
                    .trim_start_matches("hugepages-")
                    .trim_end_matches("kB")
                    .parse()
                    .unwrap_or(0);
                let n: u64 = read_trim(&size_dir.join("nr_hugepages"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                have_mb += kb * n / 1024;
            }
            if have_mb >= want_mb {
                out.push(ok(format!(
                    "huge pages: {have_mb} MiB reserved on NUMA node {node} (eal.memory_mb = {want_mb})"
                )));
            } else {
                let pages = want_mb.div_ceil(2);
                out.push(missing(
                    format!(
                        "huge pages: {have_mb} MiB reserved on NUMA node {node}, {want_mb} MiB needed (eal.memory_mb)"
                    ),
                    &[
                        format!("echo {pages} > /sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages"),
                        format!("at boot: add hugepages={pages} to GRUB_CMDLINE_LINUX (or vm.nr_hugepages = {pages} in /etc/sysctl.d/)"),
                    ],
                ));
            }
        }
        let mounts = std::fs::read_to_string(host.proc.join("mounts")).unwrap_or_default();
        if mounts
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        {
            out.push(ok("hugetlbfs mounted"));
        } else {
            out.push(missing(
                "hugetlbfs is not mounted",
                &["mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages".into()],
            ));
        }
        if !cfg.eal.hugepages {
            out.push(missing(
                "the config runs EAL without huge pages (eal.hugepages = false), which PCI NICs need for DMA",
                &[format!("set `hugepages = true` under [eal] in {}", cfg.path.display())],
            ));
        }
    } else {
        out.push(ok(
            "huge pages: not needed (virtual devices only, eal.hugepages = false)",
        ));
    }

    // Worker CPUs: online, and isolated from the scheduler so nothing preempts a poll loop.
    let online =
        cpulist(&read_trim(&host.sys.join("devices/system/cpu/online")).unwrap_or_default());
    let isolated =
        cpulist(&read_trim(&host.sys.join("devices/system/cpu/isolated")).unwrap_or_default());
    let workers = &cfg.eal.worker_cpus;
    let offline: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|c| !online.contains(c))
        .collect();
    if !offline.is_empty() {
        out.push(missing(
            format!("worker CPUs {offline:?} are not online (online: {online:?})"),
            &["set eal.worker_cpus to online CPUs (see /sys/devices/system/cpu/online)".into()],
        ));
    }
    if workers.contains(&cfg.eal.main_cpu) {
        out.push(missing(
            format!(
                "eal.main_cpu {} is also a worker CPU (this machine has {} online): the control thread and a poll loop share it",
                cfg.eal.main_cpu,
                online.len()
            ),
            &["give the workers CPUs of their own in eal.worker_cpus (fewer dataplane.workers, or a machine with more CPUs)".into()],
        ));
    }
    let shared: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|c| !isolated.contains(c))
        .collect();
    if shared.is_empty() {
        out.push(ok(format!("worker CPUs {workers:?} isolated")));
    } else {
        let list = shared
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        out.push(missing(
            format!("worker CPUs {shared:?} are not isolated (isolated: {isolated:?}): the scheduler may preempt a poll loop"),
            &[format!(
                "add isolcpus={list} nohz_full={list} rcu_nocbs={list} to GRUB_CMDLINE_LINUX in /etc/default/grub; update-grub; reboot"
            )],
        ));
    }

    // Where the control socket and the state file go.
    let mut dirs = vec![("control socket", cfg.control.socket.clone())];
    if let Some(state) = &cfg.control.state_file {
        dirs.push(("state file", state.clone()));
    }
    for (what, path) in dirs {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if writable(&dir) {
            out.push(ok(format!("{what}: {} is writable", dir.display())));
        } else {
            let fix = if dir.exists() {
                format!("run fnatd as root, or chmod u+w {}", dir.display())
            } else {
                format!(
                    "mkdir -p {}   # fnatd.service's RuntimeDirectory/StateDirectory create it",
                    dir.display()
                )
            };
            out.push(missing(
                format!("{what}: directory {} is not writable", dir.display()),
                &[fix],
            ));
        }
    }
    out
}

/// Whether this kernel can give a NIC to vfio-pci.
enum Vfio {
    /// The driver is registered (built in or loaded).
    Registered,
    /// A loadable module exists.
    Module,
    /// Neither; the kernel release.
    Absent(String),
}

fn vfio_pci(host: &Host) -> Vfio {
    if host.sys.join("bus/pci/drivers/vfio-pci").exists() {
        return Vfio::Registered;
    }
    let release = read_trim(&host.proc.join("sys/kernel/osrelease")).unwrap_or_default();
    let dir = host.modules.join(&release);
    let listed = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .is_ok_and(|t| t.contains("vfio-pci.ko") || t.contains("vfio_pci.ko"))
    };
    if listed("modules.dep") || listed("modules.builtin") {
        Vfio::Module
    } else {
        Vfio::Absent(release)
    }
}

fn pmd_present(host: &Host, pmd: &str) -> bool {
    let prefix = format!("librte_net_{pmd}.so");
    host.pmd_dirs.iter().any(|d| {
        list_dir(d)
            .iter()
            .any(|f| file_name(f).starts_with(&prefix))
    })
}

/// True when a file can be created in `dir` (the test creates and removes one).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".fnatd-preflight-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// The report: one line per item, fixes under the missing ones, and a count.
pub fn render(config: &Path, findings: &[Finding]) -> String {
    let mut out = format!("fnatd preflight: {}\n", config.display());
    for f in findings {
        out.push_str(&format!(
            "  {:<8} {}\n",
            if f.ok { "ok" } else { "MISSING" },
            f.what
        ));
        for fix in &f.fix {
            out.push_str(&format!("           fix: {fix}\n"));
        }
    }
    let missing = findings.iter().filter(|f| !f.ok).count();
    if missing == 0 {
        out.push_str("everything this config needs is in place\n");
    } else {
        out.push_str(&format!("{missing} item(s) missing\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree(PathBuf);
    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A fake machine: one Intel NIC at 0000:03:00.0 on NUMA node 1.
    fn machine(
        tag: &str,
        driver: &str,
        isolated: &str,
        hugepages: u32,
        iommu: bool,
    ) -> (Tree, Host) {
        let root =
            std::env::temp_dir().join(format!("fnat-preflight-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sys = root.join("sys");
        let dev = "bus/pci/devices/0000:03:00.0";
        write(&sys, &format!("{dev}/vendor"), "0x8086\n");
        write(&sys, &format!("{dev}/numa_node"), "1\n");
        std::fs::create_dir_all(sys.join("bus/pci/drivers").join(driver)).unwrap();
        std::os::unix::fs::symlink(
            sys.join("bus/pci/drivers").join(driver),
            sys.join(dev).join("driver"),
        )
        .unwrap();
        write(&sys, &format!("{dev}/net/enp3s0f0/ifindex"), "3\n");
        write(&sys, "devices/system/cpu/online", "0-3\n");
        write(
            &sys,
            "devices/system/cpu/isolated",
            &format!("{isolated}\n"),
        );
        write(
            &sys,
            "devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
            &format!("{hugepages}\n"),
        );
        if iommu {
            std::fs::create_dir_all(sys.join("class/iommu/dmar0")).unwrap();
        }
        write(
            &root,
            "proc/mounts",
            "nodev /dev/hugepages hugetlbfs rw 0 0\n",
        );
        write(&root, "pmds/librte_net_ixgbe.so.23", "");
        write(&root, "proc/sys/kernel/osrelease", "6.1.0-test\n");
        write(
            &root,
            "modules/6.1.0-test/modules.dep",
            "kernel/drivers/vfio/pci/vfio-pci.ko:\n",
        );
        let host = Host {
            sys,
            proc: root.join("proc"),
            pmd_dirs: vec![root.join("pmds")],
            modules: root.join("modules"),
        };
        (Tree(root), host)
    }

    fn config(dir: &Path) -> AppConfig {
        let text = format!(
            "[eal]\nworker_cpus = [2, 3]\nhugepages = true\nmemory_mb = 512\n\n[dataplane]\nworkers = 2\n\n\
             [[port]]\nname = \"wan\"\ndevice = \"0000:03:00.0\"\n\n\
             [[port]]\nname = \"lan\"\ndevice = \"net_null0\"\n\n\
             [forward]\nwan = \"lan\"\nlan = \"wan\"\n\n\
             [control]\nsocket = \"{}\"\n",
            dir.join("ctl.sock").display()
        );
        AppConfig::parse(&dir.join("fnatd.toml"), &text).unwrap()
    }

    #[test]
    fn a_ready_machine_passes() {
        let (tree, host) = machine("ready", "vfio-pci", "2-3", 256, true);
        let report = check(&config(&tree.0), &host);
        // net_null's plugin is not in the fake tree: the one missing item.
        let missing: Vec<&Finding> = report.iter().filter(|f| !f.ok).collect();
        assert_eq!(missing.len(), 1, "{report:#?}");
        assert!(
            missing[0].what.contains("no PMD plugin null"),
            "{report:#?}"
        );
        assert_eq!(
            missing[0].fix,
            vec!["apt-get install librte-net-null23".to_string()]
        );
    }

    #[test]
    fn each_missing_item_names_its_fix() {
        let (tree, host) = machine("bare", "ixgbe", "", 0, false);
        let text = render(Path::new("x.toml"), &check(&config(&tree.0), &host));
        for want in [
            "0000:03:00.0 has driver ixgbe, DPDK needs vfio-pci; binding takes enp3s0f0",
            "fix: modprobe vfio-pci",
            "fix: dpdk-devbind.py --bind=vfio-pci 0000:03:00.0",
            "no IOMMU, and vfio's no-IOMMU mode is off",
            "huge pages: 0 MiB reserved on NUMA node 1, 512 MiB needed",
            "fix: echo 256 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
            "worker CPUs [2, 3] are not isolated",
            "fix: add isolcpus=2,3 nohz_full=2,3 rcu_nocbs=2,3",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
    }

    #[test]
    fn a_kernel_without_vfio_is_named() {
        let (tree, host) = machine("novfio", "virtio-pci", "2-3", 256, false);
        std::fs::remove_file(tree.0.join("modules/6.1.0-test/modules.dep")).unwrap();
        let text = render(Path::new("x.toml"), &check(&config(&tree.0), &host));
        for want in [
            "this kernel (6.1.0-test) has no vfio-pci",
            "device = \"net_af_xdp0,iface=enp3s0f0\"",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
        assert!(!text.contains("modprobe vfio-pci"), "{text}");
    }

    #[test]
    fn pci_addresses_and_packages() {
        assert_eq!(pci_address("03:00.0").as_deref(), Some("0000:03:00.0"));
        assert_eq!(
            pci_address("0000:AF:00.1,x=1").as_deref(),
            Some("0000:af:00.1")
        );
        assert_eq!(pci_address("net_null0"), None);
        assert_eq!(pmd_package("mlx5"), "librte-net-mlx5-23");
        assert_eq!(pmd_package("af_packet"), "librte-net-af-packet23");
        assert_eq!(
            vdev_pmd("net_af_packet0,iface=veth0").as_deref(),
            Some("af_packet")
        );
        assert_eq!(cpulist("1-3,5"), vec![1, 2, 3, 5]);
    }
}
