//! Session sync daemons in the one rule model: what keepalived's `lvs_sync_daemon`,
//! `ipvsadm --start-daemon` and fnatd's `[sync]` config key all say, checked by one
//! validator ([`SyncDaemon::validate`]), and the status `fnatctl sync` shows.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The kernel's defaults (`IP_VS_SYNC_GROUP`, `IP_VS_SYNC_PORT`, TTL 1).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
pub const DEFAULT_TTL: u8 = 1;

/// Which side of the kernel's sync a daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRole {
    /// Sends this director's sessions.
    Master,
    /// Receives and installs a master's.
    Backup,
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }
}

/// One sync daemon (ipvsadm's `--start-daemon` options; keepalived's `lvs_sync_daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDaemon {
    /// The fnatd port (its kernel twin carries the datagrams), or the twin's own name.
    pub interface: String,
    /// 0..=255; 0 accepts every syncid (as the kernel's backup).
    #[serde(default)]
    pub syncid: u8,
    /// Largest message; 0: the kernel's default (1500 - 28 for a master, the interface's
    /// MTU for a backup).
    #[serde(default)]
    pub maxlen: u16,
    #[serde(default = "default_group")]
    pub group: Ipv4Addr,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// keepalived's `lvs_sync_daemon IF VI_NAME`: the daemon runs only while that VRRP
    /// instance is MASTER (a master daemon) or not (a backup daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_instance: Option<String>,
}

fn default_group() -> Ipv4Addr {
    DEFAULT_GROUP
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_ttl() -> u8 {
    DEFAULT_TTL
}

impl SyncDaemon {
    /// A daemon on `interface` with the kernel's defaults.
    pub fn new(interface: impl Into<String>) -> SyncDaemon {
        SyncDaemon {
            interface: interface.into(),
            syncid: 0,
            maxlen: 0,
            group: DEFAULT_GROUP,
            port: DEFAULT_PORT,
            ttl: DEFAULT_TTL,
            vrrp_instance: None,
        }
    }

    /// The one check of every front-end: Err names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.interface.is_empty() || self.interface.len() > 15 {
            return Err(format!(
                "interface '{}': an interface name has 1 to 15 characters",
                self.interface
            ));
        }
        if !self.group.is_multicast() {
            return Err(format!(
                "group {}: not an IPv4 multicast address",
                self.group
            ));
        }
        if self.port == 0 {
            return Err("port 0: the sync port must be 1..65535".into());
        }
        if self.ttl == 0 {
            return Err("ttl 0: the multicast TTL must be 1..255".into());
        }
        // The kernel clamps a master's to [1, 65535 - 28] and a backup's to [1024, ...]:
        // below one full-NAT entry nothing fits.
        if self.maxlen != 0 && !(100..=65507).contains(&self.maxlen) {
            return Err(format!(
                "maxlen {}: must be 100..65507 (0: the kernel's default)",
                self.maxlen
            ));
        }
        if let Some(v) = &self.vrrp_instance {
            if v.is_empty() {
                return Err("vrrp_instance: empty name".into());
            }
        }
        Ok(())
    }
}

/// The sync daemons of a director: a master, a backup, both or none (as the kernel runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDaemons {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<SyncDaemon>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<SyncDaemon>,
    /// The kernel's `sync_refresh_period` (seconds; 0, the default: off): a connection whose
    /// state did not change is sent again at most this often (or every half timeout, at
    /// least 10 s, if less), on its next packet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sync_refresh_period: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SyncDaemons {
    /// No daemon and no setting (what save leaves out).
    pub fn is_empty(&self) -> bool {
        *self == SyncDaemons::default()
    }

    /// The daemons that run: the config files' (`config`), and for a role they leave free,
    /// the one `ipvsadm --start-daemon` started (`started`, kept in the rule set); the
    /// config's `sync_refresh_period`.
    pub fn running(config: &SyncDaemons, started: &SyncDaemons) -> SyncDaemons {
        SyncDaemons {
            master: config.master.clone().or_else(|| started.master.clone()),
            backup: config.backup.clone().or_else(|| started.backup.clone()),
            sync_refresh_period: config.sync_refresh_period,
        }
    }

    pub fn get(&self, role: SyncRole) -> Option<&SyncDaemon> {
        match role {
            SyncRole::Master => self.master.as_ref(),
            SyncRole::Backup => self.backup.as_ref(),
        }
    }

    pub fn slot(&mut self, role: SyncRole) -> &mut Option<SyncDaemon> {
        match role {
            SyncRole::Master => &mut self.master,
            SyncRole::Backup => &mut self.backup,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (role, d) in [
            (SyncRole::Master, &self.master),
            (SyncRole::Backup, &self.backup),
        ] {
            if let Some(d) = d {
                d.validate()
                    .map_err(|e| format!("{} daemon: {e}", role.name()))?;
            }
        }
        Ok(())
    }

    /// ipvsadm's `--start-daemon`: as the kernel, a second daemon of the same role is
    /// refused ("Daemon already running" is ipvsadm's EEXIST message for it).
    pub fn start(&mut self, role: SyncRole, daemon: SyncDaemon) -> Result<(), String> {
        daemon.validate()?;
        let slot = self.slot(role);
        if slot.is_some() {
            return Err(format!("{} sync daemon already running", role.name()));
        }
        *slot = Some(daemon);
        Ok(())
    }

    /// ipvsadm's `--stop-daemon`.
    pub fn stop(&mut self, role: SyncRole) -> Result<(), String> {
        match self.slot(role).take() {
            Some(_) => Ok(()),
            None => Err(format!("no {} sync daemon is running", role.name())),
        }
    }
}

/// One daemon as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemonStatus {
    pub role: SyncRole,
    pub daemon: SyncDaemon,
    /// The kernel twin the datagrams use.
    pub twin: String,
    /// Sending (master) or receiving (backup) now: a daemon that follows a VRRP instance
    /// waits while the instance is in the other state.
    pub active: bool,
    /// The effective maxlen.
    pub maxlen: u16,
    /// Why it cannot run (socket, interface), if so.
    pub error: Option<String>,
}

/// The answer to the `sync` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub daemons: Vec<SyncDaemonStatus>,
    /// Counter name → value: `sent_messages`, `sent_conns`, `received_messages`,
    /// `received_conns`, `installed`, `refreshed`, `rejected_<reason>`, `ring_drops`,
    /// `install_ring_drops`, `resync_requests_sent`, `resync_requests_received`, ...
    pub counters: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator() {
        let mut d = SyncDaemon::new("eth0");
        assert!(d.validate().is_ok());
        d.group = Ipv4Addr::new(198, 18, 0, 1);
        assert!(d.validate().unwrap_err().contains("multicast"));
        d.group = DEFAULT_GROUP;
        d.maxlen = 50;
        assert!(d.validate().unwrap_err().contains("maxlen"));
        let mut all = SyncDaemons::default();
        assert!(all.start(SyncRole::Master, SyncDaemon::new("eth0")).is_ok());
        assert!(all
            .start(SyncRole::Master, SyncDaemon::new("eth0"))
            .unwrap_err()
            .contains("already running"));
        assert!(all.stop(SyncRole::Backup).is_err());
        assert!(all.stop(SyncRole::Master).is_ok());
    }
}
