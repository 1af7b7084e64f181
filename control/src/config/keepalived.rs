//! keepalived.conf as a source of services: its virtual servers are translated into the one
//! rule model, added to the fnatd config's, and go through the same validator and compiler
//! as every other path (`fnatd run|replay --keepalived FILE`; `reload` re-reads both files).
//!
//! What fnat cannot do yet is refused by the one road with keepalived's line attached
//! (a forwarding method other than full-NAT, IPv6, SCTP) or, where keepalived would carry on,
//! reported as a warning (health checkers are read but not run yet, sorry servers, quorum).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use fnat_engine::rules::Ipv4Cidr;
use fnat_keepalived::lvs::{
    GroupMember, Method, Protocol as KaProtocol, TunnelKind, VirtualServer, VirtualServerKey,
};
use fnat_keepalived::{Diagnostic, Level, Location};
use fnat_proto::edit::{check_rule_set, Place};
use fnat_proto::model::{
    ForwardMethod, LocalAddress, Persistence, Protocol, Real, RuleSet, SchedFlags, Scheduler,
    Service, ServiceAddr, TunnelOptions, TunnelType, MAX_WEIGHT,
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
    addresses: impl IntoIterator<Item = &'a Ipv4Cidr> + Clone,
) -> Result<Vec<Diagnostic>, ConfigError> {
    let conf = fnat_keepalived::read_file(path);
    if let Some(e) = conf.errors().next() {
        return Err(from_diagnostic(e));
    }
    let mut warnings: Vec<Diagnostic> = conf.diagnostics.clone();
    let first_added = rules.services.len();
    // Where each added service came from, to point the validator's refusals at its line.
    let mut origin: Vec<Location> = Vec::new();
    for vs in &conf.virtual_servers {
        let keys = service_keys(vs, &conf)?;
        for addr in keys {
            let service = service(vs, addr, &conf, &mut warnings)?;
            for (real, rs) in service.reals.iter().zip(&vs.reals) {
                crate::control::check_direct_route(&service, real, addresses.clone())
                    .map_err(|e| located(&rs.at, "real_server", e.message))?;
            }
            rules.services.push(service);
            origin.push(vs.at.clone());
        }
    }
    if let Err(refusal) = check_rule_set(rules) {
        let index = match refusal.place {
            Place::Service(i, _) | Place::Real(i, _, _) | Place::LocalAddress(i, _) => Some(i),
            _ => None,
        };
        return Err(
            match index
                .and_then(|i| i.checked_sub(first_added))
                .and_then(|i| origin.get(i))
            {
                Some(at) => located(at, "virtual_server", refusal.error.message),
                None => ConfigError {
                    file: path.display().to_string(),
                    line: None,
                    key: String::new(),
                    reason: refusal.error.message,
                },
            },
        );
    }
    warnings.retain(|d| d.level == Level::Warning);
    Ok(warnings)
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
    warnings: &mut Vec<Diagnostic>,
) -> Result<Service, ConfigError> {
    let scheduler: Scheduler = vs
        .scheduler
        .parse()
        .map_err(|e: String| located(&vs.at, "lvs_sched", e))?;
    let mut service = Service::new(addr, scheduler);
    service.sched_flags =
        SchedFlags::parse_list(&vs.flags.join(",")).map_err(|e| located(&vs.at, "lvs_sched", e))?;
    service.one_packet = vs.ops;
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
    let warn = |warnings: &mut Vec<Diagnostic>, at: &Location, keyword: &str, message: &str| {
        warnings.push(Diagnostic {
            level: Level::Warning,
            at: at.clone(),
            keyword: keyword.into(),
            message: message.into(),
        });
    };
    if vs.sorry_server.is_some() {
        warn(
            warnings,
            &vs.at,
            "sorry_server",
            "not used until health checks run: ignored",
        );
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
        for checker in &rs.checkers {
            let message = "health checks are not run yet: the real server counts as up";
            warn(warnings, &checker.at, checker.kind.keyword(), message);
        }
    }
    Ok(service)
}
