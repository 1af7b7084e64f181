//! Client allow/deny lists through real stacks: a denied client's curl fails while another
//! client of the same network keeps working, an open connection is not cut by a deny added
//! later, and the refusals are counted by reason in `fnatctl stats`.

mod lab_support;

use std::time::Duration;

use lab_support::*;

fn curl_from(lab: &Lab, src: &str) -> fnat_tests::Finished {
    lab.run(
        "c",
        &[
            "curl",
            "-sS",
            "-m",
            "3",
            "--interface",
            src,
            &format!("http://{VIP}"),
        ],
        Duration::from_secs(10),
    )
}

#[test]
fn lab_denied_client_cannot_connect_and_allowed_one_can() {
    let lab = Lab::up(2, &[]);
    // A second client address on the client's link.
    let dev = format!("{}c0", lab.prefix);
    let added = lab.run(
        "c",
        &["ip", "addr", "add", "198.18.0.3/24", "dev", &dev],
        Duration::from_secs(10),
    );
    assert!(added.status.success(), "{}", added.stderr);
    for src in ["198.18.0.2", "198.18.0.3"] {
        let done = curl_from(&lab, src);
        assert!(
            done.status.success(),
            "{src} before any list: {}",
            done.stderr
        );
    }

    let out = lab.ipvsadm(&["-U", "-t", &format!("{VIP}:80"), "-k", "198.18.0.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied = curl_from(&lab, "198.18.0.3");
    assert!(
        !denied.status.success(),
        "a denied client got through: {}",
        denied.stdout
    );
    let allowed = curl_from(&lab, "198.18.0.2");
    assert!(allowed.status.success(), "{}", allowed.stderr);
    assert!(
        allowed.stdout.trim().starts_with("rs"),
        "{}",
        allowed.stdout
    );

    // An allow list of .2 only: .3 stays out (deny wins anyway), .2 is in.
    let out = lab.ipvsadm(&["-O", "-t", &format!("{VIP}:80"), "-2", "198.18.0.2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(curl_from(&lab, "198.18.0.2").status.success());
    let out = lab.ipvsadm(&["-V", "-t", &format!("{VIP}:80"), "-k", "198.18.0.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !curl_from(&lab, "198.18.0.3").status.success(),
        "not in the allow list"
    );

    let mut c = std::process::Command::new(fnat_tests::bin("fnatctl"));
    c.arg("--socket")
        .arg(lab.socket())
        .args(["stats", "--exact"]);
    let stats = fnat_tests::run_with_deadline(&mut c, Duration::from_secs(10));
    let line = |name: &str| {
        stats
            .stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in stats:\n{}", stats.stdout))
            .to_string()
    };
    assert!(
        !line("client_denied").trim().ends_with(" 0"),
        "{}",
        stats.stdout
    );
    assert!(
        !line("client_not_allowed").trim().ends_with(" 0"),
        "{}",
        stats.stdout
    );
    lab.down();
}
