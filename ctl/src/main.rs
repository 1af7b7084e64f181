//! fnatctl: the operator CLI of fnatd. Native subcommands, or ipvsadm's syntax and formats
//! (`fnatctl ipvsadm ARGS…`, or through a symlink named `ipvsadm`).

#![forbid(unsafe_code)]

mod client;
mod ipvsadm_mode;
mod names;
mod native;
mod scaleout;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use client::{socket_path, Client};

/// Operator CLI of the fnat full-NAT load balancer.
#[derive(Parser)]
#[command(name = "fnatctl", version, about)]
struct Cli {
    /// fnatd's control socket (default: $FNAT_SOCKET, else /run/fnatd/ctl.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    #[command(flatten)]
    Native(native::Command),
    /// ipvsadm's command line, output and exit codes.
    Ipvsadm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write man pages and shell completions into DIR (hidden: for the Debian package).
    #[command(hide = true)]
    GenDocs { dir: PathBuf },
}

/// Exit code of a failed native command (clap uses 2 for usage errors).
const EXIT_FAILED: u8 = 1;

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

/// ipvsadm mode's own `--socket PATH` (fnatctl's flag, accepted first), then the rest.
fn split_socket_flag(args: &[String]) -> (Option<PathBuf>, Vec<String>) {
    let mut socket = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--socket" && i + 1 < args.len() {
            socket = Some(PathBuf::from(&args[i + 1]));
            i += 2;
            continue;
        }
        if let Some(v) = args[i].strip_prefix("--socket=") {
            socket = Some(PathBuf::from(v));
        } else {
            rest.push(args[i].clone());
        }
        i += 1;
    }
    (socket, rest)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let invoked_as = argv
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as.as_deref() == Some("ipvsadm") {
        let (socket, args) = split_socket_flag(&argv[1..]);
        let client = Client {
            socket: socket_path(socket),
        };
        return exit_code(ipvsadm_mode::run(&client, &args));
    }
    let cli = Cli::parse();
    match cli.command {
        Top::GenDocs { dir } => match fnat_proto::cli_docs::write(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fnatctl: writing docs into {}: {e}", dir.display());
                ExitCode::from(EXIT_FAILED)
            }
        },
        Top::Ipvsadm { args } => {
            let (socket, args) = split_socket_flag(&args);
            let client = Client {
                socket: socket_path(socket.or(cli.socket)),
            };
            exit_code(ipvsadm_mode::run(&client, &args))
        }
        Top::Native(command) => {
            let client = Client {
                socket: socket_path(cli.socket),
            };
            match native::run(&client, command, cli.json) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("fnatctl: {message}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_flag_is_taken_out_of_ipvsadm_arguments() {
        let args: Vec<String> = [
            "--socket",
            "/tmp/x.sock",
            "-Ln",
            "--socket=/tmp/y.sock",
            "-c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (socket, rest) = split_socket_flag(&args);
        assert_eq!(socket, Some(PathBuf::from("/tmp/y.sock")));
        assert_eq!(rest, vec!["-Ln".to_string(), "-c".to_string()]);
    }

    #[test]
    fn the_socket_comes_from_the_flag_then_the_default() {
        assert_eq!(
            socket_path(Some(PathBuf::from("/tmp/a.sock"))),
            PathBuf::from("/tmp/a.sock")
        );
        if std::env::var_os("FNAT_SOCKET").is_none() {
            assert_eq!(socket_path(None), PathBuf::from(client::DEFAULT_SOCKET));
        }
    }

    #[test]
    fn exit_codes_keep_ipvsadm_values() {
        assert_eq!(exit_code(255), ExitCode::from(255));
        assert_eq!(exit_code(-1), ExitCode::from(255));
    }
}
