//! One rule model, many roads: random valid rule sets (every kind of service, firewall marks,
//! fields at their limits) read from a config file come back identical, survive the native
//! save format (what the state file holds) and ipvsadm's `-S`/`-R`, and compile to exactly
//! the engine rules the same set gets when built with control commands one change at a time.
//! The daemon-level round trip (config → fnatd → state file → restart) is in
//! tests/tests/control_roundtrip.rs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnat_proto::edit::apply_all;
use fnat_proto::ipvsadm::args::ListFormat;
use fnat_proto::ipvsadm::{format, rules_file};
use fnat_proto::model::RuleSet;
use fnat_tests::rule_sets::{as_changes, config_tables, rule_set};
use proptest::prelude::*;

use super::ids::IdBook;
use super::plane::Plane;
use super::NoDataplane;
use crate::config::AppConfig;
use crate::rules_store::RulesStore;

const PORTS: &str = r#"
[[port]]
name = "wan"
device = "net_null0"
addresses = ["198.18.0.1/24"]

[[port]]
name = "lan"
device = "net_null1"
addresses = ["198.19.0.1/24"]

"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_road_carries_the_same_rules(rules in rule_set()) {
        let text = format!("{PORTS}{}", config_tables(&rules));
        let cfg = AppConfig::parse(Path::new("roundtrip.toml"), &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&cfg.rule_set, &rules);

        // The native save format (save/restore, the state file).
        let toml = fnat_proto::save::to_toml(&rules).unwrap();
        prop_assert_eq!(&fnat_proto::save::from_toml(&toml).unwrap(), &rules);

        // ipvsadm -S, then -R into an empty daemon, then -S again.
        let saved = format::save(&rules, &ListFormat::default(), &format::Numeric);
        let mut restored = RuleSet::default();
        apply_all(&mut restored, &rules_file::parse_rules(&saved).unwrap()).unwrap();
        prop_assert_eq!(
            format::save(&restored, &ListFormat::default(), &format::Numeric),
            saved
        );

        // Control commands on a daemon that started without services compile to the
        // config's engine rules, ids included.
        let mut base = cfg.rules.clone();
        base.services.clear();
        let store = RulesStore::new(base, 1);
        let mut plane = Plane::new(
            RuleSet::default(),
            IdBook::default(),
            Arc::clone(&store),
            Arc::new(NoDataplane),
            cfg.rules.timeouts,
            None,
            PathBuf::from("/nonexistent/ctl.sock"),
            PathBuf::from("/nonexistent/fnat.toml"),
        );
        for change in as_changes(&rules) {
            let done = plane.change(std::slice::from_ref(&change));
            prop_assert!(done.is_ok(), "{:?}: {:?}", change, done);
        }
        prop_assert_eq!(plane.rules(), &rules);
        let built = store.current();
        prop_assert_eq!(&built.services, &cfg.rules.services);
        prop_assert_eq!(built.timeouts, cfg.rules.timeouts);
    }
}
