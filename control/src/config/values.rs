//! Parsers for the value formats the config uses (addresses, prefixes, MACs), with error texts
//! meant for operators.

use std::net::Ipv4Addr;

use fnat_engine::rules::Ipv4Cidr;

pub fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not an IPv4 address"))
}

/// `198.18.0.1/24`, or a bare address meaning /32.
pub fn ipv4_cidr(text: &str) -> Result<Ipv4Cidr, String> {
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => {
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| format!("'{text}': prefix length must be 0 to 32"))?;
            (addr, len)
        }
        None => (text, 32),
    };
    Ok(Ipv4Cidr {
        addr: ipv4(addr).map_err(|_| format!("'{text}' is not an IPv4 address or prefix"))?,
        prefix_len: len,
    })
}

/// `02:00:00:00:00:01` (colon- or dash-separated hex octets).
pub fn mac(text: &str) -> Result<[u8; 6], String> {
    let err = || {
        format!("'{text}' is not a MAC address (expected six hex octets like 02:00:00:00:00:01)")
    };
    let mut out = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in out.iter_mut() {
        let part = parts.next().ok_or_else(err)?;
        if part.is_empty() || part.len() > 2 {
            return Err(err());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
    }
    if parts.next().is_some() {
        return Err(err());
    }
    Ok(out)
}

/// Formats a MAC the way `ip link` does.
pub fn mac_to_string(mac: &[u8; 6]) -> String {
    let m = mac;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// True when a device string names a PCI device (`0000:03:00.0` or `03:00.0`) rather than a vdev.
pub fn is_pci_address(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = name.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let dev_fn = |s: &str| match s.split_once('.') {
        Some((dev, func)) => {
            hex(dev, 2) && func.len() == 1 && func.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    };
    match parts.as_slice() {
        [domain, bus, df] => hex(domain, 4) && hex(bus, 2) && dev_fn(df),
        [bus, df] => hex(bus, 2) && dev_fn(df),
        _ => false,
    }
}

/// A Linux interface name for a kernel twin: 1 to 15 bytes (IFNAMSIZ less the NUL) of
/// letters, digits, '-', '_' and '.', not "." or "..".
pub fn interface_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "'{name}': an interface name has 1 to 15 characters"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not an interface name"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("'{name}': use letters, digits, '-', '_' and '.'"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert_eq!(interface_name("fkw0").unwrap(), "fkw0");
        assert!(interface_name("").is_err());
        assert!(interface_name("a-name-that-is-too-long").is_err());
        assert!(interface_name("tap 0").is_err());
        assert!(interface_name("..").is_err());
    }

    #[test]
    fn parses_prefixes_and_rejects_bad_ones() {
        assert_eq!(ipv4_cidr("198.18.0.1/24").unwrap().prefix_len, 24);
        assert_eq!(ipv4_cidr("198.18.0.1").unwrap().prefix_len, 32);
        assert!(ipv4_cidr("198.18.0.1/33").is_err());
        assert!(ipv4_cidr("198.18.0.300/24").is_err());
        assert!(ipv4_cidr("").is_err());
    }

    #[test]
    fn parses_macs() {
        assert_eq!(mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert_eq!(mac("02-00-00-00-00-0A").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(mac("02:00:00:00:00").is_err());
        assert!(mac("02:00:00:00:00:00:00").is_err());
        assert!(mac("02:00:00:00:00:zz").is_err());
        assert!(mac("002:00:00:00:00:00").is_err());
        assert_eq!(mac_to_string(&[2, 0, 0xab, 0, 0, 1]), "02:00:ab:00:00:01");
    }

    #[test]
    fn tells_pci_from_vdev() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(is_pci_address("0000:03:00.0,rxq_pkt_pad_en=1"));
        assert!(!is_pci_address("net_ring0"));
        assert!(!is_pci_address("net_af_packet0,iface=veth0"));
        assert!(!is_pci_address("net_pcap0,rx_pcap=a:b.pcap"));
    }
}
