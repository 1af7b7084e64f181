//! Health checks of a service, from keepalived.conf or the native TOML, into
//! [`fnat_health::ServiceSpec`]. keepalived's reader is the one validator of checkers: a TOML
//! `[[service.real.check]]` table is written as the keepalived block it stands for and read
//! by it, so that defaults (HTTP's 3 s `delay_before_retry`, MISC_CHECK's 0 retries, DNS's 3),
//! inheritance and refusals are the same whichever file they come from.

use std::fmt::Write;
use std::net::IpAddr;

use fnat_health::{RealSpec, ServiceSpec};
use fnat_keepalived::lvs::{CheckerKind, VirtualServer};
use fnat_keepalived::{Diagnostic, Level};
use fnat_proto::model::{Real, Service, ServiceAddr};

use super::file::{CheckSection, RealSection, ServiceSection};

/// The health spec of `service` (already built from `vs`), when `vs` asks for checks or a
/// sorry server. Checkers fnat does not run (BFD_CHECK, FILE_CHECK) or with IPv6 targets are
/// left out with a warning.
pub fn spec_of(
    vs: &VirtualServer,
    service: &Service,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Option<ServiceSpec>, (fnat_keepalived::Location, String, String)> {
    let vport = match service.addr {
        ServiceAddr::Inet { port, .. } => port,
        ServiceAddr::Fwmark(_) | ServiceAddr::Match(_) => 0,
    };
    let mut reals = Vec::new();
    for (rs, real) in vs.reals.iter().zip(&service.reals) {
        let mut checkers = Vec::new();
        for c in &rs.checkers {
            let v6 = matches!(c.connect_ip, Some(IpAddr::V6(_)))
                || matches!(c.bindto, Some(IpAddr::V6(_)));
            if v6 || matches!(c.kind, CheckerKind::Other(_)) {
                if v6 {
                    warnings.push(Diagnostic {
                        level: Level::Warning,
                        at: c.at.clone(),
                        keyword: c.kind.keyword().to_string(),
                        message: "IPv6 checker addresses are not supported yet: checker ignored"
                            .into(),
                    });
                }
                continue;
            }
            checkers.push(c.clone());
        }
        let inhibit = rs.checkers.iter().any(|c| c.timing.inhibit_on_failure);
        reals.push(RealSpec {
            addr: real.key(),
            weight: real.weight,
            inhibit,
            notify_up: rs.notify_up.clone(),
            notify_down: rs.notify_down.clone(),
            checkers,
        });
    }
    let sorry = match vs.sorry_server {
        Some((IpAddr::V4(ip), port)) => {
            let mut r = Real::new(ip, port.unwrap_or(vport), 1);
            r.forward = service.reals.first().map(|r| r.forward).unwrap_or_default();
            Some(r)
        }
        Some((IpAddr::V6(ip), _)) => {
            return Err((
                vs.at.clone(),
                "sorry_server".into(),
                format!("{ip}: IPv6 is not supported yet"),
            ))
        }
        None => None,
    };
    if sorry.is_none() && reals.iter().all(|r| r.checkers.is_empty()) {
        return Ok(None);
    }
    Ok(Some(ServiceSpec {
        addr: service.addr,
        quorum: vs.quorum,
        hysteresis: vs.hysteresis,
        quorum_up: vs.quorum_up.clone(),
        quorum_down: vs.quorum_down.clone(),
        omega: vs.omega,
        sorry,
        sorry_inhibit: vs.sorry_server_inhibit,
        reals,
    }))
}

/// A value as keepalived reads it: one word, or a quoted string (no quotes or braces inside).
fn word(key: &str, value: &str) -> Result<String, (String, String)> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, '"' | '{' | '}' | '\n' | '\r' | '#' | '!' | '\\'))
    {
        return Err((
            key.to_string(),
            format!("'{value}' is empty or holds one of \" {{ }} # ! \\ or a line break"),
        ));
    }
    Ok(if value.contains(char::is_whitespace) {
        format!("\"{value}\"")
    } else {
        value.to_string()
    })
}

fn seconds(v: f64) -> String {
    format!("{v}")
}

/// The keepalived block a TOML check table stands for.
fn check_block(c: &CheckSection, key: &str, out: &mut String) -> Result<(), (String, String)> {
    let kind = match c.kind.to_ascii_lowercase().trim_end_matches("_check") {
        "tcp" => "TCP_CHECK",
        "http" | "http_get" => "HTTP_GET",
        "ssl" | "https" | "ssl_get" => "SSL_GET",
        "misc" => "MISC_CHECK",
        "udp" => "UDP_CHECK",
        "dns" => "DNS_CHECK",
        "ping" => "PING_CHECK",
        "smtp" => "SMTP_CHECK",
        other => {
            return Err((
                format!("{key}.type"),
                format!("'{other}' is not one of tcp, http, ssl, misc, udp, dns, ping, smtp"),
            ))
        }
    };
    let _ = writeln!(out, "   {kind} {{");
    let mut line = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(out, "    {k} {v}");
        }
    };
    let w = |field: &str, v: &Option<String>| -> Result<Option<String>, (String, String)> {
        v.as_deref()
            .map(|v| word(&format!("{key}.{field}"), v))
            .transpose()
    };
    line("connect_ip", w("connect_ip", &c.connect_ip)?);
    line("connect_port", c.connect_port.map(|p| p.to_string()));
    line("bindto", w("bindto", &c.bindto)?);
    line("bind_port", c.bind_port.map(|p| p.to_string()));
    line("connect_timeout", c.connect_timeout.map(seconds));
    line("retry", c.retry.map(|r| r.to_string()));
    line("delay_before_retry", c.delay_before_retry.map(seconds));
    line("delay_loop", c.delay_loop.map(seconds));
    line("warmup", c.warmup.map(seconds));
    line(
        "alpha",
        c.alpha.map(|a| if a { "on" } else { "off" }.into()),
    );
    line("http_protocol", w("http_protocol", &c.http_protocol)?);
    line("virtualhost", w("virtualhost", &c.virtualhost)?);
    line("misc_path", w("misc_path", &c.misc_path)?);
    line("misc_timeout", c.misc_timeout.map(seconds));
    line(
        "misc_dynamic",
        c.misc_dynamic.filter(|d| *d).map(|_| String::new()),
    );
    line("payload", w("payload", &c.payload)?);
    line("require_reply", w("require_reply", &c.require_reply)?);
    line("type", w("dns_type", &c.dns_type)?);
    line("name", w("dns_name", &c.dns_name)?);
    for (j, u) in c.url.iter().enumerate() {
        let ukey = format!("{key}.url[{j}]");
        let _ = writeln!(out, "    url {{");
        let _ = writeln!(out, "     path {}", word(&format!("{ukey}.path"), &u.path)?);
        if !u.status_code.is_empty() {
            let codes: Vec<String> = u
                .status_code
                .iter()
                .map(|s| word(&format!("{ukey}.status_code"), s))
                .collect::<Result<_, _>>()?;
            let _ = writeln!(out, "     status_code {}", codes.join(" "));
        }
        if let Some(d) = &u.digest {
            let _ = writeln!(out, "     digest {}", word(&format!("{ukey}.digest"), d)?);
        }
        if let Some(v) = &u.virtualhost {
            let _ = writeln!(
                out,
                "     virtualhost {}",
                word(&format!("{ukey}.virtualhost"), v)?
            );
        }
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "   }}");
    Ok(())
}

/// The health spec of the TOML service `s` (index `i`, built as `service`), read through
/// keepalived's reader; errors are `(key, reason)`.
pub fn from_toml(
    i: usize,
    s: &ServiceSection,
    service: &Service,
) -> Result<Option<ServiceSpec>, (String, String)> {
    let has_checks = s.reals.iter().any(|r| !r.check.is_empty());
    if !has_checks && s.sorry_server.is_none() {
        for field in [
            ("quorum", s.quorum.is_some()),
            ("hysteresis", s.hysteresis.is_some()),
            ("quorum_up", s.quorum_up.is_some()),
            ("quorum_down", s.quorum_down.is_some()),
        ] {
            if field.1 {
                return Err((
                    format!("service[{i}].{}", field.0),
                    "needs health checks ([[service.real.check]]) or a sorry_server".into(),
                ));
            }
        }
        return Ok(None);
    }
    let mut text = String::from("virtual_server 0.0.0.0 1 {\n");
    let skey = |f: &str| format!("service[{i}].{f}");
    let mut vline = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(text, "  {k} {v}");
        }
    };
    vline("quorum", s.quorum.map(|q| q.to_string()));
    vline("hysteresis", s.hysteresis.map(|q| q.to_string()));
    vline(
        "quorum_up",
        s.quorum_up
            .as_deref()
            .map(|v| word(&skey("quorum_up"), v))
            .transpose()?,
    );
    vline(
        "quorum_down",
        s.quorum_down
            .as_deref()
            .map(|v| word(&skey("quorum_down"), v))
            .transpose()?,
    );
    if let Some(sorry) = &s.sorry_server {
        let (ip, port) = sorry.rsplit_once(':').unwrap_or((sorry.as_str(), ""));
        let _ = writeln!(
            text,
            "  sorry_server {} {}",
            word(&skey("sorry_server"), ip)?,
            port
        );
    }
    if s.sorry_server_inhibit == Some(true) {
        text.push_str("  sorry_server_inhibit\n");
    }
    for (j, r) in s.reals.iter().enumerate() {
        real_block(i, j, r, &mut text)?;
    }
    text.push_str("}\n");
    let conf = fnat_keepalived::read_str(&format!("service[{i}]"), &text, "");
    let where_ = |d: &Diagnostic| -> (String, String) {
        // Line n of the generated text: name the TOML table it came from.
        (
            format!("service[{i}]"),
            format!("{}: {}", d.keyword, d.message),
        )
    };
    if let Some(e) = conf.errors().next() {
        return Err(where_(e));
    }
    if let Some(w) = conf.diagnostics.first() {
        return Err(where_(w));
    }
    let Some(vs) = conf.virtual_servers.first() else {
        return Err((skey("real"), "health checks could not be read".into()));
    };
    let mut warnings = Vec::new();
    let spec = spec_of(vs, service, &mut warnings).map_err(|(_, k, m)| (skey(&k), m))?;
    if let Some(w) = warnings.first() {
        return Err((skey("real"), w.message.clone()));
    }
    Ok(spec)
}

fn real_block(
    i: usize,
    j: usize,
    r: &RealSection,
    text: &mut String,
) -> Result<(), (String, String)> {
    let rkey = format!("service[{i}].real[{j}]");
    // The address was validated with the service; keepalived's reader needs it as written.
    let _ = writeln!(text, " real_server {} {} {{", r.address.trim(), r.port);
    if r.inhibit_on_failure == Some(true) {
        text.push_str("  inhibit_on_failure\n");
    }
    if let Some(v) = &r.notify_up {
        let _ = writeln!(
            text,
            "  notify_up {}",
            word(&format!("{rkey}.notify_up"), v)?
        );
    }
    if let Some(v) = &r.notify_down {
        let _ = writeln!(
            text,
            "  notify_down {}",
            word(&format!("{rkey}.notify_down"), v)?
        );
    }
    for (k, c) in r.check.iter().enumerate() {
        check_block(c, &format!("{rkey}.check[{k}]"), text)?;
    }
    text.push_str(" }\n");
    Ok(())
}
