//! Operator model → engine snapshot. Whatever the engine cannot run yet is refused here with
//! a clear error, so a change the engine cannot run is never published. What the engine
//! supports is decided in [`engine_scheduler`] and [`check_engine_support`] only.

use fnat_engine::rules::{
    Mode, Persistence as EnginePersistence, Protocol as EngineProtocol, RealServer, Rules,
    SchedFlags as EngineSchedFlags, SchedulerKind, Service as EngineService, Thresholds, Timeouts,
};
use fnat_proto::model::{
    ForwardMethod, LocalAddress, Persistence, Protocol, Real, RuleSet, SchedFlags, Scheduler,
    Service, ServiceAddr,
};
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

/// Everything else a service may ask for that the engine cannot do yet.
fn check_engine_support(s: &Service) -> Result<(), ErrorBody> {
    if let ServiceAddr::Fwmark(_) = s.addr {
        return Err(unsupported(
            "fwmark services are not supported by the engine yet".into(),
        ));
    }
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

/// The engine's form of one service, with the ids of `ids` (which must have been assigned
/// for it).
pub fn compile_service(s: &Service, ids: &IdBook) -> Result<EngineService, ErrorBody> {
    check_engine_support(s)?;
    let scheduler = engine_scheduler(s.scheduler)?;
    let internal = |what: &str| ErrorBody {
        kind: ErrorKind::Internal,
        message: format!("no engine id for {what}"),
    };
    let ServiceAddr::Inet {
        protocol,
        vip,
        port,
    } = s.addr
    else {
        return Err(internal(&s.addr.to_string()));
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
    let protocol = match protocol {
        Protocol::Tcp => EngineProtocol::Tcp,
        Protocol::Udp => EngineProtocol::Udp,
    };
    let mut service = EngineService::new(id, vip, protocol, port, scheduler);
    service.reals = reals;
    service.local_addresses = s.local_addresses.iter().map(|l| l.addr).collect();
    service.options.sched_flags = EngineSchedFlags(s.sched_flags.0);
    service.options.persistence = s.persistence.map(|p| EnginePersistence {
        timeout_secs: p.timeout,
        netmask: p.netmask,
    });
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
    }
}

/// Builds the snapshot for `rules`: ports, routes, neighbours and session settings from `base`
/// (the snapshot in force), timeouts from `base_timeouts` plus overrides, ids from `ids`
/// (which must have been assigned for `rules`). The engine's services are `rules`' services,
/// in the same order (the control plane relies on it to change them one at a time).
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
        .map(|s| compile_service(s, ids))
        .collect::<Result<Vec<_>, ErrorBody>>()?;
    Ok(snapshot(base, base_timeouts, rules, services))
}

/// The operator model of an engine snapshot (the config's services), with their ids.
pub fn from_engine(rules: &Rules) -> (RuleSet, IdBook) {
    let mut ids = IdBook::default();
    let mut set = RuleSet::default();
    for s in &rules.services {
        let addr = ServiceAddr::Inet {
            protocol: match s.protocol {
                EngineProtocol::Tcp => Protocol::Tcp,
                EngineProtocol::Udp => Protocol::Udp,
            },
            vip: s.vip,
            port: s.port,
        };
        ids.keep_service(addr, s.id);
        let scheduler = s.scheduler.name().parse().unwrap_or(Scheduler::Wlc);
        let mut service = Service::new(addr, scheduler);
        service.sched_flags = SchedFlags(s.options.sched_flags.0);
        service.persistence = s.options.persistence.map(|p| Persistence {
            timeout: p.timeout_secs,
            netmask: p.netmask,
        });
        for r in &s.reals {
            let mut real = Real::new(r.addr, r.port, r.weight);
            real.upper_threshold = r.thresholds.upper;
            real.lower_threshold = r.thresholds.lower;
            ids.keep_real(addr, real.key(), r.id);
            service.reals.push(real);
        }
        service.local_addresses = s
            .local_addresses
            .iter()
            .map(|a| LocalAddress {
                addr: *a,
                device: None,
            })
            .collect();
        set.services.push(service);
    }
    (set, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_engine::rules::PortRule;
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
        let mut ids = IdBook::default();
        ids.assign(&set);
        let e = compile(&base(), &Timeouts::default(), &set, &ids).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e
            .message
            .contains("one-packet scheduling (-o) is not supported by the engine yet"));
        set.services[0] = Service::new(ServiceAddr::Fwmark(3), Scheduler::Rr);
        ids.assign(&set);
        let e = compile(&base(), &Timeouts::default(), &set, &ids).unwrap_err();
        assert!(
            e.message.contains("fwmark services are not supported"),
            "{e:?}"
        );
        for s in Scheduler::ALL {
            assert_eq!(engine_scheduler(s).map(|k| k.name()), Ok(s.name()));
        }
    }

    #[test]
    fn compile_and_back_keep_services_and_ids() {
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
        s.reals.push(r);
        s.local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            device: None,
        });
        set.services.push(s);
        set.timeouts.udp = Some(30);
        let mut ids = IdBook::default();
        ids.assign(&set);
        let rules = compile(&base(), &Timeouts::default(), &set, &ids).unwrap();
        assert_eq!(rules.timeouts.udp, 30);
        assert_eq!(rules.services[0].reals[0].weight, 4);
        let (back, back_ids) = from_engine(&rules);
        assert_eq!(back.services, set.services);
        assert_eq!(
            back_ids.service(&set.services[0].addr),
            ids.service(&set.services[0].addr)
        );
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
