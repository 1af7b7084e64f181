//! systemd's readiness protocol (`Type=notify`): one datagram, `READY=1` or `STOPPING=1`, to
//! the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
//! Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::Duration;

use fnat_proto::msg::{Query, Request, Response};
use fnat_proto::stats::Status;

/// Sends `state` to `$NOTIFY_SOCKET`; Ok(false) when the variable is not set.
pub fn notify(state: &str) -> Result<bool, String> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    let shown = target.to_string_lossy().into_owned();
    let socket = UnixDatagram::unbound().map_err(|e| format!("NOTIFY_SOCKET {shown}: {e}"))?;
    let sent = match shown.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| format!("NOTIFY_SOCKET {shown}: {e}"))?;
            socket.send_to_addr(state.as_bytes(), &addr)
        }
        None => socket.send_to(state.as_bytes(), &target),
    };
    sent.map_err(|e| format!("NOTIFY_SOCKET {shown}: {e}"))?;
    Ok(true)
}

/// Ready means every port is up (the caller's business) and the control socket answers a
/// status request; then `READY=1` with the rules generation as the status line.
pub fn ready(control_socket: &Path) -> Result<bool, String> {
    let shown = control_socket.display();
    let fail = |e: std::io::Error| format!("control socket {shown} does not answer: {e}");
    let mut stream = UnixStream::connect(control_socket).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    stream
        .write_all(Request::Query(Query::Status).encode().as_bytes())
        .map_err(fail)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(fail)?;
    let status: Status = Response::decode(&line).map_err(|e| {
        format!(
            "control socket {shown} answers with an error: {}",
            e.message
        )
    })?;
    notify(&format!(
        "READY=1\nSTATUS=forwarding; rules generation {}\nMAINPID={}",
        status.generation,
        std::process::id()
    ))
}
