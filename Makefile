# The two commands a newcomer needs (as root on Debian bookworm): `make demo` and `make test`.
# Both install what they need first (scripts/setup-debian.sh).

export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup build demo test lint unit bench bench-smoke deb clean

setup:
	bash scripts/setup-debian.sh

build: setup
	cargo build --release --workspace --bins

# DEMO_MODE=fnat (default) | nat | dr | tun | snat: one lab per LVS forwarding method.
# DEMO_HA=1: two directors and a failover under a live connection (scripts/demo-ha.sh).
DEMO_MODE ?= fnat
DEMO_HA ?= 0
demo: build
	DEMO_MODE=$(DEMO_MODE) DEMO_HA=$(DEMO_HA) bash scripts/demo.sh

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Integration tests run the binaries as subprocesses, so build them first. nextest runs every
# test in its own process: EAL can start only once per process.
test: lint
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast

# Line-rate and connection-rate benchmarks, fnatd side by side with dpdk-testpmd (< 10 min):
# writes perf/RESULTS.md (its section) and perf/results.json. bench-smoke: < 60 s, for CI.
bench: setup
	bash perf/run.sh

bench-smoke: setup
	bash perf/run.sh --smoke

# The Debian package (fnatd, fnatctl, ipvsadm alternative, fnatd.service, man pages,
# completions) from a release build: target/deb/fnat_VERSION_ARCH.deb.
deb: setup
	bash packaging/build-deb.sh

clean:
	cargo clean
