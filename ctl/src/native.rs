//! fnatctl's own subcommands: service, real, laddr, acl, mark, stats, zero, timeout, conn,
//! save, restore, flush, status, reload, health, vrrp, drain, undrain, bird-hook. Human output by
//! default (ipvsadm's layouts where one exists),
//! `--json` prints the daemon's result as JSON.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use fnat_proto::edit::{Change, ServiceAttrs};
use fnat_proto::ipvsadm::args::ListFormat;
use fnat_proto::ipvsadm::format;
use fnat_proto::model::{
    AclList, ClientPrefix, ConnRate, ForwardMethod, LocalAddress, Mark, Persistence, Real, RuleSet,
    SchedFlags, Scheduler, Service, ServiceAddr, TunnelOptions, TunnelType, DEFAULT_PERSISTENCE,
};
use fnat_proto::msg::{Query, Request};
use fnat_proto::stats::{Applied, ConnEntry, ConnFilter, Listing, Status};
use serde::Serialize;

use crate::client::{Client, Failure};

#[derive(Subcommand)]
pub enum Command {
    /// Virtual services.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Real servers of a service.
    #[command(subcommand)]
    Real(RealCmd),
    /// Local addresses (full-NAT source addresses) of a service.
    #[command(subcommand)]
    Laddr(LaddrCmd),
    /// Allow and deny lists of client addresses/prefixes of a service (DPVS's whitelist and
    /// blacklist); checked for new connections only, deny wins.
    #[command(subcommand)]
    Acl(AclCmd),
    /// Firewall marks: the VIP:ports that lead to a `fwmark/MARK` service (what an iptables
    /// MARK rule is to LVS).
    #[command(subcommand)]
    Mark(MarkCmd),
    /// Counters of services and reals, drops by reason, ports.
    Stats {
        /// Exact numbers instead of K/M/G.
        #[arg(long)]
        exact: bool,
    },
    /// Zero the counters.
    Zero {
        /// Only this service (tcp/VIP:PORT, udp/VIP:PORT, fwmark/MARK).
        service: Option<String>,
    },
    /// ipvsadm's timeouts (tcp, tcpfin, udp).
    #[command(subcommand)]
    Timeout(TimeoutCmd),
    /// Sessions.
    #[command(subcommand)]
    Conn(ConnCmd),
    /// Write the operator's rules as TOML (to FILE or standard output): as configured, not
    /// as health checking changed them.
    Save { file: Option<PathBuf> },
    /// Write the live rules as a keepalived.conf (to FILE or standard output) that
    /// `fnatd --keepalived` reads back as the same services; refuses, naming the rule and
    /// the setting, what keepalived.conf cannot express (firewall marks stay in fnatd's
    /// config as [[port_group]]).
    ExportKeepalived { file: Option<PathBuf> },
    /// Replace the live rules with a TOML file written by `save` ('-' reads standard input).
    Restore { file: PathBuf },
    /// Remove every service and every firewall mark.
    Flush,
    /// Daemon version, rules generation, counts.
    Status,
    /// Re-read the daemon's config file (services, local addresses, timeouts); a file that
    /// does not validate changes nothing.
    Reload,
    /// Health checkers (keepalived's TCP_CHECK, HTTP_GET, ...): each one's state, last
    /// result, reason, consecutive failures and last change; each checked service's quorum.
    Health,
    /// Stop announcing VIPs (all when none is given: the whole daemon): `status` shows
    /// announce = false and the announcement hook withdraws their routes. Forwarding goes
    /// on, new connections included (they keep arriving while the routers converge); waits
    /// until the VIPs' live sessions end or the timeout passes, then reports what remains.
    Drain {
        vips: Vec<Ipv4Addr>,
        /// Longest wait for the sessions to end, in seconds (0: do not wait).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Seconds to wait at least, while the routers converge (new connections may still
        /// arrive until then).
        #[arg(long, default_value_t = 3)]
        settle: u64,
    },
    /// End the drain of VIPs (every drain when none is given): they are announced again.
    Undrain { vips: Vec<Ipv4Addr> },
    /// The announcement hook: polls `status` and writes the announced VIPs as a BIRD
    /// include file of static /32 routes, running the reconfigure command whenever the set
    /// changes; fnatd not answering withdraws every VIP (docs/scale-out.md).
    BirdHook {
        /// The include file BIRD's static protocol reads.
        #[arg(long, default_value = "/var/lib/fnat/bird-vips.conf")]
        file: PathBuf,
        /// What makes BIRD read it again.
        #[arg(long, default_value = "birdc configure")]
        reconfigure: String,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// One round, then exit.
        #[arg(long)]
        once: bool,
    },
    /// VRRP instances (keepalived.conf's vrrp_instance on a port's kernel twin): state,
    /// effective priority, master's address, keepalived's advert counters and errors.
    Vrrp,
    /// Session sync daemons (master/backup, interface, syncid, group) and their counters:
    /// sent, received, installed, refreshed, rejected by reason, ring drops.
    Sync,
}

#[derive(Args)]
pub struct ServiceOpts {
    /// Scheduler: rr wrr lc wlc sed nq sh dh mh fo ovf lblc lblcr.
    #[arg(short, long)]
    scheduler: Option<String>,
    /// Scheduler flags, comma-separated (flag-1, sh-fallback, sh-port, mh-fallback, mh-port, …).
    #[arg(long)]
    sched_flags: Option<String>,
    /// Persistence timeout in seconds (ipvsadm -p).
    #[arg(short, long, num_args = 0..=1, default_missing_value = "360")]
    persistent: Option<u32>,
    /// Persistence netmask (ipvsadm -M).
    #[arg(short = 'M', long)]
    netmask: Option<Ipv4Addr>,
    /// One-packet scheduling (UDP).
    #[arg(long)]
    ops: bool,
    /// End a removed real server's sessions at once (IPVS's expire_nodest_conn).
    #[arg(long)]
    expire_on_removal: bool,
    /// Cap on new connections per second per client prefix: RATE[:BURST][/LEN], e.g.
    /// 100:200/24 (BURST defaults to RATE, LEN to 32); `edit --conn-rate 0` removes it.
    #[arg(long)]
    conn_rate: Option<String>,
    /// Proxy Protocol header toward full-NAT real servers: v1, v2, v1-insecure, v2-insecure
    /// or disable.
    #[arg(long)]
    proxy_protocol: Option<fnat_proto::model::ProxyProtocol>,
    /// TCP option 254 (TOA: client port and address) toward full-NAT real servers.
    #[arg(long)]
    toa: bool,
    /// SYN proxy (as DPVS's ipvsadm -j): SYN cookies answer the clients' SYNs.
    #[arg(short = 'j', long)]
    synproxy: bool,
}

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Add a service: SERVICE is tcp/VIP:PORT, udp/VIP:PORT, fwmark/MARK, or an SNAT match
    /// service match/proto=tcp|udp|icmp,src-range=A-B,dst-range=C-D,iif=PORT,oif=PORT
    /// (whose real servers, `real add SERVICE WAN-ADDR:0`, are the SNAT addresses).
    Add {
        service: String,
        #[command(flatten)]
        opts: ServiceOpts,
    },
    /// Change a service's scheduler or persistence (only what is given changes).
    Edit {
        service: String,
        #[command(flatten)]
        opts: ServiceOpts,
        /// Turn persistence off.
        #[arg(long, conflicts_with = "persistent")]
        no_persistence: bool,
    },
    /// Delete a service with its reals and local addresses.
    Del { service: String },
    /// List services (all, or one) as `ipvsadm -Ln` does.
    List { service: Option<String> },
}

#[derive(Args)]
pub struct RealOpts {
    #[arg(short, long)]
    weight: Option<u32>,
    /// Upper connection threshold (ipvsadm -x).
    #[arg(short = 'x', long)]
    upper_threshold: Option<u32>,
    /// Lower connection threshold (ipvsadm -y).
    #[arg(short = 'y', long)]
    lower_threshold: Option<u32>,
    /// Forwarding method: fullnat (the default of `real add`), nat (ipvsadm -m), dr (-g),
    /// tun (-i) or snat (-J: the real servers of a match/… service, which take it anyway).
    #[arg(short, long, value_parser = ["fullnat", "nat", "dr", "tun", "snat"])]
    method: Option<String>,
    /// With --method tun: ipip (default), gue or gre (ipvsadm --tun-type).
    #[arg(long, value_parser = ["ipip", "gue", "gre"])]
    tunnel_type: Option<String>,
    /// With --tunnel-type gue: the UDP port on the real server (ipvsadm --tun-port).
    #[arg(long)]
    tunnel_port: Option<u16>,
    /// With --tunnel-type gue or gre: checksum the tunnel (ipvsadm --tun-csum).
    #[arg(long)]
    tunnel_csum: bool,
}

impl RealOpts {
    /// Sets the method and tunnel settings given (the others stay as in `r`).
    fn apply_method(&self, r: &mut Real) {
        if let Some(m) = self
            .method
            .as_deref()
            .and_then(ForwardMethod::from_config_name)
        {
            r.forward = m;
            if m != ForwardMethod::Tunnel {
                r.tunnel = TunnelOptions::default();
            }
        }
        if let Some(t) = self.tunnel_type.as_deref().and_then(TunnelType::from_name) {
            r.tunnel.kind = t;
        }
        if let Some(p) = self.tunnel_port {
            r.tunnel.port = p;
        }
        if self.tunnel_csum {
            r.tunnel.csum = true;
        }
    }
}

#[derive(Subcommand)]
pub enum RealCmd {
    /// Add a real server RS:PORT to SERVICE (forwarded by full NAT unless --method says otherwise).
    Add {
        service: String,
        real: SocketAddrV4,
        #[command(flatten)]
        opts: RealOpts,
    },
    /// Change a real server's weight or thresholds (only what is given changes).
    Edit {
        service: String,
        real: SocketAddrV4,
        #[command(flatten)]
        opts: RealOpts,
    },
    /// Remove a real server.
    Del { service: String, real: SocketAddrV4 },
}

#[derive(Subcommand)]
pub enum LaddrCmd {
    /// Add a local address to SERVICE.
    Add {
        service: String,
        addr: Ipv4Addr,
        /// Device the address belongs to (DPVS's -F).
        #[arg(long)]
        device: Option<String>,
    },
    /// Remove a local address.
    Del { service: String, addr: Ipv4Addr },
    /// List local addresses (DPVS's `ipvsadm -G` layout).
    List { service: Option<String> },
}

#[derive(Subcommand)]
pub enum AclCmd {
    /// Add client addresses/prefixes (A.B.C.D or A.B.C.D/LEN) to SERVICE's allow or deny list.
    Add {
        service: String,
        list: String,
        #[arg(required = true)]
        prefixes: Vec<String>,
    },
    /// Remove client addresses/prefixes from the list.
    Del {
        service: String,
        list: String,
        #[arg(required = true)]
        prefixes: Vec<String>,
    },
    /// Show the lists (and the conn-rate cap) of SERVICE, or of every service.
    List { service: Option<String> },
}

#[derive(Subcommand)]
pub enum MarkCmd {
    /// Define MARK: PROTO (tcp or udp) traffic to VIP on PORTS (80,443 or 8000-8100) leads to
    /// the service fwmark/MARK.
    Add {
        mark: String,
        protocol: String,
        vip: String,
        ports: String,
    },
    /// Remove MARK (refused while a service uses it).
    Del { mark: u32 },
    /// List the marks.
    List,
}

#[derive(Subcommand)]
pub enum TimeoutCmd {
    /// Show the timeouts in force.
    Get,
    /// Set timeouts in seconds; those not given stay.
    Set {
        #[arg(long)]
        tcp: Option<u32>,
        #[arg(long)]
        tcpfin: Option<u32>,
        #[arg(long)]
        udp: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum ConnCmd {
    /// List sessions, optionally filtered.
    List {
        #[arg(long)]
        service: Option<String>,
        /// Real server RS:PORT.
        #[arg(long)]
        real: Option<SocketAddrV4>,
        /// Client address.
        #[arg(long)]
        client: Option<Ipv4Addr>,
        #[arg(long, default_value_t = 10000)]
        limit: usize,
    },
}

/// A service argument: tcp/VIP:PORT, udp/VIP:PORT, fwmark/MARK, or VIP:PORT for TCP.
fn service_arg(text: &str) -> Result<ServiceAddr, String> {
    if !text.contains('/') {
        if let Ok(sa) = text.parse::<SocketAddrV4>() {
            return Ok(ServiceAddr::tcp(*sa.ip(), sa.port()));
        }
    }
    text.parse()
}

/// What a native command produced: human text and the JSON form.
struct Output {
    human: String,
    json: serde_json::Value,
}

fn out(human: String, value: impl Serialize) -> Output {
    Output {
        human,
        json: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    }
}

fn fail(f: Failure) -> String {
    f.to_string()
}

fn apply(client: &Client, change: Change) -> Result<Output, String> {
    let applied: Applied = client.call(&Request::Change(change)).map_err(fail)?;
    Ok(out(String::new(), applied))
}

fn listing(client: &Client, service: Option<ServiceAddr>) -> Result<Listing, String> {
    client
        .call(&Request::Query(Query::List { service }))
        .map_err(fail)
}

fn persistence_of(opts: &ServiceOpts) -> Option<Persistence> {
    opts.persistent.map(|timeout| Persistence {
        timeout,
        netmask: opts.netmask.unwrap_or(Ipv4Addr::BROADCAST),
    })
}

/// Runs a native command; `Ok(text)` to print, `Err(message)` for stderr.
pub fn run(client: &Client, command: Command, json: bool) -> Result<String, String> {
    let output = execute(client, command)?;
    if json {
        Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&output.json).unwrap_or_default()
        ))
    } else {
        Ok(output.human)
    }
}

fn execute(client: &Client, command: Command) -> Result<Output, String> {
    match command {
        Command::Service(cmd) => service(client, cmd),
        Command::Real(cmd) => real(client, cmd),
        Command::Laddr(cmd) => laddr(client, cmd),
        Command::Acl(cmd) => acl(client, cmd),
        Command::Mark(MarkCmd::Add {
            mark,
            protocol,
            vip,
            ports,
        }) => apply(
            client,
            Change::MarkAdd {
                mark: Mark::from_words(&mark, &protocol, &vip, &ports)?,
            },
        ),
        Command::Mark(MarkCmd::Del { mark }) => apply(client, Change::MarkDel { mark }),
        Command::Mark(MarkCmd::List) => {
            let l = listing(client, None)?;
            let mut human = format!("{:<10} {:<5} {:<16} {}\n", "MARK", "PROTO", "VIP", "PORTS");
            for m in &l.rules.marks {
                let _ = writeln!(
                    human,
                    "{:<10} {:<5} {:<16} {}",
                    m.mark,
                    m.protocol.name(),
                    m.vip,
                    m.ports
                );
            }
            Ok(out(human, &l.rules.marks))
        }
        Command::Stats { exact } => {
            let l = listing(client, None)?;
            let fmt = ListFormat {
                stats: true,
                exact,
                ..ListFormat::default()
            };
            let mut human = format::list_all(&l, &fmt, &format::Numeric);
            human.push_str("\nDrops:\n");
            for (reason, n) in &l.drops {
                let _ = writeln!(human, "  {reason:<24} {n}");
            }
            human.push_str("\nClient address (Proxy Protocol, TOA):\n");
            for (event, n) in &l.client_address {
                let _ = writeln!(human, "  {event:<24} {n}");
            }
            if l.syn_proxy.values().any(|&n| n > 0) {
                human.push_str("\nSYN proxy:\n");
                for (event, n) in &l.syn_proxy {
                    let _ = writeln!(human, "  {event:<24} {n}");
                }
            }
            human.push_str("\nPorts:\n");
            for p in &l.ports {
                let _ = writeln!(
                    human,
                    "  {:<8} RX-packets: {:<14} TX-packets: {:<14} RX-dropped: {:<10} TX-dropped: {}",
                    p.name, p.rx_packets, p.tx_packets, p.rx_dropped, p.tx_dropped
                );
            }
            Ok(out(human, l))
        }
        Command::Zero { service } => {
            let service = service.as_deref().map(service_arg).transpose()?;
            let v: serde_json::Value = client
                .call(&Request::Query(Query::Zero { service }))
                .map_err(fail)?;
            Ok(out(String::new(), v))
        }
        Command::Timeout(TimeoutCmd::Get) => {
            let t: fnat_proto::model::IpvsTimeouts = client
                .call(&Request::Query(Query::TimeoutGet))
                .map_err(fail)?;
            Ok(out(format::timeouts(&t), t))
        }
        Command::Timeout(TimeoutCmd::Set { tcp, tcpfin, udp }) => {
            let nonzero = |v: Option<u32>, name: &str| match v {
                Some(0) => Err(format!("--{name} must be at least 1 second")),
                v => Ok(v.unwrap_or(0)),
            };
            apply(
                client,
                Change::TimeoutSet {
                    tcp: nonzero(tcp, "tcp")?,
                    tcp_fin: nonzero(tcpfin, "tcpfin")?,
                    udp: nonzero(udp, "udp")?,
                },
            )
        }
        Command::Conn(ConnCmd::List {
            service,
            real,
            client: client_ip,
            limit,
        }) => {
            let filter = ConnFilter {
                service: service.as_deref().map(service_arg).transpose()?,
                real,
                client: client_ip,
            };
            let entries: Vec<ConnEntry> = client
                .call(&Request::Query(Query::Connections {
                    filter,
                    limit: Some(limit),
                }))
                .map_err(fail)?;
            Ok(out(
                format::connections_dpvs(&entries, &ListFormat::default(), &format::Numeric),
                entries,
            ))
        }
        Command::Save { file } => {
            let l = listing(client, None)?;
            let rules = l.configured_rules();
            let text = fnat_proto::save::to_toml(rules)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                    Ok(out(String::new(), rules))
                }
                None => Ok(out(text, rules)),
            }
        }
        Command::ExportKeepalived { file } => {
            let l = listing(client, None)?;
            let text = fnat_keepalived::write::write(&l.rules).map_err(|e| e.to_string())?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                    Ok(out(String::new(), l.rules))
                }
                None => Ok(out(text, l.rules)),
            }
        }
        Command::Restore { file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| format!("reading standard input: {e}"))?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?
            };
            let rules: RuleSet = fnat_proto::save::from_toml(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            apply(client, Change::Replace { rules })
        }
        Command::Flush => apply(client, Change::Flush),
        Command::Reload => {
            let applied: Applied = client.call(&Request::Query(Query::Reload)).map_err(fail)?;
            Ok(out(
                format!("reloaded: rules generation {}\n", applied.generation),
                applied,
            ))
        }
        Command::Vrrp => {
            let v: fnat_proto::vrrp::VrrpListing =
                client.call(&Request::Query(Query::Vrrp)).map_err(fail)?;
            Ok(out(vrrp_text(&v), v))
        }
        Command::Sync => {
            let v: fnat_proto::sync::SyncStatus =
                client.call(&Request::Query(Query::Sync)).map_err(fail)?;
            Ok(out(sync_text(&v), v))
        }
        Command::Health => {
            let h: fnat_proto::health::HealthListing =
                client.call(&Request::Query(Query::Health)).map_err(fail)?;
            Ok(out(health_text(&h), h))
        }
        Command::Drain {
            vips,
            timeout,
            settle,
        } => {
            let r = crate::scaleout::drain(
                client,
                vips,
                std::time::Duration::from_secs(timeout),
                std::time::Duration::from_secs(settle),
            )?;
            Ok(out(crate::scaleout::drain_text(&r), r))
        }
        Command::Undrain { vips } => {
            let s: Status = client
                .call(&Request::Query(Query::Undrain { vips }))
                .map_err(fail)?;
            Ok(out(crate::scaleout::vips_text(&s), s))
        }
        Command::BirdHook {
            file,
            reconfigure,
            interval_ms,
            once,
        } => {
            crate::scaleout::bird_hook(
                client,
                &file,
                &reconfigure,
                std::time::Duration::from_millis(interval_ms.max(100)),
                once,
            )?;
            Ok(out(String::new(), serde_json::json!({})))
        }
        Command::Status => {
            let s: Status = client.call(&Request::Query(Query::Status)).map_err(fail)?;
            let mut human = format!(
                "fnatd {} (control protocol {})\nsocket: {}\nmode: {}\nrules generation: {}\nservices: {}\nreal servers: {}\nlocal addresses: {}\nuptime: {} s\nstate file: {}\n",
                s.daemon_version,
                s.protocol_version,
                s.socket,
                s.mode,
                s.generation,
                s.services,
                s.reals,
                s.local_addresses,
                s.uptime_s,
                s.state_file.as_deref().unwrap_or("none")
            );
            human.push_str(&crate::scaleout::vips_text(&s));
            Ok(out(human, s))
        }
    }
}

fn service(client: &Client, cmd: ServiceCmd) -> Result<Output, String> {
    match cmd {
        ServiceCmd::Add { service, opts } => {
            let addr = service_arg(&service)?;
            let scheduler = match &opts.scheduler {
                Some(s) => s.parse::<Scheduler>()?,
                None => Scheduler::Wlc,
            };
            let mut s = Service::new(addr, scheduler);
            if let Some(f) = &opts.sched_flags {
                s.sched_flags = SchedFlags::parse_list(f)?;
            }
            s.persistence = persistence_of(&opts);
            s.one_packet = opts.ops;
            s.expire_on_removal = opts.expire_on_removal;
            s.conn_rate = conn_rate_of(&opts)?.flatten();
            s.proxy_protocol = opts.proxy_protocol.unwrap_or_default();
            s.toa = opts.toa;
            s.synproxy = opts.synproxy;
            apply(client, Change::ServiceAdd { service: s })
        }
        ServiceCmd::Edit {
            service,
            opts,
            no_persistence,
        } => {
            let addr = service_arg(&service)?;
            let l = listing(client, Some(addr))?;
            let current = l.rules.service(&addr).ok_or("No such service")?;
            let mut attrs = ServiceAttrs::of(current);
            if let Some(s) = &opts.scheduler {
                attrs.scheduler = s.parse()?;
            }
            if let Some(f) = &opts.sched_flags {
                attrs.sched_flags = SchedFlags::parse_list(f)?;
            }
            if let Some(p) = persistence_of(&opts) {
                attrs.persistence = Some(p);
            } else if let (Some(mask), Some(p)) = (opts.netmask, attrs.persistence.as_mut()) {
                p.netmask = mask;
            }
            if no_persistence {
                attrs.persistence = None;
            }
            if opts.ops {
                attrs.one_packet = true;
            }
            if opts.expire_on_removal {
                attrs.expire_on_removal = true;
            }
            if let Some(r) = conn_rate_of(&opts)? {
                attrs.conn_rate = r;
            }
            if let Some(pp) = opts.proxy_protocol {
                attrs.proxy_protocol = pp;
            }
            if opts.toa {
                attrs.toa = true;
            }
            if opts.synproxy {
                attrs.synproxy = true;
            }
            let _ = DEFAULT_PERSISTENCE;
            apply(client, Change::ServiceEdit { service: attrs })
        }
        ServiceCmd::Del { service } => apply(
            client,
            Change::ServiceDel {
                service: service_arg(&service)?,
            },
        ),
        ServiceCmd::List { service } => {
            let addr = service.as_deref().map(service_arg).transpose()?;
            let l = listing(client, addr)?;
            let fmt = ListFormat::default();
            let human = match addr.and_then(|a| l.rules.service(&a)) {
                Some(s) => format::list_service(&l, s, &fmt, &format::Numeric),
                None => format::list_all(&l, &fmt, &format::Numeric),
            };
            Ok(out(human, l.rules))
        }
    }
}

fn real(client: &Client, cmd: RealCmd) -> Result<Output, String> {
    match cmd {
        RealCmd::Add {
            service,
            real,
            opts,
        } => {
            let mut r = Real::new(*real.ip(), real.port(), opts.weight.unwrap_or(1));
            r.upper_threshold = opts.upper_threshold.unwrap_or(0);
            r.lower_threshold = opts.lower_threshold.unwrap_or(0);
            opts.apply_method(&mut r);
            let service = service_arg(&service)?;
            // A match service's real servers are its SNAT addresses.
            if matches!(service, ServiceAddr::Match(_)) {
                r.forward = fnat_proto::model::ForwardMethod::Snat;
            }
            apply(client, Change::RealAdd { service, real: r })
        }
        RealCmd::Edit {
            service,
            real,
            opts,
        } => {
            let addr = service_arg(&service)?;
            let l = listing(client, Some(addr))?;
            let mut r = *l
                .rules
                .service(&addr)
                .and_then(|s| s.real(real))
                .ok_or("No such destination")?;
            if let Some(w) = opts.weight {
                r.weight = w;
            }
            if let Some(x) = opts.upper_threshold {
                r.upper_threshold = x;
            }
            if let Some(y) = opts.lower_threshold {
                r.lower_threshold = y;
            }
            opts.apply_method(&mut r);
            apply(
                client,
                Change::RealEdit {
                    service: addr,
                    real: r,
                },
            )
        }
        RealCmd::Del { service, real } => apply(
            client,
            Change::RealDel {
                service: service_arg(&service)?,
                addr: *real.ip(),
                port: real.port(),
            },
        ),
    }
}

/// `--conn-rate`: `Some(None)` for 0 (remove), `None` when not given.
fn conn_rate_of(opts: &ServiceOpts) -> Result<Option<Option<ConnRate>>, String> {
    match opts.conn_rate.as_deref() {
        None => Ok(None),
        Some("0") | Some("none") => Ok(Some(None)),
        Some(t) => t.parse().map(|r| Some(Some(r))),
    }
}

fn acl(client: &Client, cmd: AclCmd) -> Result<Output, String> {
    let list_of = |l: &str| match l {
        "allow" | "whitelist" | "whtlst" => Ok(AclList::Allow),
        "deny" | "blacklist" | "blklst" => Ok(AclList::Deny),
        _ => Err(format!("'{l}' is not a list: allow or deny")),
    };
    let prefixes_of = |p: &[String]| {
        p.iter()
            .map(|t| t.parse::<ClientPrefix>())
            .collect::<Result<Vec<_>, String>>()
    };
    match cmd {
        AclCmd::Add {
            service,
            list,
            prefixes,
        } => apply(
            client,
            Change::AclAdd {
                service: service_arg(&service)?,
                list: list_of(&list)?,
                prefixes: prefixes_of(&prefixes)?,
            },
        ),
        AclCmd::Del {
            service,
            list,
            prefixes,
        } => apply(
            client,
            Change::AclDel {
                service: service_arg(&service)?,
                list: list_of(&list)?,
                prefixes: prefixes_of(&prefixes)?,
            },
        ),
        AclCmd::List { service } => {
            let addr = service.as_deref().map(service_arg).transpose()?;
            let l = listing(client, addr)?;
            let mut human = String::new();
            for s in &l.rules.services {
                let _ = writeln!(
                    human,
                    "{}  allow {}  deny {}  conn-rate {}",
                    s.addr,
                    s.allow.len(),
                    s.deny.len(),
                    s.conn_rate.map_or("none".to_string(), |r| r.to_string())
                );
                for p in &s.allow {
                    let _ = writeln!(human, "  allow {p}");
                }
                for p in &s.deny {
                    let _ = writeln!(human, "  deny  {p}");
                }
            }
            let json: Vec<_> = l
                .rules
                .services
                .iter()
                .map(|s| {
                    serde_json::json!({"service": s.addr, "allow": s.allow, "deny": s.deny,
                        "conn_rate": s.conn_rate})
                })
                .collect();
            Ok(out(human, json))
        }
    }
}

fn laddr(client: &Client, cmd: LaddrCmd) -> Result<Output, String> {
    match cmd {
        LaddrCmd::Add {
            service,
            addr,
            device,
        } => apply(
            client,
            Change::LaddrAdd {
                service: service_arg(&service)?,
                laddr: LocalAddress { addr, device },
            },
        ),
        LaddrCmd::Del { service, addr } => apply(
            client,
            Change::LaddrDel {
                service: service_arg(&service)?,
                addr,
            },
        ),
        LaddrCmd::List { service } => {
            let addr = service.as_deref().map(service_arg).transpose()?;
            let l = listing(client, addr)?;
            let human = format::local_addresses(l.rules.services.iter(), &l.local_addrs);
            let json: Vec<_> = l
                .rules
                .services
                .iter()
                .map(|s| serde_json::json!({"service": s.addr, "local_addresses": s.local_addresses}))
                .collect();
            Ok(out(human, json))
        }
    }
}

/// `fnatctl sync`: one line per daemon, then the counters.
fn sync_text(v: &fnat_proto::sync::SyncStatus) -> String {
    let mut t = String::new();
    if v.daemons.is_empty() {
        t.push_str("no sync daemon running\n");
    }
    for d in &v.daemons {
        let _ = writeln!(
            t,
            "{} sync daemon on {} via {} (syncid={}, maxlen={}, group={}:{}, ttl={}){}: {}",
            d.role.name(),
            d.daemon.interface,
            d.twin,
            d.daemon.syncid,
            d.maxlen,
            d.daemon.group,
            d.daemon.port,
            d.daemon.ttl,
            d.daemon
                .vrrp_instance
                .as_ref()
                .map(|i| format!(" following {i}"))
                .unwrap_or_default(),
            if d.active { "active" } else { "waiting" }
        );
        if let Some(e) = &d.error {
            let _ = writeln!(t, "  not running: {e}");
        }
    }
    for (k, n) in &v.counters {
        let _ = writeln!(t, "  {k:<32} {n}");
    }
    t
}

/// `fnatctl vrrp`: one block per instance, keepalived's counter names.
fn vrrp_text(v: &fnat_proto::vrrp::VrrpListing) -> String {
    if v.instances.is_empty() {
        return "no VRRP instances running\n".into();
    }
    let mut t = String::new();
    for i in &v.instances {
        let _ = writeln!(
            t,
            "{} (vrid {}) on {} via {}: {} priority {} (effective {}) master {}",
            i.name,
            i.virtual_router_id,
            i.interface,
            i.twin,
            i.state,
            i.priority,
            i.effective_priority,
            i.master.as_deref().unwrap_or("-")
        );
        let _ = writeln!(t, "  virtual_ipaddress: {}", i.virtual_ipaddress.join(" "));
        if let Some(e) = &i.error {
            let _ = writeln!(t, "  not running: {e}");
        }
        let counters: Vec<String> = i.counters.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(t, "  {}", counters.join(", "));
    }
    t
}

/// `fnatctl health` as a table: the services' quorum, then one line per checker.
fn health_text(h: &fnat_proto::health::HealthListing) -> String {
    let mut t = String::new();
    if h.checkers.is_empty() && h.services.is_empty() {
        return "no health checks configured\n".into();
    }
    let _ = writeln!(
        t,
        "{:<24} {:<7} {:>6} {:>10} {:>8}",
        "SERVICE", "QUORUM", "NEEDED", "ALIVE", "SORRY"
    );
    for s in &h.services {
        let _ = writeln!(
            t,
            "{:<24} {:<7} {:>6} {:>10} {:>8}",
            s.service,
            if s.quorum_up { "up" } else { "lost" },
            s.quorum,
            s.alive_weight,
            if s.sorry_in_use { "in use" } else { "-" }
        );
    }
    t.push('\n');
    let _ = writeln!(
        t,
        "{:<24} {:<21} {:<10} {:<21} {:<5} {:<7} {:>5} {:>6} {:<10} REASON",
        "SERVICE", "REAL", "CHECKER", "TARGET", "STATE", "LAST", "FAILS", "WEIGHT", "SINCE"
    );
    for c in &h.checkers {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let since = c.last_transition.map_or("-".to_string(), |t| {
            format!("{}s ago", now.saturating_sub(t))
        });
        let weight = c.live_weight.map_or("out".to_string(), |w| w.to_string());
        let _ = writeln!(
            t,
            "{:<24} {:<21} {:<10} {:<21} {:<5} {:<7} {:>5} {:>6} {:<10} {}",
            c.service,
            c.real,
            c.checker,
            c.target,
            c.state,
            c.last_result,
            c.consecutive_failures,
            weight,
            since,
            c.reason
        );
    }
    t
}
