//! keepalived's session sync daemon keywords: `global_defs { lvs_sync_daemon IF [VI_NAME]
//! [id N] [maxlen L] [port P] [ttl T] [group G] }` and the old `vrrp_instance { ...
//! lvs_sync_daemon_inteface IF }` (also spelled `_interface`), which runs the daemon on IF
//! following that instance.

use std::net::IpAddr;

use crate::diag::{Diagnostics, Location};
use crate::tree::Node;

/// One `lvs_sync_daemon` as written (values checked by fnat's rule model when applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    pub at: Location,
    pub interface: String,
    /// The VRRP instance the daemon follows (master while MASTER, backup otherwise).
    pub instance: Option<String>,
    pub id: Option<u8>,
    pub maxlen: Option<u16>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub group: Option<IpAddr>,
}

const OPTIONS: [&str; 5] = ["id", "maxlen", "port", "ttl", "group"];

/// Reads `lvs_sync_daemon IF [VI_NAME] [id N] [maxlen L] [port P] [ttl T] [group G]`.
pub fn lvs_sync_daemon(node: &Node, diags: &mut Diagnostics) -> Option<LvsSyncDaemon> {
    let mut args = node.args.iter().peekable();
    let Some(interface) = args.next() else {
        diags.error(&node.at, &node.keyword, "an interface is required");
        return None;
    };
    let mut d = LvsSyncDaemon {
        at: node.at.clone(),
        interface: interface.clone(),
        instance: None,
        id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    if let Some(a) = args.peek() {
        if !OPTIONS.contains(&a.as_str()) {
            d.instance = args.next().cloned();
        }
    }
    while let Some(key) = args.next() {
        let Some(value) = args.next() else {
            diags.error(&node.at, &node.keyword, format!("{key} needs a value"));
            return None;
        };
        let bad = |diags: &mut Diagnostics, what: &str| {
            diags.error(
                &node.at,
                &node.keyword,
                format!("{key} {value}: not {what}"),
            );
        };
        match key.as_str() {
            "id" => match value.parse() {
                Ok(v) => d.id = Some(v),
                Err(_) => {
                    bad(diags, "a sync id 0..255");
                    return None;
                }
            },
            "maxlen" => match value.parse() {
                Ok(v) => d.maxlen = Some(v),
                Err(_) => {
                    bad(diags, "a length 1..65535");
                    return None;
                }
            },
            "port" => match value.parse() {
                Ok(v) => d.port = Some(v),
                Err(_) => {
                    bad(diags, "a port 1..65535");
                    return None;
                }
            },
            "ttl" => match value.parse() {
                Ok(v) => d.ttl = Some(v),
                Err(_) => {
                    bad(diags, "a TTL 1..255");
                    return None;
                }
            },
            "group" => match value.parse() {
                Ok(v) => d.group = Some(v),
                Err(_) => {
                    bad(diags, "an IP address");
                    return None;
                }
            },
            other => {
                diags.error(
                    &node.at,
                    &node.keyword,
                    format!("unknown option '{other}' (id, maxlen, port, ttl, group)"),
                );
                return None;
            }
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use crate::read_str;

    #[test]
    fn both_spellings() {
        let c = read_str(
            "k.conf",
            "global_defs {\n  lvs_sync_daemon lan VI_1 id 51 maxlen 1400 port 8849 ttl 2 group 224.0.0.82\n}\n",
            "x",
        );
        assert!(c.errors().next().is_none(), "{:?}", c.diagnostics);
        let d = c.lvs_sync_daemon.expect("read");
        assert_eq!(d.interface, "lan");
        assert_eq!(d.instance.as_deref(), Some("VI_1"));
        assert_eq!(
            (d.id, d.maxlen, d.port, d.ttl),
            (Some(51), Some(1400), Some(8849), Some(2))
        );
        assert_eq!(d.group, Some("224.0.0.82".parse().unwrap()));
        let c = read_str(
            "k.conf",
            "global_defs {\n  lvs_sync_daemon lan id 300\n}\n",
            "x",
        );
        let e = c.errors().next().expect("an error");
        assert_eq!(e.at.line, 2);
        assert!(e.message.contains("id 300"), "{}", e.message);
    }
}
