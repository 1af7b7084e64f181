//! Checks every value of a parsed config file and builds the validated [`AppConfig`].
//! Errors are `(key, reason)`; the caller adds the file name.

use std::collections::HashSet;
use std::path::Path;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use fnat_engine::rules::{
    Endpoint, Mode, Neighbour, Persistence, PortGroup, PortIndex, PortRule, Protocol, RealServer,
    Route, Rules, SchedFlags, SchedulerKind, Service, ServiceOptions, Thresholds, Timeouts,
    DEFAULT_PERSISTENCE_TIMEOUT,
};

use super::file::{ConfigFile, PortGroupSection, ServiceSection, TimeoutsSection};
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

    let groups = port_groups(&file.port_groups)?;
    let services = services(&file.services, &groups)?;
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

    let rules = Rules {
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
        services,
        routes,
        neighbours,
        timeouts: timeouts(&file.timeouts)?,
        session_capacity: capacity,
        lport_min,
        lport_max,
        drop_ip_options,
        expire_quiescent_template: file.session.expire_quiescent_template.unwrap_or(false),
    };
    Ok(AppConfig {
        path: path.to_path_buf(),
        eal,
        dataplane,
        ports,
        control: control(&file)?,
        metrics: metrics(&file)?,
        rules,
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
        };
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

/// The `[[port_group]]` tables, by mark.
fn port_groups(sections: &[PortGroupSection]) -> Result<HashMap<u32, PortGroup>, Invalid> {
    let mut out: HashMap<u32, PortGroup> = HashMap::new();
    let mut names = HashSet::new();
    let mut endpoints = HashSet::new();
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
        if g.mark == 0 {
            return Err(invalid(key("mark"), "must be 1 to 4294967295"));
        }
        if out.contains_key(&g.mark) {
            return Err(invalid(
                key("mark"),
                format!("mark {} is used by another port group", g.mark),
            ));
        }
        let protocol = protocol(&g.protocol, key("protocol"))?;
        let vip = values::ipv4(&g.vip).map_err(|e| invalid(key("vip"), e))?;
        if g.ports.is_empty() {
            return Err(invalid(key("ports"), "lists no port"));
        }
        let mut members = Vec::with_capacity(g.ports.len());
        for (j, &port) in g.ports.iter().enumerate() {
            let pkey = format!("port_group[{i}].ports[{j}]");
            if port == 0 {
                return Err(invalid(pkey, "must be 1 to 65535"));
            }
            if !endpoints.insert((vip, protocol, port)) {
                return Err(invalid(
                    pkey,
                    format!("{vip}:{port} is already in a port group"),
                ));
            }
            members.push(Endpoint {
                vip,
                protocol,
                port,
            });
        }
        out.insert(
            g.mark,
            PortGroup {
                mark: g.mark,
                name: g.name.clone(),
                members,
            },
        );
    }
    Ok(out)
}

/// A netmask: contiguous ones from the top.
fn netmask(text: &str) -> Result<Ipv4Addr, String> {
    let m = values::ipv4(text)?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(format!("{m} is not a netmask"));
    }
    Ok(m)
}

/// Longest persistence timeout (as ipvsadm: 31 days).
const MAX_PERSISTENCE_TIMEOUT: u32 = 31 * 24 * 3600;

fn services(
    sections: &[ServiceSection],
    groups: &HashMap<u32, PortGroup>,
) -> Result<Vec<Service>, Invalid> {
    let mut seen = HashSet::new();
    let mut marks = HashSet::new();
    let mut next_real_id = 1u32;
    let mut out = Vec::with_capacity(sections.len());
    // Endpoints of the port groups used by services, to catch clashes with inet services.
    let mut grouped: HashSet<(Ipv4Addr, Protocol, u16)> = HashSet::new();
    for s in sections {
        if let Some(g) = s.fwmark.and_then(|m| groups.get(&m)) {
            grouped.extend(g.members.iter().map(|e| (e.vip, e.protocol, e.port)));
        }
    }
    for (i, s) in sections.iter().enumerate() {
        let key = |field: &str| format!("service[{i}].{field}");
        let (vip, protocol, port, port_group) = match s.fwmark {
            Some(mark) => {
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
                let group = groups.get(&mark).ok_or_else(|| {
                    invalid(key("fwmark"), format!("no [[port_group]] has mark {mark}"))
                })?;
                if !marks.insert(mark) {
                    return Err(invalid(
                        key("fwmark"),
                        format!("mark {mark} has another service"),
                    ));
                }
                let first = group.members[0];
                (first.vip, first.protocol, first.port, Some(group.clone()))
            }
            None => {
                let missing = |field: &str| invalid(key(field), "missing (or give fwmark)");
                let vip = values::ipv4(s.vip.as_deref().ok_or_else(|| missing("vip"))?)
                    .map_err(|e| invalid(key("vip"), e))?;
                let protocol = protocol(
                    s.protocol.as_deref().ok_or_else(|| missing("protocol"))?,
                    key("protocol"),
                )?;
                let port = s.port.ok_or_else(|| missing("port"))?;
                if !seen.insert((vip, protocol, port)) {
                    return Err(invalid(
                        key("vip"),
                        format!("service {vip}:{port} is defined twice"),
                    ));
                }
                if grouped.contains(&(vip, protocol, port)) {
                    return Err(invalid(
                        key("port"),
                        format!("{vip}:{port} belongs to a port group that has a service"),
                    ));
                }
                (vip, protocol, port, None)
            }
        };
        let scheduler_name = s.scheduler.as_deref().unwrap_or("wlc");
        let scheduler = SchedulerKind::from_name(scheduler_name).ok_or_else(|| {
            let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
            invalid(
                key("scheduler"),
                format!("'{scheduler_name}' is not one of: {}", names.join(", ")),
            )
        })?;
        let mut flags = SchedFlags::default();
        for (j, f) in s.flags.iter().enumerate() {
            let bit = SchedFlags::bit_of(f).ok_or_else(|| {
                invalid(
                    format!("service[{i}].flags[{j}]"),
                    format!(
                        "'{f}' is not one of: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3"
                    ),
                )
            })?;
            flags.0 |= bit;
        }
        let persistent = s.persistent.unwrap_or(false) || s.persistence_timeout.is_some();
        if s.persistent == Some(false) && s.persistence_timeout.is_some() {
            return Err(invalid(
                key("persistence_timeout"),
                "given while persistent = false",
            ));
        }
        let persistence = if persistent {
            let timeout_secs = s.persistence_timeout.unwrap_or(DEFAULT_PERSISTENCE_TIMEOUT);
            if !(1..=MAX_PERSISTENCE_TIMEOUT).contains(&timeout_secs) {
                return Err(invalid(
                    key("persistence_timeout"),
                    format!("must be 1 to {MAX_PERSISTENCE_TIMEOUT} seconds"),
                ));
            }
            let netmask = match &s.persistence_netmask {
                Some(m) => netmask(m).map_err(|e| invalid(key("persistence_netmask"), e))?,
                None => Ipv4Addr::BROADCAST,
            };
            Some(Persistence {
                timeout_secs,
                netmask,
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
            let lip = values::ipv4(a)
                .map_err(|e| invalid(format!("service[{i}].local_addresses[{j}]"), e))?;
            if local_addresses.contains(&lip) {
                return Err(invalid(
                    format!("service[{i}].local_addresses[{j}]"),
                    format!("{lip} is listed twice"),
                ));
            }
            local_addresses.push(lip);
        }
        if local_addresses.is_empty() {
            return Err(invalid(
                key("local_addresses"),
                "full-NAT needs at least one local address",
            ));
        }
        let mut reals = Vec::with_capacity(s.reals.len());
        for (j, r) in s.reals.iter().enumerate() {
            let rkey = |field: &str| format!("service[{i}].real[{j}].{field}");
            let addr = values::ipv4(&r.address).map_err(|e| invalid(rkey("address"), e))?;
            let weight = r.weight.unwrap_or(1);
            if weight > i32::MAX as u32 {
                return Err(invalid(rkey("weight"), "must be 0 to 2147483647"));
            }
            let upper = r.upper_threshold.unwrap_or(0);
            let lower = r.lower_threshold.unwrap_or(0);
            if upper > i32::MAX as u32 {
                return Err(invalid(rkey("upper_threshold"), "must be 0 to 2147483647"));
            }
            if lower > i32::MAX as u32 {
                return Err(invalid(rkey("lower_threshold"), "must be 0 to 2147483647"));
            }
            if upper != 0 && lower > upper {
                return Err(invalid(
                    rkey("lower_threshold"),
                    format!("{lower} is above the upper threshold {upper}"),
                ));
            }
            if reals
                .iter()
                .any(|x: &RealServer| x.addr == addr && x.port == r.port)
            {
                return Err(invalid(
                    rkey("address"),
                    format!("{addr}:{} is listed twice", r.port),
                ));
            }
            let mut real = RealServer::new(next_real_id, addr, r.port, weight);
            real.thresholds = Thresholds { upper, lower };
            reals.push(real);
            next_real_id += 1;
        }
        let mut service = Service::new(i as u32 + 1, vip, protocol, port, scheduler);
        service.reals = reals;
        service.local_addresses = local_addresses;
        service.options = ServiceOptions {
            sched_flags: flags,
            persistence,
            port_group,
            expire_on_removal: s.expire_on_removal.unwrap_or(false),
        };
        out.push(service);
    }
    Ok(out)
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
