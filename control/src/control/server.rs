//! The unix socket server: one accept thread, one thread per connection (at most
//! [`MAX_CONNECTIONS`]), each with read and write timeouts, so a slow, silent or vanished
//! client only ever holds its own thread. Requests are lines of at most `max_request_bytes`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fnat_proto::msg::{parse_request, ErrorBody, ErrorKind, Response};
use parking_lot::Mutex;

use super::plane::Plane;

/// Connections served at once; more are answered "busy" and closed.
pub const MAX_CONNECTIONS: usize = 128;
/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that does not read its reply within this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Binds `path`: refuses when another fnatd answers there, replaces a stale socket, refuses
/// to replace anything that is not a socket. The socket is mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "control socket {shown} is in use: another fnatd is running there"
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("removing stale control socket {shown}: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "control socket path {shown} exists and is not a socket"
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("control socket {shown}: {e}")),
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("binding control socket {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod 0660 {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket {shown}: {e}"))?;
    Ok(listener)
}

/// Serves `listener` until `stop` is set.
pub fn spawn(
    listener: UnixListener,
    plane: Arc<Mutex<Plane>>,
    max_request_bytes: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("fnat-control".into())
        .spawn(move || accept_loop(listener, plane, max_request_bytes, stop))
}

/// Decrements the live-connection count however the connection thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: UnixListener,
    plane: Arc<Mutex<Plane>>,
    max_request_bytes: usize,
    stop: Arc<AtomicBool>,
) {
    let live = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            let slot = Slot(Arc::clone(&live));
            let mut stream = stream;
            let busy = ErrorBody {
                kind: ErrorKind::Internal,
                message: format!(
                    "busy: {MAX_CONNECTIONS} control connections are open; retry later"
                ),
            };
            let _ = stream.write_all(Response::error(busy).encode().as_bytes());
            drop(slot);
            continue;
        }
        let slot = Slot(Arc::clone(&live));
        let plane = Arc::clone(&plane);
        let spawned = std::thread::Builder::new()
            .name("fnat-control-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, &plane, max_request_bytes);
            });
        // When no thread can be made the closure (and with it the stream and slot) is dropped.
        drop(spawned);
    }
}

/// Answers the requests of one connection, one line at a time, until it closes, idles out,
/// or sends something that cannot be framed (then it gets one error reply and is closed).
fn serve(stream: UnixStream, plane: &Mutex<Plane>, max_request_bytes: usize) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = max_request_bytes as u64 + 1;
        let read = (&mut reader).take(limit).read_until(b'\n', &mut line);
        let n = match read {
            Ok(n) => n,
            Err(_) => return, // idle timeout or reset
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        if !complete {
            let message = if line.len() > max_request_bytes {
                format!("request too large: more than {max_request_bytes} bytes without a newline")
            } else {
                "truncated request: the connection closed before the newline".to_string()
            };
            let reply = Response::error(ErrorBody {
                kind: ErrorKind::BadRequest,
                message,
            });
            let _ = writer.write_all(reply.encode().as_bytes());
            return;
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match parse_request(&line) {
            Ok(request) => {
                // The lock is released before waiting for the workers (`finish`).
                let answer = plane.lock().handle(request);
                answer.finish()
            }
            Err(e) => Response::error(e),
        };
        if writer.write_all(reply.encode().as_bytes()).is_err() {
            return;
        }
    }
}
