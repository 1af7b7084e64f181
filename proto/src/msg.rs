//! The wire protocol: one JSON object per line each way.
//!
//! Request:  `{"version":1,"op":"real_add","args":{"service":"tcp/10.0.0.1:80","real":{...}}}`
//! Reply:    `{"version":1,"ok":true,"result":{"generation":7}}`
//!        or `{"version":1,"ok":false,"error":{"kind":"destination_exists","message":"Destination already exists"}}`
//!
//! Requests are parsed strictly: unknown keys, unknown ops, a wrong version or a wrong type
//! are answered with a `bad_request` error that names the problem.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::edit::Change;
use crate::model::ServiceAddr;
use crate::stats::ConnFilter;
use crate::PROTOCOL_VERSION;

/// Why a request failed. Clients (ipvsadm mode) map these to ipvsadm's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not valid JSON, unknown op or field, wrong version, too large.
    BadRequest,
    /// A value out of range or inconsistent.
    Invalid,
    /// Valid, but the engine cannot run it yet.
    Unsupported,
    ServiceExists,
    NoSuchService,
    DestinationExists,
    NoSuchDestination,
    LaddrExists,
    NoSuchLaddr,
    /// A client prefix already in the allow/deny list.
    AclEntryExists,
    /// A client prefix not in the allow/deny list.
    NoSuchAclEntry,
    MarkExists,
    NoSuchMark,
    /// The daemon could not finish (publish not acknowledged, state file not written).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A question or a batch of changes. Single changes travel as their own op (see [`Change`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Query {
    /// Daemon version, rules generation, counts.
    Status,
    /// The rules with counters; one service when `service` is given.
    List {
        #[serde(default)]
        service: Option<ServiceAddr>,
    },
    /// ipvsadm's three timeouts in force.
    TimeoutGet,
    /// Sessions matching `filter`, at most `limit` (default 10000).
    Connections {
        #[serde(default)]
        filter: ConnFilter,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Zero the counters (ipvsadm -Z): of `service` and its reals, or all.
    Zero {
        #[serde(default)]
        service: Option<ServiceAddr>,
    },
    /// Several changes, applied and published all-or-nothing as one snapshot.
    Apply { changes: Vec<Change> },
    /// Re-read the daemon's config file and replace the services, local addresses and
    /// timeouts with its own (as at start). A file that does not validate changes nothing.
    Reload,
    /// Every health checker with its state, and each checked service's quorum.
    Health,
    /// Stop announcing `vips` (all VIPs, the whole daemon, when empty): their `announce`
    /// in `status` turns false. Forwarding goes on, new connections included. Answers
    /// the status.
    Drain {
        #[serde(default)]
        vips: Vec<std::net::Ipv4Addr>,
    },
    /// End the drain of `vips` (every drain when empty). Answers the status.
    Undrain {
        #[serde(default)]
        vips: Vec<std::net::Ipv4Addr>,
    },
    /// Every VRRP instance with its state and keepalived's counters.
    Vrrp,
    /// The session sync daemons and their counters.
    Sync,
    /// Starts a sync daemon (ipvsadm --start-daemon). Answers the sync status.
    SyncStart {
        role: crate::sync::SyncRole,
        daemon: crate::sync::SyncDaemon,
    },
    /// Stops a sync daemon (ipvsadm --stop-daemon). Answers the sync status.
    SyncStop { role: crate::sync::SyncRole },
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Query(Query),
    Change(Change),
}

impl Request {
    /// The request as one line of JSON (with the newline).
    pub fn encode(&self) -> String {
        let body = match self {
            Request::Query(q) => serde_json::to_value(q),
            Request::Change(c) => serde_json::to_value(c),
        };
        let mut obj = match body {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        obj.insert("version".into(), Value::from(PROTOCOL_VERSION));
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        line
    }
}

fn bad(message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        kind: ErrorKind::BadRequest,
        message: message.into(),
    }
}

/// Ops that take no arguments.
const UNIT_OPS: [&str; 7] = [
    "status",
    "timeout_get",
    "flush",
    "reload",
    "health",
    "vrrp",
    "sync",
];

/// Names of the ops that are single changes.
const CHANGE_OPS: [&str; 15] = [
    "service_add",
    "service_edit",
    "service_del",
    "real_add",
    "real_edit",
    "real_del",
    "laddr_add",
    "laddr_del",
    "acl_add",
    "acl_del",
    "mark_add",
    "mark_del",
    "flush",
    "timeout_set",
    "replace",
];
const QUERY_OPS: [&str; 14] = [
    "status",
    "drain",
    "undrain",
    "list",
    "timeout_get",
    "connections",
    "zero",
    "apply",
    "reload",
    "health",
    "vrrp",
    "sync",
    "sync_start",
    "sync_stop",
];

/// Parses one request line (without its newline). Every failure names what is wrong.
pub fn parse_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let text = std::str::from_utf8(line).map_err(|_| bad("request is not UTF-8"))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("request is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad("request must be a JSON object"));
    };
    match obj.remove("version") {
        None => return Err(bad("missing field `version`")),
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(other) => {
            return Err(bad(format!(
                "unsupported protocol version {other} (this daemon speaks {PROTOCOL_VERSION})"
            )))
        }
    }
    if let Some(key) = obj.keys().find(|k| *k != "op" && *k != "args") {
        return Err(bad(format!(
            "unknown field `{key}` (a request has version, op and args)"
        )));
    }
    let op = match obj.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(_) => return Err(bad("field `op` must be a string")),
        None => return Err(bad("missing field `op`")),
    };
    // Ops without arguments take none (or an empty object); the others may leave out
    // `args` when every argument has a default.
    if UNIT_OPS.contains(&op.as_str()) {
        match obj.get("args") {
            Some(Value::Null) => {
                obj.remove("args");
            }
            Some(Value::Object(m)) if m.is_empty() => {
                obj.remove("args");
            }
            _ => {}
        }
    } else if matches!(obj.get("args"), None | Some(Value::Null)) {
        obj.insert("args".into(), Value::Object(Map::new()));
    }
    let body = Value::Object(obj);
    if CHANGE_OPS.contains(&op.as_str()) {
        serde_json::from_value::<Change>(body)
            .map(Request::Change)
            .map_err(|e| bad(format!("op `{op}`: {e}")))
    } else if QUERY_OPS.contains(&op.as_str()) {
        serde_json::from_value::<Query>(body)
            .map(Request::Query)
            .map_err(|e| bad(format!("op `{op}`: {e}")))
    } else {
        Err(bad(format!(
            "unknown op `{op}`; known ops: {}, {}",
            QUERY_OPS.join(", "),
            CHANGE_OPS.join(", ")
        )))
    }
}

/// A reply line. Fields it does not know are ignored (a newer fnatd may add some).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    pub fn ok(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                version: PROTOCOL_VERSION,
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::error(ErrorBody {
                kind: ErrorKind::Internal,
                message: format!("cannot encode the reply: {e}"),
            }),
        }
    }
    pub fn error(error: ErrorBody) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            ok: false,
            result: None,
            error: Some(error),
        }
    }
    /// The reply as one line of JSON (with the newline).
    pub fn encode(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"version\":{PROTOCOL_VERSION},\"ok\":false,\"error\":{{\"kind\":\"internal\",\"message\":\"cannot encode the reply: {}\"}}}}",
                e.to_string().replace('"', "'")
            )
        });
        line.push('\n');
        line
    }
    /// Parses a reply line and extracts its result as `T`, or the error.
    pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ErrorBody> {
        let resp: Response = serde_json::from_str(line.trim_end())
            .map_err(|e| bad(format!("the daemon's reply is not understood: {e}")))?;
        if !resp.ok {
            return Err(resp
                .error
                .unwrap_or_else(|| bad("error reply without an error")));
        }
        serde_json::from_value(resp.result.unwrap_or(Value::Null))
            .map_err(|e| bad(format!("the daemon's reply is not understood: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Real, Scheduler, Service};
    use crate::stats::Applied;
    use std::net::Ipv4Addr;

    /// An older fnatctl reads a newer fnatd's replies: fields it does not know, at any level
    /// of a listing, are ignored; what it knows is read as before.
    #[test]
    fn replies_ignore_fields_a_newer_daemon_adds() {
        let line = r#"{"version":1,"ok":true,"since":"v2","result":{
            "rules":{},"timeouts":null,"future":[1,2],
            "stats":[{"service":"tcp/198.18.0.100:80",
                      "counters":{"conns":7,"new_rate":3},"extra":true,"reals":[]}],
            "local_addrs":[{"addr":"198.19.0.10","ports_in_use":2,"reserved":9}]}}"#;
        let r: Response = serde_json::from_str(line).expect("reply with unknown fields");
        assert!(r.ok);
        let listing: crate::stats::Listing =
            serde_json::from_value(r.result.expect("result")).expect("listing");
        assert_eq!(listing.stats.len(), 1);
        assert_eq!(listing.stats[0].counters.conns, 7);
        assert_eq!(listing.local_addrs[0].ports_in_use, 2);
        // Requests stay strict.
        assert!(parse_request(br#"{"version":1,"op":"status","x":1}"#).is_err());
    }

    #[test]
    fn requests_round_trip() {
        let svc = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80);
        let requests = [
            Request::Query(Query::Status),
            Request::Query(Query::List { service: Some(svc) }),
            Request::Query(Query::Connections {
                filter: ConnFilter::default(),
                limit: Some(5),
            }),
            Request::Change(Change::Flush),
            Request::Change(Change::ServiceAdd {
                service: Service::new(svc, Scheduler::Rr),
            }),
            Request::Change(Change::RealAdd {
                service: svc,
                real: Real::new(Ipv4Addr::new(192, 168, 0, 1), 80, 3),
            }),
            Request::Query(Query::Apply {
                changes: vec![Change::Flush],
            }),
            Request::Query(Query::Drain { vips: vec![] }),
            Request::Query(Query::Undrain {
                vips: vec![Ipv4Addr::new(198, 18, 10, 100)],
            }),
        ];
        for r in requests {
            let line = r.encode();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(r), "{line}");
        }
    }

    #[test]
    fn args_may_be_left_out_when_they_have_defaults() {
        assert_eq!(
            parse_request(br#"{"version":1,"op":"list"}"#),
            Ok(Request::Query(Query::List { service: None }))
        );
        assert_eq!(
            parse_request(br#"{"version":1,"op":"status","args":{}}"#),
            Ok(Request::Query(Query::Status))
        );
        assert!(parse_request(br#"{"version":1,"op":"status","args":{"x":1}}"#).is_err());
        let e = parse_request(br#"{"version":1,"op":"service_del"}"#).unwrap_err();
        assert!(
            e.message.contains("missing field `service`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let line = br#"{"version":1,"op":"real_add","args":{"service":"tcp/10.0.0.1:80","real":{"addr":"192.168.1.10","port":80,"weight":2}}}"#;
        let Request::Change(Change::RealAdd { real, .. }) = parse_request(line).unwrap() else {
            panic!("wrong request")
        };
        assert_eq!(real.weight, 2);
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let cases: [(&[u8], &str); 9] = [
            (b"garbage", "not valid JSON"),
            (b"{\"version\":1,\"op\":\"list\"", "not valid JSON"),
            (b"[1,2]", "JSON object"),
            (b"{\"op\":\"status\"}", "missing field `version`"),
            (b"{\"version\":9,\"op\":\"status\"}", "unsupported protocol version 9"),
            (b"{\"version\":1,\"op\":\"dance\"}", "unknown op `dance`"),
            (b"{\"version\":1,\"op\":\"status\",\"x\":1}", "unknown field `x`"),
            (
                b"{\"version\":1,\"op\":\"service_del\",\"args\":{\"service\":\"tcp/1.2.3.4:80\",\"color\":1}}",
                "unknown field `color`",
            ),
            (
                b"{\"version\":1,\"op\":\"service_del\",\"args\":{\"service\":\"tcp/1.2.3.400:80\"}}",
                "not a service address",
            ),
        ];
        for (line, want) in cases {
            let e = parse_request(line).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(
                e.message.contains(want),
                "{:?}: {}",
                String::from_utf8_lossy(line),
                e.message
            );
        }
    }

    #[test]
    fn replies_decode_to_results_or_errors() {
        let line = Response::ok(Applied { generation: 3 }).encode();
        assert_eq!(
            Response::decode::<Applied>(&line),
            Ok(Applied { generation: 3 })
        );
        let err = ErrorBody {
            kind: ErrorKind::NoSuchService,
            message: "No such service".into(),
        };
        let line = Response::error(err.clone()).encode();
        assert_eq!(Response::decode::<Applied>(&line), Err(err));
    }
}
