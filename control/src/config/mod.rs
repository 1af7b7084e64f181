//! The appliance config: read a TOML file, validate every value, and produce the settings the
//! driver needs plus the engine's first [`Rules`] snapshot. Errors name the file, the key and
//! the reason; nothing half-valid gets through.

mod eal_args;
mod file;
mod health;
mod keepalived;
pub use keepalived::VrrpRun;
#[cfg(test)]
mod keys;
mod validate;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};

use fnat_engine::rules::{Ipv4Cidr, Rules};

pub use eal_args::{eal_args, twin_device};

/// A rejected config: which file, which key (dotted path like `port[1].device`), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.reason)
        } else {
            write!(f, ": key `{}`: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// EAL placement and memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalSettings {
    pub main_cpu: u32,
    /// One CPU per worker.
    pub worker_cpus: Vec<u32>,
    pub memory_mb: u32,
    pub hugepages: bool,
    pub file_prefix: Option<String>,
    pub log_level: String,
    pub extra_args: Vec<String>,
}

/// Sizes of the dataplane's queues, pools and loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataplaneSettings {
    pub workers: u16,
    pub burst: u16,
    pub mbufs: u32,
    pub mbuf_cache: u32,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub redirect_ring: u32,
    pub expire_budget: u32,
}

/// The control plane's socket and state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    pub socket: PathBuf,
    pub state_file: Option<PathBuf>,
    pub max_request_bytes: usize,
    /// How long a stopping fnatd keeps forwarding with every VIP withdrawn (0: none).
    pub withdraw_on_stop: std::time::Duration,
}

/// The Prometheus endpoint, when the config asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSettings {
    pub listen: Option<std::net::SocketAddr>,
}

/// Where `fnatd run` listens when neither the config nor `--socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/fnatd/ctl.sock";

/// A port as configured: its name, the DPDK device behind it, and what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub device: String,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<Ipv4Cidr>,
    /// The kernel twin interface (a TAP device carrying the port's MAC and addresses) that
    /// gets the frames for the port's own addresses the dataplane does not consume, and
    /// whose frames leave by the port: `[[port]] kernel_interface`. `None`: no twin.
    pub kernel_interface: Option<String>,
}

impl PortSpec {
    /// The name DPDK gives the device: the PCI address, or the vdev's name before its first comma.
    pub fn dpdk_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }
}

/// A validated appliance config.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub path: PathBuf,
    pub eal: EalSettings,
    pub dataplane: DataplaneSettings,
    pub ports: Vec<PortSpec>,
    pub control: ControlSettings,
    pub metrics: MetricsSettings,
    /// The first rules snapshot, compiled from `rule_set`; port MACs are filled in by the
    /// driver once ports are up.
    pub rules: Rules,
    /// The services and firewall marks of the file, in the one rule model.
    pub rule_set: fnat_proto::model::RuleSet,
    /// The keepalived.conf whose virtual servers were added (`--keepalived`), re-read by
    /// `reload` with the config.
    pub keepalived: Option<PathBuf>,
    /// Health checks of the services (the TOML's and the keepalived.conf's).
    pub health: fnat_health::HealthConfig,
    /// The keepalived.conf's `vrrp_instance`s, each on its fnatd port's kernel twin.
    pub vrrp: Vec<keepalived::VrrpRun>,
    /// What the VRRP threads share: sync groups, `vrrp_script`s, the notify FIFO.
    pub vrrp_context: fnat_vrrp::service::Context,
    /// Session sync daemons: the TOML's `[sync]`, keepalived.conf's `lvs_sync_daemon`.
    pub sync: fnat_proto::sync::SyncDaemons,
}

impl AppConfig {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<AppConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Reads the config at `path` and adds the virtual servers of the keepalived.conf at
    /// `keepalived` (when given): one rule set, validated and compiled as a whole. Also
    /// returns keepalived's warnings (unknown keywords, what is read but not run yet), for
    /// the caller to log as keepalived does.
    pub fn load_with_keepalived(
        path: &Path,
        keepalived: Option<&Path>,
    ) -> Result<(AppConfig, Vec<fnat_keepalived::Diagnostic>), ConfigError> {
        let mut cfg = Self::load(path)?;
        let Some(ka) = keepalived else {
            return Ok((cfg, Vec::new()));
        };
        let addresses: Vec<_> = cfg
            .rules
            .ports
            .iter()
            .flat_map(|p| p.addresses.iter().copied())
            .collect();
        let mut warnings =
            keepalived::add_services(ka, &mut cfg.rule_set, &mut cfg.health, &addresses)?;
        let (vrrp, not_run, vrrp_context) = keepalived::vrrp_runs(ka, &cfg.ports)?;
        cfg.vrrp_context = vrrp_context;
        // Every VRRP address starts as the master's: claimed only once VRRP says so.
        cfg.rules.standby = vrrp
            .iter()
            .flat_map(|r| r.instance.addresses.iter().copied())
            .collect();
        cfg.rules.standby.sort_unstable();
        cfg.rules.standby.dedup();
        cfg.vrrp = vrrp;
        let (sync, sync_not_run) = keepalived::sync_daemons(ka, &cfg.ports)?;
        warnings.extend(sync_not_run);
        if sync != Default::default() {
            if cfg.sync.master.is_some() || cfg.sync.backup.is_some() {
                return Err(ConfigError {
                    file: ka.display().to_string(),
                    line: None,
                    key: "lvs_sync_daemon".into(),
                    reason: format!(
                        "{} already has [sync] daemons: configure session sync in one place",
                        path.display()
                    ),
                });
            }
            // [sync]'s kernel-wide setting stays (keepalived has no key for it).
            cfg.sync = fnat_proto::sync::SyncDaemons {
                sync_refresh_period: cfg.sync.sync_refresh_period,
                ..sync
            };
        }
        warnings.extend(not_run);
        let (rules, _) =
            crate::control::compile_fresh(&cfg.rules, &cfg.rules.timeouts, &cfg.rule_set).map_err(
                |e| ConfigError {
                    file: ka.display().to_string(),
                    line: None,
                    key: "virtual_server".into(),
                    reason: e.message,
                },
            )?;
        cfg.rules = rules;
        cfg.keepalived = Some(ka.to_path_buf());
        Ok((cfg, warnings))
    }

    /// Validates config `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<AppConfig, ConfigError> {
        let file_name = path.display().to_string();
        let parsed: file::ConfigFile =
            serde_path_to_error::deserialize(toml::Deserializer::new(text))
                .map_err(|e| deserialize_error(&file_name, text, e))?;
        validate::validate(path, parsed).map_err(|(key, reason)| ConfigError {
            file: file_name,
            line: None,
            key,
            reason,
        })
    }

    /// Index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
}

/// A short human summary of a validated config (what `fnatd check` prints).
pub fn describe(cfg: &AppConfig) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", cfg.path.display());
    let _ = writeln!(out, "workers: {}", cfg.dataplane.workers);
    for p in &cfg.ports {
        let mac = p
            .mac
            .map_or("from device".to_string(), |m| values::mac_to_string(&m));
        let addrs: Vec<String> = p
            .addresses
            .iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len))
            .collect();
        let _ = writeln!(
            out,
            "port {}: device {} mac {} addresses [{}]",
            p.name,
            p.device,
            mac,
            addrs.join(", ")
        );
    }
    let _ = writeln!(out, "services: {}", cfg.rules.services.len());
    let _ = writeln!(
        out,
        "health checks: {} checkers on {} services",
        cfg.health.checker_count(),
        cfg.health.services.len()
    );
    let _ = writeln!(
        out,
        "eal args: {}",
        eal_args(&cfg.eal, &cfg.ports).join(" ")
    );
    out
}

/// Turns a serde/TOML error into file + line + key + reason.
fn deserialize_error(
    file: &str,
    text: &str,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let path = err.path().to_string();
    let inner = err.inner();
    let line = inner
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    // Some TOML syntax errors (a NUL in a comment) carry an empty message: never say nothing.
    let message = match inner.message().trim() {
        "" => "invalid TOML syntax".to_string(),
        m => m.to_string(),
    };
    // serde reports a missing key at its parent table: name the key itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let key = match (missing, path.as_str()) {
        (Some(field), ".") => field.to_string(),
        (Some(field), parent) => format!("{parent}.{field}"),
        (None, ".") => String::new(),
        (None, path) => path.to_string(),
    };
    ConfigError {
        file: file.to_string(),
        line,
        key,
        reason: message,
    }
}

#[cfg(test)]
mod tests;

/// The kernel twin and the address session sync uses for `interface`: an fnatd port with a
/// `kernel_interface` (its twin and first address), or a twin named directly.
pub fn sync_twin(
    ports: &[PortSpec],
    interface: &str,
) -> Option<(String, Option<std::net::Ipv4Addr>)> {
    ports
        .iter()
        .find(|p| p.name == interface || p.kernel_interface.as_deref() == Some(interface))
        .and_then(|p| {
            let twin = p.kernel_interface.clone()?;
            Some((twin, p.addresses.first().map(|c| c.addr)))
        })
}
