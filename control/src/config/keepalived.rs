//! keepalived.conf as a source of services: its virtual servers are translated into the one
//! rule model, added to the fnatd config's, and go through the same validator and compiler
//! as every other path (`fnatd run|replay --keepalived FILE`; `reload` re-reads both files).
//!
//! What fnat cannot do yet is refused by the one road with keepalived's line attached
//! (IPv6, SCTP, a tunnel's remote checksum) or, where keepalived would carry on,
//! reported as a warning. Checkers, quorum and sorry servers become the services' health
//! specs (`fnat-health` runs them).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use fnat_engine::rules::Ipv4Cidr;
use fnat_keepalived::lvs::{
    GroupMember, Method, Protocol as KaProtocol, TunnelKind, VirtualServer, VirtualServerKey,
};
use fnat_keepalived::{Diagnostic, Level, Location};
use fnat_proto::edit::{check_rule_set, Place, ServiceField};
use fnat_proto::model::{
    AclList, ClientPrefix, ForwardMethod, LocalAddress, Persistence, Protocol, Real, RuleSet,
    SchedFlags, Scheduler, Service, ServiceAddr, TunnelOptions, TunnelType, MAX_WEIGHT,
};

use super::ConfigError;

/// Most virtual services one `virtual_server_group` may expand to (address ranges × ports).
const MAX_GROUP_SERVICES: u64 = 65_536;

/// Adds the virtual servers of the keepalived.conf at `path` to `rules` (the fnatd config's).
/// Returns keepalived's warnings (to be logged); the first error refuses the whole file.
///
/// `addresses` are the ports' own addresses: a direct-routing (`lb_kind DR`) real server must
/// be on one of their networks, else it is refused at its `real_server` line.
pub fn add_services<'a>(
    path: &Path,
    rules: &mut RuleSet,
    health: &mut fnat_health::HealthConfig,
    addresses: impl IntoIterator<Item = &'a Ipv4Cidr> + Clone,
) -> Result<Vec<Diagnostic>, ConfigError> {
    let conf = fnat_keepalived::read_file(path);
    if let Some(e) = conf.errors().next() {
        return Err(from_diagnostic(e));
    }
    let mut warnings: Vec<Diagnostic> = conf.diagnostics.clone();
    if let Some((_, t)) = &conf.lvs_timeouts {
        // keepalived sets them as `ipvsadm --set` does: the run-time overrides.
        for (slot, v) in [
            (&mut rules.timeouts.tcp, t.tcp),
            (&mut rules.timeouts.tcp_fin, t.tcpfin),
            (&mut rules.timeouts.udp, t.udp),
        ] {
            if v.is_some() {
                *slot = v;
            }
        }
    }
    health.notify_fifos = conf.lvs_fifos();
    let first_added = rules.services.len();
    // Where each added service came from, to point the validator's refusals at its line.
    let mut origin: Vec<Location> = Vec::new();
    // And the virtual server itself, whose real servers have lines of their own.
    let mut origin_vs: Vec<&VirtualServer> = Vec::new();
    for vs in &conf.virtual_servers {
        let keys = service_keys(vs, &conf)?;
        for addr in keys {
            let service = service(vs, addr, &conf)?;
            for (real, rs) in service.reals.iter().zip(&vs.reals) {
                crate::control::check_direct_route(&service, real, addresses.clone())
                    .map_err(|e| located(&rs.at, "real_server", e.message))?;
            }
            if let Some(spec) = super::health::spec_of(vs, &service, &mut warnings)
                .map_err(|(at, keyword, reason)| located(&at, &keyword, reason))?
            {
                health.services.push(spec);
            }
            rules.services.push(service);
            origin.push(vs.at.clone());
            origin_vs.push(vs);
        }
    }
    if let Err(refusal) = check_rule_set(rules) {
        if let (Place::Timeout(_), Some((at, _))) = (&refusal.place, &conf.lvs_timeouts) {
            return Err(located(at, "lvs_timeouts", refusal.error.message));
        }
        // A refusal about a real server names the real server's line.
        if let Place::Real(i, j, _) = refusal.place {
            let rs = i
                .checked_sub(first_added)
                .and_then(|i| origin_vs.get(i))
                .and_then(|vs| vs.reals.get(j));
            if let Some(rs) = rs {
                return Err(located(&rs.at, "real_server", refusal.error.message));
            }
        }
        let index = match refusal.place {
            Place::Service(i, _) | Place::Real(i, _, _) | Place::LocalAddress(i, _) => Some(i),
            _ => None,
        };
        // Options refused for the service's real servers name their own keyword.
        let keyword = match refusal.place {
            Place::Service(_, ServiceField::ProxyProtocol) => "proxy_protocol",
            Place::Service(_, ServiceField::Toa) => "toa",
            _ => "virtual_server",
        };
        return Err(
            match index
                .and_then(|i| i.checked_sub(first_added))
                .and_then(|i| origin.get(i))
            {
                Some(at) => located(at, keyword, refusal.error.message),
                None => ConfigError {
                    file: path.display().to_string(),
                    line: None,
                    key: String::new(),
                    reason: refusal.error.message,
                },
            },
        );
    }
    // What the engine cannot run yet (a scheduler, one-packet scheduling, a forwarding
    // method) is refused here too, where each service's line is known.
    for (service, at) in rules.services[first_added..].iter().zip(&origin) {
        crate::control::check_service_support(service)
            .map_err(|e| located(at, "virtual_server", e.message))?;
    }
    warnings.retain(|d| d.level == Level::Warning);
    Ok(warnings)
}

/// A `vrrp_instance` as fnatd runs it: on the kernel twin of the fnatd port its `interface`
/// names, from the port's first address.
#[derive(Debug, Clone)]
pub struct VrrpRun {
    pub port: String,
    pub twin: String,
    pub primary: Ipv4Addr,
    pub instance: fnat_vrrp::service::InstanceConfig,
}

/// The `vrrp_instance`s of the keepalived.conf at `path`, each checked against `ports`: it
/// runs when its `interface` is an fnatd port with a `kernel_interface` (adverts come and go
/// through the twin) and an address. One that cannot run is a warning naming file, line and
/// the reason, as keepalived carries on past an instance on an unknown interface; what the
/// service cannot speak (IPv6) is refused with the line.
pub fn vrrp_runs(
    path: &Path,
    ports: &[super::PortSpec],
) -> Result<(Vec<VrrpRun>, Vec<Diagnostic>, fnat_vrrp::service::Context), ConfigError> {
    let conf = fnat_keepalived::read_file(path);
    if let Some(e) = conf.errors().next() {
        return Err(from_diagnostic(e));
    }
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    for v in &conf.vrrp_instances {
        let not_run = |why: String| Diagnostic {
            level: Level::Warning,
            at: v.at.clone(),
            keyword: "vrrp_instance".into(),
            message: format!("VRRP instance {} not run: {why}", v.name),
        };
        let Some(port) = ports.iter().find(|p| p.name == v.interface) else {
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            warnings.push(not_run(format!(
                "interface '{}' is not an fnatd port (ports: {})",
                v.interface,
                names.join(", ")
            )));
            continue;
        };
        let Some(twin) = &port.kernel_interface else {
            warnings.push(not_run(format!(
                "port '{}' has no kernel_interface (adverts come and go through the port's \
                 kernel twin)",
                port.name
            )));
            continue;
        };
        let Some(primary) = port.addresses.first().map(|c| c.addr) else {
            warnings.push(not_run(format!(
                "port '{}' has no address to send adverts from",
                port.name
            )));
            continue;
        };
        let mut instance = fnat_vrrp::service::InstanceConfig::from_keepalived(v, primary)
            .map_err(|reason| located(&v.at, "vrrp_instance", reason))?;
        instance.sync_group = conf
            .vrrp_sync_groups
            .iter()
            .find(|g| g.members.contains(&v.name))
            .map(|g| g.name.clone());
        runs.push(VrrpRun {
            port: port.name.clone(),
            twin: twin.clone(),
            primary,
            instance,
        });
    }
    let context = fnat_vrrp::service::Context {
        groups: Default::default(),
        scripts: conf.vrrp_scripts.clone(),
        notify_fifos: conf.vrrp_fifos(),
    };
    Ok((runs, warnings, context))
}

/// The session sync daemons of the keepalived.conf at `path`: `lvs_sync_daemon IF [VI_NAME]
/// [id N] [maxlen L] [port P] [ttl T] [group G]` (global_defs) or the old
/// `lvs_sync_daemon_inteface IF` of a `vrrp_instance`. As keepalived runs it, one daemon
/// configuration serves as master while its instance is MASTER and as backup otherwise (both
/// at once without an instance). Checked by the rule model's validator; `IF` must be an
/// fnatd port with a kernel twin. Errors name the file and line.
pub fn sync_daemons(
    path: &Path,
    ports: &[super::PortSpec],
) -> Result<(fnat_proto::sync::SyncDaemons, Vec<Diagnostic>), ConfigError> {
    let conf = fnat_keepalived::read_file(path);
    if let Some(e) = conf.errors().next() {
        return Err(from_diagnostic(e));
    }
    let old = conf
        .vrrp_instances
        .iter()
        .find_map(|v| v.lvs_sync_daemon_interface.clone().map(|i| (v, i)));
    let (at, daemon, keyword) = match (&conf.lvs_sync_daemon, old) {
        (Some(d), _) => {
            let mut s = fnat_proto::sync::SyncDaemon::new(d.interface.clone());
            s.vrrp_instance = d.instance.clone();
            s.syncid = d.id.unwrap_or(0);
            s.maxlen = d.maxlen.unwrap_or(0);
            if let Some(p) = d.port {
                s.port = p;
            }
            if let Some(t) = d.ttl {
                s.ttl = t;
            }
            match d.group {
                Some(std::net::IpAddr::V4(g)) => s.group = g,
                Some(std::net::IpAddr::V6(g)) => {
                    return Err(located(
                        &d.at,
                        "lvs_sync_daemon",
                        format!("group {g}: fnat's sync runs over IPv4"),
                    ))
                }
                None => {}
            }
            (d.at.clone(), s, "lvs_sync_daemon")
        }
        (None, Some((v, interface))) => {
            let mut s = fnat_proto::sync::SyncDaemon::new(interface);
            s.vrrp_instance = Some(v.name.clone());
            (v.at.clone(), s, "lvs_sync_daemon_inteface")
        }
        (None, None) => return Ok((Default::default(), Vec::new())),
    };
    daemon
        .validate()
        .map_err(|reason| located(&at, keyword, reason))?;
    // As keepalived carries on past a sync daemon on an unknown interface (and as a
    // vrrp_instance that cannot run here): a warning naming the line.
    if super::sync_twin(ports, &daemon.interface).is_none() {
        let warning = Diagnostic {
            level: Level::Warning,
            at,
            keyword: keyword.into(),
            message: format!(
                "session sync not run: interface '{}' is not an fnatd port with a \
                 kernel_interface (sync datagrams come and go through the port's kernel twin)",
                daemon.interface
            ),
        };
        return Ok((Default::default(), vec![warning]));
    }
    if let Some(i) = &daemon.vrrp_instance {
        if !conf.vrrp_instances.iter().any(|v| &v.name == i) {
            return Err(located(&at, keyword, format!("no vrrp_instance named {i}")));
        }
    }
    Ok((
        fnat_proto::sync::SyncDaemons {
            master: Some(daemon.clone()),
            backup: Some(daemon),
            ..Default::default()
        },
        Vec::new(),
    ))
}

fn from_diagnostic(d: &Diagnostic) -> ConfigError {
    located(&d.at, &d.keyword, d.message.clone())
}

fn located(at: &Location, keyword: &str, reason: String) -> ConfigError {
    ConfigError {
        file: at.file.display().to_string(),
        line: Some(at.line as usize),
        key: keyword.to_string(),
        reason,
    }
}

fn ipv4(ip: IpAddr, at: &Location, keyword: &str) -> Result<Ipv4Addr, ConfigError> {
    match ip {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(located(
            at,
            keyword,
            format!("{ip}: IPv6 is not supported yet"),
        )),
    }
}

fn protocol(vs: &VirtualServer) -> Result<Protocol, ConfigError> {
    match vs.protocol {
        KaProtocol::Tcp => Ok(Protocol::Tcp),
        KaProtocol::Udp => Ok(Protocol::Udp),
        KaProtocol::Sctp => Err(located(&vs.at, "protocol", "SCTP is not supported".into())),
    }
}

/// The services a virtual server stands for: one, or one per member of its group.
fn service_keys(
    vs: &VirtualServer,
    conf: &fnat_keepalived::Config,
) -> Result<Vec<ServiceAddr>, ConfigError> {
    let inet = |ip: IpAddr, port: Option<u16>| -> Result<ServiceAddr, ConfigError> {
        Ok(ServiceAddr::Inet {
            protocol: protocol(vs)?,
            vip: ipv4(ip, &vs.at, "virtual_server")?,
            port: port.unwrap_or(0),
        })
    };
    match &vs.key {
        VirtualServerKey::Address { ip, port } => Ok(vec![inet(*ip, *port)?]),
        VirtualServerKey::Fwmark(mark) => Ok(vec![ServiceAddr::Fwmark(*mark)]),
        VirtualServerKey::Group(name) => {
            // The reader has already refused a group that is not defined.
            let Some(group) = conf.groups.iter().find(|g| &g.name == name) else {
                return Ok(Vec::new());
            };
            let mut keys = Vec::new();
            for member in &group.members {
                match member {
                    GroupMember::Fwmark(mark) => keys.push(ServiceAddr::Fwmark(*mark)),
                    GroupMember::Range { first, last, port } => {
                        let first = u32::from(ipv4(*first, &group.at, "virtual_server_group")?);
                        let last = u32::from(ipv4(*last, &group.at, "virtual_server_group")?);
                        if u64::from(last - first) + keys.len() as u64 >= MAX_GROUP_SERVICES {
                            return Err(located(
                                &group.at,
                                "virtual_server_group",
                                format!(
                                    "{name} expands to more than {MAX_GROUP_SERVICES} services"
                                ),
                            ));
                        }
                        for a in first..=last {
                            keys.push(inet(IpAddr::V4(a.into()), *port)?);
                        }
                    }
                }
            }
            Ok(keys)
        }
    }
}

fn forward(method: &Method) -> ForwardMethod {
    match method {
        Method::FullNat => ForwardMethod::FullNat,
        Method::Nat => ForwardMethod::Masq,
        Method::Dr => ForwardMethod::Route,
        Method::Tun { .. } => ForwardMethod::Tunnel,
    }
}

fn service(
    vs: &VirtualServer,
    addr: ServiceAddr,
    conf: &fnat_keepalived::Config,
) -> Result<Service, ConfigError> {
    let scheduler: Scheduler = vs
        .scheduler
        .parse()
        .map_err(|e: String| located(&vs.at, "lvs_sched", e))?;
    let mut service = Service::new(addr, scheduler);
    service.sched_flags =
        SchedFlags::parse_list(&vs.flags.join(",")).map_err(|e| located(&vs.at, "lvs_sched", e))?;
    service.one_packet = vs.ops;
    if let Some(pp) = &vs.proxy_protocol {
        service.proxy_protocol = pp
            .parse()
            .map_err(|e: String| located(&vs.at, "proxy_protocol", e))?;
    }
    service.toa = vs.toa;
    service.synproxy = vs.syn_proxy;
    if let Some(timeout) = vs.persistence_timeout {
        let netmask = match &vs.persistence_granularity {
            Some(mask) => mask.parse().map_err(|_| {
                located(
                    &vs.at,
                    "persistence_granularity",
                    format!("'{mask}' is not an IPv4 netmask"),
                )
            })?,
            None => Ipv4Addr::BROADCAST,
        };
        service.persistence = Some(Persistence { timeout, netmask });
    }
    if let Some(name) = &vs.laddr_group_name {
        let Some(group) = conf.local_address_groups.iter().find(|g| &g.name == name) else {
            return Err(located(
                &vs.at,
                "laddr_group_name",
                format!("no local_address_group is named {name}"),
            ));
        };
        for (address, device) in &group.addresses {
            let addr = address.parse().map_err(|_| {
                located(
                    &group.at,
                    "local_address_group",
                    format!("'{address}' is not an IPv4 address"),
                )
            })?;
            service.local_addresses.push(LocalAddress {
                addr,
                device: device.clone(),
            });
        }
    }
    for (list, name, key, groups, block) in [
        (
            AclList::Deny,
            &vs.daddr_group_name,
            "daddr_group_name",
            &conf.deny_address_groups,
            "deny_address_group",
        ),
        (
            AclList::Allow,
            &vs.waddr_group_name,
            "waddr_group_name",
            &conf.allow_address_groups,
            "allow_address_group",
        ),
    ] {
        let Some(name) = name else { continue };
        let Some(group) = groups.iter().find(|g| &g.name == name) else {
            return Err(located(&vs.at, key, format!("no {block} is named {name}")));
        };
        for (text, _) in &group.addresses {
            let p: ClientPrefix = text
                .parse()
                .map_err(|e: String| located(&group.at, block, e))?;
            service.acl_mut(list).push(p);
        }
    }
    let vport = match addr {
        ServiceAddr::Inet { port, .. } => port,
        ServiceAddr::Fwmark(_) | ServiceAddr::Match(_) => 0,
    };
    for rs in &vs.reals {
        let weight = u32::try_from(rs.weight)
            .ok()
            .filter(|w| *w <= MAX_WEIGHT)
            .ok_or_else(|| {
                located(
                    &rs.at,
                    "weight",
                    format!("{} is not a weight of 0 to {MAX_WEIGHT}", rs.weight),
                )
            })?;
        let mut real = Real::new(
            ipv4(rs.ip, &rs.at, "real_server")?,
            rs.port.unwrap_or(vport),
            weight,
        );
        real.upper_threshold = rs.uthreshold;
        real.lower_threshold = rs.lthreshold;
        real.forward = forward(&rs.method);
        if let Method::Tun { kind, checksum } = &rs.method {
            real.tunnel = TunnelOptions {
                kind: match kind {
                    TunnelKind::Ipip => TunnelType::Ipip,
                    TunnelKind::Gue { .. } => TunnelType::Gue,
                    TunnelKind::Gre => TunnelType::Gre,
                },
                port: match kind {
                    TunnelKind::Gue { port } => *port,
                    _ => 0,
                },
                csum: checksum.as_deref() == Some("csum"),
            };
            if checksum.as_deref() == Some("remcsum") {
                return Err(located(
                    &rs.at,
                    "lvs_method",
                    "remote checksum offload (remcsum) is not supported: use csum or nocsum".into(),
                ));
            }
        }
        service.reals.push(real);
    }
    Ok(service)
}

#[cfg(test)]
mod roundtrip {
    //! `fnatctl export-keepalived` writes what this reader reads back as the same services.

    use std::net::Ipv4Addr;

    use fnat_proto::model::{Mark, PortList, TimeoutOverrides};
    use proptest::prelude::*;

    use super::*;

    /// Firewall marks 1..=3 (they live in fnatd's config; the export refers to them).
    fn marks() -> Vec<Mark> {
        (1..=3u32)
            .map(|m| Mark {
                mark: m,
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(198, 18, 1, m as u8),
                ports: PortList(vec![80, 443]),
                name: None,
            })
            .collect()
    }

    fn addr() -> impl Strategy<Value = ServiceAddr> {
        prop_oneof![
            (
                any::<bool>(),
                1u8..=12,
                prop::sample::select(vec![0u16, 80, 443, 8080])
            )
                .prop_map(|(udp, host, port)| ServiceAddr::Inet {
                    protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                    vip: Ipv4Addr::new(198, 18, 0, host),
                    port,
                }),
            (1u32..=3).prop_map(ServiceAddr::Fwmark),
        ]
    }

    fn real() -> impl Strategy<Value = Real> {
        (
            1u8..=30,
            prop::sample::select(vec![0u16, 80, 8080]),
            prop_oneof![0..=10u32, Just(MAX_WEIGHT), 0..=MAX_WEIGHT],
            0u32..=50,
            0u32..=50,
            0u8..5,
        )
            .prop_map(|(host, port, weight, a, b, method)| {
                let mut r = Real::new(Ipv4Addr::new(198, 19, 1, host), port, weight);
                r.upper_threshold = a.max(b);
                r.lower_threshold = a.min(b);
                // Every method but DR (whose port must be the service's): the tunnels with
                // their type, port and checksum.
                let tunnel = |kind, port, csum| TunnelOptions { kind, port, csum };
                (r.forward, r.tunnel) = match method {
                    0 => (ForwardMethod::FullNat, TunnelOptions::default()),
                    1 => (ForwardMethod::Masq, TunnelOptions::default()),
                    2 => (ForwardMethod::Tunnel, TunnelOptions::default()),
                    3 => (ForwardMethod::Tunnel, tunnel(TunnelType::Gue, 6080, true)),
                    _ => (ForwardMethod::Tunnel, tunnel(TunnelType::Gre, 0, false)),
                };
                r
            })
    }

    fn service() -> impl Strategy<Value = Service> {
        (
            addr(),
            prop::sample::select(Scheduler::ALL.to_vec()),
            0u8..8,
            prop::option::of((
                1u32..=86_400,
                prop::sample::select(vec![
                    Ipv4Addr::BROADCAST,
                    Ipv4Addr::new(255, 255, 255, 0),
                    Ipv4Addr::new(255, 255, 0, 0),
                ]),
            )),
            any::<bool>(),
            prop::collection::vec(real(), 0..4),
            prop::collection::vec(
                (
                    1u8..=20,
                    prop::option::of(prop::sample::select(vec!["wan", "lan"])),
                ),
                0..3,
            ),
        )
            .prop_map(
                |(addr, scheduler, flags, persistence, ops, reals, laddrs)| {
                    let mut s = Service::new(addr, scheduler);
                    s.sched_flags = SchedFlags(flags);
                    s.persistence =
                        persistence.map(|(timeout, netmask)| Persistence { timeout, netmask });
                    s.one_packet = ops
                        && matches!(
                            addr,
                            ServiceAddr::Inet {
                                protocol: Protocol::Udp,
                                ..
                            }
                        );
                    // TCP services: Proxy Protocol and TOA ride on the same bit.
                    if ops
                        && matches!(
                            addr,
                            ServiceAddr::Inet {
                                protocol: Protocol::Tcp,
                                ..
                            }
                        )
                    {
                        s.proxy_protocol = if flags % 2 == 0 {
                            fnat_proto::model::ProxyProtocol::V2
                        } else {
                            fnat_proto::model::ProxyProtocol::V1Insecure
                        };
                        s.toa = flags % 3 == 0;
                        s.synproxy = flags % 5 == 0;
                    }
                    let mut seen = std::collections::HashSet::new();
                    s.reals = reals.into_iter().filter(|r| seen.insert(r.key())).collect();
                    let mut seen = std::collections::HashSet::new();
                    s.local_addresses = laddrs
                        .into_iter()
                        .filter(|(h, _)| seen.insert(*h))
                        .map(|(h, dev)| LocalAddress {
                            addr: Ipv4Addr::new(198, 19, 0, h),
                            device: dev.map(str::to_string),
                        })
                        .collect();
                    s
                },
            )
    }

    fn timeout() -> impl Strategy<Value = Option<u32>> {
        prop::option::of(prop_oneof![
            1u32..=900,
            Just(fnat_proto::model::MAX_TIMEOUT)
        ])
    }

    fn rule_set() -> impl Strategy<Value = RuleSet> {
        (
            prop::collection::vec(service(), 0..6),
            timeout(),
            timeout(),
            timeout(),
        )
            .prop_map(|(services, tcp, tcp_fin, udp)| {
                let mut seen = std::collections::HashSet::new();
                RuleSet {
                    marks: marks(),
                    services: services
                        .into_iter()
                        .filter(|s| seen.insert(s.addr))
                        .collect(),
                    timeouts: TimeoutOverrides { tcp, tcp_fin, udp },
                    ..RuleSet::default()
                }
            })
    }

    /// Writes `rules` as keepalived.conf and reads it back into a rule set holding only the
    /// marks (as fnatd's config would).
    fn round_trip(rules: &RuleSet) -> RuleSet {
        let text = fnat_keepalived::write::write(rules).expect("writable");
        let dir = std::env::temp_dir().join(format!(
            "fnat-ka-export-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, &text).unwrap();
        let mut back = RuleSet {
            marks: marks(),
            ..RuleSet::default()
        };
        let mut health = fnat_health::HealthConfig::default();
        // Every address on a connected network (two /1 prefixes): DR real servers read back.
        let everywhere = [
            Ipv4Cidr {
                addr: Ipv4Addr::new(0, 0, 0, 1),
                prefix_len: 1,
            },
            Ipv4Cidr {
                addr: Ipv4Addr::new(128, 0, 0, 1),
                prefix_len: 1,
            },
        ];
        let warnings = add_services(&path, &mut back, &mut health, &everywhere)
            .unwrap_or_else(|e| panic!("{e:?}\nin:\n{text}"));
        assert!(health.services.is_empty(), "{health:?}\n{text}");
        assert!(warnings.is_empty(), "{warnings:?}\n{text}");
        let _ = std::fs::remove_dir_all(&dir);
        back
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn exported_rules_import_back_identically(rules in rule_set()) {
            prop_assume!(check_rule_set(&rules).is_ok());
            // What the engine cannot run yet is refused at import (with its line).
            prop_assume!(rules
                .services
                .iter()
                .all(|s| crate::control::check_service_support(s).is_ok()));
            let back = round_trip(&rules);
            prop_assert_eq!(back, rules);
        }
    }

    /// Rules with the marks and no service, and a TCP service 198.18.0.100:80 (rr) to edit
    /// and push.
    fn one_tcp_service() -> (RuleSet, Service) {
        let rules = RuleSet {
            marks: marks(),
            ..RuleSet::default()
        };
        let s = Service::new(
            ServiceAddr::Inet {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(198, 18, 0, 100),
                port: 80,
            },
            Scheduler::Rr,
        );
        (rules, s)
    }

    #[test]
    fn client_lists_export_as_dpvs_address_groups_and_import_back() {
        let (mut rules, mut s) = one_tcp_service();
        s.allow = vec![
            "198.18.0.0/24".parse().unwrap(),
            "198.18.9.9".parse().unwrap(),
        ];
        s.deny = vec!["198.18.0.66".parse().unwrap()];
        rules.services.push(s);
        let text = fnat_keepalived::write::write(&rules).unwrap();
        assert!(text.contains("daddr_group_name fnat_deny_1"), "{text}");
        assert!(text.contains("waddr_group_name fnat_allow_1"), "{text}");
        assert_eq!(round_trip(&rules), rules);
        // A cap has no keepalived keyword: refused by name.
        rules.services[0].conn_rate = Some("10/24".parse().unwrap());
        let e = fnat_keepalived::write::write(&rules).unwrap_err();
        assert_eq!(e.setting, "conn_rate");
    }

    /// DPVS's `syn_proxy` keyword is written for a SYN-proxied service and read back.
    #[test]
    fn syn_proxy_exports_and_imports_back() {
        let (mut rules, mut s) = one_tcp_service();
        s.synproxy = true;
        rules.services.push(s);
        let text = fnat_keepalived::write::write(&rules).unwrap();
        assert!(text.contains("    syn_proxy\n"), "{text}");
        let back = round_trip(&rules);
        assert!(back.services[0].synproxy);
        assert_eq!(back, rules);
    }

    #[test]
    fn what_keepalived_conf_cannot_say_is_refused_by_name() {
        let mut rules = RuleSet::default();
        let mut s = Service::new(
            ServiceAddr::Inet {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(198, 18, 0, 100),
                port: 80,
            },
            Scheduler::Rr,
        );
        s.expire_on_removal = true;
        rules.services.push(s.clone());
        let e = fnat_keepalived::write::write(&rules).unwrap_err();
        assert_eq!(e.setting, "expire_on_removal");
        assert_eq!(e.rule, "tcp/198.18.0.100:80");
        rules.services[0].expire_on_removal = false;
        rules.services[0].local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(198, 19, 0, 10),
            device: Some("two words".into()),
        });
        let e = fnat_keepalived::write::write(&rules).unwrap_err();
        assert_eq!(e.setting, "local address device");
        rules.services[0].local_addresses.clear();
        assert!(fnat_keepalived::write::write(&rules).is_ok());
    }
}
