//! Bad input and many clients: garbage, truncated JSON, a 10 MB line, unknown fields, invalid
//! values, duplicates, a thousand connections opened and dropped, a client that never reads,
//! concurrent writers with a lister. Each bad request is answered with an error (where a
//! reply is possible) and the daemon is unaffected: same rules, still answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use fnat_tests::*;

fn error_reply(reply: &str, kind: &str, words: &str) {
    assert!(reply.starts_with("{\"version\":1,\"ok\":false,"), "{reply}");
    assert!(reply.contains(&format!("\"kind\":\"{kind}\"")), "{reply}");
    assert!(reply.contains(words), "expected {words:?} in {reply}");
    assert!(reply.ends_with('\n'));
}

#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let dir = TempDir::new("ctl-bad");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    let before = ipvsadm(&links, &socket, &["-S", "-n"]).stdout;

    let cases: [(&str, &str, &str); 10] = [
        ("garbage", "bad_request", "not valid JSON"),
        ("{\"version\":1,\"op\":\"list\"", "bad_request", "not valid JSON"),
        ("{\"version\":1,\"op\":\"status\",\"extra\":true}", "bad_request", "unknown field `extra`"),
        ("{\"version\":1,\"op\":\"real_add\",\"args\":{\"service\":\"tcp/198.18.0.100:80\",\"real\":{\"addr\":\"198.19.1.9\",\"port\":80,\"colour\":1}}}", "bad_request", "unknown field `colour`"),
        ("{\"version\":1,\"op\":\"explode\"}", "bad_request", "unknown op `explode`"),
        ("{\"version\":2,\"op\":\"status\"}", "bad_request", "unsupported protocol version"),
        ("{\"version\":1,\"op\":\"service_del\",\"args\":{\"service\":\"tcp/198.18.0.300:80\"}}", "bad_request", "not a service address"),
        ("{\"version\":1,\"op\":\"real_add\",\"args\":{\"service\":\"tcp/198.18.0.100:80\",\"real\":{\"addr\":\"198.19.1.9\",\"port\":70000}}}", "bad_request", "70000"),
        ("{\"version\":1,\"op\":\"real_add\",\"args\":{\"service\":\"tcp/198.18.0.100:80\",\"real\":{\"addr\":\"198.19.1.9\",\"port\":0}}}", "invalid", "port"),
        ("{\"version\":1,\"op\":\"service_add\",\"args\":{\"service\":{\"addr\":\"tcp/198.18.0.100:80\",\"scheduler\":\"rr\"}}}", "service_exists", "Service already exists"),
    ];
    let lines: Vec<&str> = cases.iter().map(|c| c.0).collect();
    // All on one connection: an error never closes a well-framed conversation.
    let replies = control_exchange(&socket, &lines);
    for ((line, kind, words), reply) in cases.iter().zip(&replies) {
        let _ = line;
        error_reply(reply, kind, words);
    }

    // A line over the limit (1 MiB by default): one error reply, then the connection closes.
    let big = UnixStream::connect(&socket).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = {
        let mut w = big.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..10 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = w.write_all(b"\n");
        })
    };
    let mut reply = String::new();
    BufReader::new(&big).read_line(&mut reply).unwrap();
    error_reply(&reply, "bad_request", "request too large");
    writer.join().unwrap();

    // A request cut off by the client closing its side.
    let mut cut = UnixStream::connect(&socket).unwrap();
    cut.write_all(b"{\"version\":1,\"op\":\"sta").unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    cut.read_to_string(&mut reply).unwrap();
    error_reply(&reply, "bad_request", "truncated request");

    assert_eq!(ipvsadm(&links, &socket, &["-S", "-n"]).stdout, before);
    daemon.stop();
}

#[test]
fn many_dropped_and_silent_clients_do_not_disturb_the_daemon() {
    let dir = TempDir::new("ctl-flood");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let links = ipvsadm_dir(&dir);
    let before = ipvsadm(&links, &socket, &["-S", "-n"]).stdout;

    // A client that sends a request for a big answer and never reads it.
    let mut silent = UnixStream::connect(&socket).unwrap();
    for _ in 0..200 {
        silent
            .write_all(b"{\"version\":1,\"op\":\"list\"}\n")
            .unwrap();
    }
    // A client that connects and says nothing.
    let _mute = UnixStream::connect(&socket).unwrap();

    // A thousand connections opened and dropped, some mid-request.
    for i in 0..1000 {
        let mut s = UnixStream::connect(&socket).unwrap();
        match i % 3 {
            0 => {}
            1 => {
                let _ = s.write_all(b"{\"version\":1,\"op\":\"li");
            }
            _ => {
                let _ = s.write_all(b"{\"version\":1,\"op\":\"list\"}\n");
            }
        }
    }
    // The storm may briefly fill every connection slot ("busy" replies); once the dropped
    // connections are reaped the daemon answers again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = fnatctl(&socket, &["status"]);
        if status.code() == Some(0) {
            break;
        }
        assert!(status.stderr.contains("busy"), "{}", status.stderr);
        assert!(
            std::time::Instant::now() < deadline,
            "still busy after 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ipvsadm(&links, &socket, &["-S", "-n"]).stdout, before);
    drop(silent);
    daemon.stop();
}

#[test]
fn concurrent_writers_and_a_lister() {
    let dir = TempDir::new("ctl-concurrent");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&config("null-fnat.toml"), &socket, &[]);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                for i in 0..50 {
                    let svc = format!("tcp/198.18.{w}.{}:80", i + 1);
                    lines.push(format!(
                        "{{\"version\":1,\"op\":\"service_add\",\"args\":{{\"service\":{{\"addr\":\"{svc}\",\"scheduler\":\"wrr\"}}}}}}"
                    ));
                    lines.push(format!(
                        "{{\"version\":1,\"op\":\"real_add\",\"args\":{{\"service\":\"{svc}\",\"real\":{{\"addr\":\"198.19.2.{}\",\"port\":80,\"weight\":2}}}}}}",
                        i + 1
                    ));
                }
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                for reply in control_exchange(&socket, &refs) {
                    assert!(reply.starts_with("{\"version\":1,\"ok\":true,"), "{reply}");
                }
            })
        })
        .collect();
    let lister = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let lines = vec!["{\"version\":1,\"op\":\"list\"}"; 100];
            let mut last = 0;
            for reply in control_exchange(&socket, &lines) {
                assert!(reply.starts_with("{\"version\":1,\"ok\":true,"), "{reply}");
                let services = reply.matches("\"addr\":\"tcp/").count();
                assert!(services >= last, "a listing went backwards");
                last = services;
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    lister.join().unwrap();
    let links = ipvsadm_dir(&dir);
    let listed = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("TCP  ")).count(),
        201
    );
    // 200 added + the config's 2, plus the "  -> RemoteAddress:Port" header line.
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("  -> ")).count(),
        203
    );
    daemon.stop();
}
