//! Checks every value of a parsed config file and builds the validated [`AppConfig`].
//! Errors are `(key, reason)`; the caller adds the file name.

use std::collections::HashSet;
use std::path::Path;

use std::net::Ipv4Addr;

use fnat_engine::rules::{Mode, Neighbour, PortIndex, PortRule, Route, Rules, Timeouts};
use fnat_proto::edit::{check_rule_set, MarkField, Place, RealField, ServiceField};
use fnat_proto::model::{
    AclList, AddrRange, ClientPrefix, ForwardMethod, LocalAddress, Mark, MatchProto, Persistence,
    PortList, PortName, Protocol, Real, RuleSet, SchedFlags, Scheduler, Service, ServiceAddr,
    SnatMatch, TunnelType, DEFAULT_PERSISTENCE,
};

use super::file::{
    ConfigFile, MatchSection, PortGroupSection, PortSection, ServiceSection, TimeoutsSection,
};
use super::values;
use super::{
    AppConfig, ControlSettings, DataplaneSettings, EalSettings, MetricsSettings, PortSpec,
    DEFAULT_SOCKET,
};

type Invalid = (String, String);

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Invalid {
    (key.into(), reason.into())
}

/// The most ports one appliance config may declare (DPDK's RTE_MAX_ETHPORTS is 32 here).
const MAX_PORTS: usize = 32;
/// The most workers: lcores beyond this make no sense on one box and would overflow u16 maths.
const MAX_WORKERS: u16 = 128;

pub(super) fn validate(path: &Path, file: ConfigFile) -> Result<AppConfig, Invalid> {
    let dataplane = dataplane(&file)?;
    let eal = eal(&file, dataplane.workers)?;
    let ports = ports(&file)?;
    let port_of = |key: String, name: &str| -> Result<PortIndex, Invalid> {
        ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as PortIndex)
            .ok_or_else(|| invalid(key, format!("no port is named '{name}'")))
    };

    let mode = if file.forward.is_empty() {
        Mode::FullNat
    } else {
        if !file.services.is_empty() {
            return Err(invalid(
                "forward",
                "pass-through forwarding and services are exclusive: remove [forward] or the [[service]] tables",
            ));
        }
        let mut forward = vec![None; ports.len()];
        for (from, to) in &file.forward {
            let key = format!("forward.{from}");
            let from_index = port_of(key.clone(), from)?;
            forward[from_index as usize] = Some(port_of(key, to)?);
        }
        Mode::Passthrough { forward }
    };

    let (services, health) = services(&file.services, &file.ports)?;
    let rule_set = RuleSet {
        timeouts: Default::default(),
        marks: port_groups(&file.port_groups)?,
        services,
        ..RuleSet::default()
    };
    // The one validator every path shares; its refusals point at this file's keys.
    check_rule_set(&rule_set).map_err(|r| invalid(key_of(&file, r.place), r.error.message))?;
    // Direct routing only to real servers on the ports' own networks (named by their key).
    for (i, service) in rule_set.services.iter().enumerate() {
        for (j, real) in service.reals.iter().enumerate() {
            crate::control::check_direct_route(
                service,
                real,
                ports.iter().flat_map(|p| &p.addresses),
            )
            .map_err(|e| invalid(format!("service[{i}].real[{j}].address"), e.message))?;
        }
    }
    let mut routes = Vec::with_capacity(file.routes.len());
    for (i, r) in file.routes.iter().enumerate() {
        let key = |field: &str| format!("route[{i}].{field}");
        routes.push(Route {
            prefix: values::ipv4_cidr(&r.prefix).map_err(|e| invalid(key("prefix"), e))?,
            port: port_of(key("port"), &r.port)?,
            via: match &r.via {
                Some(via) => Some(values::ipv4(via).map_err(|e| invalid(key("via"), e))?),
                None => None,
            },
        });
    }
    let mut neighbours = Vec::with_capacity(file.neighbours.len());
    for (i, n) in file.neighbours.iter().enumerate() {
        let key = |field: &str| format!("neighbour[{i}].{field}");
        neighbours.push(Neighbour {
            addr: values::ipv4(&n.address).map_err(|e| invalid(key("address"), e))?,
            mac: values::mac(&n.mac).map_err(|e| invalid(key("mac"), e))?,
            port: port_of(key("port"), &n.port)?,
        });
    }

    let capacity = file.session.capacity.unwrap_or(1 << 20);
    if capacity == 0 || capacity > 1 << 28 {
        return Err(invalid(
            "session.capacity",
            "must be 1 to 268435456 sessions per worker",
        ));
    }
    let [lport_min, lport_max] = file.session.local_port_range.unwrap_or([1024, 65535]);
    if lport_min == 0 || lport_min > lport_max {
        return Err(invalid(
            "session.local_port_range",
            format!("[{lport_min}, {lport_max}] is not a range of ports 1..=65535 with min <= max"),
        ));
    }
    if u32::from(lport_max - lport_min) + 1 < u32::from(dataplane.workers) {
        return Err(invalid(
            "session.local_port_range",
            format!(
                "fewer ports than the {} workers that split them",
                dataplane.workers
            ),
        ));
    }
    let drop_ip_options = match file.session.ip_options.as_deref() {
        None | Some("forward") => false,
        Some("drop") => true,
        Some(other) => {
            return Err(invalid(
                "session.ip_options",
                format!("'{other}' is not one of: forward, drop"),
            ))
        }
    };

    let base = Rules {
        generation: 1,
        ports: ports
            .iter()
            .map(|p| PortRule {
                name: p.name.clone(),
                mac: p.mac.unwrap_or([0; 6]),
                addresses: p.addresses.clone(),
            })
            .collect(),
        mode,
        services: Vec::new(),
        routes,
        neighbours,
        timeouts: timeouts(&file.timeouts)?,
        session_capacity: capacity,
        lport_min,
        lport_max,
        drop_ip_options,
        expire_quiescent_template: file.session.expire_quiescent_template.unwrap_or(false),
        standby: Vec::new(),
        garp: Default::default(),
        edits: None,
    };
    let (rules, _) = crate::control::compile_fresh(&base, &base.timeouts, &rule_set)
        .map_err(|e| invalid("service", e.message))?;
    let sync_daemons = sync(&file, &ports)?;
    Ok(AppConfig {
        path: path.to_path_buf(),
        eal,
        dataplane,
        ports,
        control: control(&file)?,
        metrics: metrics(&file)?,
        rules,
        rule_set,
        keepalived: None,
        health,
        vrrp: Vec::new(),
        vrrp_context: Default::default(),
        sync: sync_daemons,
    })
}

fn dataplane(file: &ConfigFile) -> Result<DataplaneSettings, Invalid> {
    let d = &file.dataplane;
    let workers = d.workers.unwrap_or(1);
    if workers == 0 || workers > MAX_WORKERS {
        return Err(invalid(
            "dataplane.workers",
            format!("must be 1 to {MAX_WORKERS}"),
        ));
    }
    let burst = d.burst.unwrap_or(32);
    if burst == 0 || burst > 64 {
        return Err(invalid("dataplane.burst", "must be 1 to 64"));
    }
    let rx_desc = d.rx_desc.unwrap_or(1024);
    let tx_desc = d.tx_desc.unwrap_or(1024);
    for (key, n) in [
        ("dataplane.rx_desc", rx_desc),
        ("dataplane.tx_desc", tx_desc),
    ] {
        if !(32..=16384).contains(&n) {
            return Err(invalid(key, "must be 32 to 16384 descriptors"));
        }
    }
    let ports = file.ports.len().max(1) as u32;
    let workers32 = u32::from(workers);
    // Every RX ring full, every TX ring full, each worker's bursts and redirect ring in flight.
    let needed = ports * workers32 * (u32::from(rx_desc) + u32::from(tx_desc)) + workers32 * 512;
    let mbufs = d.mbufs.unwrap_or(needed.max(8191));
    if mbufs < needed.min(1024) || mbufs > 1 << 24 {
        return Err(invalid(
            "dataplane.mbufs",
            format!("{mbufs} is outside 1024..=16777216 (these queues need about {needed})"),
        ));
    }
    let mbuf_cache = d.mbuf_cache.unwrap_or(256);
    if mbuf_cache > 512 || mbuf_cache > mbufs / 2 {
        return Err(invalid(
            "dataplane.mbuf_cache",
            "must be at most 512 and at most half of mbufs",
        ));
    }
    let redirect_ring = d.redirect_ring.unwrap_or(4096);
    if !(64..=1 << 20).contains(&redirect_ring) {
        return Err(invalid(
            "dataplane.redirect_ring",
            "must be 64 to 1048576 slots",
        ));
    }
    let expire_budget = d.expire_budget.unwrap_or(256);
    if expire_budget == 0 {
        return Err(invalid("dataplane.expire_budget", "must be at least 1"));
    }
    Ok(DataplaneSettings {
        workers,
        burst,
        mbufs,
        mbuf_cache,
        rx_desc,
        tx_desc,
        redirect_ring,
        expire_budget,
    })
}

fn eal(file: &ConfigFile, workers: u16) -> Result<EalSettings, Invalid> {
    let e = &file.eal;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let main_cpu = e.main_cpu.unwrap_or(0);
    // By default worker i runs on CPU (i + 1) mod cpus: off the main lcore's CPU where possible.
    let worker_cpus = match &e.worker_cpus {
        Some(list) if list.len() != usize::from(workers) => {
            return Err(invalid(
                "eal.worker_cpus",
                format!("lists {} CPUs for {workers} workers", list.len()),
            ))
        }
        Some(list) => list.clone(),
        None => (0..u32::from(workers)).map(|i| (i + 1) % cpus).collect(),
    };
    let memory_mb = e.memory_mb.unwrap_or(256);
    if !(32..=1 << 20).contains(&memory_mb) {
        return Err(invalid("eal.memory_mb", "must be 32 to 1048576"));
    }
    if let Some(prefix) = &e.file_prefix {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "eal.file_prefix",
                "use letters, digits, '-', '_' and '.' only",
            ));
        }
    }
    Ok(EalSettings {
        main_cpu,
        worker_cpus,
        memory_mb,
        hugepages: e.hugepages.unwrap_or(false),
        file_prefix: e.file_prefix.clone(),
        log_level: e.log_level.clone().unwrap_or_else(|| "error".to_string()),
        extra_args: e.args.clone(),
    })
}

fn ports(file: &ConfigFile) -> Result<Vec<PortSpec>, Invalid> {
    if file.ports.is_empty() {
        return Err(invalid("port", "at least one [[port]] is needed"));
    }
    if file.ports.len() > MAX_PORTS {
        return Err(invalid("port", format!("at most {MAX_PORTS} ports")));
    }
    let mut names = HashSet::new();
    let mut devices = HashSet::new();
    let mut twins = HashSet::new();
    let mut out = Vec::with_capacity(file.ports.len());
    for (i, p) in file.ports.iter().enumerate() {
        let key = |field: &str| format!("port[{i}].{field}");
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                key("name"),
                format!("'{}': use letters, digits, '-' and '_'", p.name),
            ));
        }
        if !names.insert(p.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("'{}' is used by another port", p.name),
            ));
        }
        if p.device.trim().is_empty() {
            return Err(invalid(
                key("device"),
                "is empty: give a PCI address or a vdev such as net_ring0",
            ));
        }
        let spec = PortSpec {
            name: p.name.clone(),
            device: p.device.clone(),
            mac: match &p.mac {
                Some(m) => Some(values::mac(m).map_err(|e| invalid(key("mac"), e))?),
                None => None,
            },
            addresses: p
                .addresses
                .iter()
                .enumerate()
                .map(|(j, a)| {
                    values::ipv4_cidr(a)
                        .map_err(|e| invalid(format!("port[{i}].addresses[{j}]"), e))
                })
                .collect::<Result<_, _>>()?,
            kernel_interface: match &p.kernel_interface {
                Some(name) => Some(
                    values::interface_name(name)
                        .map_err(|e| invalid(key("kernel_interface"), e))?,
                ),
                None => None,
            },
        };
        if let Some(name) = &spec.kernel_interface {
            if !twins.insert(name.clone()) {
                return Err(invalid(
                    key("kernel_interface"),
                    format!("'{name}' is the twin of another port"),
                ));
            }
        }
        if !devices.insert(spec.dpdk_name().to_string()) {
            return Err(invalid(
                key("device"),
                format!("'{}' is used by another port", spec.dpdk_name()),
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

fn protocol(text: &str, key: String) -> Result<Protocol, Invalid> {
    match text {
        "tcp" | "TCP" => Ok(Protocol::Tcp),
        "udp" | "UDP" => Ok(Protocol::Udp),
        other => Err(invalid(key, format!("'{other}' is not one of: tcp, udp"))),
    }
}

/// The config key a refusal of the rule validator points at.
fn key_of(file: &ConfigFile, place: Place) -> String {
    let service = |i: usize| format!("service[{i}]");
    match place {
        Place::Timeout(name) => format!("timeouts.{name}"),
        Place::Mark(i, f) => {
            let field = match f {
                MarkField::Mark => "mark".to_string(),
                MarkField::Vip => "vip".to_string(),
                MarkField::Ports => "ports".to_string(),
                MarkField::Port(k) => format!("ports[{k}]"),
            };
            format!("port_group[{i}].{field}")
        }
        Place::Service(i, f) => {
            let fwmark = file.services.get(i).is_some_and(|s| s.fwmark.is_some());
            let is_match = file.services.get(i).is_some_and(|s| s.match_.is_some());
            let field = match f {
                ServiceField::Addr | ServiceField::Port | ServiceField::Mark if is_match => "match",
                ServiceField::Addr | ServiceField::Port | ServiceField::Mark if fwmark => "fwmark",
                ServiceField::Addr => "vip",
                ServiceField::Port | ServiceField::Mark => "port",
                ServiceField::OnePacket => "protocol",
                ServiceField::Toa => "toa",
                ServiceField::SynProxy => "synproxy",
                ServiceField::ProxyProtocol => "proxy_protocol",
                ServiceField::PersistenceTimeout => "persistence_timeout",
                ServiceField::PersistenceNetmask => "persistence_netmask",
                ServiceField::Acl(list) => list.name(),
            };
            format!("{}.{field}", service(i))
        }
        Place::Real(i, j, f) => {
            let field = match f {
                RealField::Addr => "address",
                RealField::Port => "port",
                RealField::Weight => "weight",
                RealField::UpperThreshold => "upper_threshold",
                RealField::LowerThreshold => "lower_threshold",
                RealField::Method => "method",
                RealField::TunnelPort => "tunnel_port",
                RealField::TunnelCsum => "tunnel_csum",
            };
            format!("{}.real[{j}].{field}", service(i))
        }
        Place::LocalAddress(i, j) => format!("{}.local_addresses[{j}]", service(i)),
    }
}

/// The `[[port_group]]` tables as firewall marks (their values are the validator's to check;
/// names are the config's own).
fn port_groups(sections: &[PortGroupSection]) -> Result<Vec<Mark>, Invalid> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(sections.len());
    for (i, g) in sections.iter().enumerate() {
        let key = |field: &str| format!("port_group[{i}].{field}");
        if g.name.is_empty() {
            return Err(invalid(key("name"), "is empty"));
        }
        if !names.insert(g.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("'{}' is defined twice", g.name),
            ));
        }
        out.push(Mark {
            mark: g.mark,
            protocol: protocol(&g.protocol, key("protocol"))?,
            vip: values::ipv4(&g.vip).map_err(|e| invalid(key("vip"), e))?,
            ports: PortList(g.ports.clone()),
            name: Some(g.name.clone()),
        });
    }
    Ok(out)
}

/// The `[[service]]` tables in the rule model: what only a config file can get wrong (its
/// syntax, keys that exclude each other, a service without local addresses) is refused here;
/// values are the validator's to check.
/// A `match = {…}` table as the model's [`SnatMatch`]; its ports must be `[[port]]` names.
fn match_service(
    m: &MatchSection,
    ports: &[PortSection],
    key: impl Fn(&str) -> String,
) -> Result<SnatMatch, Invalid> {
    let proto = MatchProto::parse(&m.proto).map_err(|e| invalid(key("proto"), e))?;
    let range = |field: &str, v: &Option<String>| -> Result<Option<AddrRange>, Invalid> {
        v.as_deref()
            .map(|t| t.parse::<AddrRange>().map_err(|e| invalid(key(field), e)))
            .transpose()
    };
    let port = |field: &str, v: &Option<String>| -> Result<Option<PortName>, Invalid> {
        let Some(name) = v.as_deref() else {
            return Ok(None);
        };
        if !ports.iter().any(|p| p.name == name) {
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            return Err(invalid(
                key(field),
                format!("'{name}' is not a [[port]] (ports: {})", names.join(", ")),
            ));
        }
        name.parse::<PortName>()
            .map(Some)
            .map_err(|e| invalid(key(field), e))
    };
    Ok(SnatMatch {
        proto,
        src: range("src-range", &m.src_range)?,
        dst: range("dst-range", &m.dst_range)?,
        iif: port("iif", &m.iif)?,
        oif: port("oif", &m.oif)?,
    })
}

fn services(
    sections: &[ServiceSection],
    ports: &[PortSection],
) -> Result<(Vec<Service>, fnat_health::HealthConfig), Invalid> {
    let mut out = Vec::with_capacity(sections.len());
    let mut health = fnat_health::HealthConfig::default();
    for (i, s) in sections.iter().enumerate() {
        let key = |field: &str| format!("service[{i}].{field}");
        let addr = match (s.fwmark, &s.match_) {
            (_, Some(m)) => {
                for (field, given) in [
                    ("vip", s.vip.is_some()),
                    ("port", s.port.is_some()),
                    ("protocol", s.protocol.is_some()),
                    ("fwmark", s.fwmark.is_some()),
                ] {
                    if given {
                        return Err(invalid(
                            key(field),
                            "a match service (SNAT) is named by its match alone",
                        ));
                    }
                }
                ServiceAddr::Match(match_service(m, ports, |f| key(&format!("match.{f}")))?)
            }
            (Some(mark), None) => {
                for (field, given) in [
                    ("vip", s.vip.is_some()),
                    ("port", s.port.is_some()),
                    ("protocol", s.protocol.is_some()),
                ] {
                    if given {
                        return Err(invalid(
                            key(field),
                            "a port-group service (fwmark) takes its addresses from the group",
                        ));
                    }
                }
                ServiceAddr::Fwmark(mark)
            }
            (None, None) => {
                let missing = |field: &str| invalid(key(field), "missing (or give fwmark)");
                let vip = values::ipv4(s.vip.as_deref().ok_or_else(|| missing("vip"))?)
                    .map_err(|e| invalid(key("vip"), e))?;
                let protocol = protocol(
                    s.protocol.as_deref().ok_or_else(|| missing("protocol"))?,
                    key("protocol"),
                )?;
                let port = s.port.ok_or_else(|| missing("port"))?;
                ServiceAddr::Inet {
                    protocol,
                    vip,
                    port,
                }
            }
        };
        let scheduler_name = s.scheduler.as_deref().unwrap_or("wlc");
        let scheduler = scheduler_name.parse::<Scheduler>().map_err(|_| {
            let names: Vec<&str> = Scheduler::ALL.iter().map(|k| k.name()).collect();
            invalid(
                key("scheduler"),
                format!("'{scheduler_name}' is not one of: {}", names.join(", ")),
            )
        })?;
        let mut flags = SchedFlags::default();
        for (j, f) in s.flags.iter().enumerate() {
            let bits = SchedFlags::parse_list(f).ok().filter(|_| !f.is_empty() && !f.contains(',')).ok_or_else(|| {
                invalid(
                    format!("service[{i}].flags[{j}]"),
                    format!(
                        "'{f}' is not one of: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3"
                    ),
                )
            })?;
            flags.0 |= bits.0;
        }
        let persistent = s.persistent.unwrap_or(false) || s.persistence_timeout.is_some();
        if s.persistent == Some(false) && s.persistence_timeout.is_some() {
            return Err(invalid(
                key("persistence_timeout"),
                "given while persistent = false",
            ));
        }
        let persistence = if persistent {
            Some(Persistence {
                timeout: s.persistence_timeout.unwrap_or(DEFAULT_PERSISTENCE),
                netmask: match &s.persistence_netmask {
                    Some(m) => {
                        values::ipv4(m).map_err(|e| invalid(key("persistence_netmask"), e))?
                    }
                    None => Ipv4Addr::BROADCAST,
                },
            })
        } else {
            if s.persistence_netmask.is_some() {
                return Err(invalid(
                    key("persistence_netmask"),
                    "needs persistence (persistent = true or persistence_timeout)",
                ));
            }
            None
        };
        let mut local_addresses = Vec::with_capacity(s.local_addresses.len());
        for (j, a) in s.local_addresses.iter().enumerate() {
            let addr = values::ipv4(a)
                .map_err(|e| invalid(format!("service[{i}].local_addresses[{j}]"), e))?;
            local_addresses.push(LocalAddress { addr, device: None });
        }
        let is_match = matches!(addr, ServiceAddr::Match(_));
        let mut reals = Vec::with_capacity(s.reals.len());
        for (j, r) in s.reals.iter().enumerate() {
            let rkey = |k: &str| format!("service[{i}].real[{j}].{k}");
            let addr = values::ipv4(&r.address).map_err(|e| invalid(rkey("address"), e))?;
            let mut real = Real::new(addr, r.port, r.weight.unwrap_or(1));
            real.upper_threshold = r.upper_threshold.unwrap_or(0);
            real.lower_threshold = r.lower_threshold.unwrap_or(0);
            if let Some(m) = &r.method {
                real.forward = ForwardMethod::from_config_name(m).ok_or_else(|| {
                    invalid(
                        rkey("method"),
                        format!("unknown method {m:?} (fullnat, nat, dr, tun or snat)"),
                    )
                })?;
            }
            let tunnel_keys =
                r.tunnel_type.is_some() || r.tunnel_port.is_some() || r.tunnel_csum.is_some();
            if tunnel_keys && real.forward != ForwardMethod::Tunnel {
                return Err(invalid(
                    rkey(if r.tunnel_type.is_some() {
                        "tunnel_type"
                    } else if r.tunnel_port.is_some() {
                        "tunnel_port"
                    } else {
                        "tunnel_csum"
                    }),
                    "tunnel settings need method = \"tun\"",
                ));
            }
            if let Some(t) = &r.tunnel_type {
                real.tunnel.kind = TunnelType::from_name(t).ok_or_else(|| {
                    invalid(
                        rkey("tunnel_type"),
                        format!("unknown tunnel type {t:?} (ipip, gue or gre)"),
                    )
                })?;
            }
            real.tunnel.port = r.tunnel_port.unwrap_or(0);
            real.tunnel.csum = r.tunnel_csum.unwrap_or(false);
            // A match service's real servers are its SNAT addresses.
            if is_match {
                if r.method.is_some() && real.forward != ForwardMethod::Snat {
                    return Err(invalid(
                        rkey("method"),
                        "a match service's real servers are SNAT addresses (method = \"snat\" or none)",
                    ));
                }
                real.forward = ForwardMethod::Snat;
            }
            reals.push(real);
        }
        let fullnat = !is_match
            && (reals.is_empty() || reals.iter().any(|r| r.forward == ForwardMethod::FullNat));
        if local_addresses.is_empty() && fullnat {
            return Err(invalid(
                key("local_addresses"),
                "full-NAT needs at least one local address",
            ));
        }
        let mut service = Service::new(addr, scheduler);
        service.sched_flags = flags;
        service.persistence = persistence;
        service.expire_on_removal = s.expire_on_removal.unwrap_or(false);
        for (list, texts) in [(AclList::Allow, &s.allow), (AclList::Deny, &s.deny)] {
            let entries = service.acl_mut(list);
            for (j, t) in texts.iter().enumerate() {
                let p: ClientPrefix = t
                    .parse()
                    .map_err(|e: String| invalid(format!("{}[{j}]", key(list.name())), e))?;
                entries.push(p);
            }
        }
        if let Some(t) = &s.conn_rate {
            service.conn_rate = Some(
                t.parse()
                    .map_err(|e: String| invalid(key("conn_rate"), e))?,
            );
        }
        if let Some(pp) = &s.proxy_protocol {
            service.proxy_protocol = pp
                .parse()
                .map_err(|e: String| invalid(key("proxy_protocol"), e))?;
        }
        service.toa = s.toa.unwrap_or(false);
        service.synproxy = s.synproxy.unwrap_or(false);
        service.reals = reals;
        service.local_addresses = local_addresses;
        if let Some(spec) = super::health::from_toml(i, s, &service)? {
            health.services.push(spec);
        }
        out.push(service);
    }
    Ok((out, health))
}

fn control(file: &ConfigFile) -> Result<ControlSettings, Invalid> {
    let c = &file.control;
    let socket = c
        .socket
        .clone()
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    if socket.is_empty() || socket.len() > 107 {
        return Err(invalid(
            "control.socket",
            "must be a path of 1 to 107 bytes (the unix socket limit)",
        ));
    }
    let max_request_bytes = c.max_request_bytes.unwrap_or(1 << 20);
    if !(1024..=64 << 20).contains(&max_request_bytes) {
        return Err(invalid(
            "control.max_request_bytes",
            "must be 1024 to 67108864",
        ));
    }
    Ok(ControlSettings {
        socket: socket.into(),
        state_file: match &c.state_file {
            Some(p) if p.is_empty() => return Err(invalid("control.state_file", "is empty")),
            Some(p) => Some(p.into()),
            None => None,
        },
        max_request_bytes,
        withdraw_on_stop: match c.withdraw_on_stop_ms.unwrap_or(0) {
            ms @ 0..=60_000 => std::time::Duration::from_millis(ms),
            _ => {
                return Err(invalid(
                    "control.withdraw_on_stop_ms",
                    "must be 0 to 60000 (milliseconds)",
                ))
            }
        },
    })
}

fn metrics(file: &ConfigFile) -> Result<MetricsSettings, Invalid> {
    let listen = match &file.metrics.listen {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("`{text}` is not an address:port (e.g. 127.0.0.1:9417)"),
            )
        })?),
    };
    Ok(MetricsSettings { listen })
}

fn timeouts(t: &TimeoutsSection) -> Result<Timeouts, Invalid> {
    let d = Timeouts::default();
    let pick = |key: &str, v: Option<u32>, default: u32| -> Result<u32, Invalid> {
        match v {
            Some(0) => Err(invalid(
                format!("timeouts.{key}"),
                "must be at least 1 second",
            )),
            Some(s) if s > 31 * 24 * 3600 => Err(invalid(
                format!("timeouts.{key}"),
                "must be at most 31 days",
            )),
            Some(s) => Ok(s),
            None => Ok(default),
        }
    };
    Ok(Timeouts {
        tcp_established: pick("tcp_established", t.tcp_established, d.tcp_established)?,
        tcp_syn_sent: pick("tcp_syn_sent", t.tcp_syn_sent, d.tcp_syn_sent)?,
        tcp_syn_recv: pick("tcp_syn_recv", t.tcp_syn_recv, d.tcp_syn_recv)?,
        tcp_fin_wait: pick("tcp_fin_wait", t.tcp_fin_wait, d.tcp_fin_wait)?,
        tcp_time_wait: pick("tcp_time_wait", t.tcp_time_wait, d.tcp_time_wait)?,
        tcp_close: pick("tcp_close", t.tcp_close, d.tcp_close)?,
        tcp_close_wait: pick("tcp_close_wait", t.tcp_close_wait, d.tcp_close_wait)?,
        tcp_last_ack: pick("tcp_last_ack", t.tcp_last_ack, d.tcp_last_ack)?,
        tcp_listen: pick("tcp_listen", t.tcp_listen, d.tcp_listen)?,
        tcp_synack: pick("tcp_synack", t.tcp_synack, d.tcp_synack)?,
        udp: pick("udp", t.udp, d.udp)?,
        icmp: pick("icmp", t.icmp, d.icmp)?,
    })
}

/// `[sync]`: the session sync daemons (`master`, `backup`), checked by the rule model's one
/// validator; each names an fnatd port with a kernel twin (or a twin itself).
fn sync(
    file: &ConfigFile,
    ports: &[super::PortSpec],
) -> Result<fnat_proto::sync::SyncDaemons, Invalid> {
    let mut out = fnat_proto::sync::SyncDaemons {
        sync_refresh_period: file.sync.sync_refresh_period.unwrap_or(0),
        ..Default::default()
    };
    for (role, section) in [("master", &file.sync.master), ("backup", &file.sync.backup)] {
        let Some(sec) = section else {
            continue;
        };
        let key = |k: &str| format!("sync.{role}.{k}");
        let mut d = fnat_proto::sync::SyncDaemon::new(sec.interface.clone());
        d.syncid = sec.syncid.unwrap_or(0);
        d.maxlen = sec.maxlen.unwrap_or(0);
        if let Some(g) = &sec.group {
            d.group = g
                .parse()
                .map_err(|_| invalid(key("group"), format!("'{g}' is not an IPv4 address")))?;
        }
        if let Some(p) = sec.port {
            d.port = p;
        }
        if let Some(t) = sec.ttl {
            d.ttl = t;
        }
        d.vrrp_instance = sec.vrrp_instance.clone();
        d.validate()
            .map_err(|e| invalid(format!("sync.{role}"), e))?;
        if super::sync_twin(ports, &d.interface).is_none() {
            return Err(invalid(
                key("interface"),
                format!(
                    "'{}' is not an fnatd port with a kernel_interface, nor a kernel twin",
                    d.interface
                ),
            ));
        }
        *out.slot(if role == "master" {
            fnat_proto::sync::SyncRole::Master
        } else {
            fnat_proto::sync::SyncRole::Backup
        }) = Some(d);
    }
    Ok(out)
}
