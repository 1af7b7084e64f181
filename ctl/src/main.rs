//! fnatctl: the operator CLI. The control socket does not exist yet, so this prints its version.

use clap::Parser;

/// Operator CLI of the fnat full-NAT load balancer.
#[derive(Parser)]
#[command(name = "fnatctl", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!("fnatctl {}", env!("CARGO_PKG_VERSION"));
    println!("the control socket is not implemented yet; see README.md");
}
