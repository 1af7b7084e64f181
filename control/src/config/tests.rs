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

const SERVICES: &str = r#"
[[port]]
name = "wan"
device = "net_ring0"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_ring1"
addresses = ["198.19.0.10/24"]

[[port_group]]
name = "web"
mark = 7
protocol = "tcp"
vip = "198.18.0.100"
ports = [80, 443]

[[service]]
fwmark = 7
scheduler = "mh"
flags = ["mh-fallback", "mh-port"]
persistence_timeout = 600
persistence_netmask = "255.255.255.0"
expire_on_removal = true
local_addresses = ["198.19.0.10"]
real = [ { address = "198.19.1.10", port = 0, weight = 2147483647, upper_threshold = 100, lower_threshold = 50 },
         { address = "198.19.1.11", port = 0, weight = 0 } ]

[[service]]
vip = "198.18.0.100"
port = 0
protocol = "udp"
persistent = true
local_addresses = ["198.19.0.10"]
real = [ { address = "198.19.1.10", port = 0 } ]
"#;

#[test]
fn services_with_port_groups_persistence_flags_and_thresholds_parse() {
    use fnat_engine::rules::{Protocol, SchedFlags, SchedulerKind};
    use std::net::Ipv4Addr;
    let c = parse(SERVICES).unwrap();
    assert!(!c.rules.expire_quiescent_template, "IPVS's default");
    let quiescent = format!("{SERVICES}\n[session]\nexpire_quiescent_template = true\n");
    assert!(parse(&quiescent).unwrap().rules.expire_quiescent_template);
    let bad = format!("{SERVICES}\n[session]\nexpire_quiescent_template = 1\n");
    assert!(parse(&bad).is_err(), "not a boolean");
    let s = &c.rules.services[0];
    assert_eq!(s.scheduler, SchedulerKind::Mh);
    assert_eq!(
        s.options.sched_flags,
        SchedFlags(SchedFlags::FALLBACK | SchedFlags::PORT)
    );
    let p = s.options.persistence.unwrap();
    assert_eq!(
        (p.timeout_secs, p.netmask),
        (600, Ipv4Addr::new(255, 255, 255, 0))
    );
    assert!(s.options.expire_on_removal);
    let g = s.options.port_group.as_ref().unwrap();
    assert_eq!((g.mark, g.name.as_str()), (7, "web"));
    assert_eq!(
        g.members.iter().map(|e| e.port).collect::<Vec<_>>(),
        [80, 443]
    );
    assert_eq!((s.port, s.protocol), (80, Protocol::Tcp));
    assert_eq!(s.reals[0].weight, 2147483647);
    assert_eq!(
        (s.reals[0].thresholds.upper, s.reals[0].thresholds.lower),
        (100, 50)
    );
    assert_eq!(s.reals[1].port, 0);
    let u = &c.rules.services[1];
    assert_eq!(u.port, 0);
    assert_eq!(u.scheduler, SchedulerKind::Wlc, "wlc is the default");
    assert_eq!(u.options.persistence.unwrap().timeout_secs, 360);
    assert_eq!(u.options.persistence.unwrap().netmask, Ipv4Addr::BROADCAST);
    assert_eq!(u.options.port_group, None);
}

#[test]
fn service_option_mistakes_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "scheduler = \"mh\"",
            "scheduler = \"maglev\"",
            "service[0].scheduler",
        ),
        ("\"mh-port\"]", "\"mh-pot\"]", "service[0].flags[1]"),
        (
            "persistence_timeout = 600",
            "persistence_timeout = 0",
            "service[0].persistence_timeout",
        ),
        (
            "\"255.255.255.0\"",
            "\"255.0.255.0\"",
            "service[0].persistence_netmask",
        ),
        ("fwmark = 7", "fwmark = 8", "service[0].fwmark"),
        ("fwmark = 7", "fwmark = 7\nport = 80", "service[0].port"),
        (
            "weight = 2147483647",
            "weight = 2147483648",
            "service[0].real[0].weight",
        ),
        (
            "lower_threshold = 50",
            "lower_threshold = 101",
            "service[0].real[0].lower_threshold",
        ),
        (
            "upper_threshold = 100",
            "upper_threshold = 2147483648",
            "service[0].real[0].upper_threshold",
        ),
        ("mark = 7", "mark = 0", "port_group[0].mark"),
        (
            "ports = [80, 443]",
            "ports = [80, 80]",
            "port_group[0].ports[1]",
        ),
        ("ports = [80, 443]", "ports = []", "port_group[0].ports"),
        (
            "protocol = \"tcp\"\nvip",
            "protocol = \"icmp\"\nvip",
            "port_group[0].protocol",
        ),
        (
            "persistent = true",
            "persistent = true\npersistence_netmask = \"x\"",
            "service[1].persistence_netmask",
        ),
        (
            "port = 0\nprotocol = \"udp\"",
            "protocol = \"udp\"",
            "service[1].port",
        ),
    ];
    for (from, to, key) in cases {
        let text = SERVICES.replacen(from, to, 1);
        assert_ne!(text, SERVICES, "{from}");
        assert_eq!(&err(&text).key, key, "{from} -> {to}");
    }
    // A netmask without persistence, and an inet service on a grouped endpoint.
    let no_persist = SERVICES.replace("persistent = true", "persistence_netmask = \"255.255.0.0\"");
    assert_eq!(err(&no_persist).key, "service[1].persistence_netmask");
    let clash = format!(
        "{SERVICES}\n[[service]]\nvip = \"198.18.0.100\"\nport = 443\nprotocol = \"tcp\"\nlocal_addresses = [\"198.19.0.10\"]\n"
    );
    assert_eq!(err(&clash).key, "service[2].port");
}

#[test]
fn kernel_twins_are_off_by_default_and_checked() {
    let cfg = parse(GOOD).unwrap();
    assert!(cfg.ports.iter().all(|p| p.kernel_interface.is_none()));
    assert!(!eal_args(&cfg.eal, &cfg.ports)
        .iter()
        .any(|a| a.contains("net_tap")));
    let twin = GOOD.replace(
        "device = \"net_ring0\"",
        "device = \"net_ring0\"\nkernel_interface = \"fnat-a\"",
    );
    let cfg = parse(&twin).unwrap();
    assert_eq!(cfg.ports[0].kernel_interface.as_deref(), Some("fnat-a"));
    assert!(
        eal_args(&cfg.eal, &cfg.ports).contains(&"--vdev=net_tap_twin0,iface=fnat-a".to_string())
    );
    let e = err(&twin.replace("fnat-a", "a name"));
    assert_eq!(e.key, "port[0].kernel_interface");
    assert!(e.reason.contains("'a name'"), "{}", e.reason);
    let both = twin.replace(
        "device = \"net_ring1\"",
        "device = \"net_ring1\"\nkernel_interface = \"fnat-a\"",
    );
    let e = err(&both);
    assert_eq!(e.key, "port[1].kernel_interface");
    assert!(e.reason.contains("twin of another port"), "{}", e.reason);
}

const CHECKED: &str = r#"
[[port]]
name = "a"
device = "net_null0"
addresses = ["198.18.0.1/24"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
local_addresses = ["198.19.0.10"]
quorum = 2
sorry_server = "198.19.1.99:8080"

[[service.real]]
address = "198.19.1.10"
port = 80
weight = 3
inhibit_on_failure = true

[[service.real.check]]
type = "http"
connect_timeout = 2.5
url = [{ path = "/health", status_code = ["200", "300-302"] }]

[[service.real.check]]
type = "MISC_CHECK"
misc_path = "/usr/local/bin/check web"
misc_dynamic = true

[[service.real]]
address = "198.19.1.11"
port = 80
"#;

/// `[[service.real.check]]` is keepalived's checker, read by keepalived's reader: the same
/// defaults (HTTP's 3 s before a retry, MISC_CHECK's 0 retries) and the same refusals.
#[test]
fn toml_checks_read_with_keepalived_defaults() {
    use fnat_keepalived::lvs::CheckerKind;
    use std::time::Duration;
    let cfg = parse(CHECKED).unwrap();
    let [spec] = cfg.health.services.as_slice() else {
        panic!("{:?}", cfg.health)
    };
    assert_eq!(
        (spec.quorum, spec.sorry.map(|s| s.key().to_string())),
        (2, Some("198.19.1.99:8080".into()))
    );
    let real = &spec.reals[0];
    assert_eq!((real.weight, real.inhibit), (3, true));
    let [http, misc] = real.checkers.as_slice() else {
        panic!("{:?}", real.checkers)
    };
    assert_eq!(http.timing.connect_timeout, Duration::from_millis(2500));
    assert_eq!(http.timing.delay_before_retry, Duration::from_secs(3));
    assert_eq!(http.timing.retry, 1);
    assert_eq!(http.timing.delay_loop, Duration::from_secs(60));
    let CheckerKind::Http { urls, .. } = &http.kind else {
        panic!()
    };
    assert_eq!(urls[0].status_codes, [(200, 200), (300, 302)]);
    assert_eq!(misc.timing.retry, 0);
    assert_eq!(
        misc.kind,
        CheckerKind::Misc {
            path: "/usr/local/bin/check web".into(),
            timeout: None,
            dynamic: true
        }
    );
    assert!(spec.reals[1].checkers.is_empty());

    let e = err(&CHECKED.replace("type = \"http\"", "type = \"gopher\""));
    assert_eq!(e.key, "service[0].real[0].check[0].type", "{e}");
    let e = err(&CHECKED.replace("\"300-302\"", "\"302-300\""));
    assert_eq!(e.key, "service[0]", "{e}");
    assert!(e.reason.contains("status_code"), "{e}");
    let e = err(&CHECKED.replace("misc_path = \"/usr", "misc_path = \"{/usr"));
    assert_eq!(e.key, "service[0].real[0].check[1].misc_path", "{e}");
    let e = err(&CHECKED.replace(
        "[[service.real.check]]\ntype = \"MISC_CHECK\"",
        "[[service.real.check]]\ntype = \"MISC_CHECK\"\ncolour = 1",
    ));
    assert!(
        e.key.contains("colour") || e.reason.contains("colour"),
        "{e}"
    );
}

/// A service mixing every method (no local address needed: no real server is full-NAT);
/// the DR real server is on wan's own network.
const METHODS: &str = r#"
[dataplane]
workers = 1

[[port]]
name = "wan"
device = "net_ring0"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_ring1"
addresses = ["198.19.0.1/24"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
real = [ { address = "198.19.0.20", port = 80, method = "dr" },
         { address = "198.19.1.21", port = 8080, method = "nat" },
         { address = "198.19.1.22", port = 80, method = "tun" },
         { address = "198.19.1.23", port = 80, method = "tun", tunnel_type = "gue", tunnel_port = 6080, tunnel_csum = true },
         { address = "198.19.1.24", port = 80, method = "tun", tunnel_type = "gre" } ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"
via = "198.19.0.254"
"#;

#[test]
fn forwarding_methods_parse_and_their_mistakes_are_named() {
    use fnat_engine::rules::{Method, Tunnel, TunnelKind};
    let c = parse(METHODS).unwrap();
    let methods: Vec<Method> = c.rules.services[0].reals.iter().map(|r| r.method).collect();
    let tun = |kind, port, csum| Method::Tun(Tunnel { kind, port, csum });
    assert_eq!(
        methods,
        [
            Method::Dr,
            Method::Nat,
            tun(TunnelKind::Ipip, 0, false),
            tun(TunnelKind::Gue, 6080, true),
            tun(TunnelKind::Gre, 0, false),
        ]
    );
    let cases = [
        (
            "method = \"dr\"",
            "method = \"direct\"",
            "service[0].real[0].method",
        ),
        (
            "port = 80, method = \"dr\"",
            "port = 81, method = \"dr\"",
            "service[0].real[0].port",
        ),
        (
            "method = \"nat\"",
            "method = \"nat\", tunnel_type = \"gue\"",
            "service[0].real[1].tunnel_type",
        ),
        (
            "tunnel_type = \"gre\"",
            "tunnel_type = \"vxlan\"",
            "service[0].real[4].tunnel_type",
        ),
        (
            "tunnel_type = \"gre\"",
            "tunnel_type = \"gre\", tunnel_port = 1",
            "service[0].real[4].tunnel_port",
        ),
        (", tunnel_port = 6080", "", "service[0].real[3].tunnel_port"),
        (
            "port = 80, method = \"tun\" }",
            "port = 80, method = \"tun\", tunnel_csum = true }",
            "service[0].real[2].tunnel_csum",
        ),
    ];
    for (from, to, key) in cases {
        let text = METHODS.replacen(from, to, 1);
        assert_ne!(text, METHODS, "{from}");
        assert_eq!(&err(&text).key, key, "{from} -> {to}");
    }
    // Full NAT stays the default, and needs its local address.
    let fnat = METHODS.replacen(", method = \"dr\"", "", 1);
    assert_eq!(err(&fnat).key, "service[0].local_addresses");
    // A DR real server off the ports' networks is refused by name.
    let off_link = METHODS.replacen("198.19.0.20", "198.19.1.20", 1);
    let e = err(&off_link);
    assert_eq!(e.key, "service[0].real[0].address");
    assert!(
        e.to_string().contains("198.19.1.20:80 uses direct routing"),
        "{e}"
    );
}

const SNAT: &str = r#"
[[service]]
match = { proto = "tcp", src-range = "198.19.1.0-198.19.1.255", iif = "lan", oif = "wan" }
scheduler = "rr"
real = [ { address = "198.18.0.1", port = 0 } ]
"#;

#[test]
fn snat_match_services_compile_and_their_mistakes_are_named() {
    let c = parse(&format!("{FNAT}{SNAT}")).unwrap();
    let s = &c.rules.services[1];
    let rule = s.options.snat.expect("an SNAT rule");
    assert_eq!(rule.proto, 6);
    assert_eq!(
        rule.src,
        Some((
            u32::from(std::net::Ipv4Addr::new(198, 19, 1, 0)),
            u32::from(std::net::Ipv4Addr::new(198, 19, 1, 255))
        ))
    );
    assert_eq!((rule.iif, rule.oif), (Some(1), Some(0)));
    assert_eq!(
        s.local_addresses,
        vec![std::net::Ipv4Addr::new(198, 18, 0, 1)]
    );
    assert_eq!(s.endpoints().count(), 0, "no VIP endpoint");

    for (from, to, key, why) in [
        (
            "oif = \"wan\"",
            "oif = \"wna\"",
            "service[1].match.oif",
            "'wna' is not a [[port]]",
        ),
        (
            "\"tcp\"",
            "\"sctp\"",
            "service[1].match.proto",
            "tcp, udp, icmp",
        ),
        (
            "198.19.1.0-198.19.1.255",
            "198.19.1.9-198.19.1.1",
            "service[1].match.src-range",
            "above its last",
        ),
        (
            "scheduler = \"rr\"",
            "scheduler = \"rr\"\nvip = \"198.18.0.100\"",
            "service[1].vip",
            "named by its match alone",
        ),
        (
            "port = 0 }",
            "port = 0, method = \"nat\" }",
            "service[1].real[0].method",
            "SNAT addresses",
        ),
    ] {
        let e = err(&format!("{FNAT}{}", SNAT.replacen(from, to, 1)));
        assert_eq!(e.key, key, "{e:?}");
        assert!(e.reason.contains(why), "{e:?}");
    }
}

#[test]
fn client_lists_and_conn_rate_parse_compile_and_their_mistakes_are_named() {
    let with = SERVICES.replace(
        "expire_on_removal = true\n",
        "expire_on_removal = true\nallow = [\"198.18.0.0/24\", \"198.18.7.7\"]\ndeny = [\"198.18.0.66\"]\nconn_rate = \"100:200/24\"\n",
    );
    let c = parse(&with).unwrap();
    let s = &c.rules.services[0];
    let acl = s.options.acl.as_ref().expect("lists compiled");
    assert_eq!(acl.allow.len(), 2);
    assert!(acl.allow.contains(u32::from_be_bytes([198, 18, 0, 5])));
    assert!(acl.deny.contains(u32::from_be_bytes([198, 18, 0, 66])));
    let r = s.options.conn_rate.unwrap();
    assert_eq!((r.rate, r.burst, r.prefix_len), (100, 200, 24));
    // Without the keys: no lists, no cap.
    let plain = &parse(SERVICES).unwrap().rules.services[0];
    assert!(plain.options.acl.is_none() && plain.options.conn_rate.is_none());
    let cases: &[(&str, &str, &str)] = &[
        ("\"198.18.7.7\"", "\"198.18.7.7/33\"", "service[0].allow[1]"),
        (
            "\"198.18.0.66\"",
            "\"198.18.0.66/24\"",
            "service[0].deny[0]",
        ),
        ("\"198.18.0.66\"", "\"nobody\"", "service[0].deny[0]"),
        ("\"100:200/24\"", "\"0/24\"", "service[0].conn_rate"),
        ("\"100:200/24\"", "\"100:x\"", "service[0].conn_rate"),
        ("\"198.18.7.7\"", "\"198.18.0.0/24\"", "service[0].allow"),
    ];
    for (from, to, key) in cases {
        let e = err(&with.replacen(from, to, 1));
        assert_eq!(&e.key, key, "{from} -> {to}: {e}");
        assert!(e.to_string().contains("test.toml"), "{e}");
    }
}

#[test]
fn client_address_options_parse_and_their_mistakes_are_named() {
    let with = |extra: &str| {
        SERVICES.replacen(
            "persistent = true\n",
            &format!("persistent = true\n{extra}\n"),
            1,
        )
    };
    let c = parse(&with("proxy_protocol = \"v2-insecure\"")).unwrap();
    let ca = c.rules.services[1].options.client_address;
    assert_eq!(
        (ca.proxy_version, ca.proxy_insecure, ca.toa),
        (2, true, false)
    );
    assert_eq!(
        c.rules.services[0].options.client_address,
        Default::default()
    );
    let tcp = SERVICES.replacen(
        "expire_on_removal = true\n",
        "expire_on_removal = true\nproxy_protocol = \"v1\"\ntoa = true\n",
        1,
    );
    let ca = parse(&tcp).unwrap().rules.services[0]
        .options
        .client_address;
    assert_eq!(
        (ca.proxy_version, ca.proxy_insecure, ca.toa),
        (1, false, true)
    );

    let e = err(&with("proxy_protocol = \"v3\""));
    assert_eq!(e.key, "service[1].proxy_protocol", "{e}");
    assert!(
        e.reason
            .contains("v1, v2, v1-insecure, v2-insecure, disable"),
        "{e}"
    );
    let e = err(&with("proxy_protocol = \"v1\""));
    assert_eq!(e.key, "service[1].proxy_protocol", "UDP takes v2 only: {e}");
    let e = err(&with("toa = true"));
    assert_eq!(e.key, "service[1].toa", "TOA is TCP only: {e}");

    // Both go into the full-NAT rewrite: a service with another method's real server is
    // refused, naming the option and the real server.
    for (option, key) in [
        ("proxy_protocol = \"v2\"", "proxy_protocol"),
        ("toa = true", "toa"),
    ] {
        let text = SERVICES.replacen(
            "expire_on_removal = true\n",
            &format!("expire_on_removal = true\n{option}\n"),
            1,
        );
        assert!(parse(&text).is_ok(), "full-NAT reals take {option}");
        let text = text.replacen(
            "upper_threshold = 100, lower_threshold = 50 }",
            "upper_threshold = 100, lower_threshold = 50, method = \"nat\" }",
            1,
        );
        let e = err(&text);
        assert_eq!(e.key, format!("service[0].{key}"), "{e}");
        assert!(
            e.reason.contains("needs full-NAT real servers")
                && e.reason.contains("198.19.1.10:0 forwards by nat (-m)"),
            "{e}"
        );
    }
}

#[test]
fn withdraw_on_stop_is_milliseconds_up_to_a_minute() {
    assert_eq!(
        parse(GOOD).unwrap().control.withdraw_on_stop,
        std::time::Duration::ZERO,
        "off unless asked"
    );
    let with = |ms: &str| format!("{GOOD}\n[control]\nwithdraw_on_stop_ms = {ms}\n");
    assert_eq!(
        parse(&with("1500")).unwrap().control.withdraw_on_stop,
        std::time::Duration::from_millis(1500)
    );
    let e = err(&with("60001"));
    assert_eq!(e.key, "control.withdraw_on_stop_ms", "{e}");
    assert!(e.reason.contains("0 to 60000"), "{e}");
}

/// `[sync]` and keepalived.conf's `lvs_sync_daemon`: one model, one validator, file/line/key
/// in every refusal, and only on a port with a kernel twin.
#[test]
fn sync_daemons_from_the_toml_and_from_keepalived() {
    let twin = GOOD.replace(
        "device = \"net_ring0\"",
        "device = \"net_ring0\"\nkernel_interface = \"fnat-a\"",
    );
    let cfg = parse(&format!(
        "{twin}\n[sync.master]\ninterface = \"a\"\nsyncid = 9\n"
    ))
    .unwrap();
    let m = cfg.sync.master.expect("master daemon");
    assert_eq!((m.interface.as_str(), m.syncid, m.port), ("a", 9, 8848));
    assert!(cfg.sync.backup.is_none());
    assert_eq!(cfg.sync.sync_refresh_period, 0, "off by default");
    let cfg = parse(&format!(
        "{twin}
[sync]
sync_refresh_period = 30

[sync.master]
interface = \"a\"

[sync.backup]
interface = \"a\"
"
    ))
    .unwrap();
    assert_eq!(cfg.sync.sync_refresh_period, 30);
    assert!(
        cfg.sync.master.is_some() && cfg.sync.backup.is_some(),
        "both at once"
    );
    let e = err(&format!("{twin}\n[sync.backup]\ninterface = \"b\"\n"));
    assert_eq!(e.key, "sync.backup.interface");
    let e = err(&format!(
        "{twin}\n[sync.master]\ninterface = \"a\"\ngroup = \"198.18.0.9\"\n"
    ));
    assert_eq!(e.key, "sync.master");
    assert!(e.reason.contains("multicast"), "{}", e.reason);
    let e = err(&format!(
        "{twin}\n[sync.master]\ninterface = \"a\"\ngroup = \"nowhere\"\n"
    ));
    assert_eq!(e.key, "sync.master.group");

    let dir = std::env::temp_dir().join(format!("fnat-sync-ka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("fnatd.toml");
    std::fs::write(&toml, &twin).unwrap();
    let ka = dir.join("keepalived.conf");
    let vi = "vrrp_instance VI_1 {\n  interface a\n  virtual_router_id 51\n  \
              virtual_ipaddress {\n    198.18.0.100\n  }\n}\n";
    std::fs::write(
        &ka,
        format!("global_defs {{\n  lvs_sync_daemon a VI_1 id 51 ttl 2\n}}\n{vi}"),
    )
    .unwrap();
    let (cfg, _) = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap();
    let m = cfg.sync.master.clone().expect("master");
    assert_eq!(m.vrrp_instance.as_deref(), Some("VI_1"));
    assert_eq!((m.syncid, m.ttl), (51, 2));
    assert_eq!(
        cfg.sync.backup,
        Some(m),
        "keepalived runs both, following VI_1"
    );
    // The old spelling inside the instance.
    std::fs::write(
        &ka,
        vi.replace(
            "  interface a\n",
            "  interface a\n  lvs_sync_daemon_inteface a\n",
        ),
    )
    .unwrap();
    let (cfg, _) = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap();
    assert_eq!(
        cfg.sync.master.and_then(|m| m.vrrp_instance).as_deref(),
        Some("VI_1")
    );
    // A port without a twin: not run, a warning with the line (keepalived carries on).
    std::fs::write(
        &ka,
        format!("global_defs {{\n  lvs_sync_daemon b VI_1\n}}\n{vi}"),
    )
    .unwrap();
    let (cfg, warnings) = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap();
    assert_eq!(cfg.sync, Default::default());
    let w = warnings
        .iter()
        .find(|w| w.keyword == "lvs_sync_daemon")
        .expect("a warning");
    assert_eq!(w.at.line, 2);
    assert!(w.message.contains("kernel_interface"), "{}", w.message);
    // A bad value is an error naming the line.
    std::fs::write(
        &ka,
        format!("global_defs {{\n  lvs_sync_daemon a VI_1 group 198.18.0.1\n}}\n{vi}"),
    )
    .unwrap();
    let e = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (Some(2), "lvs_sync_daemon"));
    assert!(e.reason.contains("multicast"), "{}", e.reason);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synproxy_option_parses_and_is_tcp_only() {
    let tcp = SERVICES.replacen(
        "expire_on_removal = true\n",
        "expire_on_removal = true\nsynproxy = true\n",
        1,
    );
    let c = parse(&tcp).unwrap();
    assert!(c.rules.services[0].options.synproxy);
    assert!(!c.rules.services[1].options.synproxy);
    let udp = SERVICES.replacen(
        "persistent = true\n",
        "persistent = true\nsynproxy = true\n",
        1,
    );
    let e = err(&udp);
    assert_eq!(
        e.key, "service[1].synproxy",
        "the SYN proxy is TCP only: {e}"
    );
}

/// keepalived.conf's `vrrp_script`s reach the VRRP threads as they are read (one type of
/// them), the notify FIFOs go to their kinds (the global one to both), and a script keepalived
/// would refuse refuses the file with its file, line, key and reason (a reload then keeps
/// the running configuration).
#[test]
fn vrrp_scripts_and_notify_fifos_from_keepalived_and_a_bad_script_refused() {
    let twin = GOOD.replace(
        "device = \"net_ring0\"",
        "device = \"net_ring0\"\nkernel_interface = \"fnat-a\"",
    );
    let dir = std::env::temp_dir().join(format!("fnat-script-ka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("fnatd.toml");
    std::fs::write(&toml, &twin).unwrap();
    let ka = dir.join("keepalived.conf");
    let conf = |script_extra: &str| {
        format!(
            "global_defs {{\n  notify_fifo /run/fnat-all\n  vrrp_notify_fifo /run/fnat-vrrp\n}}\n\
             vrrp_script chk {{\n  script \"test -e /\"\n  interval 2\n{script_extra}}}\n\
             vrrp_instance VI_1 {{\n  interface a\n  virtual_router_id 51\n  \
             track_script {{\n    chk\n  }}\n  virtual_ipaddress {{\n    198.18.0.100\n  }}\n}}\n"
        )
    };
    std::fs::write(&ka, conf("  fall 2\n")).unwrap();
    let (cfg, _) = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap();
    let s = &cfg.vrrp_context.scripts;
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].name.as_str(), s[0].script.as_str(), s[0].fall),
        ("chk", "test -e /", 2)
    );
    assert_eq!(s[0].at.line, 5);
    assert_eq!(
        cfg.vrrp_context.notify_fifos,
        [
            std::path::PathBuf::from("/run/fnat-all"),
            "/run/fnat-vrrp".into()
        ]
    );
    assert_eq!(
        cfg.health.notify_fifos,
        [std::path::PathBuf::from("/run/fnat-all")]
    );
    for (extra, key) in [("  rise 0\n", "rise"), ("  fall 0\n", "fall")] {
        std::fs::write(&ka, conf(extra)).unwrap();
        let e = AppConfig::load_with_keepalived(&toml, Some(&ka)).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            (ka.to_str().unwrap(), Some(8), key),
            "{e}"
        );
        assert!(e.reason.contains("at least 1"), "{e}");
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("keepalived.conf:8: key `{key}`")),
            "{shown}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
