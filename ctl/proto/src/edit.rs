//! Changes to a [`RuleSet`] and the one function that applies them: every check ipvsadm and
//! IPVS make (duplicates, missing services, value ranges) happens here, on the operator model,
//! before anything is compiled for the engine. Pure: the caller applies to a copy and keeps
//! the original when any change of a batch fails.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::model::{
    LocalAddress, Persistence, Real, RuleSet, SchedFlags, Scheduler, Service, ServiceAddr,
    DEFAULT_SCHEDULER, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WEIGHT,
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
        }
    }
    fn apply_to(&self, service: &mut Service) {
        service.scheduler = self.scheduler;
        service.sched_flags = self.sched_flags;
        service.persistence = self.persistence;
        service.one_packet = self.one_packet;
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
    /// `-C`: removes every service.
    Flush,
    /// `--set tcp tcpfin udp`: 0 leaves a value unchanged, as in ipvsadm.
    TimeoutSet { tcp: u32, tcp_fin: u32, udp: u32 },
    /// `restore`: the whole rule set at once.
    Replace { rules: RuleSet },
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
            check_service(service)?;
            rules.services.push(service.clone());
        }
        Change::ServiceEdit { service: attrs } => {
            check_attrs(attrs)?;
            let service = rules
                .service_mut(&attrs.addr)
                .ok_or_else(|| error(ErrorKind::NoSuchService, "No such service"))?;
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
            check_real(&svc.addr, real)?;
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
            check_real(&svc.addr, real)?;
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
        Change::Flush => rules.services.clear(),
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
            check_rule_set(new)?;
            *rules = new.clone();
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

/// Every check of a whole rule set (what `restore` and the state file go through).
pub fn check_rule_set(rules: &RuleSet) -> Result<(), ErrorBody> {
    let mut seen = HashSet::new();
    for s in &rules.services {
        if !seen.insert(s.addr) {
            return Err(error(
                ErrorKind::ServiceExists,
                format!("Service already exists: {} is listed twice", s.addr),
            ));
        }
        check_service(s).map_err(|mut e| {
            e.message = format!("{}: {}", s.addr, e.message);
            e
        })?;
    }
    for (name, v) in [
        ("tcp", rules.timeouts.tcp),
        ("tcp_fin", rules.timeouts.tcp_fin),
        ("udp", rules.timeouts.udp),
    ] {
        if let Some(v) = v {
            if v == 0 || v > MAX_TIMEOUT {
                return Err(invalid(format!(
                    "timeout {name} must be 1 to {MAX_TIMEOUT} seconds"
                )));
            }
        }
    }
    Ok(())
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
}

fn check_attrs(attrs: &ServiceAttrs) -> Result<(), ErrorBody> {
    match attrs.addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            if !is_unicast(vip) {
                return Err(invalid(format!("{vip} is not a unicast virtual address")));
            }
            if port == 0 && attrs.persistence.is_none() {
                return Err(invalid(
                    "Zero port specified for no-match and non-persistent service",
                ));
            }
            if attrs.one_packet && protocol != crate::model::Protocol::Udp {
                return Err(invalid(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
        }
        ServiceAddr::Fwmark(0) => return Err(invalid("invalid fwmark value `0' specified")),
        ServiceAddr::Fwmark(_) => {}
    }
    if let Some(p) = attrs.persistence {
        if p.timeout == 0 || p.timeout > MAX_TIMEOUT {
            return Err(invalid(format!(
                "invalid timeout value `{}' specified",
                p.timeout
            )));
        }
        let mask = u32::from(p.netmask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err(invalid("illegal virtual server persistent mask specified"));
        }
    }
    Ok(())
}

fn check_service(service: &Service) -> Result<(), ErrorBody> {
    check_attrs(&ServiceAttrs::of(service))?;
    let mut reals = HashSet::new();
    for r in &service.reals {
        check_real(&service.addr, r)?;
        if !reals.insert(r.key()) {
            return Err(error(
                ErrorKind::DestinationExists,
                format!("Destination already exists: {} is listed twice", r.key()),
            ));
        }
    }
    let mut lips = HashSet::new();
    for l in &service.local_addresses {
        check_laddr(l)?;
        if !lips.insert(l.addr) {
            return Err(error(
                ErrorKind::LaddrExists,
                format!("Local address {} already exists", l.addr),
            ));
        }
    }
    Ok(())
}

fn check_real(service: &ServiceAddr, real: &Real) -> Result<(), ErrorBody> {
    if !is_unicast(real.addr) {
        return Err(invalid(format!(
            "{} is not a unicast real server address",
            real.addr
        )));
    }
    if real.port == 0 && service.port() != 0 {
        return Err(invalid("real server port must be 1 to 65535"));
    }
    if real.weight > MAX_WEIGHT {
        return Err(invalid("illegal weight specified"));
    }
    if real.upper_threshold > MAX_THRESHOLD {
        return Err(invalid("illegal u_threshold specified"));
    }
    if real.lower_threshold > MAX_THRESHOLD {
        return Err(invalid("illegal l_threshold specified"));
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
                real: Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 70000),
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
