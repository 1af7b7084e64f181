//! fnatd: the fnat appliance daemon.
//!
//! `fnatd run` forwards live until SIGINT/SIGTERM; `fnatd replay` runs captures through the
//! same dataplane and exits when they are consumed; `fnatd check` validates a config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fnatd::config::{self, AppConfig};
use fnatd::driver::{self, replay::PortFile, RunKind};

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
    },
    /// Validate a config and print what it sets up, without starting the dataplane.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Exit code for a rejected config or command line (as clap uses for usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while running (EAL, ports).
const EXIT_RUNTIME: u8 = 1;

fn load(path: &Path) -> Result<AppConfig, ExitCode> {
    AppConfig::load(path).map_err(|e| {
        eprintln!("fnatd: config error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(cfg) => {
                print!("{}", config::describe(&cfg));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let cfg = match load(&config) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            finish(driver::execute(&cfg, RunKind::Live))
        }
        Command::Replay { config, rx, tx } => {
            let mut cfg = match load(&config) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            let _scratch = match driver::replay::prepare(&mut cfg, &rx, &tx) {
                Ok(scratch) => scratch,
                Err(e) => {
                    eprintln!("fnatd: replay: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            finish(driver::execute(&cfg, RunKind::Replay))
        }
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
