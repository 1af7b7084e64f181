//! keepalived's `vrrp_instance` blocks, with keepalived's defaults: what fnat's VRRP service
//! runs, and `vrrp_sync_group` blocks (instances that move together). Keywords fnat does not
//! act on yet are warnings naming file, line and keyword.

use std::net::IpAddr;
use std::time::Duration;

use crate::diag::{Diagnostics, Location};
use crate::lvs::{address, children, number, one_arg, timer};
use crate::tree::Node;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VrrpAuth {
    None,
    /// `auth_type PASS` with its `auth_pass` (keepalived keeps the first 8 bytes).
    Pass(String),
}

/// One `vrrp_instance NAME { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpInstance {
    pub at: Location,
    pub name: String,
    /// `state MASTER` (else BACKUP): start as master at once.
    pub start_as_master: bool,
    /// `interface`: for fnat, the name of an fnatd port.
    pub interface: String,
    pub virtual_router_id: u8,
    /// 1..=255, default 100.
    pub priority: u8,
    /// Default 1 s; v2 whole seconds.
    pub advert_int: Duration,
    /// 2 (keepalived's default, or `global_defs { vrrp_version }`) or 3.
    pub version: u8,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub auth: VrrpAuth,
    /// `virtual_ipaddress` addresses (prefix lengths, `dev`, `label` … dropped).
    pub virtual_ipaddress: Vec<IpAddr>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    /// `notify`: called with `INSTANCE NAME STATE PRIORITY`.
    pub notify: Option<String>,
    /// `lvs_sync_daemon_inteface IF` (old spelling of `lvs_sync_daemon IF THIS_INSTANCE`).
    pub lvs_sync_daemon_interface: Option<String>,
    /// `garp_master_delay` (default 5 s): the second burst of gratuitous ARP after takeover.
    pub garp_master_delay: Duration,
    /// `garp_master_repeat` (default 5): gratuitous ARPs per burst.
    pub garp_master_repeat: u32,
    /// `garp_master_refresh` (default 0: off): gratuitous ARPs again every so long while
    /// master, `garp_master_refresh_repeat` (default 1) at a time.
    pub garp_master_refresh: Duration,
    pub garp_master_refresh_repeat: u32,
    /// `track_script { NAME [weight W] }`: `vrrp_script`s this instance follows.
    pub track_script: Vec<Tracked>,
    /// `track_interface { IF [weight W] }`: interfaces whose link this instance follows.
    pub track_interface: Vec<Tracked>,
}

/// One entry of `track_script` or `track_interface`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracked {
    pub at: Location,
    pub name: String,
    /// `weight W` here (else the script's own; an interface's is 0).
    pub weight: Option<i32>,
}

/// One `vrrp_script NAME { script …; interval; timeout; weight; rise; fall; init_fail }`,
/// with keepalived's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpScript {
    pub at: Location,
    pub name: String,
    /// The command (run by `/bin/sh -c`).
    pub script: String,
    /// Default 1 s.
    pub interval: Duration,
    /// Default: the interval.
    pub timeout: Duration,
    /// -253..=253, default 0 (a failure puts the instance in FAULT).
    pub weight: i32,
    /// Successes to become good, failures to become bad (default 1, 1).
    pub rise: u32,
    pub fall: u32,
    /// Start as failed (default: good).
    pub init_fail: bool,
}

impl VrrpScript {
    /// Whether `other` defines the same script (where it is written aside): a reload keeps
    /// such a script running with its verdict, and restarts one whose definition changed.
    pub fn same_definition(&self, other: &VrrpScript) -> bool {
        let VrrpScript {
            at: _,
            name,
            script,
            interval,
            timeout,
            weight,
            rise,
            fall,
            init_fail,
        } = self;
        (
            name, script, interval, timeout, weight, rise, fall, init_fail,
        ) == (
            &other.name,
            &other.script,
            &other.interval,
            &other.timeout,
            &other.weight,
            &other.rise,
            &other.fall,
            &other.init_fail,
        )
    }
}

/// Reads one `vrrp_script`.
pub fn script_block(node: &Node, diags: &mut Diagnostics) -> Option<VrrpScript> {
    let name = one_arg(node, diags)?;
    let mut s = VrrpScript {
        at: node.at.clone(),
        name,
        script: String::new(),
        interval: Duration::from_secs(1),
        timeout: Duration::ZERO,
        weight: 0,
        rise: 1,
        fall: 1,
        init_fail: false,
    };
    let errors_before = diags.list.len();
    for n in children(node) {
        match n.keyword.as_str() {
            "script" => s.script = script(n, diags).unwrap_or_default(),
            "interval" => {
                if let Some(t) = timer(n, diags).filter(|t| !t.is_zero()) {
                    s.interval = t;
                }
            }
            "timeout" => {
                if let Some(t) = timer(n, diags) {
                    s.timeout = t;
                }
            }
            "weight" => match number::<i32>(n, diags) {
                Some(w @ -253..=253) => s.weight = w,
                Some(w) => diags.error(&n.at, "weight", format!("{w} is not in -253..253")),
                None => {}
            },
            // keepalived refuses 0: a verdict needs at least one run.
            "rise" | "fall" => match number::<u32>(n, diags) {
                Some(0) => diags.error(&n.at, &n.keyword, "0: keepalived requires at least 1"),
                Some(v) if n.keyword == "rise" => s.rise = v,
                Some(v) => s.fall = v,
                None => {}
            },
            "init_fail" => s.init_fail = true,
            k => diags.warning(&n.at, k, "not supported by fnat's VRRP yet: ignored"),
        }
    }
    if s.script.is_empty() {
        // keepalived removes it, with a warning (and its trackers then track nothing).
        diags.warning(&node.at, "script", "no script: vrrp_script ignored");
        return None;
    }
    if s.timeout.is_zero() {
        s.timeout = s.interval;
    }
    let failed = diags.list[errors_before..]
        .iter()
        .any(|d| d.level == crate::Level::Error);
    (!failed).then_some(s)
}

/// `track_script`/`track_interface` entries: `NAME [weight W]`.
fn tracked(node: &Node, diags: &mut Diagnostics) -> Vec<Tracked> {
    let mut out = Vec::new();
    for n in children(node) {
        let weight = match n.args.as_slice() {
            [] => None,
            [w, v] if w == "weight" => match v.parse::<i32>() {
                Ok(w @ -253..=253) => Some(w),
                _ => {
                    diags.error(&n.at, "weight", format!("'{v}' is not in -253..253"));
                    continue;
                }
            },
            other => {
                diags.warning(
                    &n.at,
                    &node.keyword,
                    format!("'{}' not understood: ignored", other.join(" ")),
                );
                None
            }
        };
        out.push(Tracked {
            at: n.at.clone(),
            name: n.keyword.clone(),
            weight,
        });
    }
    out
}

/// One `vrrp_sync_group NAME { group { VI_1 VI_2 … } }`: when one member changes state, all
/// do (keepalived's semantics: a member becomes master only once none of the others still
/// hears a master).
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpSyncGroup {
    pub at: Location,
    pub name: String,
    /// The member instances' names, in the order written.
    pub members: Vec<String>,
}

/// Reads one `vrrp_sync_group`; `instances` are the file's readable `vrrp_instance`s (a
/// member that is none of them, or already in a group, is a warning and left out, as
/// keepalived does).
pub fn sync_group(
    node: &Node,
    instances: &[VrrpInstance],
    taken: &[VrrpSyncGroup],
    diags: &mut Diagnostics,
) -> Option<VrrpSyncGroup> {
    let name = one_arg(node, diags)?;
    let mut members = Vec::new();
    for n in children(node) {
        match n.keyword.as_str() {
            "group" => {
                for m in children(n) {
                    let member = m.keyword.clone();
                    // As keepalived: warned about and left out.
                    if !instances.iter().any(|i| i.name == member) {
                        diags.warning(
                            &m.at,
                            "group",
                            format!("{member} is not a vrrp_instance of this file: ignored"),
                        );
                    } else if let Some(g) = taken.iter().find(|g| g.members.contains(&member)) {
                        diags.warning(
                            &m.at,
                            "group",
                            format!(
                                "{member} is already in vrrp_sync_group {}: ignored here",
                                g.name
                            ),
                        );
                    } else if !members.contains(&member) {
                        members.push(member);
                    }
                }
            }
            k => diags.warning(&n.at, k, "not supported by fnat's VRRP yet: ignored"),
        }
    }
    if members.is_empty() {
        diags.warning(
            &node.at,
            "group",
            "no member instances: vrrp_sync_group ignored",
        );
        return None;
    }
    Some(VrrpSyncGroup {
        at: node.at.clone(),
        name,
        members,
    })
}

/// keepalived's global gratuitous-ARP settings (`global_defs { vrrp_garp_master_delay 5;
/// vrrp_garp_master_repeat 5; vrrp_garp_master_refresh 0; vrrp_garp_master_refresh_repeat 1
/// }`): the defaults of every instance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GarpDefaults {
    pub delay: Duration,
    pub repeat: u32,
    pub refresh: Duration,
    pub refresh_repeat: u32,
}

impl Default for GarpDefaults {
    fn default() -> Self {
        GarpDefaults {
            delay: Duration::from_secs(5),
            repeat: 5,
            refresh: Duration::ZERO,
            refresh_repeat: 1,
        }
    }
}

impl GarpDefaults {
    /// Reads the `vrrp_garp_*` keywords of a `global_defs` block (others are not its).
    pub fn read(&mut self, n: &Node, diags: &mut Diagnostics) {
        match n.keyword.as_str() {
            "vrrp_garp_master_delay" => {
                if let Some(t) = timer(n, diags) {
                    self.delay = t;
                }
            }
            "vrrp_garp_master_repeat" => {
                if let Some(r) = number(n, diags) {
                    self.repeat = r;
                }
            }
            "vrrp_garp_master_refresh" => {
                if let Some(t) = timer(n, diags) {
                    self.refresh = t;
                }
            }
            "vrrp_garp_master_refresh_repeat" => {
                if let Some(r) = number(n, diags) {
                    self.refresh_repeat = r;
                }
            }
            _ => {}
        }
    }
}

/// Reads one `vrrp_instance`; `version` is the global default (`vrrp_version`), `garp` the
/// global gratuitous-ARP settings.
pub fn instance(
    node: &Node,
    version: u8,
    garp: GarpDefaults,
    diags: &mut Diagnostics,
) -> Option<VrrpInstance> {
    let name = one_arg(node, diags)?;
    let mut v = VrrpInstance {
        at: node.at.clone(),
        name,
        start_as_master: false,
        interface: String::new(),
        virtual_router_id: 0,
        priority: 100,
        advert_int: Duration::from_secs(1),
        version,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth: VrrpAuth::None,
        virtual_ipaddress: Vec::new(),
        unicast_src_ip: None,
        unicast_peer: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify_stop: None,
        notify: None,
        lvs_sync_daemon_interface: None,
        garp_master_delay: garp.delay,
        garp_master_repeat: garp.repeat,
        garp_master_refresh: garp.refresh,
        garp_master_refresh_repeat: garp.refresh_repeat,
        track_script: Vec::new(),
        track_interface: Vec::new(),
    };
    let errors_before = diags.list.len();
    let mut vrid_seen = false;
    let mut runnable = true;
    for n in children(node) {
        match n.keyword.as_str() {
            "state" => match one_arg(n, diags).as_deref() {
                Some("MASTER") => v.start_as_master = true,
                Some("BACKUP") => v.start_as_master = false,
                Some(other) => diags.error(
                    &n.at,
                    &n.keyword,
                    format!("'{other}' is not MASTER or BACKUP"),
                ),
                None => {}
            },
            "interface" => {
                if let Some(i) = one_arg(n, diags) {
                    v.interface = i;
                }
            }
            "virtual_router_id" => match number::<u16>(n, diags) {
                Some(id @ 1..=255) => {
                    v.virtual_router_id = id as u8;
                    vrid_seen = true;
                }
                Some(id) => diags.error(&n.at, &n.keyword, format!("{id} is not in 1..255")),
                None => {}
            },
            "priority" => match number::<u16>(n, diags) {
                Some(p @ 1..=255) => v.priority = p as u8,
                Some(p) => diags.error(&n.at, &n.keyword, format!("{p} is not in 1..255")),
                None => {}
            },
            "advert_int" => {
                if let Some(t) = timer(n, diags) {
                    if t.is_zero() {
                        diags.error(&n.at, &n.keyword, "must be more than 0");
                    } else {
                        v.advert_int = t;
                    }
                }
            }
            "version" => match number::<u8>(n, diags) {
                Some(x @ (2 | 3)) => v.version = x,
                Some(x) => diags.error(&n.at, &n.keyword, format!("{x} is not 2 or 3")),
                None => {}
            },
            "nopreempt" => v.nopreempt = true,
            "preempt" => v.nopreempt = false,
            "preempt_delay" => {
                if let Some(t) = timer(n, diags) {
                    v.preempt_delay = t;
                }
            }
            "authentication" => runnable &= auth(n, &mut v, diags),
            "virtual_ipaddress" => {
                for a in children(n) {
                    let text = a.keyword.split('/').next().unwrap_or("");
                    if let Some(ip) = address(text, a, diags) {
                        v.virtual_ipaddress.push(ip);
                    }
                }
            }
            "unicast_src_ip" => {
                if let Some(t) = one_arg(n, diags) {
                    v.unicast_src_ip = address(&t, n, diags);
                }
            }
            "unicast_peer" => {
                for a in children(n) {
                    if let Some(ip) = address(&a.keyword, a, diags) {
                        v.unicast_peer.push(ip);
                    }
                }
            }
            "notify_master" => v.notify_master = script(n, diags),
            "notify_backup" => v.notify_backup = script(n, diags),
            "notify_fault" => v.notify_fault = script(n, diags),
            "notify_stop" => v.notify_stop = script(n, diags),
            "notify" => v.notify = script(n, diags),
            "garp_master_delay" => {
                if let Some(t) = timer(n, diags) {
                    v.garp_master_delay = t;
                }
            }
            "garp_master_repeat" => {
                if let Some(r) = number(n, diags) {
                    v.garp_master_repeat = r;
                }
            }
            "garp_master_refresh" => {
                if let Some(t) = timer(n, diags) {
                    v.garp_master_refresh = t;
                }
            }
            "garp_master_refresh_repeat" => {
                if let Some(r) = number(n, diags) {
                    v.garp_master_refresh_repeat = r;
                }
            }
            "track_script" => v.track_script = tracked(n, diags),
            "track_interface" => v.track_interface = tracked(n, diags),
            // The old and new spelling of the sync daemon's interface: session sync's business.
            "lvs_sync_daemon_inteface" | "lvs_sync_daemon_interface" => {
                v.lvs_sync_daemon_interface = one_arg(n, diags);
            }
            k => diags.warning(&n.at, k, "not supported by fnat's VRRP yet: ignored"),
        }
    }
    if !vrid_seen {
        diags.error(&node.at, &node.keyword, "virtual_router_id is required");
    }
    if v.interface.is_empty() {
        diags.error(&node.at, &node.keyword, "interface is required");
    }
    if v.nopreempt && v.start_as_master {
        // keepalived: nopreempt only works with state BACKUP; it starts as backup.
        diags.warning(
            &node.at,
            "nopreempt",
            "needs state BACKUP: starting as backup",
        );
        v.start_as_master = false;
    }
    if v.version == 2 && v.advert_int.subsec_nanos() != 0 {
        diags.error(
            &node.at,
            "advert_int",
            "VRRP version 2 needs whole seconds (use version 3 for less)",
        );
    }
    let failed = diags.list[errors_before..]
        .iter()
        .any(|d| d.level == crate::Level::Error);
    (!failed && runnable).then_some(v)
}

/// false: an authentication fnat cannot speak (the instance is not run).
fn auth(node: &Node, v: &mut VrrpInstance, diags: &mut Diagnostics) -> bool {
    let mut kind = None;
    let mut pass = None;
    for n in children(node) {
        match n.keyword.as_str() {
            "auth_type" => kind = one_arg(n, diags).map(|k| (k, n.at.clone())),
            "auth_pass" => pass = one_arg(n, diags),
            k => diags.warning(&n.at, k, "unknown keyword: ignored"),
        }
    }
    match kind {
        Some((k, _)) if k == "PASS" => v.auth = VrrpAuth::Pass(pass.unwrap_or_default()),
        Some((k, at)) if k == "AH" => {
            diags.warning(
                &at,
                "auth_type",
                format!(
                    "AH is not supported (fnat speaks PASS or none): vrrp_instance {} not run",
                    v.name
                ),
            );
            return false;
        }
        Some((k, at)) => diags.error(&at, "auth_type", format!("'{k}' is not PASS or AH")),
        None => {}
    }
    true
}

fn script(node: &Node, diags: &mut Diagnostics) -> Option<String> {
    if node.args.is_empty() {
        one_arg(node, diags)
    } else {
        Some(node.args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use crate::read_str;

    #[test]
    fn a_sync_group_names_its_instances_and_leaves_strangers_out() {
        let inst = |n: &str, id: u8| {
            format!(
                "vrrp_instance {n} {{\n interface wan\n virtual_router_id {id}\n virtual_ipaddress {{\n  198.18.0.{id}\n }}\n}}\n"
            )
        };
        let text = format!(
            "{}{}vrrp_sync_group VG_1 {{\n group {{\n  VI_1\n  VI_2\n }}\n}}\n",
            inst("VI_1", 1),
            inst("VI_2", 2)
        );
        let c = read_str("k.conf", &text, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        assert_eq!(c.vrrp_sync_groups.len(), 1);
        assert_eq!(c.vrrp_sync_groups[0].name, "VG_1");
        assert_eq!(c.vrrp_sync_groups[0].members, ["VI_1", "VI_2"]);
        let bad = format!(
            "{}vrrp_sync_group VG_1 {{\n group {{\n  VI_1\n  VI_9\n }}\n}}\n",
            inst("VI_1", 1)
        );
        let c = read_str("k.conf", &bad, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        assert_eq!(c.vrrp_sync_groups[0].members, ["VI_1"]);
        let w = &c.diagnostics[0];
        assert_eq!(w.at.line, 11);
        assert!(w.message.contains("VI_9 is not a vrrp_instance"), "{w:?}");
    }

    #[test]
    fn an_instance_reads_with_keepalived_defaults() {
        let c = read_str(
            "k.conf",
            "vrrp_instance VI_1 {\n interface wan\n virtual_router_id 51\n virtual_ipaddress {\n  198.18.0.100/32 dev wan\n }\n}\n",
            "h",
        );
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        let v = &c.vrrp_instances[0];
        assert_eq!(v.name, "VI_1");
        assert_eq!(v.priority, 100);
        assert_eq!(v.version, 2);
        assert_eq!(v.advert_int.as_secs(), 1);
        assert!(!v.nopreempt && !v.start_as_master);
        assert_eq!(
            v.virtual_ipaddress,
            ["198.18.0.100".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(v.garp_master_repeat, 5);
    }

    #[test]
    fn every_supported_keyword_is_read() {
        let text = r#"global_defs {
  vrrp_version 3
}
vrrp_instance VI_2 {
  state BACKUP
  interface lan
  virtual_router_id 7
  priority 90
  advert_int 0.5
  nopreempt
  preempt_delay 10
  authentication {
    auth_type PASS
    auth_pass 1111
  }
  virtual_ipaddress {
    198.18.0.100
    198.18.0.101
  }
  unicast_src_ip 198.18.0.2
  unicast_peer {
    198.18.0.3
  }
  notify_master "/bin/echo master"
  notify_backup /bin/true
  notify /usr/local/bin/n
  track_interface {
    lan
    wan weight -20
  }
  track_script {
    chk_up weight 30
  }
  garp_master_refresh 60
}
vrrp_script chk_up {
  script "/bin/true"
  interval 2
  weight -10
  fall 2
  rise 3
}
"#;
        let c = read_str("k.conf", text, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        let v = &c.vrrp_instances[0];
        assert_eq!(v.version, 3);
        assert_eq!(v.advert_int.as_millis(), 500);
        assert!(v.nopreempt);
        assert_eq!(v.preempt_delay.as_secs(), 10);
        assert_eq!(v.auth, super::VrrpAuth::Pass("1111".into()));
        assert_eq!(v.virtual_ipaddress.len(), 2);
        assert_eq!(v.unicast_src_ip, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(
            v.unicast_peer,
            ["198.18.0.3".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(v.notify_master.as_deref(), Some("/bin/echo master"));
        assert_eq!(v.notify_backup.as_deref(), Some("/bin/true"));
        assert_eq!(v.notify.as_deref(), Some("/usr/local/bin/n"));
        let w: Vec<_> = c
            .diagnostics
            .iter()
            .map(|d| (d.at.line, d.keyword.as_str()))
            .collect();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(v.garp_master_refresh.as_secs(), 60);
        let names: Vec<_> = v
            .track_interface
            .iter()
            .map(|t| (t.name.as_str(), t.weight))
            .collect();
        assert_eq!(names, [("lan", None), ("wan", Some(-20))]);
        assert_eq!(v.track_script[0].name, "chk_up");
        assert_eq!(v.track_script[0].weight, Some(30));
        let s = &c.vrrp_scripts[0];
        assert_eq!(s.script, "/bin/true");
        assert_eq!((s.interval.as_secs(), s.timeout.as_secs()), (2, 2));
        assert_eq!((s.weight, s.fall, s.rise), (-10, 2, 3));
    }

    #[test]
    fn bad_values_are_refused_by_line_and_keyword() {
        let cases = [
            ("virtual_router_id 0", 3, "virtual_router_id"),
            ("priority 256", 3, "priority"),
            ("state PRIMARY", 3, "state"),
            ("advert_int 0.5", 1, "advert_int"),
            ("authentication {\n auth_type MD5\n }", 4, "auth_type"),
        ];
        for (line, at, keyword) in cases {
            let text =
                format!("vrrp_instance V {{\n interface p\n{line}\n virtual_router_id 9\n}}\n");
            let c = read_str("k.conf", &text, "h");
            let e: Vec<_> = c
                .errors()
                .map(|d| (d.at.line, d.keyword.as_str()))
                .collect();
            assert_eq!(e, [(at, keyword)], "{line}: {:?}", c.diagnostics);
            assert!(c.vrrp_instances.is_empty());
        }
        let c = read_str(
            "k.conf",
            "vrrp_instance V {\n virtual_router_id 1\n}\n",
            "h",
        );
        assert_eq!(c.errors().next().unwrap().message, "interface is required");
    }
    #[test]
    fn a_vrrp_script_with_rise_or_fall_0_or_a_bad_weight_is_refused_by_line_and_keyword() {
        for (line, keyword, reason) in [
            ("rise 0", "rise", "0: keepalived requires at least 1"),
            ("fall 0", "fall", "0: keepalived requires at least 1"),
            ("rise x", "rise", "'x' is not a valid number here"),
            ("weight 254", "weight", "254 is not in -253..253"),
        ] {
            let text = format!("vrrp_script chk {{\n script /bin/true\n {line}\n}}\n");
            let c = read_str("k.conf", &text, "h");
            let e: Vec<_> = c
                .errors()
                .map(|d| (d.at.to_string(), d.keyword.as_str(), d.message.as_str()))
                .collect();
            assert_eq!(e, [("k.conf:3".to_string(), keyword, reason)], "{line}");
            assert!(c.vrrp_scripts.is_empty(), "{line}");
        }
        let c = read_str(
            "k.conf",
            "vrrp_script chk {\n script /bin/true\n rise 1\n fall 1\n}\n",
            "h",
        );
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        assert_eq!((c.vrrp_scripts[0].rise, c.vrrp_scripts[0].fall), (1, 1));
    }

    #[test]
    fn a_script_moved_elsewhere_is_the_same_definition_a_changed_one_is_not() {
        let one = read_str("a.conf", "vrrp_script c {\n script /bin/true\n}\n", "h");
        let moved = read_str(
            "b.conf",
            "\n\nvrrp_script c {\n script /bin/true\n interval 1\n}\n",
            "h",
        );
        let changed = read_str("a.conf", "vrrp_script c {\n script /bin/false\n}\n", "h");
        let (a, b, c) = (
            &one.vrrp_scripts[0],
            &moved.vrrp_scripts[0],
            &changed.vrrp_scripts[0],
        );
        assert_ne!(a.at, b.at);
        assert!(a.same_definition(b));
        assert!(!a.same_definition(c));
    }

    #[test]
    fn each_notify_fifo_gets_its_kind_and_the_global_one_both() {
        let c = read_str(
            "k.conf",
            "global_defs {\n notify_fifo /run/all\n vrrp_notify_fifo /run/vrrp\n lvs_notify_fifo /run/lvs\n}\n",
            "h",
        );
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        let p = |v: &[&str]| v.iter().map(std::path::PathBuf::from).collect::<Vec<_>>();
        assert_eq!(c.vrrp_fifos(), p(&["/run/all", "/run/vrrp"]));
        assert_eq!(c.lvs_fifos(), p(&["/run/all", "/run/lvs"]));
        let c = read_str(
            "k.conf",
            "global_defs {\n notify_fifo /run/all u g\n}\n",
            "h",
        );
        assert_eq!(c.vrrp_fifos(), p(&["/run/all"]));
        assert_eq!(c.lvs_fifos(), p(&["/run/all"]));
        assert_eq!(c.diagnostics[0].keyword, "notify_fifo");
        let c = read_str(
            "k.conf",
            "global_defs {\n vrrp_notify_fifo /run/v\n}\n",
            "h",
        );
        assert!(c.lvs_fifos().is_empty());
    }
}
