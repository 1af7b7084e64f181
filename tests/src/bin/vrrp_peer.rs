//! fnat's VRRP service alone, for `tests/tests/lab_vrrp.rs`: run inside a lab namespace as
//! `vrrp_peer DIR PRIMARY`, it runs `DIR/fnat-vrrp.conf`'s `vrrp_instance`s on interface `f16f`
//! with PRIMARY as its address, rewrites `DIR/status` (`STATE MASTER counter=value…`) as the
//! state changes, and stops cleanly (priority 0) once `DIR/stop` exists. `DIR/pause` holding a
//! number of seconds makes it sleep that long between two turns, once (then it removes the
//! file): a service thread that was away, as when the machine pauses.

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(primary)) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: vrrp_peer DIR PRIMARY-ADDRESS");
        std::process::exit(2);
    };
    let primary = primary
        .to_str()
        .and_then(|p| p.parse().ok())
        .expect("PRIMARY-ADDRESS: an IPv4 address");
    let conf = fnat_keepalived::read_file(&dir.join("fnat-vrrp.conf"));
    assert_eq!(conf.errors().count(), 0, "{:?}", conf.diagnostics);
    let configs = conf
        .vrrp_instances
        .iter()
        .map(|v| fnat_vrrp::service::InstanceConfig::from_keepalived(v, primary).unwrap())
        .collect();
    let mut service = fnat_vrrp::service::Service::open("f16f", primary, configs).unwrap();
    let write = |service: &fnat_vrrp::service::Service| {
        let s = &service.status()[0];
        let mut line = format!(
            "{} {}",
            s.state.name(),
            s.master.map_or("-".to_string(), |m| m.to_string())
        );
        for (k, v) in &s.counters {
            line.push_str(&format!(" {k}={v}"));
        }
        let tmp = dir.join("status.tmp");
        std::fs::write(&tmp, line).unwrap();
        std::fs::rename(&tmp, dir.join("status")).unwrap();
    };
    service.start();
    loop {
        write(&service);
        if dir.join("stop").exists() {
            service.stop();
            write(&service);
            return;
        }
        if let Ok(secs) = std::fs::read_to_string(dir.join("pause")) {
            let secs: f64 = secs.trim().parse().expect("DIR/pause: seconds");
            std::thread::sleep(Duration::from_secs_f64(secs));
            std::fs::remove_file(dir.join("pause")).unwrap();
        }
        service.turn(Duration::from_millis(50));
    }
}
