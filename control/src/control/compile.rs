//! Operator model → engine snapshot. Whatever the engine cannot run yet is refused here with
//! a clear error, so a change the engine cannot run is never published. What the engine
//! supports is decided in [`engine_scheduler`] and [`check_engine_support`] only.

use std::sync::Arc;

use fnat_engine::acl::{ClientAcl, ConnRateLimit, PrefixSet};
use fnat_engine::rules::{
    Endpoint, Ipv4Cidr, Method, Mode, Persistence as EnginePersistence, PortGroup, PortRule,
    Protocol as EngineProtocol, RealServer, Rules, SchedFlags as EngineSchedFlags, SchedulerKind,
    Service as EngineService, SnatRule, Thresholds, Timeouts, Tunnel, TunnelKind,
};
use fnat_proto::model::{
    ForwardMethod, Mark, MatchProto, PortName, Protocol, ProxyProtocol, Real, RuleSet, Scheduler,
    Service, ServiceAddr, SnatMatch, TunnelType,
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
    Ok(())
}

/// The engine's method of a real server of the model.
pub fn engine_method(r: &Real) -> Method {
    match r.forward {
        // An SNAT session is a full-NAT session whose real server is its destination.
        ForwardMethod::FullNat | ForwardMethod::Snat => Method::FullNat,
        ForwardMethod::Masq => Method::Nat,
        ForwardMethod::Route => Method::Dr,
        ForwardMethod::Tunnel => Method::Tun(Tunnel {
            kind: match r.tunnel.kind {
                TunnelType::Ipip => TunnelKind::Ipip,
                TunnelType::Gue => TunnelKind::Gue,
                TunnelType::Gre => TunnelKind::Gre,
            },
            port: r.tunnel.port,
            csum: r.tunnel.csum,
        }),
    }
}

/// A direct-routing real server must be on a connected network of a port (`addresses`: every
/// port's addresses): fnatd only changes the Ethernet destination to its MAC. The config file
/// checks it too, to name its key.
pub fn check_direct_route<'a>(
    s: &Service,
    r: &Real,
    addresses: impl IntoIterator<Item = &'a Ipv4Cidr>,
) -> Result<(), ErrorBody> {
    if r.forward != ForwardMethod::Route {
        return Ok(());
    }
    let connected = addresses
        .into_iter()
        .any(|a| a.prefix_len < 32 && a.contains(r.addr));
    if connected {
        return Ok(());
    }
    Err(ErrorBody {
        kind: ErrorKind::Invalid,
        message: format!(
            "{}: real server {} uses direct routing (-g, Route) but is not on a connected network of any port: DR only rewrites the Ethernet destination, so the real server must share a link with fnatd (use -m, -i or -b to reach it through a router)",
            s.addr,
            r.key()
        ),
    })
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

/// The engine's rule of a match service; its ports must be the dataplane's.
fn snat_rule(m: &SnatMatch, ports: &[PortRule]) -> Result<SnatRule, ErrorBody> {
    let index = |name: Option<PortName>, what: &str| -> Result<Option<u16>, ErrorBody> {
        let Some(name) = name else { return Ok(None) };
        ports
            .iter()
            .position(|p| p.name == name.as_str())
            .map(|i| Some(i as u16))
            .ok_or_else(|| {
                let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                ErrorBody {
                    kind: ErrorKind::Invalid,
                    message: format!(
                        "match service {m}: {what} '{name}' is not a port of this fnatd (ports: {})",
                        names.join(", ")
                    ),
                }
            })
    };
    let range = |r: Option<fnat_proto::model::AddrRange>| {
        r.map(|r| (u32::from(r.first), u32::from(r.last)))
    };
    Ok(SnatRule {
        proto: m.proto.number(),
        src: range(m.src),
        dst: range(m.dst),
        iif: index(m.iif, "iif")?,
        oif: index(m.oif, "oif")?,
    })
}

/// The engine's form of one service, with the ids of `ids` (which must have been assigned
/// for it) and, for a fwmark service, the endpoints of its mark in `marks`.
pub fn compile_service(
    s: &Service,
    marks: &[Mark],
    ids: &IdBook,
    ports: &[PortRule],
) -> Result<EngineService, ErrorBody> {
    check_engine_support(s)?;
    for r in &s.reals {
        check_direct_route(s, r, ports.iter().flat_map(|p| &p.addresses))?;
    }
    let scheduler = engine_scheduler(s.scheduler)?;
    let internal = |what: &str| ErrorBody {
        kind: ErrorKind::Internal,
        message: format!("no engine id for {what}"),
    };
    let mut snat = None;
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
        ServiceAddr::Match(m) => {
            // A label only (an SNAT service has no endpoint); ICMP echo is labelled TCP.
            let protocol = match m.proto {
                MatchProto::Udp => EngineProtocol::Udp,
                _ => EngineProtocol::Tcp,
            };
            snat = Some(snat_rule(&m, ports)?);
            (std::net::Ipv4Addr::UNSPECIFIED, protocol, 0, None)
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
            real.method = engine_method(r);
            Ok(real)
        })
        .collect::<Result<Vec<_>, ErrorBody>>()?;
    let mut service = EngineService::new(id, vip, protocol, port, scheduler);
    service.reals = reals;
    service.local_addresses = s.local_addresses.iter().map(|l| l.addr).collect();
    if snat.is_some() {
        // SNAT's addresses are its port pools, in the order of its real servers.
        service.local_addresses = s.reals.iter().map(|r| r.addr).collect();
    }
    service.options.snat = snat;
    service.options.sched_flags = EngineSchedFlags(s.sched_flags.0);
    service.options.persistence = s.persistence.map(|p| EnginePersistence {
        timeout_secs: p.timeout,
        netmask: p.netmask,
    });
    service.options.port_group = port_group;
    service.options.expire_on_removal = s.expire_on_removal;
    if !s.allow.is_empty() || !s.deny.is_empty() {
        let set = |l: &[fnat_proto::model::ClientPrefix]| {
            PrefixSet::new(l.iter().map(|p| (u32::from(p.addr), p.len)))
        };
        service.options.acl = Some(Arc::new(ClientAcl {
            allow: set(&s.allow),
            deny: set(&s.deny),
        }));
    }
    service.options.conn_rate = s.conn_rate.map(|r| ConnRateLimit {
        rate: r.rate,
        burst: r.burst,
        prefix_len: r.prefix_len,
    });
    service.options.client_address = fnat_engine::rules::ClientAddress {
        proxy_version: match s.proxy_protocol {
            ProxyProtocol::Disable => 0,
            ProxyProtocol::V1 | ProxyProtocol::V1Insecure => 1,
            ProxyProtocol::V2 | ProxyProtocol::V2Insecure => 2,
        },
        proxy_insecure: matches!(
            s.proxy_protocol,
            ProxyProtocol::V1Insecure | ProxyProtocol::V2Insecure
        ),
        toa: s.toa,
    };
    service.options.synproxy = s.synproxy;
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
        garp: base.garp.clone(),
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
        .map(|s| compile_service(s, &rules.marks, ids, &base.ports))
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
        // A DR real server off every connected network is refused with a clear message.
        set.services[0].reals.push(Real {
            forward: fnat_proto::model::ForwardMethod::Route,
            ..Real::new(Ipv4Addr::new(10, 1, 0, 1), 53, 1)
        });
        let e = compile_fresh(&base(), &Timeouts::default(), &set).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message.contains("10.1.0.1:53 uses direct routing")
                && e.message.contains("not on a connected network"),
            "{e:?}"
        );
        let mut on_link = base();
        on_link.ports[0]
            .addresses
            .push(fnat_engine::rules::Ipv4Cidr {
                addr: Ipv4Addr::new(10, 1, 0, 254),
                prefix_len: 24,
            });
        let (rules, _) = compile_fresh(&on_link, &Timeouts::default(), &set).unwrap();
        assert_eq!(rules.services[0].reals[0].method, Method::Dr);
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
