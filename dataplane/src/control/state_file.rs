//! The state file: the live rule set as TOML, replaced atomically (temp file, fsync, rename,
//! fsync of the directory) so a crash leaves either the old or the new rules, never half.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use fnat_proto::model::RuleSet;
use fnat_proto::save::{from_toml, to_toml};

/// Reads the state file; `Ok(None)` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<RuleSet>, String> {
    match fs::read_to_string(path) {
        Ok(text) => from_toml(&text)
            .map(Some)
            .map_err(|e| format!("state file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("state file {}: {e}", path.display())),
    }
}

/// Writes `rules` to `path` atomically.
pub fn store(path: &Path, rules: &RuleSet) -> Result<(), String> {
    let text = to_toml(rules)?;
    let fail =
        |what: &str, e: std::io::Error| format!("state file {}: {what}: {e}", path.display());
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut file = File::create(tmp).map_err(|e| fail("create temp file", e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("fsync", e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| fail("rename", e))?;
    // The rename is durable only once the directory entry is.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::model::{Scheduler, Service, ServiceAddr};
    use std::net::Ipv4Addr;

    #[test]
    fn store_then_load() {
        let dir = std::env::temp_dir().join(format!("fnat-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.toml");
        assert_eq!(load(&path), Ok(None));
        let mut rules = RuleSet::default();
        rules.services.push(Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80),
            Scheduler::Rr,
        ));
        store(&path, &rules).unwrap();
        assert_eq!(load(&path), Ok(Some(rules)));
        fs::write(&path, "garbage =").unwrap();
        assert!(load(&path).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
