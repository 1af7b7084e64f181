//! Build script: find DPDK 22.11 via pkg-config, compile the C shim for DPDK's static-inline
//! functions, and run bindgen over `shim/shim.h` (which includes every DPDK header we use).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MISSING: &str =
    "DPDK 22.11 not found via pkg-config: apt-get install libdpdk-dev libclang-dev pkg-config libpcap-dev";

fn dpdk_cflags() -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("{MISSING} (running pkg-config failed: {e})"));
    if !out.status.success() {
        panic!(
            "{MISSING} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout).expect("pkg-config output is not UTF-8");
    // `-include rte_config.h` is two words that belong together; keep them in order.
    text.split_whitespace().map(str::to_owned).collect()
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    // Check first, without emitting link metadata, so a missing DPDK fails with a clear message
    // before anything is compiled.
    if let Err(e) = pkg_config::Config::new()
        .cargo_metadata(false)
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        panic!("{MISSING}\n{e}");
    }
    let cflags = dpdk_cflags();

    // The shim comes first on the link line so the shared DPDK libraries that follow resolve it.
    let mut build = cc::Build::new();
    build
        .file("shim/shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(true);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("fnat_dpdk_shim");

    pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("{MISSING}\n{e}"));

    let functions = [
        "fnat_.*",
        "rte_strerror",
        "rte_eal_init",
        "rte_eal_cleanup",
        "rte_get_main_lcore",
        "rte_get_next_lcore",
        "rte_lcore_count",
        "rte_lcore_to_socket_id",
        "rte_socket_id",
        "rte_eal_remote_launch",
        "rte_eal_wait_lcore",
        "rte_eal_get_lcore_state",
        "rte_pktmbuf_pool_create",
        "rte_pktmbuf_free_bulk",
        "rte_mempool_free",
        "rte_mempool_lookup",
        "rte_mbuf_dynfield_lookup",
        "rte_mbuf_dynflag_lookup",
        "rte_mbuf_dyn_rx_timestamp_register",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_get_port_by_name",
        "rte_eth_dev_get_name_by_port",
        "rte_eth_dev_is_valid_port",
        "rte_eth_dev_info_get",
        "rte_eth_dev_configure",
        "rte_eth_dev_adjust_nb_rx_tx_desc",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_dev_socket_id",
        "rte_eth_macaddr_get",
        "rte_eth_dev_default_mac_addr_set",
        "rte_eth_promiscuous_enable",
        "rte_eth_promiscuous_disable",
        "rte_eth_stats_get",
        "rte_eth_stats_reset",
        "rte_eth_link_get_nowait",
        "rte_ring_create",
        "rte_ring_free",
    ];
    let vars = [
        "RTE_MAX_LCORE",
        "RTE_MAX_ETHPORTS",
        "RTE_PKTMBUF_HEADROOM",
        "RTE_MBUF_DEFAULT_DATAROOM",
        "RING_F_SP_ENQ",
        "RING_F_SC_DEQ",
        "RING_F_EXACT_SZ",
        "SOCKET_ID_ANY",
        "RTE_DEV_NAME_MAX_LEN",
        "RTE_MEMPOOL_NAMESIZE",
        "RTE_RING_NAMESIZE",
    ];

    let mut b = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags.iter().map(String::as_str))
        .clang_arg("-Ishim")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_default(true)
        .generate_comments(false)
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_mempool")
        .opaque_type("rte_ring")
        .opaque_type("rte_eth_dev_data")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_lcore_state_t");
    for f in functions {
        b = b.allowlist_function(f);
    }
    for v in vars {
        b = b.allowlist_var(v);
    }
    let bindings = b
        .generate()
        .expect("bindgen failed on shim/shim.h (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(&out).expect("writing bindings.rs");
}
