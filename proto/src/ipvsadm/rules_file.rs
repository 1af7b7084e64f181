//! ipvsadm rules files: what `ipvsadm -S` writes and `ipvsadm -R` reads, one command per line
//! (`-A …`, `-a …`), plus DPVS's local-address lines (`-P -t VIP:PORT -z LIP [-F dev]`).
//! Blank lines and `#` comments are skipped; a leading `ipvsadm` word is allowed.

use crate::edit::Change;
use crate::ipvsadm::args::{parse_with, IpvsCommand, Lookup, NoLookup};

/// The changes a rules file holds, in order. Errors name the line. Numbers only.
pub fn parse_rules(text: &str) -> Result<Vec<Change>, String> {
    parse_rules_with(text, &NoLookup)
}

/// [`parse_rules`], with host and service names (what `ipvsadm -S` without `-n` writes)
/// resolved by `lookup`.
pub fn parse_rules_with(text: &str, lookup: &dyn Lookup) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if words.first().map(String::as_str) == Some("ipvsadm") {
            words.remove(0);
        }
        let n = i + 1;
        match parse_with(&words, lookup) {
            Ok(IpvsCommand::Change(change)) => changes.push(change),
            Ok(IpvsCommand::StartDaemon { role, daemon }) => {
                changes.push(Change::SyncStart { role, daemon })
            }
            Ok(IpvsCommand::StopDaemon { role }) => changes.push(Change::SyncStop { role }),
            Ok(_) => {
                return Err(format!(
                    "line {n}: only commands that change rules (-A -D -a -d -C --set -P -Q --start-daemon --stop-daemon) belong in a rules file"
                ))
            }
            Err(e) => return Err(format!("line {n}: {}", e.message)),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::apply_all;
    use crate::ipvsadm::args::ListFormat;
    use crate::ipvsadm::format::{save, Numeric};
    use crate::model::RuleSet;

    /// `--start-daemon` lines: saved by -S after the rules, read back by -R into the same
    /// daemons (the one validator refuses a second daemon of a role), and through the TOML
    /// of `fnatctl save` and the state file too.
    #[test]
    fn sync_daemons_survive_save_and_restore() {
        use crate::sync::{SyncDaemon, SyncRole};
        let text = "-A -t 10.0.0.1:80 -s rr\n\
--start-daemon master --mcast-interface lan --syncid 7\n\
--start-daemon backup --mcast-interface lan --syncid 7 --sync-maxlen 1400 \
--mcast-group 239.1.2.3 --mcast-port 8849 --mcast-ttl 2\n";
        let mut rules = RuleSet::default();
        apply_all(&mut rules, &parse_rules(text).unwrap()).unwrap();
        let mut backup = SyncDaemon::new("lan");
        backup.syncid = 7;
        backup.maxlen = 1400;
        backup.group = "239.1.2.3".parse().unwrap();
        backup.port = 8849;
        backup.ttl = 2;
        assert_eq!(rules.sync.get(SyncRole::Backup), Some(&backup));
        assert_eq!(rules.sync.get(SyncRole::Master).unwrap().syncid, 7);
        let saved = save(&rules, &ListFormat::default(), &Numeric);
        assert!(
            saved.contains("--start-daemon master --mcast-interface lan --syncid 7\n"),
            "{saved}"
        );
        let mut again = RuleSet::default();
        apply_all(&mut again, &parse_rules(&saved).unwrap()).unwrap();
        assert_eq!(again, rules);
        let toml = crate::save::to_toml(&rules).unwrap();
        assert_eq!(crate::save::from_toml(&toml).unwrap(), rules);
        // Stopped by a later line; a second master refused.
        let mut stopped = rules.clone();
        apply_all(
            &mut stopped,
            &parse_rules("--stop-daemon master\n").unwrap(),
        )
        .unwrap();
        assert!(stopped.sync.master.is_none());
        let e = apply_all(
            &mut rules,
            &parse_rules("--start-daemon master --mcast-interface wan\n").unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("already running"), "{}", e.message);
        // An empty rule set saves no daemon line.
        let empty = save(&RuleSet::default(), &ListFormat::default(), &Numeric);
        assert!(!empty.contains("daemon"));
    }

    #[test]
    fn save_output_parses_back_to_the_same_rules() {
        let text = "# saved\n\
--add-mark 7 tcp 10.0.0.3 80\n\
ipvsadm -A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.0.0\n\
-a -t 10.0.0.1:80 -r 192.168.1.1:80 -b -w 2 -x 100 -y 10\n\
-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -b -w 0\n\
-P -t 10.0.0.1:80 -z 10.1.0.1 -F dpdk0\n\
\n\
-A -u 10.0.0.2:53 -s wrr --sched-flags flag-2 -o\n\
-A -f 7 -s lblcr\n";
        let mut rules = RuleSet::default();
        apply_all(&mut rules, &parse_rules(text).unwrap()).unwrap();
        let saved = save(&rules, &ListFormat::default(), &Numeric);
        let mut again = RuleSet::default();
        apply_all(&mut again, &parse_rules(&saved).unwrap()).unwrap();
        assert_eq!(save(&again, &ListFormat::default(), &Numeric), saved);
        let mut sorted = rules.clone();
        sorted
            .services
            .sort_by(|a, b| a.addr.ipvsadm_order(&b.addr));
        assert_eq!(again, sorted);
    }

    #[test]
    fn marks_and_expire_on_removal_survive_save_and_restore() {
        let text = "--add-mark 66 tcp 10.0.0.1 80,443,8000-8100\n\
-A -f 66 -s rr -p 360 --expire-on-removal\n\
-a -f 66 -r 192.168.0.10:0 -b -w 100000\n";
        let mut rules = RuleSet::default();
        apply_all(&mut rules, &parse_rules(text).unwrap()).unwrap();
        assert_eq!(rules.marks[0].ports.0.len(), 103);
        assert!(rules.services[0].expire_on_removal);
        let saved = save(&rules, &ListFormat::default(), &Numeric);
        assert_eq!(saved, text);
        // Deleting the mark while its service lives is refused; after the service, it goes.
        let e = apply_all(&mut rules, &parse_rules("--del-mark 66\n").unwrap()).unwrap_err();
        assert!(e.message.contains("in use by service fwmark/66"), "{e}");
        apply_all(
            &mut rules,
            &parse_rules("-D -f 66\n--del-mark 66\n").unwrap(),
        )
        .unwrap();
        assert_eq!(rules, RuleSet::default());
    }

    #[test]
    fn client_lists_and_conn_rate_survive_save_and_restore() {
        let text = "-A -t 198.18.0.100:80 -s rr --conn-rate 100:200/24\n\
-a -t 198.18.0.100:80 -r 198.18.1.10:80 -b -w 1\n\
-P -t 198.18.0.100:80 -z 198.18.1.1\n\
-O -t 198.18.0.100:80 -2 198.18.0.0/24\n\
-O -t 198.18.0.100:80 -2 198.18.2.7\n\
-U -t 198.18.0.100:80 -k 198.18.0.66\n";
        let mut rules = RuleSet::default();
        apply_all(&mut rules, &parse_rules(text).unwrap()).unwrap();
        let s = &rules.services[0];
        assert_eq!(s.allow.len(), 2);
        assert_eq!(s.deny[0].to_string(), "198.18.0.66");
        let r = s.conn_rate.unwrap();
        assert_eq!((r.rate, r.burst, r.prefix_len), (100, 200, 24));
        let saved = save(&rules, &ListFormat::default(), &Numeric);
        assert_eq!(saved, text);
        // The same entry twice, a missing one, a prefix with host bits: refused.
        let e = apply_all(
            &mut rules,
            &parse_rules("-U -t 198.18.0.100:80 -k 198.18.0.66\n").unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("already in the deny list"), "{e}");
        let e = apply_all(
            &mut rules,
            &parse_rules("-Y -t 198.18.0.100:80 -2 198.18.9.0/24\n").unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("not in the allow list"), "{e}");
        let e = parse_rules("-U -t 198.18.0.100:80 -k 198.18.0.1/24\n").unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        let e = parse_rules("-E -t 198.18.0.100:80 --conn-rate 0:1\n").unwrap_err();
        assert!(e.contains("conn-rate"), "{e}");
        // Deleting empties the lists; `-E --conn-rate 0` lifts the cap.
        apply_all(
            &mut rules,
            &parse_rules(
                "-Y -t 198.18.0.100:80 -2 198.18.0.0/24\n\
-Y -t 198.18.0.100:80 -2 198.18.2.7\n\
-V -t 198.18.0.100:80 -k 198.18.0.66\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert!(rules.services[0].allow.is_empty() && rules.services[0].deny.is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_rules("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r nowhere\n").unwrap_err();
        assert_eq!(e, "line 2: illegal real server address[:port] specified");
        let e = parse_rules("-L -n\n").unwrap_err();
        assert!(e.starts_with("line 1: only commands"), "{e}");
    }
}
