//! keepalived's own sample configurations (Debian's keepalived package ships them; setup
//! installs it): every one reads without a panic, every error names a line, and every
//! virtual_server that is read keeps its real servers and their checkers.

use std::path::Path;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

#[test]
fn every_keepalived_sample_reads_with_named_problems_only() {
    let dir = Path::new(SAMPLES);
    assert!(
        dir.is_dir(),
        "{SAMPLES} is missing: install Debian's keepalived (scripts/setup-debian.sh does)"
    );
    let mut read = 0;
    let mut virtual_servers = 0;
    let mut checkers = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("keepalived.conf") {
            continue;
        }
        let config = fnat_keepalived::read_file(&path);
        read += 1;
        for d in &config.diagnostics {
            assert!(d.at.line > 0, "{name}: a diagnostic without a line: {d}");
            assert!(!d.message.is_empty());
        }
        let errors: Vec<String> = config.errors().map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        virtual_servers += config.virtual_servers.len();
        checkers += config
            .virtual_servers
            .iter()
            .flat_map(|vs| &vs.reals)
            .map(|rs| rs.checkers.len())
            .sum::<usize>();
    }
    // The package ships 25 configurations; 17 virtual servers among them.
    assert!(read >= 20, "only {read} samples read");
    assert!(
        virtual_servers >= 15,
        "only {virtual_servers} virtual servers"
    );
    assert!(checkers >= 30, "only {checkers} checkers");
}

#[test]
fn the_ssl_sample_keeps_its_url_digest_and_port() {
    let config =
        fnat_keepalived::read_file(&Path::new(SAMPLES).join("keepalived.conf.HTTP_GET.port"));
    let checker = &config.virtual_servers[0].reals[0].checkers[0];
    // The file is named HTTP_GET.port but its checker is an SSL_GET on port 444.
    let fnat_keepalived::lvs::CheckerKind::Http {
        urls, tls: true, ..
    } = &checker.kind
    else {
        panic!("expected SSL_GET, got {:?}", checker.kind)
    };
    assert_eq!(checker.connect_port, Some(444));
    assert_eq!(checker.timing.retry, 3);
    assert!(!urls.is_empty());
    assert!(urls.iter().all(|u| u.path.starts_with('/')));
    assert!(
        urls.iter()
            .any(|u| u.digest.as_deref().is_some_and(|d| d.len() == 32)),
        "{urls:?}"
    );
}
