//! Random valid rule sets through a real fnatd: config → daemon (it holds exactly the config's
//! rules: `save` and `-S` as the model writes them) → a change → SIGTERM → restart from the
//! state file (identical `-S` and `save`) → `reload` of the config it started with (back to
//! the config's rules). Fewer cases than the model-level round trip
//! (control/src/control/roundtrip.rs): each starts fnatd twice.

use fnat_proto::ipvsadm::args::ListFormat;
use fnat_proto::ipvsadm::format;
use fnat_tests::rule_sets::{config_tables, rule_set};
use fnat_tests::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn ok(done: Finished, what: &str) -> String {
    assert_eq!(done.code(), Some(0), "{what}: {}", done.stderr);
    done.stdout
}

#[test]
fn random_rule_sets_survive_the_daemon_its_state_file_and_a_restart() {
    let dir = TempDir::new("ctl-roundtrip");
    let socket = dir.join("ctl.sock");
    let links = ipvsadm_dir(&dir);
    let mut runner = TestRunner::new(Config {
        cases: 6,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(&rule_set(), |rules| {
            case.set(case.get() + 1);
            let state = dir.join(&format!("state{}.toml", case.get()));
            let cfg = dir.join(&format!("fnat{}.toml", case.get()));
            let text = format!(
                r#"
[dataplane]
workers = 2
rx_desc = 512
tx_desc = 512

[[port]]
name = "wan"
device = "net_null0"
addresses = ["198.18.0.1/24"]

[[port]]
name = "lan"
device = "net_null1"
addresses = ["198.19.0.1/24"]

[control]
state_file = "{}"

{}"#,
                state.display(),
                config_tables(&rules)
            );
            std::fs::write(&cfg, &text).unwrap();
            let model_save = fnat_proto::save::to_toml(&rules).unwrap();
            let model_s = format::save(&rules, &ListFormat::default(), &format::Numeric);

            let daemon = Daemon::start(&cfg, &socket, &[]);
            prop_assert_eq!(&ok(fnatctl(&socket, &["save"]), "save"), &model_save);
            prop_assert_eq!(&ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), &model_s);
            // Changes journalled in the state file: a mark with its service, timeouts.
            for args in [
                &[
                    "--add-mark",
                    "4000000000",
                    "udp",
                    "198.18.2.1",
                    "53,5353-5355",
                ][..],
                &[
                    "-A",
                    "-f",
                    "4000000000",
                    "-s",
                    "mh",
                    "-p",
                    "1",
                    "-M",
                    "0.0.0.0",
                ],
                &[
                    "-a",
                    "-f",
                    "4000000000",
                    "-r",
                    "198.19.1.99:0",
                    "-b",
                    "-w",
                    "2147483647",
                ],
                &["--set", "2678400", "1", "0"],
            ] {
                ok(ipvsadm(&links, &socket, args), &format!("{args:?}"));
            }
            let before = ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S");
            let saved = ok(fnatctl(&socket, &["save"]), "save");
            let listed = ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln");
            daemon.stop();

            let daemon = Daemon::start(&cfg, &socket, &[]);
            prop_assert_eq!(&ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), &before);
            prop_assert_eq!(&ok(fnatctl(&socket, &["save"]), "save"), &saved);
            prop_assert_eq!(&ok(ipvsadm(&links, &socket, &["-Ln"]), "-Ln"), &listed);
            ok(fnatctl(&socket, &["reload"]), "reload");
            prop_assert_eq!(&ok(ipvsadm(&links, &socket, &["-S", "-n"]), "-S"), &model_s);
            daemon.stop();
            Ok(())
        })
        .unwrap();
}
