//! `fnatctl ipvsadm ARGS…` (or fnatctl called through a symlink named `ipvsadm`): ipvsadm's
//! syntax, output and exit codes over fnatd's control socket.

use std::io::Read;

use fnat_proto::edit::Change;
use fnat_proto::ipvsadm::args::{parse_with, IpvsCommand, ListWhat};
use fnat_proto::ipvsadm::format::{lookup_protocol, Names, Numeric};
use fnat_proto::ipvsadm::rules_file::parse_rules_with;
use fnat_proto::ipvsadm::{format, EXIT_COMMAND_FAILED, EXIT_LIST_FAILED, EXIT_USAGE};
use fnat_proto::model::{IpvsTimeouts, Service, ServiceAddr};
use fnat_proto::msg::{ErrorKind, Query, Request};
use fnat_proto::stats::{Applied, ConnEntry, ConnFilter, Listing};

use crate::client::{Client, Failure};
use crate::names::{Resolver, LOOKUP_BUDGET};

/// Names for a listing of `services` (none with `-n`), looked up in parallel up front.
fn service_names<'a>(numeric: bool, services: impl Iterator<Item = &'a Service>) -> Box<dyn Names> {
    if numeric {
        return Box::new(Numeric);
    }
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    for s in services {
        let protocol = lookup_protocol(&s.addr);
        if let ServiceAddr::Inet { vip, port, .. } = s.addr {
            hosts.push(vip);
            ports.push((port, protocol));
        }
        for r in &s.reals {
            hosts.push(r.addr);
            ports.push((r.port, protocol));
        }
    }
    let resolver = Resolver::new(LOOKUP_BUDGET);
    resolver.prefetch(hosts, ports);
    Box::new(resolver)
}

/// Names for a connection listing (none with `-n`).
fn connection_names(numeric: bool, entries: &[ConnEntry]) -> Box<dyn Names> {
    if numeric {
        return Box::new(Numeric);
    }
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    for c in entries {
        for a in [c.client, c.vip, c.lip, c.rs] {
            hosts.push(*a.ip());
            ports.push((a.port(), c.protocol));
        }
    }
    let resolver = Resolver::new(LOOKUP_BUDGET);
    resolver.prefetch(hosts, ports);
    Box::new(resolver)
}

const USAGE: &str = "\
ipvsadm (fnatctl) — ipvsadm's commands against fnatd
Usage:
  ipvsadm -A|E -t|u|f|H service-address [-s scheduler] [-p [timeout]] [-M netmask] [--sched-flags flags] [-o]
        [--conn-rate rate[:burst][/len]]
        [--proxy-protocol v1|v2|v1-insecure|v2-insecure|disable] [--toa] [-j|--synproxy]
  ipvsadm -D -t|u|f|H service-address
  ipvsadm -C
  ipvsadm -R
  ipvsadm -S [-n]
  ipvsadm -a|e -t|u|f|H service-address -r server-address [-g|-m|-i|-b|-J] [-w weight] [-x upper-threshold] [-y lower-threshold]
        [--tun-type ipip|gue|gre] [--tun-port port] [--tun-nocsum|--tun-csum]
  ipvsadm -d -t|u|f|H service-address -r server-address
  ipvsadm -L|l [-t|u|f|H service-address] [-n] [-c] [--timeout] [--stats] [--rate] [--exact] [--thresholds] [--persistent-conn] [--tun-info] [--sort|--nosort] [--daemon]
  ipvsadm -Z [-t|u|f service-address]
  ipvsadm --set tcp tcpfin udp
  ipvsadm --add-laddr|-P -z local-address -t|u|f service-address [-F ifname]
  ipvsadm --del-laddr|-Q -z local-address -t|u|f service-address
  ipvsadm --get-laddr|-G [-t|u|f service-address]
  ipvsadm --add-blklst|-U|--del-blklst|-V -t|u|f|H service-address -k|--blklst addr[/len]
  ipvsadm --add-whtlst|-O|--del-whtlst|-Y -t|u|f|H service-address -2|--whtlst addr[/len]
  ipvsadm -h
Forwarding: -g/--gatewaying (direct routing, the default as in ipvsadm), -m/--masquerading
(NAT), -i/--ipip (tunnelling: IPIP, or --tun-type gue --tun-port N, or --tun-type gre),
-b/--fullnat (full-NAT). fnatctl's native `real add` and the config file default to full-NAT.
SNAT (DPVS): -H/--match 'proto=tcp|udp|icmp,src-range=A-B,dst-range=C-D,iif=PORT,oif=PORT'
names a match service, -J/--snat its real servers, the WAN addresses (`-r WAN-ADDR:0`) that
inside hosts' sources are rewritten to. -c lists sessions in the kernel's layout, plus a
`local` column for full-NAT and SNAT rows.
Client lists (DPVS): blklst is the service's deny list, whtlst its allow list (when not empty,
only its clients may connect); both apply to new connections only. --conn-rate caps new
connections per second per client prefix (-E --conn-rate 0 removes the cap).
--proxy-protocol (as DPVS's ipvsadm) and --toa tell full-NAT real servers the client's address
(a Proxy Protocol header in front of the data; TCP option 254), see docs/client-address.md.
-j/--synproxy (as DPVS's ipvsadm): SYN cookies answer the clients' SYNs; a connection to a
real server opens only on a valid cookie ACK (TCP services).
The socket is --socket PATH (fnatctl), $FNAT_SOCKET, or /run/fnatd/ctl.sock.
";

/// An ipvsadm failure: what to print on stderr and the exit code.
struct Exit(String, i32);

fn command_failed(f: Failure) -> Exit {
    match f {
        Failure::Connect(m) => connect_failed(m),
        Failure::Daemon(e) => Exit(e.message, EXIT_COMMAND_FAILED),
    }
}

fn list_failed(f: Failure) -> Exit {
    match f {
        Failure::Connect(m) => connect_failed(m),
        Failure::Daemon(e) => Exit(e.message, EXIT_LIST_FAILED),
    }
}

fn connect_failed(m: String) -> Exit {
    Exit(
        format!("Can't initialize ipvs: {m}\nAre you sure that fnatd is running?"),
        EXIT_USAGE,
    )
}

/// Runs ipvsadm with `args` (without the program name); returns the exit code.
pub fn run(client: &Client, args: &[String]) -> i32 {
    match execute(client, args) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(Exit(message, code)) => {
            eprintln!("{message}");
            code
        }
    }
}

fn list(client: &Client, service: Option<ServiceAddr>) -> Result<Listing, Failure> {
    client.call(&Request::Query(Query::List { service }))
}

fn change(client: &Client, change: Change) -> Result<String, Exit> {
    client
        .call::<Applied>(&Request::Change(change))
        .map(|_| String::new())
        .map_err(command_failed)
}

fn execute(client: &Client, args: &[String]) -> Result<String, Exit> {
    // Names on the command line (`-t www:http`) resolve as ipvsadm resolves them.
    let command = parse_with(args, &Resolver::new(LOOKUP_BUDGET))
        .map_err(|e| Exit(e.message, e.exit_code))?;
    match command {
        IpvsCommand::Help => Ok(USAGE.to_string()),
        IpvsCommand::Version => Ok(format!(
            "ipvsadm v1.2.1 (fnatctl {}, fnat control protocol {})\n",
            env!("CARGO_PKG_VERSION"),
            fnat_proto::PROTOCOL_VERSION
        )),
        IpvsCommand::Change(c) => change(client, c),
        IpvsCommand::StartDaemon { role, daemon } => client
            .call::<fnat_proto::sync::SyncStatus>(&Request::Query(Query::SyncStart {
                role,
                daemon,
            }))
            .map(|_| String::new())
            .map_err(command_failed),
        IpvsCommand::StopDaemon { role } => client
            .call::<fnat_proto::sync::SyncStatus>(&Request::Query(Query::SyncStop { role }))
            .map(|_| String::new())
            .map_err(command_failed),
        IpvsCommand::EditService(edit) => {
            let listing = list(client, Some(edit.addr)).map_err(command_failed)?;
            // Edits start from the operator's rules, not from what health checking made of them.
            let current = listing
                .configured_rules()
                .service(&edit.addr)
                .ok_or_else(|| Exit("No such service".into(), EXIT_COMMAND_FAILED))?;
            change(
                client,
                Change::ServiceEdit {
                    service: edit.merge(current),
                },
            )
        }
        IpvsCommand::EditReal(edit) => {
            let listing = match list(client, Some(edit.service)) {
                Err(Failure::Daemon(e)) if e.kind == ErrorKind::NoSuchService => {
                    return Err(Exit("Service not defined".into(), EXIT_COMMAND_FAILED))
                }
                other => other.map_err(command_failed)?,
            };
            let current = listing
                .configured_rules()
                .service(&edit.service)
                .and_then(|s| s.real(edit.key()))
                .ok_or_else(|| Exit("No such destination".into(), EXIT_COMMAND_FAILED))?;
            change(
                client,
                Change::RealEdit {
                    service: edit.service,
                    real: edit.merge(current),
                },
            )
        }
        IpvsCommand::List {
            service,
            what,
            format: fmt,
        } => match what {
            // ipvsadm's list_daemon: a line per running sync daemon.
            ListWhat::Daemon => {
                let st: fnat_proto::sync::SyncStatus = client
                    .call(&Request::Query(Query::Sync))
                    .map_err(list_failed)?;
                Ok(format::daemons(&st))
            }
            ListWhat::Timeout => {
                let t: IpvsTimeouts = client
                    .call(&Request::Query(Query::TimeoutGet))
                    .map_err(list_failed)?;
                Ok(format::timeouts(&t))
            }
            ListWhat::Connections => {
                let entries: Vec<ConnEntry> = client
                    .call(&Request::Query(Query::Connections {
                        filter: ConnFilter {
                            service,
                            ..ConnFilter::default()
                        },
                        limit: Some(1_000_000),
                    }))
                    .map_err(list_failed)?;
                let names = connection_names(fmt.numeric, &entries);
                Ok(format::connections(&entries, &fmt, names.as_ref()))
            }
            ListWhat::Services => {
                let listing = list(client, service).map_err(list_failed)?;
                let names = service_names(fmt.numeric, listing.rules.services.iter());
                match service {
                    Some(addr) => {
                        let s = listing
                            .rules
                            .service(&addr)
                            .ok_or_else(|| Exit("No such service".into(), EXIT_LIST_FAILED))?;
                        Ok(format::list_service(&listing, s, &fmt, names.as_ref()))
                    }
                    None => Ok(format::list_all(&listing, &fmt, names.as_ref())),
                }
            }
        },
        IpvsCommand::Save { format: fmt } => {
            let listing = list(client, None).map_err(list_failed)?;
            // The operator's rules: a saved file restores what was configured.
            let rules = listing.configured_rules();
            let names = service_names(fmt.numeric, rules.services.iter());
            Ok(format::save(rules, &fmt, names.as_ref()))
        }
        IpvsCommand::Restore => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                Exit(
                    format!("reading the rules from standard input: {e}"),
                    EXIT_USAGE,
                )
            })?;
            // What `-S` without `-n` wrote (names) restores too.
            let changes = parse_rules_with(&text, &Resolver::new(LOOKUP_BUDGET))
                .map_err(|e| Exit(e, EXIT_USAGE))?;
            client
                .call::<Applied>(&Request::Query(Query::Apply { changes }))
                .map(|_| String::new())
                .map_err(command_failed)
        }
        IpvsCommand::Zero { service } => client
            .call::<serde_json::Value>(&Request::Query(Query::Zero { service }))
            .map(|_| String::new())
            .map_err(command_failed),
        IpvsCommand::GetLaddr { service } => {
            let listing = list(client, service).map_err(list_failed)?;
            Ok(format::local_addresses(
                listing.rules.services.iter(),
                &listing.local_addrs,
            ))
        }
    }
}
