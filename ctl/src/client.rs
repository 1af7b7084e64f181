//! Talking to fnatd: find the socket, send one request line, read one reply line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use fnat_proto::msg::{ErrorBody, ErrorKind, Request, Response};
use serde::de::DeserializeOwned;

/// Where fnatd listens when neither `--socket` nor `FNAT_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/fnatd/ctl.sock";

/// `--socket PATH`, else `$FNAT_SOCKET`, else the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("FNAT_SOCKET")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Why a request got no answer from the daemon.
#[derive(Debug)]
pub enum Failure {
    /// Nothing listens there (or the reply never came).
    Connect(String),
    /// The daemon answered with an error.
    Daemon(ErrorBody),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(m) => f.write_str(m),
            Failure::Daemon(e) => f.write_str(&e.message),
        }
    }
}

pub struct Client {
    pub socket: PathBuf,
}

impl Client {
    /// Sends `request` and decodes the result as `T`.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Failure> {
        let line = self.call_raw(request)?;
        Response::decode(&line).map_err(|e| match e.kind {
            ErrorKind::BadRequest if e.message.starts_with("the daemon's reply") => {
                Failure::Connect(e.message)
            }
            _ => Failure::Daemon(e),
        })
    }

    /// Sends `request` and returns the reply line as it came.
    pub fn call_raw(&self, request: &Request) -> Result<String, Failure> {
        let shown = self.socket.display();
        let connect =
            |e: std::io::Error| Failure::Connect(format!("cannot reach fnatd at {shown}: {e}"));
        let mut stream = UnixStream::connect(&self.socket).map_err(connect)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(connect)?;
        stream
            .write_all(request.encode().as_bytes())
            .map_err(connect)?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .map_err(connect)?;
        if line.is_empty() {
            return Err(Failure::Connect(format!(
                "fnatd at {shown} closed the connection without a reply"
            )));
        }
        Ok(line)
    }
}
