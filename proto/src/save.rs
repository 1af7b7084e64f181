//! The native save format: the rule set as TOML (what `fnatctl save` writes, `fnatctl restore`
//! reads, and fnatd's state file holds).
//!
//! ```toml
//! [[service]]
//! addr = "tcp/10.0.0.1:80"
//! scheduler = "rr"
//!
//! [[service.reals]]
//! addr = "192.168.1.10"
//! port = 80
//! weight = 1
//! ```

use crate::edit::check_rule_set;
use crate::model::RuleSet;

/// The rule set as TOML text.
pub fn to_toml(rules: &RuleSet) -> Result<String, String> {
    toml::to_string(rules).map_err(|e| format!("cannot write the rules as TOML: {e}"))
}

/// Reads and checks a rule set written by [`to_toml`] (or by hand).
pub fn from_toml(text: &str) -> Result<RuleSet, String> {
    let rules: RuleSet = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    check_rule_set(&rules).map_err(|e| e.error.message)?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::net::Ipv4Addr;

    #[test]
    fn toml_round_trip_keeps_every_attribute() {
        let mut s = Service::new(
            ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53),
            Scheduler::Sh,
        );
        s.sched_flags = SchedFlags(SchedFlags::FLAG1 | SchedFlags::FLAG2);
        s.persistence = Some(Persistence {
            timeout: 600,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        });
        s.one_packet = true;
        s.expire_on_removal = true;
        s.conn_rate = Some("50:80/24".parse().unwrap());
        s.allow = vec!["10.9.0.0/16".parse().unwrap(), "10.8.0.1".parse().unwrap()];
        s.deny = vec!["10.9.1.0/24".parse().unwrap()];
        let mut r = Real::new(Ipv4Addr::new(192, 168, 0, 2), 5353, 7);
        r.upper_threshold = 100;
        r.lower_threshold = 10;
        s.reals.push(r);
        s.local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            device: Some("dpdk0".into()),
        });
        let rules = RuleSet {
            timeouts: TimeoutOverrides {
                tcp: Some(100),
                tcp_fin: None,
                udp: Some(30),
            },
            marks: vec![Mark {
                mark: 4,
                protocol: Protocol::Udp,
                vip: Ipv4Addr::new(10, 0, 0, 2),
                ports: PortList(vec![53, 5353, 5354]),
                name: Some("dns".into()),
            }],
            services: vec![s, Service::new(ServiceAddr::Fwmark(4), Scheduler::Lblcr)],
            ..RuleSet::default()
        };
        let text = to_toml(&rules).unwrap();
        assert_eq!(from_toml(&text).unwrap(), rules, "{text}");
    }

    #[test]
    fn bad_toml_is_explained() {
        let e = from_toml("[[service]]\naddr = \"tcp/1.2.3.4:80\"\ncolour = 1\n").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let twice =
            "[[service]]\naddr = \"tcp/1.2.3.4:80\"\n[[service]]\naddr = \"tcp/1.2.3.4:80\"\n";
        assert!(from_toml(twice).unwrap_err().contains("listed twice"));
    }
}
