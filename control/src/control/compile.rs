//! Operator model → engine snapshot. Whatever the engine cannot run yet is refused here with
//! a clear error, so a change the engine cannot run is never published. What the engine
//! supports is decided in [`engine_scheduler`] and [`check_engine_support`] only.

use fnat_engine::rules::{
    Endpoint, Mode, Persistence as EnginePersistence, PortGroup, Protocol as EngineProtocol,
    RealServer, Rules, SchedFlags as EngineSchedFlags, SchedulerKind, Service as EngineService,
    Thresholds, Timeouts,
};
use fnat_proto::model::{ForwardMethod, Mark, Protocol, RuleSet, Scheduler, Service, ServiceAddr};
use fnat_proto::msg::{ErrorBody, ErrorKind};

use super::ids::IdBook;

fn unsupported(message: String) -> ErrorBody {
    ErrorBody {
        kind: ErrorKind::Unsupported,
        message,
    }
}

/// The engine's scheduler for an IPVS scheduler name, when it has one.
pub fn engine_scheduler(s: Scheduler) -> Result<SchedulerKind, ErrorBody> {
    SchedulerKind::from_name(s.name())
        .ok_or_else(|| unsupported(format!("scheduler {s} is not supported by the engine yet")))
}

/// Whether the engine can run service `s` at all (its scheduler and everything else it asks
/// for): lets a source that knows where each service came from (keepalived.conf) name the
/// line of a refusal before compiling.
pub fn check_service_support(s: &Service) -> Result<(), ErrorBody> {
    engine_scheduler(s.scheduler)?;
    check_engine_support(s)
}

/// Everything else a service may ask for that the engine cannot do yet.
fn check_engine_support(s: &Service) -> Result<(), ErrorBody> {
    if s.one_packet {
        return Err(unsupported(format!(
            "{}: one-packet scheduling (-o) is not supported by the engine yet",
            s.addr
        )));
    }
    for r in &s.reals {
        if r.forward != ForwardMethod::FullNat {
            return Err(unsupported(format!(
                "forwarding mode {} not supported yet: fnat forwards in full-NAT only",
                r.forward.ipvsadm_name()
            )));
        }
    }
    Ok(())
}

/// The engine's timeouts: the config's, with ipvsadm's `--set` overrides.
pub fn timeouts(base: &Timeouts, rules: &RuleSet) -> Timeouts {
    let mut t = *base;
    if let Some(v) = rules.timeouts.tcp {
        t.tcp_established = v;
    }
    if let Some(v) = rules.timeouts.tcp_fin {
        t.tcp_fin_wait = v;
    }
    if let Some(v) = rules.timeouts.udp {
        t.udp = v;
    }
    t
}

/// Refused when the dataplane forwards in pass-through mode and `rules` has services.
pub fn check_mode(base: &Rules, rules: &RuleSet) -> Result<(), ErrorBody> {
    if matches!(base.mode, Mode::Passthrough { .. }) && !rules.services.is_empty() {
        return Err(unsupported(
            "this fnatd forwards in pass-through mode ([forward] in its config): services need a full-NAT config"
                .into(),
        ));
    }
    Ok(())
}

fn engine_protocol(p: Protocol) -> EngineProtocol {
    match p {
        Protocol::Tcp => EngineProtocol::Tcp,
        Protocol::Udp => EngineProtocol::Udp,
    }
}

/// The engine's form of one service, with the ids of `ids` (which must have been assigned
/// for it) and, for a fwmark service, the endpoints of its mark in `marks`.
pub fn compile_service(
    s: &Service,
    marks: &[Mark],
    ids: &IdBook,
) -> Result<EngineService, ErrorBody> {
    check_engine_support(s)?;
    let scheduler = engine_scheduler(s.scheduler)?;
    let internal = |what: &str| ErrorBody {
        kind: ErrorKind::Internal,
        message: format!("no engine id for {what}"),
    };
    let (vip, protocol, port, port_group) = match s.addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => (vip, engine_protocol(protocol), port, None),
        ServiceAddr::Fwmark(n) => {
            let mark = marks
                .iter()
                .find(|m| m.mark == n)
                .ok_or_else(|| ErrorBody {
                    kind: ErrorKind::Internal,
                    message: format!("fwmark/{n} without its firewall mark"),
                })?;
            let protocol = engine_protocol(mark.protocol);
            let members: Vec<Endpoint> = mark
                .ports
                .0
                .iter()
                .map(|&port| Endpoint {
                    vip: mark.vip,
                    protocol,
                    port,
                })
                .collect();
            // The engine labels a port-group service with its first member.
            let first = *members.first().ok_or_else(|| ErrorBody {
                kind: ErrorKind::Internal,
                message: format!("firewall mark {n} has no port"),
            })?;
            let group = PortGroup {
                mark: n,
                name: mark.name.clone().unwrap_or_default(),
                members,
            };
            (first.vip, protocol, first.port, Some(group))
        }
    };
    let id = ids
        .service(&s.addr)
        .ok_or_else(|| internal(&s.addr.to_string()))?;
    let reals = s
        .reals
        .iter()
        .map(|r| {
            let id = ids
                .real(&s.addr, r.key())
                .ok_or_else(|| internal(&r.key().to_string()))?;
            let mut real = RealServer::new(id, r.addr, r.port, r.weight);
            real.thresholds = Thresholds {
                upper: r.upper_threshold,
                lower: r.lower_threshold,
            };
            Ok(real)
        })
        .collect::<Result<Vec<_>, ErrorBody>>()?;
    let mut service = EngineService::new(id, vip, protocol, port, scheduler);
    service.reals = reals;
    service.local_addresses = s.local_addresses.iter().map(|l| l.addr).collect();
    service.options.sched_flags = EngineSchedFlags(s.sched_flags.0);
    service.options.persistence = s.persistence.map(|p| EnginePersistence {
        timeout_secs: p.timeout,
        netmask: p.netmask,
    });
    service.options.port_group = port_group;
    service.options.expire_on_removal = s.expire_on_removal;
    Ok(service)
}

/// A snapshot like `base` (ports, routes, neighbours and session settings) with `services`,
/// and timeouts from `base_timeouts` plus the overrides of `rules`.
pub fn snapshot(
    base: &Rules,
    base_timeouts: &Timeouts,
    rules: &RuleSet,
    services: Vec<EngineService>,
) -> Rules {
    Rules {
        generation: base.generation,
        ports: base.ports.clone(),
        mode: base.mode.clone(),
        services,
        routes: base.routes.clone(),
        neighbours: base.neighbours.clone(),
        timeouts: timeouts(base_timeouts, rules),
        session_capacity: base.session_capacity,
        lport_min: base.lport_min,
        lport_max: base.lport_max,
        drop_ip_options: base.drop_ip_options,
        expire_quiescent_template: base.expire_quiescent_template,
        standby: base.standby.clone(),
        edits: None,
    }
}

/// The one compiler from the rule model to an engine snapshot: ports, routes, neighbours and
/// session settings from `base` (the snapshot in force), timeouts from `base_timeouts` plus
/// overrides, ids from `ids` (which must have been assigned for `rules`). The engine's
/// services are `rules`' services, in the same order (the control plane relies on it to
/// change them one at a time).
pub fn compile(
    base: &Rules,
    base_timeouts: &Timeouts,
    rules: &RuleSet,
    ids: &IdBook,
) -> Result<Rules, ErrorBody> {
    check_mode(base, rules)?;
    let services = rules
        .services
        .iter()
        .map(|s| compile_service(s, &rules.marks, ids))
        .collect::<Result<Vec<_>, ErrorBody>>()?;
    Ok(snapshot(base, base_timeouts, rules, services))
}

/// [`compile`] with ids given afresh (a config file, `--rules` before the workers start):
/// the same ids the control plane gives the same rules when it starts from an empty book.
pub fn compile_fresh(
    base: &Rules,
    base_timeouts: &Timeouts,
    rules: &RuleSet,
) -> Result<(Rules, IdBook), ErrorBody> {
    let mut ids = IdBook::default();
    ids.assign(rules);
    let compiled = compile(base, base_timeouts, rules, &ids)?;
    Ok((compiled, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_engine::rules::PortRule;
    use fnat_proto::model::{LocalAddress, Persistence, PortList, Real, SchedFlags};
    use std::net::Ipv4Addr;

    fn base() -> Rules {
        let mut r = Rules::passthrough(
            vec![PortRule {
                name: "a".into(),
                mac: [0; 6],
                addresses: vec![],
            }],
            vec![None],
        );
        r.mode = Mode::FullNat;
        r
    }

    #[test]
    fn what_the_engine_cannot_run_is_refused() {
        let mut set = RuleSet::default();
        let mut s = Service::new(
            ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53),
            Scheduler::Lc,
        );
        s.one_packet = true;
        set.services.push(s);
        let e = compile_fresh(&base(), &Timeouts::default(), &set).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e
            .message
            .contains("one-packet scheduling (-o) is not supported by the engine yet"));
        set.services[0].one_packet = false;
        set.services[0].reals.push(Real {
            forward: fnat_proto::model::ForwardMethod::Route,
            ..Real::new(Ipv4Addr::new(10, 1, 0, 1), 53, 1)
        });
        let e = compile_fresh(&base(), &Timeouts::default(), &set).unwrap_err();
        assert!(e.message.contains("forwarding mode Route"), "{e:?}");
        for s in Scheduler::ALL {
            assert_eq!(engine_scheduler(s).map(|k| k.name()), Ok(s.name()));
        }
    }

    /// Every attribute of the model reaches the engine: an inet service and a fwmark service
    /// whose mark's ports become the port group's members.
    #[test]
    fn every_attribute_reaches_the_engine() {
        let mut set = RuleSet::default();
        let mut s = Service::new(
            ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53),
            Scheduler::Sh,
        );
        s.sched_flags = SchedFlags(SchedFlags::FLAG2);
        s.persistence = Some(Persistence {
            timeout: 60,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        });
        let mut r = Real::new(Ipv4Addr::new(192, 168, 0, 1), 53, 4);
        r.upper_threshold = 10;
        r.lower_threshold = 5;
        s.reals.push(r);
        s.local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            device: None,
        });
        set.services.push(s);
        set.marks.push(Mark {
            mark: 7,
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::new(10, 0, 0, 2),
            ports: PortList(vec![443, 80]),
            name: Some("web".into()),
        });
        let mut f = Service::new(ServiceAddr::Fwmark(7), Scheduler::Rr);
        f.expire_on_removal = true;
        f.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 0, 2), 0, 100_000));
        set.services.push(f);
        set.timeouts.udp = Some(30);
        let (rules, ids) = compile_fresh(&base(), &Timeouts::default(), &set).unwrap();
        assert_eq!(rules.timeouts.udp, 30);
        let e = &rules.services[0];
        assert_eq!(e.id, ids.service(&set.services[0].addr).unwrap());
        assert_eq!(
            (e.vip, e.port, e.protocol),
            (Ipv4Addr::new(10, 0, 0, 1), 53, EngineProtocol::Udp)
        );
        assert_eq!(e.scheduler, SchedulerKind::Sh);
        assert_eq!(e.options.sched_flags, EngineSchedFlags(2));
        assert_eq!(
            e.options.persistence,
            Some(EnginePersistence {
                timeout_secs: 60,
                netmask: Ipv4Addr::new(255, 255, 255, 0)
            })
        );
        assert_eq!(e.reals[0].weight, 4);
        assert_eq!(
            e.reals[0].thresholds,
            Thresholds {
                upper: 10,
                lower: 5
            }
        );
        assert_eq!(e.local_addresses, vec![Ipv4Addr::new(10, 1, 0, 1)]);
        assert!(!e.options.expire_on_removal);
        let g = &rules.services[1];
        assert!(g.options.expire_on_removal);
        assert_eq!((g.port, g.protocol), (443, EngineProtocol::Tcp));
        let group = g.options.port_group.as_ref().unwrap();
        assert_eq!((group.mark, group.name.as_str()), (7, "web"));
        let ports: Vec<u16> = group.members.iter().map(|m| m.port).collect();
        assert_eq!(ports, [443, 80]);
        assert_eq!(g.reals[0].port, 0);
        assert_eq!(g.reals[0].weight, 100_000);
    }

    #[test]
    fn passthrough_configs_take_no_services() {
        let mut set = RuleSet::default();
        set.services.push(Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80),
            Scheduler::Rr,
        ));
        let mut ids = IdBook::default();
        ids.assign(&set);
        let mut b = base();
        b.mode = Mode::Passthrough {
            forward: vec![None],
        };
        assert!(compile(&b, &Timeouts::default(), &set, &ids).is_err());
    }
}
