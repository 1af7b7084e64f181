//! Config validation: each kind of mistake names its key.

use std::path::Path;

use fnat_engine::rules::Mode;

use super::*;

const GOOD: &str = r#"
[dataplane]
workers = 2

[[port]]
name = "a"
device = "net_ring0"
addresses = ["198.18.0.1/24"]

[[port]]
name = "b"
device = "net_ring1"

[forward]
a = "b"
b = "a"
"#;

fn parse(text: &str) -> Result<AppConfig, ConfigError> {
    AppConfig::parse(Path::new("test.toml"), text)
}

fn err(text: &str) -> ConfigError {
    parse(text).expect_err("config should be rejected")
}

#[test]
fn good_passthrough_config_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.dataplane.workers, 2);
    assert_eq!(c.ports.len(), 2);
    assert_eq!(
        c.rules.mode,
        Mode::Passthrough {
            forward: vec![Some(1), Some(0)]
        }
    );
    let args = eal_args(&c.eal, &c.ports);
    assert!(args.contains(&"--vdev=net_ring0".to_string()));
    assert!(args.contains(&"--no-pci".to_string()));
    assert!(args.contains(&"--no-shconf".to_string()));
    assert!(args.iter().any(|a| a.starts_with("--lcores=0@0,1@")));
}

#[test]
fn syntax_error_gives_line() {
    let e = err("[[port]]\nname = \"a\"\ndevice = \n");
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().starts_with("test.toml:3"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = err(&GOOD.replace(
        "device = \"net_ring1\"",
        "device = \"net_ring1\"\ndevise = \"x\"",
    ));
    assert!(e.key.starts_with("port[1]"), "{e:?}");
    assert!(e.reason.contains("unknown field `devise`"), "{e:?}");
}

#[test]
fn missing_device_is_named() {
    let e = err(&GOOD.replace("device = \"net_ring1\"", ""));
    assert_eq!(e.key, "port[1].device", "{e:?}");
    assert!(e.reason.contains("missing"), "{e:?}");
}

#[test]
fn invalid_address_is_named() {
    let e = err(&GOOD.replace("198.18.0.1/24", "198.18.0.256/24"));
    assert_eq!(e.key, "port[0].addresses[0]");
    assert!(e.reason.contains("198.18.0.256"), "{e:?}");
}

#[test]
fn wrong_type_is_named() {
    let e = err(&GOOD.replace("workers = 2", "workers = \"two\""));
    assert_eq!(e.key, "dataplane.workers", "{e:?}");
}

#[test]
fn forward_to_unknown_port_is_named() {
    let e = err(&GOOD.replace("b = \"a\"", "b = \"c\""));
    assert_eq!(e.key, "forward.b");
    assert!(e.reason.contains("'c'"));
}

#[test]
fn duplicate_port_names_and_devices_are_rejected() {
    assert_eq!(
        err(&GOOD.replace("name = \"b\"", "name = \"a\"")).key,
        "port[1].name"
    );
    assert_eq!(
        err(&GOOD.replace("net_ring1", "net_ring0")).key,
        "port[1].device"
    );
}

#[test]
fn zero_workers_rejected() {
    assert_eq!(
        err(&GOOD.replace("workers = 2", "workers = 0")).key,
        "dataplane.workers"
    );
}

const FNAT: &str = r#"
[[port]]
name = "wan"
device = "net_ring0"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_ring1"
addresses = ["198.19.0.10/24"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
local_addresses = ["198.19.0.10"]
real = [ { address = "198.19.1.10", port = 80 }, { address = "198.19.1.11", port = 80, weight = 3 } ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"

[[neighbour]]
address = "198.19.1.10"
mac = "02:00:00:00:01:10"
port = "lan"

[timeouts]
tcp_established = 600
"#;

#[test]
fn good_fnat_config_parses() {
    let c = parse(FNAT).unwrap();
    assert_eq!(c.rules.mode, Mode::FullNat);
    let s = &c.rules.services[0];
    assert_eq!(s.reals.len(), 2);
    assert_eq!(s.reals[1].weight, 3);
    assert_ne!(s.reals[0].id, s.reals[1].id);
    assert_eq!(c.rules.timeouts.tcp_established, 600);
    assert_eq!(c.rules.timeouts.udp, 300);
    assert_eq!(c.rules.routes[0].port, 1);
}

#[test]
fn fnat_mistakes_are_named() {
    assert_eq!(
        err(&FNAT.replace("\"tcp\"", "\"sctp\"")).key,
        "service[0].protocol"
    );
    assert_eq!(
        err(&FNAT.replace("\"rr\"", "\"xx\"")).key,
        "service[0].scheduler"
    );
    assert_eq!(
        err(&FNAT.replace("198.19.1.11", "198.19.1.x")).key,
        "service[0].real[1].address"
    );
    assert_eq!(
        err(&FNAT.replace("02:00:00:00:01:10", "nope")).key,
        "neighbour[0].mac"
    );
    assert_eq!(
        err(&FNAT.replace(
            "port = \"lan\"\n\n[[neighbour]]",
            "port = \"x\"\n\n[[neighbour]]"
        ))
        .key,
        "route[0].port"
    );
    assert_eq!(
        err(&FNAT.replace("tcp_established = 600", "tcp_established = 0")).key,
        "timeouts.tcp_established"
    );
    assert_eq!(
        err(&FNAT.replace(
            "local_addresses = [\"198.19.0.10\"]",
            "local_addresses = []"
        ))
        .key,
        "service[0].local_addresses"
    );
}
