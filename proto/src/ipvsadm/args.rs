//! ipvsadm's command line → a typed command. Accepts what ipvsadm (and DPVS's ipvsadm)
//! accept: short options clustered (`-Ln`, `-lnc`) or with attached values (`-tVIP:80`), long
//! options with `=` or a separate value, `-p` with an optional timeout. Errors are ipvsadm's
//! messages; they exit with 2 as ipvsadm's `fail(2, …)` does.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::edit::{Change, ServiceAttrs};
use crate::model::{
    AclList, ClientPrefix, ConnRate, ForwardMethod, LocalAddress, Mark, Persistence, Protocol,
    ProxyProtocol, Real, SchedFlags, Scheduler, Service, ServiceAddr, TunnelOptions, TunnelType,
    DEFAULT_PERSISTENCE, DEFAULT_SCHEDULER, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WEIGHT,
};

/// How a listing is printed (ipvsadm's FMT_* flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFormat {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub exact: bool,
    pub nosort: bool,
    /// `--tun-info`: the tunnel column of tunnelled real servers.
    pub tun_info: bool,
}

/// What `-L` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListWhat {
    Services,
    Connections,
    Timeout,
    /// `--daemon`: the connection sync daemons running.
    Daemon,
}

/// The options of `-E`: only those given change (as DPVS's ipvsadm does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEdit {
    pub addr: ServiceAddr,
    pub scheduler: Option<Scheduler>,
    pub sched_flags: Option<SchedFlags>,
    pub persistence: Option<Persistence>,
    pub one_packet: bool,
    /// `--expire-on-removal` (fnat): sets it; absent, the service keeps its own.
    pub expire_on_removal: bool,
    /// `--conn-rate RATE[:BURST][/LEN]` (fnat) sets the cap, `--conn-rate 0` removes it;
    /// absent, the service keeps its own.
    pub conn_rate: Option<Option<ConnRate>>,
    /// `--proxy-protocol`: sets it; absent, the service keeps its own.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `--toa`: sets it; absent, the service keeps its own.
    pub toa: bool,
    /// `-j/--synproxy`: sets it; absent, the service keeps its own.
    pub synproxy: bool,
}

impl ServiceEdit {
    pub fn merge(&self, current: &Service) -> ServiceAttrs {
        let mut attrs = ServiceAttrs::of(current);
        if let Some(s) = self.scheduler {
            attrs.scheduler = s;
        }
        if let Some(f) = self.sched_flags {
            attrs.sched_flags = f;
        }
        if self.persistence.is_some() {
            attrs.persistence = self.persistence;
        }
        if self.one_packet {
            attrs.one_packet = true;
        }
        if self.expire_on_removal {
            attrs.expire_on_removal = true;
        }
        if let Some(r) = self.conn_rate {
            attrs.conn_rate = r;
        }
        if let Some(pp) = self.proxy_protocol {
            attrs.proxy_protocol = pp;
        }
        if self.toa {
            attrs.toa = true;
        }
        if self.synproxy {
            attrs.synproxy = true;
        }
        attrs
    }
}

/// The options of `-e`: only those given change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealEdit {
    pub service: ServiceAddr,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: Option<u32>,
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<u32>,
    pub forward: Option<ForwardMethod>,
    /// `--tun-*` given (only with `-i`).
    pub tunnel: Option<TunnelOptions>,
}

impl RealEdit {
    pub fn merge(&self, current: &Real) -> Real {
        let forward = self.forward.unwrap_or(current.forward);
        let tunnel = match forward {
            ForwardMethod::Tunnel => self.tunnel.unwrap_or(if current.forward == forward {
                current.tunnel
            } else {
                TunnelOptions::default()
            }),
            _ => TunnelOptions::default(),
        };
        Real {
            addr: self.addr,
            port: self.port,
            weight: self.weight.unwrap_or(current.weight),
            upper_threshold: self.upper_threshold.unwrap_or(current.upper_threshold),
            lower_threshold: self.lower_threshold.unwrap_or(current.lower_threshold),
            forward,
            tunnel,
        }
    }
    pub fn key(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, self.port)
    }
}

/// A parsed ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsCommand {
    /// -A -D -a -d -C --set --add-laddr --del-laddr: one change for the daemon.
    Change(Change),
    /// -E
    EditService(ServiceEdit),
    /// -e
    EditReal(RealEdit),
    /// -L / -l (and no arguments at all)
    List {
        service: Option<ServiceAddr>,
        what: ListWhat,
        format: ListFormat,
    },
    /// -S
    Save {
        format: ListFormat,
    },
    /// -R: rules from standard input.
    Restore,
    /// -Z
    Zero {
        service: Option<ServiceAddr>,
    },
    /// --get-laddr / -G
    GetLaddr {
        service: Option<ServiceAddr>,
    },
    /// --start-daemon master|backup
    StartDaemon {
        role: crate::sync::SyncRole,
        daemon: crate::sync::SyncDaemon,
    },
    /// --stop-daemon master|backup
    StopDaemon {
        role: crate::sync::SyncRole,
    },
    Help,
    Version,
}

/// ipvsadm's daemon state argument.
fn daemon_role(v: Option<&str>) -> Result<crate::sync::SyncRole, ArgError> {
    match v {
        Some("master") => Ok(crate::sync::SyncRole::Master),
        Some("backup") => Ok(crate::sync::SyncRole::Backup),
        _ => Err(fail("illegal start-daemon parameter specified")),
    }
}

/// A command line ipvsadm would refuse: the message and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    pub message: String,
    pub exit_code: i32,
}

fn fail(message: impl Into<String>) -> ArgError {
    ArgError {
        message: message.into(),
        exit_code: 2,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    AddMark,
    DelMark,
    /// DPVS's `-U`/`--add-blklst` (fnat: the deny list) and the rest of the family.
    AddBlklst,
    DelBlklst,
    AddWhtlst,
    DelWhtlst,
    Help,
    Version,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
            Cmd::AddMark => "add-mark",
            Cmd::DelMark => "del-mark",
            Cmd::AddBlklst => "add-blklst",
            Cmd::DelBlklst => "del-blklst",
            Cmd::AddWhtlst => "add-whtlst",
            Cmd::DelWhtlst => "del-whtlst",
            Cmd::Help => "help",
            Cmd::Version => "version",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Opt {
    Tcp,
    Udp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    Real,
    Weight,
    UThreshold,
    LThreshold,
    FullNat,
    SchedFlags,
    Masq,
    Gatewaying,
    Ipip,
    Numeric,
    Connection,
    Stats,
    Rate,
    Exact,
    Thresholds,
    PersistentConn,
    Sort,
    NoSort,
    Timeout,
    Ops,
    ExpireOnRemoval,
    ProxyProtocol,
    Toa,
    SynProxy,
    Laddr,
    Ifname,
    Daemon,
    Ipv6,
    McastInterface,
    SyncId,
    SyncMaxlen,
    McastGroup,
    McastPort,
    McastTtl,
    /// DPVS's `-H`/`--match`: a match service (SNAT).
    Match,
    /// DPVS's `-J`/`--snat`: the real server is an SNAT address.
    Snat,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    TunInfo,
    /// DPVS's `-k`/`--blklst ADDR` and `-2`/`--whtlst ADDR`.
    Blklst,
    Whtlst,
    /// fnat's `--conn-rate RATE[:BURST][/LEN]`.
    ConnRate,
}

impl Opt {
    /// ipvsadm's names of options in its messages.
    fn name(self) -> &'static str {
        match self {
            Opt::Tcp | Opt::Udp | Opt::Fwmark | Opt::Match => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Real => "real-server",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::FullNat | Opt::Masq | Opt::Gatewaying | Opt::Ipip | Opt::Snat => {
                "forwarding-method"
            }
            Opt::SchedFlags => "sched-flags",
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Exact => "exact",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::Sort => "sort",
            Opt::NoSort => "nosort",
            Opt::Timeout => "timeout",
            Opt::Ops => "ops",
            Opt::ExpireOnRemoval => "expire-on-removal",
            Opt::ProxyProtocol => "proxy-protocol",
            Opt::Toa => "toa",
            Opt::SynProxy => "synproxy",
            Opt::Laddr => "laddr",
            Opt::Ifname => "ifname",
            Opt::Daemon => "daemon",
            Opt::Ipv6 => "ipv6",
            Opt::McastInterface => "mcast-interface",
            Opt::SyncId => "syncid",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNocsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemcsum => "tun-remcsum",
            Opt::TunInfo => "tun-info",
            Opt::Blklst => "blklst",
            Opt::Whtlst => "whtlst",
            Opt::ConnRate => "conn-rate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    None,
    Required,
    /// `-p [timeout]`: takes the next word only when it is a number.
    OptionalNumber,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Cmd(Cmd),
    Opt(Opt),
}

fn short(c: char) -> Option<(Item, Value)> {
    use Item::{Cmd as C, Opt as O};
    Some(match c {
        'A' => (C(Cmd::Add), Value::None),
        'E' => (C(Cmd::Edit), Value::None),
        'D' => (C(Cmd::Del), Value::None),
        'C' => (C(Cmd::Flush), Value::None),
        'L' | 'l' => (C(Cmd::List), Value::None),
        'a' => (C(Cmd::AddDest), Value::None),
        'd' => (C(Cmd::DelDest), Value::None),
        'e' => (C(Cmd::EditDest), Value::None),
        'R' => (C(Cmd::Restore), Value::None),
        'S' => (C(Cmd::Save), Value::None),
        'Z' => (C(Cmd::Zero), Value::None),
        'P' => (C(Cmd::AddLaddr), Value::None),
        'Q' => (C(Cmd::DelLaddr), Value::None),
        'G' => (C(Cmd::GetLaddr), Value::None),
        'U' => (C(Cmd::AddBlklst), Value::None),
        'V' => (C(Cmd::DelBlklst), Value::None),
        'O' => (C(Cmd::AddWhtlst), Value::None),
        'Y' => (C(Cmd::DelWhtlst), Value::None),
        'k' => (O(Opt::Blklst), Value::Required),
        '2' => (O(Opt::Whtlst), Value::Required),
        'h' => (C(Cmd::Help), Value::None),
        'v' => (C(Cmd::Version), Value::None),
        't' => (O(Opt::Tcp), Value::Required),
        'u' => (O(Opt::Udp), Value::Required),
        'f' => (O(Opt::Fwmark), Value::Required),
        'H' => (O(Opt::Match), Value::Required),
        'J' => (O(Opt::Snat), Value::None),
        'j' => (O(Opt::SynProxy), Value::None),
        's' => (O(Opt::Scheduler), Value::Required),
        'p' => (O(Opt::Persistent), Value::OptionalNumber),
        'M' => (O(Opt::Netmask), Value::Required),
        'r' => (O(Opt::Real), Value::Required),
        'w' => (O(Opt::Weight), Value::Required),
        'x' => (O(Opt::UThreshold), Value::Required),
        'y' => (O(Opt::LThreshold), Value::Required),
        'b' => (O(Opt::FullNat), Value::None),
        'm' => (O(Opt::Masq), Value::None),
        'g' => (O(Opt::Gatewaying), Value::None),
        'i' => (O(Opt::Ipip), Value::None),
        'n' => (O(Opt::Numeric), Value::None),
        'c' => (O(Opt::Connection), Value::None),
        'X' => (O(Opt::Exact), Value::None),
        'o' => (O(Opt::Ops), Value::None),
        'z' => (O(Opt::Laddr), Value::Required),
        'F' => (O(Opt::Ifname), Value::Required),
        '6' => (O(Opt::Ipv6), Value::None),
        _ => return None,
    })
}

fn long(name: &str) -> Option<(Item, Value)> {
    use Item::{Cmd as C, Opt as O};
    Some(match name {
        "add-service" => (C(Cmd::Add), Value::None),
        "edit-service" => (C(Cmd::Edit), Value::None),
        "delete-service" => (C(Cmd::Del), Value::None),
        "clear" => (C(Cmd::Flush), Value::None),
        "list" => (C(Cmd::List), Value::None),
        "add-server" => (C(Cmd::AddDest), Value::None),
        "delete-server" => (C(Cmd::DelDest), Value::None),
        "edit-server" => (C(Cmd::EditDest), Value::None),
        "set" => (C(Cmd::Set), Value::None),
        "start-daemon" => (C(Cmd::StartDaemon), Value::Required),
        "stop-daemon" => (C(Cmd::StopDaemon), Value::Required),
        "restore" => (C(Cmd::Restore), Value::None),
        "save" => (C(Cmd::Save), Value::None),
        "zero" => (C(Cmd::Zero), Value::None),
        "add-laddr" => (C(Cmd::AddLaddr), Value::None),
        "del-laddr" => (C(Cmd::DelLaddr), Value::None),
        "get-laddr" => (C(Cmd::GetLaddr), Value::None),
        "add-mark" => (C(Cmd::AddMark), Value::None),
        "del-mark" => (C(Cmd::DelMark), Value::None),
        "add-blklst" => (C(Cmd::AddBlklst), Value::None),
        "del-blklst" => (C(Cmd::DelBlklst), Value::None),
        "add-whtlst" => (C(Cmd::AddWhtlst), Value::None),
        "del-whtlst" => (C(Cmd::DelWhtlst), Value::None),
        "blklst" => (O(Opt::Blklst), Value::Required),
        "whtlst" => (O(Opt::Whtlst), Value::Required),
        "conn-rate" => (O(Opt::ConnRate), Value::Required),
        "help" => (C(Cmd::Help), Value::None),
        "version" => (C(Cmd::Version), Value::None),
        "tcp-service" => (O(Opt::Tcp), Value::Required),
        "udp-service" => (O(Opt::Udp), Value::Required),
        "fwmark-service" => (O(Opt::Fwmark), Value::Required),
        "match" => (O(Opt::Match), Value::Required),
        "snat" => (O(Opt::Snat), Value::None),
        "scheduler" => (O(Opt::Scheduler), Value::Required),
        "persistent" => (O(Opt::Persistent), Value::OptionalNumber),
        "netmask" => (O(Opt::Netmask), Value::Required),
        "real-server" => (O(Opt::Real), Value::Required),
        "weight" => (O(Opt::Weight), Value::Required),
        "u-threshold" => (O(Opt::UThreshold), Value::Required),
        "l-threshold" => (O(Opt::LThreshold), Value::Required),
        "fullnat" => (O(Opt::FullNat), Value::None),
        "sched-flags" => (O(Opt::SchedFlags), Value::Required),
        "masquerading" => (O(Opt::Masq), Value::None),
        "gatewaying" => (O(Opt::Gatewaying), Value::None),
        "ipip" => (O(Opt::Ipip), Value::None),
        "numeric" => (O(Opt::Numeric), Value::None),
        "connection" => (O(Opt::Connection), Value::None),
        "stats" => (O(Opt::Stats), Value::None),
        "rate" => (O(Opt::Rate), Value::None),
        "exact" => (O(Opt::Exact), Value::None),
        "thresholds" => (O(Opt::Thresholds), Value::None),
        "persistent-conn" => (O(Opt::PersistentConn), Value::None),
        "sort" => (O(Opt::Sort), Value::None),
        "nosort" => (O(Opt::NoSort), Value::None),
        "timeout" => (O(Opt::Timeout), Value::None),
        "ops" => (O(Opt::Ops), Value::None),
        "expire-on-removal" => (O(Opt::ExpireOnRemoval), Value::None),
        "proxy-protocol" => (O(Opt::ProxyProtocol), Value::Required),
        "toa" => (O(Opt::Toa), Value::None),
        "synproxy" => (O(Opt::SynProxy), Value::None),
        "laddr" => (O(Opt::Laddr), Value::Required),
        "ifname" => (O(Opt::Ifname), Value::Required),
        "daemon" => (O(Opt::Daemon), Value::None),
        "mcast-interface" => (O(Opt::McastInterface), Value::Required),
        "syncid" => (O(Opt::SyncId), Value::Required),
        "sync-maxlen" => (O(Opt::SyncMaxlen), Value::Required),
        "mcast-group" => (O(Opt::McastGroup), Value::Required),
        "mcast-port" => (O(Opt::McastPort), Value::Required),
        "mcast-ttl" => (O(Opt::McastTtl), Value::Required),
        "tun-type" => (O(Opt::TunType), Value::Required),
        "tun-port" => (O(Opt::TunPort), Value::Required),
        "tun-nocsum" => (O(Opt::TunNocsum), Value::None),
        "tun-csum" => (O(Opt::TunCsum), Value::None),
        "tun-remcsum" => (O(Opt::TunRemcsum), Value::None),
        "tun-info" => (O(Opt::TunInfo), Value::None),
        _ => return None,
    })
}

/// Options as given, before they are checked against the command.
#[derive(Default)]
struct Given {
    cmd: Option<Cmd>,
    /// The value of a command that takes one (`--start-daemon master`).
    cmd_value: Option<String>,
    opts: Vec<(Opt, Option<String>)>,
    positional: Vec<String>,
}

impl Given {
    fn set_cmd(&mut self, cmd: Cmd) -> Result<(), ArgError> {
        if self.cmd.is_some() {
            return Err(fail("multiple commands specified"));
        }
        self.cmd = Some(cmd);
        Ok(())
    }
    fn add_opt(&mut self, opt: Opt, value: Option<String>) -> Result<(), ArgError> {
        let same_group = |o: Opt| o.name() == opt.name();
        if self.opts.iter().any(|(o, _)| same_group(*o)) && opt != Opt::Sort {
            return Err(fail(format!("multiple '{}' options specified", opt.name())));
        }
        self.opts.push((opt, value));
        Ok(())
    }
    fn has(&self, opt: Opt) -> bool {
        self.opts.iter().any(|(o, _)| *o == opt)
    }
    fn value(&self, opt: Opt) -> Option<&str> {
        self.opts
            .iter()
            .find(|(o, _)| *o == opt)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A comma-separated list of ipvsadm's scheduler flag names.
fn looks_like_sched_flags(s: &str) -> bool {
    const NAMES: [&str; 7] = [
        "flag-1",
        "flag-2",
        "flag-3",
        "sh-fallback",
        "sh-port",
        "mh-fallback",
        "mh-port",
    ];
    !s.is_empty() && s.split(',').all(|f| NAMES.contains(&f))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn tokenize(args: &[String]) -> Result<Given, ArgError> {
    let mut given = Given::default();
    let mut i = 0;
    let record = |given: &mut Given, item: Item, value: Option<String>| match item {
        Item::Cmd(c) => {
            given.cmd_value = value;
            given.set_cmd(c)
        }
        Item::Opt(o) => given.add_opt(o, value),
    };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(body) = arg.strip_prefix("--") {
            if body.is_empty() {
                given.positional.extend(args[i..].iter().cloned());
                break;
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (item, kind) = long(name).ok_or_else(|| fail(format!("invalid option `{arg}'")))?;
            let value = match kind {
                Value::None => {
                    if inline.is_some() {
                        return Err(fail(format!("option `--{name}' takes no value")));
                    }
                    None
                }
                Value::Required => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => return Err(fail(format!("--{name}: missing argument"))),
                },
                Value::OptionalNumber => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() && is_number(&args[i]) => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => None,
                },
            };
            record(&mut given, item, value)?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let (item, kind) =
                    short(c).ok_or_else(|| fail(format!("invalid option `-{c}'")))?;
                let rest: String = chars[j..].iter().collect();
                // `-b` is full-NAT in DPVS's syntax and takes nothing; in ipvsadm's it is
                // `--sched-flags FLAGS`. A flags list right after it (`-b sh-port`,
                // `-bsh-port`) can only mean the latter, so both syntaxes work.
                if c == 'b' {
                    let attached = !rest.is_empty() && looks_like_sched_flags(&rest);
                    let next =
                        rest.is_empty() && args.get(i).is_some_and(|a| looks_like_sched_flags(a));
                    if attached || next {
                        let flags = if attached {
                            j = chars.len();
                            rest
                        } else {
                            i += 1;
                            args[i - 1].clone()
                        };
                        given.add_opt(Opt::SchedFlags, Some(flags))?;
                        continue;
                    }
                }
                let value = match kind {
                    Value::None => None,
                    Value::Required => {
                        j = chars.len();
                        if !rest.is_empty() {
                            Some(rest)
                        } else if i < args.len() {
                            i += 1;
                            Some(args[i - 1].clone())
                        } else {
                            return Err(fail(format!("-{c}: missing argument")));
                        }
                    }
                    Value::OptionalNumber => {
                        if !rest.is_empty() {
                            j = chars.len();
                            Some(rest)
                        } else if i < args.len() && is_number(&args[i]) {
                            i += 1;
                            Some(args[i - 1].clone())
                        } else {
                            None
                        }
                    }
                };
                record(&mut given, item, value)?;
            }
        } else {
            given.positional.push(arg.clone());
        }
    }
    Ok(given)
}

/// Turns the names ipvsadm accepts on its command line into numbers: host names
/// (`host_to_addr`, gethostbyname) and service names (`service_to_port`, getservbyname for
/// the service's protocol). This crate resolves nothing itself; fnatctl passes the system's.
pub trait Lookup {
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr>;
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16>;
}

/// Numbers only: every name is refused (what `fnatd --rules FILE` uses).
pub struct NoLookup;

impl Lookup for NoLookup {
    fn host_addr(&self, _name: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_port(&self, _name: &str, _protocol: Protocol) -> Option<u16> {
        None
    }
}

/// Parses `ADDR[:PORT]` as ipvsadm's `parse_service` does: a dotted address or a host name,
/// a port number or a service name of `protocol`; `None` port when absent. A bare number
/// is no address.
fn parse_addr_port(
    text: &str,
    protocol: Protocol,
    lookup: &dyn Lookup,
) -> Option<(Ipv4Addr, Option<u16>)> {
    if text.is_empty() || is_number(text) {
        return None;
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let addr = match host.parse() {
        Ok(a) => a,
        Err(_) if !host.is_empty() => lookup.host_addr(host)?,
        Err(_) => return None,
    };
    let port = match port {
        None => None,
        Some(p) if is_number(p) => Some(p.parse().ok()?),
        Some(p) if !p.is_empty() => Some(lookup.service_port(p, protocol)?),
        Some(_) => return None,
    };
    Some((addr, port))
}

fn number(text: &str, max: u32, message: &str) -> Result<u32, ArgError> {
    if !is_number(text) {
        return Err(fail(message));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= u64::from(max) => Ok(n as u32),
        _ => Err(fail(message)),
    }
}

fn service_of(given: &Given, lookup: &dyn Lookup) -> Result<Option<ServiceAddr>, ArgError> {
    let inet = |protocol, text: &str| -> Result<ServiceAddr, ArgError> {
        let (vip, port) = parse_addr_port(text, protocol, lookup)
            .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
        Ok(ServiceAddr::Inet {
            protocol,
            vip,
            port: port.unwrap_or(0),
        })
    };
    if let Some(v) = given.value(Opt::Tcp) {
        return inet(Protocol::Tcp, v).map(Some);
    }
    if let Some(v) = given.value(Opt::Udp) {
        return inet(Protocol::Udp, v).map(Some);
    }
    if let Some(v) = given.value(Opt::Fwmark) {
        return match v.parse::<u32>() {
            Ok(m) if m > 0 => Ok(Some(ServiceAddr::Fwmark(m))),
            _ => Err(fail(format!("invalid fwmark value `{v}' specified"))),
        };
    }
    if let Some(v) = given.value(Opt::Match) {
        return v
            .parse()
            .map(|m| Some(ServiceAddr::Match(m)))
            .map_err(|e: String| fail(format!("invalid match service specified: {e}")));
    }
    Ok(None)
}

fn forward_of(given: &Given) -> Result<Option<ForwardMethod>, ArgError> {
    Ok(if given.has(Opt::Snat) {
        Some(ForwardMethod::Snat)
    } else if given.has(Opt::Masq) {
        Some(ForwardMethod::Masq)
    } else if given.has(Opt::Gatewaying) {
        Some(ForwardMethod::Route)
    } else if given.has(Opt::Ipip) {
        Some(ForwardMethod::Tunnel)
    } else if given.has(Opt::FullNat) {
        Some(ForwardMethod::FullNat)
    } else {
        None
    })
}

/// The `--tun-*` options, checked as kernel ipvsadm checks them: only with `-i`; `--tun-port`
/// required for GUE and refused otherwise; one checksum option at most, none for IPIP.
fn tunnel_of(
    given: &Given,
    forward: Option<ForwardMethod>,
) -> Result<Option<TunnelOptions>, ArgError> {
    let tun_opts = [
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNocsum,
        Opt::TunCsum,
        Opt::TunRemcsum,
    ];
    let any = tun_opts.iter().any(|&o| given.has(o));
    if forward != Some(ForwardMethod::Tunnel) {
        if any {
            return Err(fail("Tunnel options conflict with forward method"));
        }
        return Ok(None);
    }
    let kind = match given.value(Opt::TunType) {
        None => TunnelType::Ipip,
        Some(t) => TunnelType::from_name(t).ok_or_else(|| {
            fail(format!(
                "illegal tunnel type `{t}' specified (ipip, gue or gre)"
            ))
        })?,
    };
    if given.has(Opt::TunRemcsum) {
        return Err(fail(
            "tunnel remote checksum (--tun-remcsum) is not supported",
        ));
    }
    let port = match given.value(Opt::TunPort) {
        None => 0,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(fail("illegal tunnel port specified")),
        },
    };
    let name = kind.name();
    if kind == TunnelType::Gue && port == 0 {
        return Err(fail(format!(
            "You need to supply the 'tun-port' option for the '{name}' tunnel type"
        )));
    }
    if kind != TunnelType::Gue && given.has(Opt::TunPort) {
        return Err(fail(format!(
            "Illegal 'tun-port' option with the '{name}' tunnel type"
        )));
    }
    if given.has(Opt::TunNocsum) && given.has(Opt::TunCsum) {
        return Err(fail(format!(
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the '{name}' tunnel type"
        )));
    }
    if kind == TunnelType::Ipip {
        for o in [Opt::TunNocsum, Opt::TunCsum] {
            if given.has(o) {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{name}' tunnel type",
                    o.name()
                )));
            }
        }
    }
    if !any && forward == Some(ForwardMethod::Tunnel) {
        return Ok(Some(TunnelOptions::default()));
    }
    Ok(Some(TunnelOptions {
        kind,
        port,
        csum: given.has(Opt::TunCsum),
    }))
}

/// The method of a real server added without one: SNAT on a match service (its reals are
/// its WAN addresses), ipvsadm's gatewaying (`-g`) elsewhere.
fn default_forward(svc: &ServiceAddr) -> ForwardMethod {
    match svc {
        ServiceAddr::Match(_) => ForwardMethod::Snat,
        _ => ForwardMethod::Route,
    }
}

/// Which options each command accepts (beyond the ones it requires).
fn allowed(cmd: Cmd) -> &'static [Opt] {
    use Opt::*;
    match cmd {
        Cmd::Add | Cmd::Edit => &[
            Tcp,
            Udp,
            Fwmark,
            Match,
            Scheduler,
            Persistent,
            Netmask,
            SchedFlags,
            Ops,
            ExpireOnRemoval,
            ConnRate,
            ProxyProtocol,
            Toa,
            SynProxy,
            Ipv6,
        ],
        Cmd::Del => &[Tcp, Udp, Fwmark, Match, Ipv6],
        Cmd::AddDest | Cmd::EditDest => &[
            Tcp, Udp, Fwmark, Match, Real, Weight, UThreshold, LThreshold, FullNat, Masq,
            Gatewaying, Ipip, Snat, Ipv6, TunType, TunPort, TunNocsum, TunCsum, TunRemcsum,
        ],
        Cmd::DelDest => &[Tcp, Udp, Fwmark, Match, Real, Ipv6],
        Cmd::List => &[
            Tcp,
            Udp,
            Fwmark,
            Match,
            Numeric,
            Connection,
            Stats,
            Rate,
            Exact,
            Thresholds,
            PersistentConn,
            Sort,
            NoSort,
            Timeout,
            Daemon,
            Ipv6,
            TunInfo,
        ],
        Cmd::Save => &[Numeric],
        Cmd::Zero => &[Tcp, Udp, Fwmark, Match, Ipv6],
        Cmd::AddLaddr | Cmd::DelLaddr => &[Tcp, Udp, Fwmark, Laddr, Ifname, Ipv6],
        Cmd::GetLaddr => &[Tcp, Udp, Fwmark, Numeric, Ipv6],
        Cmd::AddBlklst | Cmd::DelBlklst => &[Tcp, Udp, Fwmark, Match, Blklst, Ipv6],
        Cmd::AddWhtlst | Cmd::DelWhtlst => &[Tcp, Udp, Fwmark, Match, Whtlst, Ipv6],
        Cmd::StartDaemon => &[
            McastInterface,
            SyncId,
            SyncMaxlen,
            McastGroup,
            McastPort,
            McastTtl,
        ],
        Cmd::StopDaemon => &[],
        Cmd::Flush
        | Cmd::Set
        | Cmd::AddMark
        | Cmd::DelMark
        | Cmd::Restore
        | Cmd::Help
        | Cmd::Version => &[],
    }
}

/// ipvsadm's `parse_sched_flags`: comma-separated names; `sh-*` need the sh scheduler and
/// `mh-*` the mh one (when `scheduler` is known), flag-1..3 go with any.
fn parse_sched_flags(list: &str, scheduler: Option<Scheduler>) -> Result<SchedFlags, ArgError> {
    let mut flags = SchedFlags::default();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let needs = match name {
            "sh-fallback" | "sh-port" => Some(Scheduler::Sh),
            "mh-fallback" | "mh-port" => Some(Scheduler::Mh),
            _ => None,
        };
        let parsed = SchedFlags::parse_list(name)
            .map_err(|_| fail(format!("invalid scheduler flag `{name}'")))?;
        if let (Some(needs), Some(given)) = (needs, scheduler) {
            if needs != given {
                return Err(fail(format!("incompatible scheduler flag `{name}'")));
            }
        }
        flags.0 |= parsed.0;
    }
    Ok(flags)
}

fn require(cmd: Cmd, what: &str, present: bool) -> Result<(), ArgError> {
    if present {
        return Ok(());
    }
    Err(fail(format!(
        "You need to supply the '{what}' option for the '{}' command",
        cmd.name()
    )))
}

/// Parses ipvsadm's arguments (without the program name); addresses and ports as numbers.
pub fn parse(args: &[String]) -> Result<IpvsCommand, ArgError> {
    parse_with(args, &NoLookup)
}

/// [`parse`], with host and service names resolved by `lookup` as ipvsadm resolves them.
pub fn parse_with(args: &[String], lookup: &dyn Lookup) -> Result<IpvsCommand, ArgError> {
    if args.is_empty() {
        return Ok(IpvsCommand::List {
            service: None,
            what: ListWhat::Services,
            format: ListFormat::default(),
        });
    }
    let given = tokenize(args)?;
    let cmd = given.cmd.ok_or_else(|| {
        fail("no command specified: use one of -A -E -D -C -R -S -a -e -d -L -Z --set")
    })?;
    for (opt, _) in &given.opts {
        // `--sort` does nothing and is accepted with any command (ipvsadm sets no option).
        if *opt != Opt::Sort && !allowed(cmd).contains(opt) {
            return Err(fail(format!(
                "Illegal '{}' option with the '{}' command",
                opt.name(),
                cmd.name()
            )));
        }
    }
    if given.has(Opt::Ipv6) {
        return Err(fail("IPv6 is not supported yet"));
    }
    if !matches!(cmd, Cmd::Set | Cmd::AddMark | Cmd::DelMark) {
        if let Some(extra) = given.positional.first() {
            return Err(fail(format!("unexpected argument {extra}")));
        }
    }
    let service = service_of(&given, lookup)?;
    let need_service = |cmd: Cmd| -> Result<ServiceAddr, ArgError> {
        service.ok_or_else(|| {
            fail(format!(
                "You need to supply the 'service-address' option for the '{}' command",
                cmd.name()
            ))
        })
    };
    let format = ListFormat {
        numeric: given.has(Opt::Numeric),
        stats: given.has(Opt::Stats),
        rate: given.has(Opt::Rate),
        thresholds: given.has(Opt::Thresholds),
        persistent_conn: given.has(Opt::PersistentConn),
        exact: given.has(Opt::Exact),
        nosort: given.has(Opt::NoSort),
        tun_info: given.has(Opt::TunInfo),
    };
    Ok(match cmd {
        Cmd::Help => IpvsCommand::Help,
        Cmd::Version => IpvsCommand::Version,
        Cmd::StartDaemon => {
            let role = daemon_role(given.cmd_value.as_deref())?;
            require(cmd, "mcast-interface", given.has(Opt::McastInterface))?;
            let mut d =
                crate::sync::SyncDaemon::new(given.value(Opt::McastInterface).unwrap_or_default());
            let num = |opt: Opt, what: &str| -> Result<Option<u64>, ArgError> {
                given
                    .value(opt)
                    .map(|v| {
                        v.parse::<u64>()
                            .map_err(|_| fail(format!("illegal {what} specified")))
                    })
                    .transpose()
            };
            if let Some(v) = num(Opt::SyncId, "syncid")? {
                d.syncid = u8::try_from(v).map_err(|_| fail("illegal syncid specified"))?;
            }
            if let Some(v) = num(Opt::SyncMaxlen, "sync-maxlen")? {
                d.maxlen = u16::try_from(v).map_err(|_| fail("illegal sync-maxlen specified"))?;
            }
            if let Some(v) = num(Opt::McastPort, "mcast-port")? {
                d.port = u16::try_from(v).map_err(|_| fail("illegal mcast-port specified"))?;
            }
            if let Some(v) = num(Opt::McastTtl, "mcast-ttl")? {
                d.ttl = u8::try_from(v).map_err(|_| fail("illegal mcast-ttl specified"))?;
            }
            if let Some(g) = given.value(Opt::McastGroup) {
                d.group = g
                    .parse()
                    .map_err(|_| fail("illegal mcast-group specified"))?;
            }
            // The rule model's one validator.
            d.validate().map_err(fail)?;
            IpvsCommand::StartDaemon { role, daemon: d }
        }
        Cmd::StopDaemon => IpvsCommand::StopDaemon {
            role: daemon_role(given.cmd_value.as_deref())?,
        },
        Cmd::Flush => IpvsCommand::Change(Change::Flush),
        Cmd::Restore => IpvsCommand::Restore,
        Cmd::Save => IpvsCommand::Save { format },
        Cmd::Zero => IpvsCommand::Zero { service },
        Cmd::GetLaddr => IpvsCommand::GetLaddr { service },
        Cmd::Set => {
            if given.positional.len() != 3 {
                return Err(fail("--set option requires 3 timeout values"));
            }
            let t = |s: &str| {
                number(
                    s,
                    MAX_TIMEOUT,
                    &format!("invalid timeout value `{s}' specified"),
                )
            };
            IpvsCommand::Change(Change::TimeoutSet {
                tcp: t(&given.positional[0])?,
                tcp_fin: t(&given.positional[1])?,
                udp: t(&given.positional[2])?,
            })
        }
        Cmd::AddMark => match given.positional.as_slice() {
            [mark, protocol, vip, ports] => IpvsCommand::Change(Change::MarkAdd {
                mark: Mark::from_words(mark, protocol, vip, ports).map_err(fail)?,
            }),
            _ => return Err(fail("--add-mark takes MARK PROTO VIP PORTS")),
        },
        Cmd::DelMark => match given.positional.as_slice() {
            [mark] => IpvsCommand::Change(Change::MarkDel {
                mark: mark
                    .parse()
                    .map_err(|_| fail(format!("invalid fwmark value `{mark}' specified")))?,
            }),
            _ => return Err(fail("--del-mark takes MARK")),
        },
        Cmd::List => {
            let conflicting = (format.stats || format.rate || format.thresholds)
                && (given.has(Opt::Connection)
                    || given.has(Opt::Timeout)
                    || given.has(Opt::Daemon))
                || (given.has(Opt::Timeout) || given.has(Opt::Daemon)) && format.persistent_conn;
            if conflicting {
                return Err(fail("options conflicts in the list command"));
            }
            let what = if given.has(Opt::Connection) {
                ListWhat::Connections
            } else if given.has(Opt::Timeout) {
                ListWhat::Timeout
            } else if given.has(Opt::Daemon) {
                ListWhat::Daemon
            } else {
                ListWhat::Services
            };
            IpvsCommand::List {
                service,
                what,
                format,
            }
        }
        Cmd::Add | Cmd::Edit => {
            let addr = need_service(cmd)?;
            let scheduler = match given.value(Opt::Scheduler) {
                Some(name) => Some(name.parse::<Scheduler>().map_err(|_| ArgError {
                    message: "Scheduler or persistence engine not found".into(),
                    exit_code: 255,
                })?),
                None => None,
            };
            // -A checks the flags against its scheduler (default wlc) as ipvsadm does; -E
            // only when it names one (else the service keeps its scheduler, as in DPVS).
            let flags_for = match (cmd, scheduler) {
                (_, Some(s)) => Some(s),
                (Cmd::Add, None) => Some(DEFAULT_SCHEDULER),
                _ => None,
            };
            let proxy_protocol = match given.value(Opt::ProxyProtocol) {
                Some(v) => Some(v.parse::<ProxyProtocol>().map_err(|e| ArgError {
                    message: e,
                    exit_code: 255,
                })?),
                None => None,
            };
            let sched_flags = match given.value(Opt::SchedFlags) {
                Some(list) => Some(parse_sched_flags(list, flags_for)?),
                None => None,
            };
            let persistence = if given.has(Opt::Persistent) {
                let timeout = match given.value(Opt::Persistent) {
                    Some(t) => number(
                        t,
                        MAX_TIMEOUT,
                        &format!("invalid timeout value `{t}' specified"),
                    )
                    .and_then(|t| {
                        if t == 0 {
                            Err(fail("invalid timeout value `0' specified"))
                        } else {
                            Ok(t)
                        }
                    })?,
                    None => DEFAULT_PERSISTENCE,
                };
                let netmask = match given.value(Opt::Netmask) {
                    Some(m) => {
                        let mask: Ipv4Addr = m.parse().map_err(|_| {
                            fail("illegal virtual server persistent mask specified")
                        })?;
                        let bits = u32::from(mask);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return Err(fail("illegal virtual server persistent mask specified"));
                        }
                        mask
                    }
                    None => Ipv4Addr::BROADCAST,
                };
                Some(Persistence { timeout, netmask })
            } else {
                None
            };
            let conn_rate = given
                .value(Opt::ConnRate)
                .map(|t| match t {
                    "0" | "none" => Ok(None),
                    t => t
                        .parse::<ConnRate>()
                        .map(Some)
                        .map_err(|e| fail(format!("illegal conn-rate specified: {e}"))),
                })
                .transpose()?;
            if cmd == Cmd::Add {
                if let ServiceAddr::Inet { port: 0, .. } = addr {
                    if persistence.is_none() {
                        return Err(fail(
                            "Zero port specified for no-match and non-persistent service",
                        ));
                    }
                }
                let mut service = Service::new(addr, scheduler.unwrap_or(DEFAULT_SCHEDULER));
                service.sched_flags = sched_flags.unwrap_or_default();
                service.persistence = persistence;
                service.one_packet = given.has(Opt::Ops);
                service.expire_on_removal = given.has(Opt::ExpireOnRemoval);
                service.conn_rate = conn_rate.flatten();
                service.proxy_protocol = proxy_protocol.unwrap_or_default();
                service.toa = given.has(Opt::Toa);
                service.synproxy = given.has(Opt::SynProxy);
                IpvsCommand::Change(Change::ServiceAdd { service })
            } else {
                IpvsCommand::EditService(ServiceEdit {
                    addr,
                    scheduler,
                    sched_flags,
                    persistence,
                    one_packet: given.has(Opt::Ops),
                    expire_on_removal: given.has(Opt::ExpireOnRemoval),
                    conn_rate,
                    proxy_protocol,
                    toa: given.has(Opt::Toa),
                    synproxy: given.has(Opt::SynProxy),
                })
            }
        }
        Cmd::Del => IpvsCommand::Change(Change::ServiceDel {
            service: need_service(cmd)?,
        }),
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let svc = need_service(cmd)?;
            let real = given.value(Opt::Real);
            require(cmd, "real-server", real.is_some())?;
            // ipvsadm looks a real's port name up with the service's protocol (TCP for -f).
            let protocol = crate::ipvsadm::format::lookup_protocol(&svc);
            let (addr, port) = parse_addr_port(real.unwrap_or_default(), protocol, lookup)
                .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
            // ipvsadm: a real server without a port takes the service's.
            let port = port.unwrap_or(svc.port());
            let weight = given
                .value(Opt::Weight)
                .map(|w| number(w, MAX_WEIGHT, "illegal weight specified"))
                .transpose()?;
            let upper = given
                .value(Opt::UThreshold)
                .map(|w| number(w, MAX_THRESHOLD, "illegal u_threshold specified"))
                .transpose()?;
            let lower = given
                .value(Opt::LThreshold)
                .map(|w| number(w, MAX_THRESHOLD, "illegal l_threshold specified"))
                .transpose()?;
            let forward = forward_of(&given)?;
            let tunnel = tunnel_of(&given, forward)?;
            match cmd {
                Cmd::AddDest => IpvsCommand::Change(Change::RealAdd {
                    service: svc,
                    real: Real {
                        addr,
                        port,
                        weight: weight.unwrap_or(1),
                        upper_threshold: upper.unwrap_or(0),
                        lower_threshold: lower.unwrap_or(0),
                        // ipvsadm's default: gatewaying (direct routing); a match
                        // service's real servers are its SNAT addresses.
                        forward: forward.unwrap_or_else(|| default_forward(&svc)),
                        tunnel: tunnel.unwrap_or_default(),
                    },
                }),
                Cmd::EditDest => IpvsCommand::EditReal(RealEdit {
                    service: svc,
                    addr,
                    port,
                    weight,
                    upper_threshold: upper,
                    lower_threshold: lower,
                    forward,
                    tunnel,
                }),
                _ => IpvsCommand::Change(Change::RealDel {
                    service: svc,
                    addr,
                    port,
                }),
            }
        }
        Cmd::AddLaddr | Cmd::DelLaddr => {
            let svc = need_service(cmd)?;
            let lip = given.value(Opt::Laddr);
            require(cmd, "laddr", lip.is_some())?;
            let addr: Ipv4Addr = lip
                .unwrap_or_default()
                .parse()
                .map_err(|_| fail("illegal local address"))?;
            if cmd == Cmd::AddLaddr {
                IpvsCommand::Change(Change::LaddrAdd {
                    service: svc,
                    laddr: LocalAddress {
                        addr,
                        device: given.value(Opt::Ifname).map(str::to_string),
                    },
                })
            } else {
                IpvsCommand::Change(Change::LaddrDel { service: svc, addr })
            }
        }
        Cmd::AddBlklst | Cmd::DelBlklst | Cmd::AddWhtlst | Cmd::DelWhtlst => {
            let service = need_service(cmd)?;
            let (list, opt, word) = match cmd {
                Cmd::AddBlklst | Cmd::DelBlklst => (AclList::Deny, Opt::Blklst, "blklst"),
                _ => (AclList::Allow, Opt::Whtlst, "whtlst"),
            };
            let text = given.value(opt);
            require(cmd, word, text.is_some())?;
            let prefix: ClientPrefix = text
                .unwrap_or_default()
                .parse()
                .map_err(|e| fail(format!("illegal {word} address: {e}")))?;
            let prefixes = vec![prefix];
            if matches!(cmd, Cmd::AddBlklst | Cmd::AddWhtlst) {
                IpvsCommand::Change(Change::AclAdd {
                    service,
                    list,
                    prefixes,
                })
            } else {
                IpvsCommand::Change(Change::AclDel {
                    service,
                    list,
                    prefixes,
                })
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<IpvsCommand, ArgError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&args)
    }

    #[test]
    fn sync_daemons() {
        use crate::sync::{SyncDaemon, SyncRole};
        let mut want = SyncDaemon::new("eth0");
        want.syncid = 5;
        assert_eq!(
            p("--start-daemon master --mcast-interface eth0 --syncid 5").unwrap(),
            IpvsCommand::StartDaemon {
                role: SyncRole::Master,
                daemon: want.clone()
            }
        );
        want.maxlen = 1400;
        want.group = "224.0.0.82".parse().unwrap();
        want.port = 8849;
        want.ttl = 2;
        assert_eq!(
            p(
                "--start-daemon backup --mcast-interface eth0 --syncid 5 --sync-maxlen 1400 \
               --mcast-group 224.0.0.82 --mcast-port 8849 --mcast-ttl 2"
            )
            .unwrap(),
            IpvsCommand::StartDaemon {
                role: SyncRole::Backup,
                daemon: want
            }
        );
        assert_eq!(
            p("--stop-daemon backup").unwrap(),
            IpvsCommand::StopDaemon {
                role: SyncRole::Backup
            }
        );
        assert!(p("--start-daemon master")
            .unwrap_err()
            .message
            .contains("mcast-interface"));
        assert!(p("--start-daemon primary --mcast-interface eth0").is_err());
        assert!(
            p("--start-daemon master --mcast-interface eth0 --mcast-group 198.18.0.1")
                .unwrap_err()
                .message
                .contains("multicast")
        );
        assert!(p("--start-daemon master --mcast-interface eth0 --syncid 256").is_err());
    }

    fn vip() -> ServiceAddr {
        ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80)
    }

    #[test]
    fn dpvs_snat_match_services_parse() {
        let msg = |line: &str| p(line).unwrap_err().message;
        let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) =
            p("-A -H proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan -s rr")
        else {
            panic!()
        };
        let ServiceAddr::Match(m) = service.addr else {
            panic!("{:?}", service.addr)
        };
        assert_eq!(
            m.to_string(),
            "proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan"
        );
        // -J says SNAT; a match service's real server is SNAT without it too.
        for args in [
            "-a --match proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan -r 198.18.0.1:0 -J",
            "-a -H proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan -r 198.18.0.1:0",
        ] {
            let Ok(IpvsCommand::Change(Change::RealAdd { real, service })) = p(args) else {
                panic!("{args}")
            };
            assert_eq!(service, ServiceAddr::Match(m));
            assert_eq!(
                (real.forward, real.port),
                (ForwardMethod::Snat, 0),
                "{args}"
            );
        }
        assert_eq!(
            msg("-A -H proto=tcp,src-range=1.1.1.1 -t 10.0.0.1:80"),
            "multiple 'service-address' options specified"
        );
        assert!(msg("-A -H src-range=1.1.1.1").contains("proto= missing"));
        assert!(msg("-A -H proto=gre,iif=lan").contains("'gre' is not one of: tcp, udp, icmp"));
        assert_eq!(
            msg("-a -H proto=tcp,iif=lan -r 1.2.3.4:0 -J -b"),
            "multiple 'forwarding-method' options specified"
        );
    }

    #[test]
    fn tutorial_commands_parse() {
        let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) =
            p("-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0")
        else {
            panic!()
        };
        assert_eq!(service.addr, vip());
        assert_eq!(service.scheduler, Scheduler::Rr);
        assert_eq!(
            service.persistence,
            Some(Persistence {
                timeout: 60,
                netmask: Ipv4Addr::new(255, 255, 255, 0)
            })
        );
        let Ok(IpvsCommand::Change(Change::RealAdd { real, service })) =
            p("-a -t 10.0.0.1:80 -r 192.168.1.1 -b -w 3")
        else {
            panic!()
        };
        assert_eq!((service, real.port, real.weight), (vip(), 80, 3));
        assert_eq!(
            p("--add-laddr -z 10.1.0.1 -t 10.0.0.1:80 -F dpdk0"),
            Ok(IpvsCommand::Change(Change::LaddrAdd {
                service: vip(),
                laddr: LocalAddress {
                    addr: Ipv4Addr::new(10, 1, 0, 1),
                    device: Some("dpdk0".into())
                }
            }))
        );
    }

    #[test]
    fn clustered_and_long_options() {
        let Ok(IpvsCommand::List { what, format, .. }) = p("-Lnc") else {
            panic!()
        };
        assert_eq!(what, ListWhat::Connections);
        assert!(format.numeric);
        let Ok(IpvsCommand::List { format, .. }) = p("-L -n --stats --exact") else {
            panic!()
        };
        assert!(format.stats && format.exact);
        assert!(matches!(
            p("--add-service --tcp-service=10.0.0.1:80 --scheduler=wrr"),
            Ok(IpvsCommand::Change(Change::ServiceAdd { .. }))
        ));
        assert!(matches!(
            p("-p 30 -A -t10.0.0.1:80"),
            Ok(IpvsCommand::Change(_))
        ));
        let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) = p("-A -t 10.0.0.1:80 -p")
        else {
            panic!()
        };
        assert_eq!(service.persistence.map(|p| p.timeout), Some(360));
        assert_eq!(service.scheduler, Scheduler::Wlc);
    }

    #[test]
    fn ipvsadm_errors() {
        let msg = |line: &str| p(line).unwrap_err().message;
        assert_eq!(
            msg("-A -s rr"),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
        assert_eq!(msg("-A -L"), "multiple commands specified");
        assert_eq!(
            msg("-A -t 10.0.0.300:80"),
            "illegal virtual server address[:port] specified"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r x"),
            "illegal real server address[:port] specified"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -w 2147483648"),
            "illegal weight specified"
        );
        assert_eq!(
            msg("-A -t 10.0.0.1:80 -r 1.2.3.4"),
            "Illegal 'real-server' option with the 'add-service' command"
        );
        assert_eq!(
            msg("-L -c --stats"),
            "options conflicts in the list command"
        );
        assert_eq!(msg("--set 1 2"), "--set option requires 3 timeout values");
        assert_eq!(
            msg("-A -t 10.0.0.1:0"),
            "Zero port specified for no-match and non-persistent service"
        );
        assert_eq!(msg("-L -q"), "invalid option `-q'");
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -m -g"),
            "multiple 'forwarding-method' options specified"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -m --tun-type gue"),
            "Tunnel options conflict with forward method"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gue"),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-port 5555"),
            "Illegal 'tun-port' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-csum"),
            "Illegal 'tun-csum' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gre --tun-csum --tun-nocsum"),
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type"
        );
        assert!(msg("-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type vxlan").contains("tunnel type"));
        assert_eq!(
            p("-A -t 10.0.0.1:80 -s fastest").unwrap_err().exit_code,
            255
        );
        assert_eq!(msg("-L foo"), "unexpected argument foo");
        assert_eq!(
            msg("-A -t 10.0.0.1:80 -s rr --sched-flags sh-port"),
            "incompatible scheduler flag `sh-port'"
        );
        assert_eq!(
            msg("-A -t 10.0.0.1:80 --sched-flags mh-fallback"),
            "incompatible scheduler flag `mh-fallback'",
            "-A without -s checks against wlc"
        );
        assert_eq!(
            msg("-A -t 10.0.0.1:80 -s sh --sched-flags sh-port,flag-9"),
            "invalid scheduler flag `flag-9'"
        );
        assert_eq!(
            msg("-S --nosort"),
            "Illegal 'nosort' option with the 'save' command"
        );
        assert!(p("-S -n --sort").is_ok(), "--sort does nothing, anywhere");
    }

    #[test]
    fn set_timeouts_and_sched_flags() {
        assert_eq!(
            p("--set 900 120 300"),
            Ok(IpvsCommand::Change(Change::TimeoutSet {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }))
        );
        let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) =
            p("-A -t 10.0.0.1:80 -s sh --sched-flags sh-port")
        else {
            panic!()
        };
        assert_eq!(service.sched_flags, SchedFlags(SchedFlags::FLAG2));
        // ipvsadm's own short form: -b FLAGS (DPVS's -b, full-NAT, takes no value).
        for line in [
            "-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port",
            "-A -t 10.0.0.1:80 -s sh -bsh-fallback,sh-port",
            "-A -b sh-port,sh-fallback -t 10.0.0.1:80 -s sh",
        ] {
            let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) = p(line) else {
                panic!("{line}")
            };
            assert_eq!(service.sched_flags, SchedFlags(3), "{line}");
        }
        let Ok(IpvsCommand::Change(Change::RealAdd { real, .. })) =
            p("-a -t 10.0.0.1:80 -r 192.168.1.1 -b -w 2")
        else {
            panic!()
        };
        assert_eq!((real.forward, real.weight), (ForwardMethod::FullNat, 2));
        // Every method switch; ipvsadm's default is gatewaying (-g).
        let method = |line: &str| {
            let Ok(IpvsCommand::Change(Change::RealAdd { real, .. })) = p(line) else {
                panic!("{line}")
            };
            (real.forward, real.tunnel)
        };
        let tun = |kind, port, csum| TunnelOptions { kind, port, csum };
        let none = TunnelOptions::default();
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1"),
            (ForwardMethod::Route, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 -g"),
            (ForwardMethod::Route, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 -m"),
            (ForwardMethod::Masq, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 --masquerading"),
            (ForwardMethod::Masq, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 -i"),
            (ForwardMethod::Tunnel, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 --ipip --tun-type ipip"),
            (ForwardMethod::Tunnel, none)
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 -i --tun-type gue --tun-port 6080 --tun-csum"),
            (ForwardMethod::Tunnel, tun(TunnelType::Gue, 6080, true))
        );
        assert_eq!(
            method(
                "-a -t 10.0.0.1:80 -r 192.168.1.1 -i --tun-type gue --tun-port 6080 --tun-nocsum"
            ),
            (ForwardMethod::Tunnel, tun(TunnelType::Gue, 6080, false))
        );
        assert_eq!(
            method("-a -t 10.0.0.1:80 -r 192.168.1.1 -i --tun-type gre"),
            (ForwardMethod::Tunnel, tun(TunnelType::Gre, 0, false))
        );
        // -e changes only what it is given; leaving the tunnel method drops its settings.
        let Ok(IpvsCommand::EditReal(edit)) = p("-e -t 10.0.0.1:80 -r 192.168.1.1 -m") else {
            panic!()
        };
        let mut current = Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 3);
        current.forward = ForwardMethod::Tunnel;
        current.tunnel = tun(TunnelType::Gre, 0, true);
        let merged = edit.merge(&current);
        assert_eq!(
            (merged.forward, merged.tunnel, merged.weight),
            (ForwardMethod::Masq, none, 3)
        );
        let Ok(IpvsCommand::EditReal(edit)) = p("-e -t 10.0.0.1:80 -r 192.168.1.1 -w 5") else {
            panic!()
        };
        assert_eq!(edit.merge(&current).tunnel, current.tunnel);
        assert_eq!(
            p("-a -t 10.0.0.1:80 -r 192.168.1.1 -b flag-1")
                .unwrap_err()
                .message,
            "Illegal 'sched-flags' option with the 'add-server' command"
        );
        assert_eq!(
            p("-A -t 10.0.0.1:80 -s sh -b sh-port --sched-flags sh-port")
                .unwrap_err()
                .message,
            "multiple 'sched-flags' options specified"
        );
    }

    #[test]
    fn edits_change_only_what_is_given() {
        let Ok(IpvsCommand::EditReal(edit)) = p("-e -t 10.0.0.1:80 -r 192.168.1.1:8080 -w 5")
        else {
            panic!()
        };
        let mut current = Real::new(Ipv4Addr::new(192, 168, 1, 1), 8080, 1);
        current.upper_threshold = 9;
        let merged = edit.merge(&current);
        assert_eq!((merged.weight, merged.upper_threshold), (5, 9));
        let Ok(IpvsCommand::EditService(edit)) = p("-E -t 10.0.0.1:80 -s wrr") else {
            panic!()
        };
        let attrs = edit.merge(&Service::new(vip(), Scheduler::Rr));
        assert_eq!(attrs.scheduler, Scheduler::Wrr);
    }

    /// Names as a test's /etc/hosts and /etc/services would give them.
    struct FakeLookup;

    impl Lookup for FakeLookup {
        fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
            (name == "vip.test").then_some(Ipv4Addr::new(10, 0, 0, 1))
        }
        fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
            match (name, protocol) {
                ("http", Protocol::Tcp) => Some(80),
                ("domain", Protocol::Udp) => Some(53),
                _ => None,
            }
        }
    }

    #[test]
    fn names_resolve_through_the_lookup_as_ipvsadm_parse_service() {
        let words =
            |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
        let q = |line: &str| parse_with(&words(line), &FakeLookup);
        let Ok(IpvsCommand::Change(Change::ServiceAdd { service })) =
            q("-A -t vip.test:http -s rr")
        else {
            panic!()
        };
        assert_eq!(service.addr, vip());
        let Ok(IpvsCommand::Change(Change::RealAdd { real, .. })) =
            q("-a -u vip.test:domain -r vip.test:domain -b")
        else {
            panic!()
        };
        assert_eq!((real.addr, real.port), (Ipv4Addr::new(10, 0, 0, 1), 53));
        // Service names are per protocol; a firewall-mark service looks them up as TCP.
        assert!(q("-A -u vip.test:http").is_err());
        let Ok(IpvsCommand::Change(Change::RealAdd { real, .. })) =
            q("-a -f 7 -r vip.test:http -b")
        else {
            panic!()
        };
        assert_eq!(real.port, 80);
        assert_eq!(
            q("-A -t nowhere.test:80").unwrap_err().message,
            "illegal virtual server address[:port] specified"
        );
        assert_eq!(
            q("-a -t vip.test:80 -r vip.test:gopher")
                .unwrap_err()
                .message,
            "illegal real server address[:port] specified"
        );
        // A bare number is no address; without a lookup, names are refused.
        assert!(q("-A -t 80").is_err());
        assert!(p("-A -t vip.test:80").is_err());
    }
}
