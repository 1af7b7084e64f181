//! Changes to a [`RuleSet`] and the one validator: every check ipvsadm and IPVS make
//! (duplicates, missing services, value ranges) and fnat's own (firewall marks, their
//! endpoints) happens here, on the operator model, before anything is compiled for the
//! engine. The config file, the control protocol, ipvsadm's face, `restore`, the state file
//! and `--rules` all go through it. Pure: the caller applies to a copy and keeps the original
//! when any change of a batch fails.
//!
//! Limits: the kernel's where ipvsadm's parser is narrower (weights up to 2147483647), and
//! ipvsadm's where the kernel leaves a case open (an inet port-0 service must be persistent).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::model::{
    AclList, ClientPrefix, ConnRate, ForwardMethod, LocalAddress, Mark, Persistence, Protocol,
    ProxyProtocol, Real, RuleSet, SchedFlags, Scheduler, Service, ServiceAddr, TunnelType,
    DEFAULT_SCHEDULER, MAX_ACL_ENTRIES, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WEIGHT,
};
use crate::msg::{ErrorBody, ErrorKind};

/// A service's own attributes, without its reals and local addresses (what `-E` sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAttrs {
    pub addr: ServiceAddr,
    #[serde(default = "default_scheduler")]
    pub scheduler: Scheduler,
    #[serde(default)]
    pub sched_flags: SchedFlags,
    #[serde(default)]
    pub persistence: Option<Persistence>,
    #[serde(default)]
    pub one_packet: bool,
    #[serde(default)]
    pub expire_on_removal: bool,
    #[serde(default)]
    pub conn_rate: Option<ConnRate>,
    pub proxy_protocol: ProxyProtocol,
    #[serde(default)]
    pub toa: bool,
    #[serde(default)]
    pub synproxy: bool,
}

fn default_scheduler() -> Scheduler {
    DEFAULT_SCHEDULER
}

impl ServiceAttrs {
    pub fn of(service: &Service) -> ServiceAttrs {
        ServiceAttrs {
            addr: service.addr,
            scheduler: service.scheduler,
            sched_flags: service.sched_flags,
            persistence: service.persistence,
            one_packet: service.one_packet,
            expire_on_removal: service.expire_on_removal,
            conn_rate: service.conn_rate,
            proxy_protocol: service.proxy_protocol,
            toa: service.toa,
            synproxy: service.synproxy,
        }
    }
    fn apply_to(&self, service: &mut Service) {
        service.scheduler = self.scheduler;
        service.sched_flags = self.sched_flags;
        service.persistence = self.persistence;
        service.one_packet = self.one_packet;
        service.expire_on_removal = self.expire_on_removal;
        service.conn_rate = self.conn_rate;
        service.proxy_protocol = self.proxy_protocol;
        service.toa = self.toa;
        service.synproxy = self.synproxy;
    }
}

/// One change to the rules. In a request: `{"op": "service_add", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Change {
    /// `-A`: a new service (its reals and local addresses may come with it).
    ServiceAdd { service: Service },
    /// `-E`: replaces the service's attributes; reals and local addresses stay.
    ServiceEdit { service: ServiceAttrs },
    /// `-D`
    ServiceDel { service: ServiceAddr },
    /// `-a`
    RealAdd { service: ServiceAddr, real: Real },
    /// `-e`: replaces weight, thresholds and forwarding method of an existing real.
    RealEdit { service: ServiceAddr, real: Real },
    /// `-d`
    RealDel {
        service: ServiceAddr,
        addr: Ipv4Addr,
        port: u16,
    },
    /// `--add-laddr`
    LaddrAdd {
        service: ServiceAddr,
        laddr: LocalAddress,
    },
    /// `--del-laddr`
    LaddrDel {
        service: ServiceAddr,
        addr: Ipv4Addr,
    },
    /// `-O`/`-U` (`fnatctl acl add`): client prefixes added to a service's allow or deny
    /// list; one already listed is refused.
    AclAdd {
        service: ServiceAddr,
        list: AclList,
        prefixes: Vec<ClientPrefix>,
    },
    /// `-Y`/`-V` (`fnatctl acl del`): client prefixes removed; one not listed is refused.
    AclDel {
        service: ServiceAddr,
        list: AclList,
        prefixes: Vec<ClientPrefix>,
    },
    /// `fnatctl mark add`: a firewall mark (what iptables' MARK rule is to LVS).
    MarkAdd { mark: Mark },
    /// `fnatctl mark del`: refused while a service uses the mark.
    MarkDel { mark: u32 },
    /// `-C`: removes every service and every firewall mark.
    Flush,
    /// `--set tcp tcpfin udp`: 0 leaves a value unchanged, as in ipvsadm.
    TimeoutSet { tcp: u32, tcp_fin: u32, udp: u32 },
    /// `restore`: the whole rule set at once.
    Replace { rules: RuleSet },
    /// `--start-daemon`: a session sync daemon (one per role, as the kernel).
    SyncStart {
        role: crate::sync::SyncRole,
        daemon: crate::sync::SyncDaemon,
    },
    /// `--stop-daemon`.
    SyncStop { role: crate::sync::SyncRole },
}

impl Change {
    /// The one service a change is about, if it is about one.
    pub fn target(&self) -> Option<ServiceAddr> {
        match self {
            Change::ServiceAdd { service } => Some(service.addr),
            Change::ServiceEdit { service } => Some(service.addr),
            Change::ServiceDel { service } => Some(*service),
            Change::RealAdd { service, .. }
            | Change::RealEdit { service, .. }
            | Change::RealDel { service, .. }
            | Change::LaddrAdd { service, .. }
            | Change::LaddrDel { service, .. }
            | Change::AclAdd { service, .. }
            | Change::AclDel { service, .. } => Some(*service),
            Change::MarkAdd { .. }
            | Change::MarkDel { .. }
            | Change::Flush
            | Change::TimeoutSet { .. }
            | Change::Replace { .. }
            | Change::SyncStart { .. }
            | Change::SyncStop { .. } => None,
        }
    }

    /// The services [`apply`] reads besides [`Change::target`], given the marks in force
    /// (callers that keep services elsewhere hand `apply` just these).
    pub fn reads(&self, marks: &[Mark]) -> Vec<ServiceAddr> {
        match self {
            Change::ServiceAdd { service } => match service.addr {
                ServiceAddr::Inet {
                    protocol,
                    vip,
                    port,
                } => marks
                    .iter()
                    .filter(|m| m.covers(protocol, vip, port))
                    .map(|m| ServiceAddr::Fwmark(m.mark))
                    .collect(),
                ServiceAddr::Fwmark(n) => marks
                    .iter()
                    .filter(|m| m.mark == n)
                    .flat_map(Mark::endpoints)
                    .collect(),
                ServiceAddr::Match(_) => Vec::new(),
            },
            Change::MarkDel { mark } => vec![ServiceAddr::Fwmark(*mark)],
            _ => Vec::new(),
        }
    }
}

impl Mark {
    /// True when `protocol` `vip:port` is one of the mark's endpoints.
    pub fn covers(&self, protocol: Protocol, vip: Ipv4Addr, port: u16) -> bool {
        self.protocol == protocol && self.vip == vip && self.ports.0.contains(&port)
    }
    /// The mark's endpoints as inet service keys.
    pub fn endpoints(&self) -> impl Iterator<Item = ServiceAddr> + '_ {
        self.ports.0.iter().map(|&port| ServiceAddr::Inet {
            protocol: self.protocol,
            vip: self.vip,
            port,
        })
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        kind,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ErrorBody {
    error(ErrorKind::Invalid, message)
}

/// Applies `change` to `rules`, or says why not (then `rules` may be half-changed: callers
/// work on a copy).
pub fn apply(rules: &mut RuleSet, change: &Change) -> Result<(), ErrorBody> {
    match change {
        Change::ServiceAdd { service } => {
            if rules.service(&service.addr).is_some() {
                return Err(error(ErrorKind::ServiceExists, "Service already exists"));
            }
            check_service(service, &rules.marks).map_err(|(e, _)| e)?;
            check_endpoints(rules, &service.addr).map_err(|(e, _)| e)?;
            rules.services.push(service.clone());
        }
        Change::ServiceEdit { service: attrs } => {
            check_attrs(attrs).map_err(|(e, _)| e)?;
            let service = rules
                .service_mut(&attrs.addr)
                .ok_or_else(|| error(ErrorKind::NoSuchService, "No such service"))?;
            for r in &service.reals {
                check_client_address(attrs.proxy_protocol, attrs.toa, attrs.synproxy, r)
                    .map_err(|(e, _)| e)?;
            }
            attrs.apply_to(service);
        }
        Change::ServiceDel { service } => {
            let before = rules.services.len();
            rules.services.retain(|s| s.addr != *service);
            if rules.services.len() == before {
                return Err(error(ErrorKind::NoSuchService, "No such service"));
            }
        }
        Change::RealAdd { service, real } => {
            let svc = service_for_member(rules, service)?;
            check_real(&svc.addr, real).map_err(|(e, _)| e)?;
            check_client_address(svc.proxy_protocol, svc.toa, svc.synproxy, real)
                .map_err(|(e, _)| e)?;
            if svc.real(real.key()).is_some() {
                return Err(error(
                    ErrorKind::DestinationExists,
                    "Destination already exists",
                ));
            }
            svc.reals.push(*real);
        }
        Change::RealEdit { service, real } => {
            let svc = service_for_member(rules, service)?;
            check_real(&svc.addr, real).map_err(|(e, _)| e)?;
            check_client_address(svc.proxy_protocol, svc.toa, svc.synproxy, real)
                .map_err(|(e, _)| e)?;
            let slot = svc
                .reals
                .iter_mut()
                .find(|r| r.key() == real.key())
                .ok_or_else(|| error(ErrorKind::NoSuchDestination, "No such destination"))?;
            *slot = *real;
        }
        Change::RealDel {
            service,
            addr,
            port,
        } => {
            let svc = service_for_member(rules, service)?;
            let key = SocketAddrV4::new(*addr, *port);
            let before = svc.reals.len();
            svc.reals.retain(|r| r.key() != key);
            if svc.reals.len() == before {
                return Err(error(ErrorKind::NoSuchDestination, "No such destination"));
            }
        }
        Change::LaddrAdd { service, laddr } => {
            let svc = service_for_member(rules, service)?;
            check_laddr(laddr)?;
            if svc.local_addresses.iter().any(|l| l.addr == laddr.addr) {
                return Err(error(
                    ErrorKind::LaddrExists,
                    format!("Local address {} already exists", laddr.addr),
                ));
            }
            svc.local_addresses.push(laddr.clone());
        }
        Change::LaddrDel { service, addr } => {
            let svc = service_for_member(rules, service)?;
            let before = svc.local_addresses.len();
            svc.local_addresses.retain(|l| l.addr != *addr);
            if svc.local_addresses.len() == before {
                return Err(error(
                    ErrorKind::NoSuchLaddr,
                    format!("No such local address {addr}"),
                ));
            }
        }
        Change::AclAdd {
            service,
            list,
            prefixes,
        } => {
            let svc = service_for_member(rules, service)?;
            let entries = svc.acl_mut(*list);
            let mut have: HashSet<ClientPrefix> = entries.iter().copied().collect();
            for p in prefixes {
                if !have.insert(*p) {
                    return Err(error(
                        ErrorKind::AclEntryExists,
                        format!("{p} is already in the {} list", list.name()),
                    ));
                }
            }
            if have.len() > MAX_ACL_ENTRIES {
                return Err(invalid(format!(
                    "the {} list would hold {} entries (at most {MAX_ACL_ENTRIES})",
                    list.name(),
                    have.len()
                )));
            }
            entries.extend(prefixes.iter().copied());
        }
        Change::AclDel {
            service,
            list,
            prefixes,
        } => {
            let svc = service_for_member(rules, service)?;
            let entries = svc.acl_mut(*list);
            let mut gone: HashSet<ClientPrefix> = HashSet::new();
            for p in prefixes {
                if !entries.contains(p) || !gone.insert(*p) {
                    return Err(error(
                        ErrorKind::NoSuchAclEntry,
                        format!("{p} is not in the {} list", list.name()),
                    ));
                }
            }
            entries.retain(|p| !gone.contains(p));
        }
        Change::MarkAdd { mark } => {
            if rules.mark(mark.mark).is_some() {
                return Err(error(
                    ErrorKind::MarkExists,
                    format!("Firewall mark {} already exists", mark.mark),
                ));
            }
            check_mark(mark, &endpoints_of(&rules.marks)).map_err(|(e, _)| e)?;
            rules.marks.push(mark.clone());
        }
        Change::MarkDel { mark } => {
            if rules.mark(*mark).is_none() {
                return Err(error(
                    ErrorKind::NoSuchMark,
                    format!("No such firewall mark {mark}"),
                ));
            }
            if rules.service(&ServiceAddr::Fwmark(*mark)).is_some() {
                return Err(invalid(format!(
                    "firewall mark {mark} is in use by service fwmark/{mark}: delete the service first (ipvsadm -D -f {mark})"
                )));
            }
            rules.marks.retain(|m| m.mark != *mark);
        }
        Change::Flush => {
            rules.services.clear();
            rules.marks.clear();
        }
        Change::TimeoutSet { tcp, tcp_fin, udp } => {
            for (name, v) in [("tcp", tcp), ("tcpfin", tcp_fin), ("udp", udp)] {
                if *v > MAX_TIMEOUT {
                    return Err(invalid(format!(
                        "invalid timeout value `{v}' specified for {name} (at most {MAX_TIMEOUT})"
                    )));
                }
            }
            let set = |slot: &mut Option<u32>, v: u32| {
                if v != 0 {
                    *slot = Some(v);
                }
            };
            set(&mut rules.timeouts.tcp, *tcp);
            set(&mut rules.timeouts.tcp_fin, *tcp_fin);
            set(&mut rules.timeouts.udp, *udp);
        }
        Change::Replace { rules: new } => {
            check_rule_set(new).map_err(|r| r.error)?;
            new.sync
                .validate()
                .map_err(|e| invalid(format!("sync: {e}")))?;
            *rules = new.clone();
        }
        // The one validator of every way daemons arrive (SyncDaemons::start).
        Change::SyncStart { role, daemon } => {
            rules.sync.start(*role, daemon.clone()).map_err(invalid)?;
        }
        Change::SyncStop { role } => {
            rules.sync.stop(*role).map_err(invalid)?;
        }
    }
    Ok(())
}

/// Applies a batch all-or-nothing: on error `rules` is untouched and the error names the
/// failing change's position when there are several.
pub fn apply_all(rules: &mut RuleSet, changes: &[Change]) -> Result<(), ErrorBody> {
    let mut next = rules.clone();
    for (i, change) in changes.iter().enumerate() {
        apply(&mut next, change).map_err(|mut e| {
            if changes.len() > 1 {
                e.message = format!("change {}: {}", i + 1, e.message);
            }
            e
        })?;
    }
    *rules = next;
    Ok(())
}

/// The service a real or local address change refers to; ipvsadm says "Service not defined".
fn service_for_member<'a>(
    rules: &'a mut RuleSet,
    addr: &ServiceAddr,
) -> Result<&'a mut Service, ErrorBody> {
    rules
        .service_mut(addr)
        .ok_or_else(|| error(ErrorKind::NoSuchService, "Service not defined"))
}

/// Which value of a service a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceField {
    /// The service's key (listed twice, not a unicast VIP).
    Addr,
    /// An inet service's port (port 0 without persistence; an endpoint of a used mark).
    Port,
    /// A fwmark service's mark (not defined).
    Mark,
    OnePacket,
    ProxyProtocol,
    Toa,
    SynProxy,
    PersistenceTimeout,
    PersistenceNetmask,
    /// An allow or deny list (an entry listed twice, too many entries).
    Acl(AclList),
}

/// Which value of a real server a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealField {
    Addr,
    Port,
    Weight,
    UpperThreshold,
    LowerThreshold,
    /// The forwarding method.
    Method,
    /// The tunnel's port.
    TunnelPort,
    /// The tunnel's checksum setting.
    TunnelCsum,
}

/// Which value of a firewall mark a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkField {
    Mark,
    Vip,
    Ports,
    /// The port at this position of the list.
    Port(usize),
}

/// Where in a rule set a refusal points (positions in its lists), so that the config file can
/// name its own key for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Timeout(&'static str),
    Service(usize, ServiceField),
    Real(usize, usize, RealField),
    LocalAddress(usize, usize),
    Mark(usize, MarkField),
}

/// A rule set the validator refused: why, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ErrorBody,
    pub place: Place,
}

/// Every check of a whole rule set (what the config file, `restore` and the state file go
/// through).
pub fn check_rule_set(rules: &RuleSet) -> Result<(), Refusal> {
    let at = |place: Place| move |error: ErrorBody| Refusal { error, place };
    let mut marks_seen = HashSet::with_capacity(rules.marks.len());
    let mut taken = Endpoints::new();
    for (i, m) in rules.marks.iter().enumerate() {
        if !marks_seen.insert(m.mark) {
            return Err(Refusal {
                error: error(
                    ErrorKind::MarkExists,
                    format!("Firewall mark {} is listed twice", m.mark),
                ),
                place: Place::Mark(i, MarkField::Mark),
            });
        }
        check_mark(m, &taken).map_err(|(e, f)| at(Place::Mark(i, f))(e))?;
        taken.extend(m.ports.0.iter().map(|&p| ((m.protocol, m.vip, p), m.mark)));
    }
    let mut seen = HashMap::with_capacity(rules.services.len());
    for (i, s) in rules.services.iter().enumerate() {
        let prefix = |mut e: ErrorBody| {
            e.message = format!("{}: {}", s.addr, e.message);
            e
        };
        if seen.insert(s.addr, i).is_some() {
            return Err(Refusal {
                error: error(
                    ErrorKind::ServiceExists,
                    format!("Service already exists: {} is listed twice", s.addr),
                ),
                place: Place::Service(i, ServiceField::Addr),
            });
        }
        check_service(s, &rules.marks).map_err(|(e, place)| Refusal {
            error: prefix(e),
            place: match place {
                Within::Service(f) => Place::Service(i, f),
                Within::Real(j, f) => Place::Real(i, j, f),
                Within::LocalAddress(j) => Place::LocalAddress(i, j),
            },
        })?;
    }
    // A used mark's endpoints belong to its service alone (checked once both are known).
    for s in &rules.services {
        if let ServiceAddr::Fwmark(n) = s.addr {
            for e in rules.mark(n).into_iter().flat_map(Mark::endpoints) {
                if let Some(&j) = seen.get(&e) {
                    return Err(Refusal {
                        error: endpoint_taken(&e, n),
                        place: Place::Service(j, ServiceField::Port),
                    });
                }
            }
        }
    }
    for (name, v) in [
        ("tcp", rules.timeouts.tcp),
        ("tcp_fin", rules.timeouts.tcp_fin),
        ("udp", rules.timeouts.udp),
    ] {
        if let Some(v) = v {
            if v == 0 || v > MAX_TIMEOUT {
                return Err(Refusal {
                    error: invalid(format!("timeout {name} must be 1 to {MAX_TIMEOUT} seconds")),
                    place: Place::Timeout(name),
                });
            }
        }
    }
    Ok(())
}

fn endpoint_taken(endpoint: &ServiceAddr, mark: u32) -> ErrorBody {
    invalid(format!(
        "{endpoint} belongs to firewall mark {mark}, which has a service: one endpoint, one service"
    ))
}

/// The services at the endpoints of `addr`'s mark, or the fwmark services whose marks cover
/// `addr`: one endpoint leads to one service.
fn check_endpoints(rules: &RuleSet, addr: &ServiceAddr) -> Result<(), (ErrorBody, ServiceField)> {
    match *addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            for m in rules.marks.iter().filter(|m| m.covers(protocol, vip, port)) {
                if rules.service(&ServiceAddr::Fwmark(m.mark)).is_some() {
                    return Err((endpoint_taken(addr, m.mark), ServiceField::Port));
                }
            }
        }
        ServiceAddr::Fwmark(n) => {
            for e in rules.mark(n).into_iter().flat_map(Mark::endpoints) {
                if rules.service(&e).is_some() {
                    return Err((
                        invalid(format!(
                            "{e} is a service of its own: firewall mark {n} cannot take it"
                        )),
                        ServiceField::Mark,
                    ));
                }
            }
        }
        ServiceAddr::Match(_) => {}
    }
    Ok(())
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
}

/// The endpoints of firewall marks, with the mark each belongs to.
type Endpoints = HashMap<(Protocol, Ipv4Addr, u16), u32>;

fn endpoints_of(marks: &[Mark]) -> Endpoints {
    marks
        .iter()
        .flat_map(|m| m.ports.0.iter().map(|&p| ((m.protocol, m.vip, p), m.mark)))
        .collect()
}

/// A mark's own values, and its endpoints against those `taken` by other marks.
fn check_mark(mark: &Mark, taken: &Endpoints) -> Result<(), (ErrorBody, MarkField)> {
    if mark.mark == 0 {
        return Err((
            invalid("invalid fwmark value `0' specified (1 to 4294967295)"),
            MarkField::Mark,
        ));
    }
    if !is_unicast(mark.vip) {
        return Err((
            invalid(format!("{} is not a unicast virtual address", mark.vip)),
            MarkField::Vip,
        ));
    }
    if mark.ports.0.is_empty() {
        return Err((
            invalid(format!("firewall mark {} lists no port", mark.mark)),
            MarkField::Ports,
        ));
    }
    let mut own = HashSet::with_capacity(mark.ports.0.len());
    for (k, &port) in mark.ports.0.iter().enumerate() {
        if port == 0 {
            return Err((
                invalid("a firewall mark's ports must be 1 to 65535"),
                MarkField::Port(k),
            ));
        }
        let holder = if !own.insert(port) {
            Some(mark.mark)
        } else {
            taken.get(&(mark.protocol, mark.vip, port)).copied()
        };
        if let Some(other) = holder {
            return Err((
                invalid(format!(
                    "{}/{}:{port} is already in firewall mark {other}",
                    mark.protocol.name(),
                    mark.vip
                )),
                MarkField::Port(k),
            ));
        }
    }
    Ok(())
}

fn check_attrs(attrs: &ServiceAttrs) -> Result<(), (ErrorBody, ServiceField)> {
    match attrs.addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            if !is_unicast(vip) {
                return Err((
                    invalid(format!("{vip} is not a unicast virtual address")),
                    ServiceField::Addr,
                ));
            }
            if port == 0 && attrs.persistence.is_none() {
                return Err((
                    invalid("Zero port specified for no-match and non-persistent service"),
                    ServiceField::Port,
                ));
            }
            if attrs.one_packet && protocol != Protocol::Udp {
                return Err((
                    invalid("One-Packet Scheduling is only for UDP virtual services"),
                    ServiceField::OnePacket,
                ));
            }
            if matches!(
                attrs.proxy_protocol,
                ProxyProtocol::V1 | ProxyProtocol::V1Insecure
            ) && protocol == Protocol::Udp
            {
                return Err((
                    invalid("Proxy Protocol v1 is text for TCP only: UDP services take v2"),
                    ServiceField::ProxyProtocol,
                ));
            }
            if attrs.toa && protocol != Protocol::Tcp {
                return Err((
                    invalid("TOA (TCP option 254) is only for TCP virtual services"),
                    ServiceField::Toa,
                ));
            }
            if attrs.synproxy && protocol != Protocol::Tcp {
                return Err((
                    invalid("the SYN proxy is only for TCP virtual services"),
                    ServiceField::SynProxy,
                ));
            }
        }
        ServiceAddr::Fwmark(0) => {
            return Err((
                invalid("invalid fwmark value `0' specified"),
                ServiceField::Mark,
            ))
        }
        ServiceAddr::Fwmark(_) => {}
        ServiceAddr::Match(m) => {
            if m.is_open() {
                return Err((
                    invalid(format!(
                        "match service proto={} names no src-range, dst-range, iif or oif: it would take every packet",
                        m.proto.name()
                    )),
                    ServiceField::Addr,
                ));
            }
        }
    }
    if let Some(p) = attrs.persistence {
        if p.timeout == 0 || p.timeout > MAX_TIMEOUT {
            return Err((
                invalid(format!(
                    "invalid timeout value `{}' specified (1 to {MAX_TIMEOUT} seconds)",
                    p.timeout
                )),
                ServiceField::PersistenceTimeout,
            ));
        }
        let mask = u32::from(p.netmask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err((
                invalid("illegal virtual server persistent mask specified"),
                ServiceField::PersistenceNetmask,
            ));
        }
    }
    Ok(())
}

/// Where inside one service a refusal points.
enum Within {
    Service(ServiceField),
    Real(usize, RealField),
    LocalAddress(usize),
}

fn check_service(service: &Service, marks: &[Mark]) -> Result<(), (ErrorBody, Within)> {
    check_attrs(&ServiceAttrs::of(service)).map_err(|(e, f)| (e, Within::Service(f)))?;
    if let ServiceAddr::Fwmark(n) = service.addr {
        if !marks.iter().any(|m| m.mark == n) {
            return Err((
                invalid(format!(
                    "firewall mark {n} is not defined: define it first (fnatctl mark add {n} PROTO VIP PORTS)"
                )),
                Within::Service(ServiceField::Mark),
            ));
        }
    }
    let mut reals = HashSet::new();
    for (j, r) in service.reals.iter().enumerate() {
        check_real(&service.addr, r).map_err(|(e, f)| (e, Within::Real(j, f)))?;
        check_client_address(service.proxy_protocol, service.toa, service.synproxy, r)
            .map_err(|(e, f)| (e, Within::Service(f)))?;
        if !reals.insert(r.key()) {
            return Err((
                error(
                    ErrorKind::DestinationExists,
                    format!("Destination already exists: {} is listed twice", r.key()),
                ),
                Within::Real(j, RealField::Addr),
            ));
        }
    }
    for list in [AclList::Allow, AclList::Deny] {
        let entries = service.acl(list);
        if entries.len() > MAX_ACL_ENTRIES {
            return Err((
                invalid(format!(
                    "the {} list holds {} entries (at most {MAX_ACL_ENTRIES})",
                    list.name(),
                    entries.len()
                )),
                Within::Service(ServiceField::Acl(list)),
            ));
        }
        let mut seen = HashSet::new();
        for p in entries {
            if !seen.insert(*p) {
                return Err((
                    error(
                        ErrorKind::AclEntryExists,
                        format!("{p} is listed twice in the {} list", list.name()),
                    ),
                    Within::Service(ServiceField::Acl(list)),
                ));
            }
        }
    }
    let mut lips = HashSet::new();
    for (j, l) in service.local_addresses.iter().enumerate() {
        check_laddr(l).map_err(|e| (e, Within::LocalAddress(j)))?;
        if !lips.insert(l.addr) {
            return Err((
                error(
                    ErrorKind::LaddrExists,
                    format!("Local address {} already exists", l.addr),
                ),
                Within::LocalAddress(j),
            ));
        }
    }
    Ok(())
}

/// Proxy Protocol and TOA are written into the TCP stream by fnatd's full-NAT rewrite, which
/// then shifts every later sequence and acknowledgement number both ways: only full-NAT
/// sessions pass through it both ways (DR and TUN replies bypass fnatd; NAT servers see the
/// client's own address already and the NAT path has no such rewrite).
fn check_client_address(
    proxy_protocol: ProxyProtocol,
    toa: bool,
    synproxy: bool,
    real: &Real,
) -> Result<(), (ErrorBody, ServiceField)> {
    if real.forward == ForwardMethod::FullNat {
        return Ok(());
    }
    let (what, field) = if !proxy_protocol.is_disabled() {
        (
            "proxy_protocol (--proxy-protocol)",
            ServiceField::ProxyProtocol,
        )
    } else if toa {
        ("toa (--toa)", ServiceField::Toa)
    } else if synproxy {
        // The SYN proxy reconciles its cookie's ISN with the server's in the same rewrite.
        ("synproxy (-j/--synproxy)", ServiceField::SynProxy)
    } else {
        return Ok(());
    };
    Err((
        invalid(format!(
            "{what} needs full-NAT real servers (-b, method = \"fullnat\"): {} forwards by {} ({}), \
             whose packets do not pass fnatd's full-NAT rewrite both ways",
            real.key(),
            real.forward.config_name(),
            real.forward.ipvsadm_switch()
        )),
        field,
    ))
}

fn check_real(service: &ServiceAddr, real: &Real) -> Result<(), (ErrorBody, RealField)> {
    // SNAT's WAN addresses belong to match services, and only they do.
    if matches!(service, ServiceAddr::Match(_)) != (real.forward == ForwardMethod::Snat) {
        let why = if real.forward == ForwardMethod::Snat {
            format!("{service} is not a match service: SNAT addresses (-J) belong to match services (-H)")
        } else {
            format!(
                "{service} is a match service: its real servers are SNAT addresses (-J), not {}",
                real.forward.ipvsadm_name()
            )
        };
        return Err((invalid(why), RealField::Addr));
    }
    if !is_unicast(real.addr) {
        return Err((
            invalid(format!(
                "{} is not a unicast real server address",
                real.addr
            )),
            RealField::Addr,
        ));
    }
    // Port 0 (the port the client asked for) only where the service has no port of its own.
    if real.port == 0 && service.port() != 0 {
        return Err((
            invalid("real server port must be 1 to 65535 (0 only for port-0 and fwmark services)"),
            RealField::Port,
        ));
    }
    if real.weight > MAX_WEIGHT {
        return Err((
            invalid(format!("illegal weight specified (0 to {MAX_WEIGHT})")),
            RealField::Weight,
        ));
    }
    if real.upper_threshold > MAX_THRESHOLD {
        return Err((
            invalid(format!(
                "illegal u_threshold specified (0 to {MAX_THRESHOLD})"
            )),
            RealField::UpperThreshold,
        ));
    }
    if real.lower_threshold > MAX_THRESHOLD {
        return Err((
            invalid(format!(
                "illegal l_threshold specified (0 to {MAX_THRESHOLD})"
            )),
            RealField::LowerThreshold,
        ));
    }
    match real.forward {
        // The real server answers for the VIP itself: the packet keeps its port.
        ForwardMethod::Route if real.port != service.port() => {
            return Err((
                invalid(format!(
                    "direct routing (-g) keeps the port: real server port {} must equal the service port {}",
                    real.port,
                    service.port()
                )),
                RealField::Port,
            ));
        }
        ForwardMethod::Tunnel => {
            let t = &real.tunnel;
            if t.kind == TunnelType::Gue && t.port == 0 {
                return Err((
                    invalid("a GUE tunnel needs its port (--tun-port, tunnel_port)"),
                    RealField::TunnelPort,
                ));
            }
            if t.kind != TunnelType::Gue && t.port != 0 {
                return Err((
                    invalid(format!("a {} tunnel has no port", t.kind.name())),
                    RealField::TunnelPort,
                ));
            }
            if t.kind == TunnelType::Ipip && t.csum {
                return Err((
                    invalid("an ipip tunnel has no checksum"),
                    RealField::TunnelCsum,
                ));
            }
        }
        _ if !real.tunnel.is_default() => {
            return Err((
                invalid("tunnel settings need the tunnel method (-i)"),
                RealField::Method,
            ));
        }
        _ => {}
    }
    if real.upper_threshold != 0 && real.lower_threshold > real.upper_threshold {
        return Err((
            invalid(format!(
                "lower threshold {} is above the upper threshold {}",
                real.lower_threshold, real.upper_threshold
            )),
            RealField::LowerThreshold,
        ));
    }
    Ok(())
}

fn check_laddr(laddr: &LocalAddress) -> Result<(), ErrorBody> {
    if !is_unicast(laddr.addr) {
        return Err(invalid(format!(
            "{} is not a unicast local address",
            laddr.addr
        )));
    }
    if let Some(dev) = &laddr.device {
        if dev.is_empty() || dev.len() > 15 || dev.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(format!("'{dev}' is not a device name")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn vip() -> ServiceAddr {
        ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80)
    }

    fn with_service() -> RuleSet {
        let mut rules = RuleSet::default();
        apply(
            &mut rules,
            &Change::ServiceAdd {
                service: Service::new(vip(), Scheduler::Rr),
            },
        )
        .unwrap();
        rules
    }

    #[test]
    fn duplicates_and_missing_things_get_ipvsadm_errors() {
        let mut rules = with_service();
        let again = Change::ServiceAdd {
            service: Service::new(vip(), Scheduler::Wrr),
        };
        assert_eq!(
            apply(&mut rules, &again).unwrap_err().kind,
            ErrorKind::ServiceExists
        );
        let real = Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 1);
        let add = Change::RealAdd {
            service: vip(),
            real,
        };
        apply(&mut rules, &add).unwrap();
        assert_eq!(
            apply(&mut rules, &add).unwrap_err().kind,
            ErrorKind::DestinationExists
        );
        let other = ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53);
        let e = apply(
            &mut rules,
            &Change::RealAdd {
                service: other,
                real,
            },
        )
        .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::NoSuchService, "Service not defined")
        );
        let e = apply(
            &mut rules,
            &Change::RealDel {
                service: vip(),
                addr: Ipv4Addr::new(192, 168, 1, 2),
                port: 80,
            },
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoSuchDestination);
        let e = apply(&mut rules, &Change::ServiceDel { service: other }).unwrap_err();
        assert_eq!(e.message, "No such service");
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let mut rules = with_service();
        let before = rules.clone();
        let changes = vec![
            Change::RealAdd {
                service: vip(),
                real: Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 1),
            },
            Change::RealAdd {
                service: vip(),
                real: Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, MAX_WEIGHT + 1),
            },
        ];
        let e = apply_all(&mut rules, &changes).unwrap_err();
        assert!(e.message.starts_with("change 2: "), "{}", e.message);
        assert_eq!(rules, before);
    }

    #[test]
    fn values_are_checked() {
        let mut rules = RuleSet::default();
        let mut s = Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 0),
            Scheduler::Rr,
        );
        assert!(apply(&mut rules, &Change::ServiceAdd { service: s.clone() }).is_err());
        s.persistence = Some(Persistence {
            timeout: 300,
            netmask: Ipv4Addr::new(255, 255, 0, 255),
        });
        assert!(apply(&mut rules, &Change::ServiceAdd { service: s.clone() }).is_err());
        s.persistence = Some(Persistence {
            timeout: 300,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        });
        apply(&mut rules, &Change::ServiceAdd { service: s }).unwrap();
        let bad_vip = Service::new(ServiceAddr::tcp(Ipv4Addr::BROADCAST, 80), Scheduler::Rr);
        assert!(apply(&mut rules, &Change::ServiceAdd { service: bad_vip }).is_err());
        let mut ops = Service::new(
            ServiceAddr::Inet {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(10, 0, 0, 9),
                port: 80,
            },
            Scheduler::Rr,
        );
        ops.one_packet = true;
        assert!(apply(&mut rules, &Change::ServiceAdd { service: ops }).is_err());
    }

    fn mark(n: u32, ports: &str) -> Mark {
        Mark::from_words(&n.to_string(), "tcp", "10.0.0.1", ports).unwrap()
    }

    /// One endpoint leads to one service: a mark's ports stay out of other marks, a used
    /// mark's endpoints out of inet services (both ways), and a used mark cannot go.
    #[test]
    fn marks_keep_one_endpoint_one_service() {
        let mut rules = RuleSet::default();
        let add = |m: Mark| Change::MarkAdd { mark: m };
        apply(&mut rules, &add(mark(7, "80,443"))).unwrap();
        let e = apply(&mut rules, &add(mark(7, "81"))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MarkExists);
        let e = apply(&mut rules, &add(mark(8, "8000-8100,443"))).unwrap_err();
        assert!(e.message.contains("already in firewall mark 7"), "{e}");
        assert!(apply(&mut rules, &add(mark(9, "81,81"))).is_err());
        assert!(apply(&mut rules, &add(mark(9, "0"))).is_err());
        assert!(apply(&mut rules, &add(mark(0, "81"))).is_err());
        // The mark has no service yet: an inet service may take its endpoint...
        let inet = Service::new(vip(), Scheduler::Rr);
        apply(&mut rules, &Change::ServiceAdd { service: inet }).unwrap();
        // ...and then the mark can have none.
        let fw = Service::new(ServiceAddr::Fwmark(7), Scheduler::Rr);
        let e = apply(
            &mut rules,
            &Change::ServiceAdd {
                service: fw.clone(),
            },
        )
        .unwrap_err();
        assert!(e.message.contains("is a service of its own"), "{e}");
        apply(&mut rules, &Change::ServiceDel { service: vip() }).unwrap();
        apply(&mut rules, &Change::ServiceAdd { service: fw }).unwrap();
        let e = apply(
            &mut rules,
            &Change::ServiceAdd {
                service: Service::new(vip(), Scheduler::Rr),
            },
        )
        .unwrap_err();
        assert!(e.message.contains("belongs to firewall mark 7"), "{e}");
        let e = apply(&mut rules, &Change::MarkDel { mark: 7 }).unwrap_err();
        assert!(e.message.contains("in use by service fwmark/7"), "{e}");
        assert_eq!(
            apply(&mut rules, &Change::MarkDel { mark: 5 })
                .unwrap_err()
                .kind,
            ErrorKind::NoSuchMark
        );
        // A whole rule set says the same, and where.
        let mut whole = rules.clone();
        whole.services.push(Service::new(vip(), Scheduler::Rr));
        let r = check_rule_set(&whole).unwrap_err();
        assert_eq!(r.place, Place::Service(1, ServiceField::Port));
        let mut whole = rules.clone();
        whole.marks.push(mark(8, "22,443"));
        let r = check_rule_set(&whole).unwrap_err();
        assert_eq!(r.place, Place::Mark(1, MarkField::Port(1)));
        // Real servers on port 0 belong to services without a port of their own.
        let real0 = Real::new(Ipv4Addr::new(192, 168, 1, 1), 0, MAX_WEIGHT);
        apply(
            &mut rules,
            &Change::RealAdd {
                service: ServiceAddr::Fwmark(7),
                real: real0,
            },
        )
        .unwrap();
        apply(&mut rules, &Change::Flush).unwrap();
        assert_eq!(rules, RuleSet::default(), "flush removes marks too");
    }

    #[test]
    fn timeout_set_zero_keeps_the_value() {
        let mut rules = RuleSet::default();
        apply(
            &mut rules,
            &Change::TimeoutSet {
                tcp: 100,
                tcp_fin: 0,
                udp: 50,
            },
        )
        .unwrap();
        assert_eq!(rules.timeouts.tcp, Some(100));
        assert_eq!(rules.timeouts.tcp_fin, None);
        assert_eq!(rules.timeouts.udp, Some(50));
    }
}
