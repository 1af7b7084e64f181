//! Helpers shared by the EAL integration tests. Each test file is its own process and holds
//! exactly one test function, because EAL can be initialised only once per process.
#![allow(dead_code)]

use dpdk_bindings::eal::Eal;

/// EAL arguments for tests: 2 lcores, no hugepages, no PCI, no shared config, plus `extra`.
pub fn eal_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "t",
        "-l",
        "0-1",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn init(extra: &[&str]) -> Eal {
    let args = eal_args(extra);
    Eal::init(&args).unwrap_or_else(|e| panic!("EAL init with {args:?}: {e}"))
}

/// A distinct 64..=(64+i%200)-byte Ethernet/IPv4-ish frame for index `i`.
pub fn frame(i: u32) -> Vec<u8> {
    let len = 64 + (i as usize * 7) % 200;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&i.to_be_bytes());
    for (k, b) in f.iter_mut().enumerate().skip(18) {
        *b = (k as u32).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}
