//! fnatd: the fnat appliance daemon.
//!
//! `fnatd run` forwards live until SIGINT/SIGTERM; `fnatd replay` runs captures through the
//! same dataplane and exits when they are consumed; `fnatd check` validates a config.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use fnatd::config::{self, AppConfig};
use fnatd::control;
use fnatd::driver::{self, replay::PortFile, RunKind};

/// Large tables (sessions, indexes, timer wheels) on transparent huge pages.
#[global_allocator]
static ALLOC: dpdk_bindings::hugealloc::HugePageAlloc = dpdk_bindings::hugealloc::HugePageAlloc;

/// The fnat full-NAT load balancer daemon (DPDK dataplane).
#[derive(Parser)]
#[command(name = "fnatd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dataplane on the config's ports until SIGINT or SIGTERM.
    Run {
        /// Appliance config (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Control socket (overrides the config's `control.socket`).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// ipvsadm rules file (`ipvsadm -S` lines plus `-P` local-address lines) applied
        /// after the config.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// keepalived.conf whose virtual servers are added to the config's (keepalived 2.x's
        /// LVS grammar; its checkers run; `reload` re-reads it with the config).
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
    },
    /// Replay captures through the dataplane (testpmd-style) and print forward statistics.
    Replay {
        /// Appliance config (TOML); every port's device is replaced by a pcap device.
        #[arg(long, short)]
        config: PathBuf,
        /// PORT[:QUEUE]=IN.pcap: frames to receive on PORT's queue (default 0); repeatable.
        #[arg(long = "rx", value_name = "PORT[:QUEUE]=FILE")]
        rx: Vec<PortFile>,
        /// PORT[:QUEUE]=OUT.pcap: where frames sent out of PORT's queue go; repeatable.
        /// With several workers, every TX queue writes its own file: name the queue.
        #[arg(long = "tx", value_name = "PORT[:QUEUE]=FILE")]
        tx: Vec<PortFile>,
        /// ipvsadm rules file applied after the config.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// keepalived.conf whose virtual servers are added to the config's (keepalived 2.x's
        /// LVS grammar; its checkers run; `reload` re-reads it with the config).
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
        /// A progress bar on the terminal (frames, rate, ETA); nothing when stderr is not one.
        #[arg(long)]
        progress: bool,
    },
    /// Benchmark run for perf/ (hidden): `run` plus prefill, generator and probes.
    #[command(hide = true)]
    Bench {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        opts: fnatd::bench::Options,
    },
    /// Validate a config and print what it sets up, without starting the dataplane.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// keepalived.conf whose virtual servers are added to the config's (keepalived 2.x's
        /// LVS grammar; its checkers run; `reload` re-reads it with the config).
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
    },
    /// What this machine lacks for the config (huge pages, vfio-pci, IOMMU, isolated CPUs,
    /// PMDs, socket directory), each with the command that fixes it. Exit 0 when nothing.
    Preflight {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write man pages and shell completions into DIR (hidden: for the Debian package).
    #[command(hide = true)]
    GenDocs { dir: PathBuf },
}

/// Exit code for a rejected config or command line (as clap uses for usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while running (EAL, ports).
const EXIT_RUNTIME: u8 = 1;

fn load(path: &Path) -> Result<AppConfig, ExitCode> {
    load_with(path, None)
}

/// The config and, when given, the keepalived.conf's virtual servers; keepalived's warnings
/// are logged as keepalived logs them, and carry on.
fn load_with(path: &Path, keepalived: Option<&Path>) -> Result<AppConfig, ExitCode> {
    match AppConfig::load_with_keepalived(path, keepalived) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                eprintln!("fnatd: keepalived: {w}");
            }
            Ok(cfg)
        }
        Err(e) => {
            eprintln!("fnatd: config error: {e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { config, opts } => match load(&config) {
            Ok(cfg) => fnatd::bench::run(&cfg, opts),
            Err(code) => code,
        },
        Command::GenDocs { dir } => match fnat_proto::cli_docs::write(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fnatd: writing docs into {}: {e}", dir.display());
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::Preflight { config } => match load(&config) {
            Ok(cfg) => {
                let findings = fnatd::preflight::check(&cfg, &fnatd::preflight::Host::real());
                print!("{}", fnatd::preflight::render(&config, &findings));
                if findings.iter().all(|f| f.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
            Err(code) => code,
        },
        Command::Check { config, keepalived } => match load_with(&config, keepalived.as_deref()) {
            Ok(cfg) => {
                print!("{}", config::describe(&cfg));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            socket,
            rules,
            keepalived,
        } => {
            let mut cfg = match load_with(&config, keepalived.as_deref()) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            if let Some(socket) = socket {
                cfg.control.socket = socket;
            }
            if let Err(code) = apply_rules(&mut cfg, rules.as_deref()) {
                return code;
            }
            // Bound before EAL starts: a second fnatd on the same socket stops here.
            let socket = match control::bind(&cfg) {
                Ok(socket) => socket,
                Err(e) => {
                    eprintln!("fnatd: control plane: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            };
            finish(driver::execute(&cfg, RunKind::Live, Some(socket), None))
        }
        Command::Replay {
            config,
            rx,
            tx,
            rules,
            keepalived,
            progress,
        } => {
            let mut cfg = match load_with(&config, keepalived.as_deref()) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            if let Err(code) = apply_rules(&mut cfg, rules.as_deref()) {
                return code;
            }
            let _scratch = match driver::replay::prepare(&mut cfg, &rx, &tx) {
                Ok(scratch) => scratch,
                Err(e) => {
                    eprintln!("fnatd: replay: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if !progress {
                return finish(driver::execute(&cfg, RunKind::Replay, None, None));
            }
            let mut total = 0;
            for pf in &rx {
                match fnatd::progress::count_frames(&pf.file) {
                    Ok(n) => total += n,
                    Err(e) => {
                        eprintln!("fnatd: replay: --rx {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            }
            let bar = fnatd::progress::ReplayProgress::new(total);
            let mut report = |frames: u64| bar.set(frames);
            let result =
                driver::execute_observed(&cfg, RunKind::Replay, None, None, Some(&mut report));
            bar.finish();
            finish(result)
        }
    }
}

/// Applies `--rules FILE` (if given) on top of the config's services.
fn apply_rules(cfg: &mut AppConfig, rules: Option<&std::path::Path>) -> Result<(), ExitCode> {
    match rules {
        Some(path) => control::apply_rules_file(cfg, path).map_err(|e| {
            eprintln!("fnatd: {e}");
            ExitCode::from(EXIT_CONFIG)
        }),
        None => Ok(()),
    }
}

fn finish(result: Result<driver::report::Totals, String>) -> ExitCode {
    match result {
        Ok(totals) => {
            print!("{}", totals.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fnatd: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
