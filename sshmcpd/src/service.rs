//! The systemd user units: a socket unit that owns the socket (so the daemon
//! starts on the first connection and systemd, not the shim, restarts it)
//! and the service that runs `sshmcpd serve` on it.

use anyhow::Context;
use std::path::{Path, PathBuf};

pub const SOCKET_UNIT: &str = "sshmcpd.socket";
pub const SERVICE_UNIT: &str = "sshmcpd.service";

/// `sshmcpd.socket`. `%t` is the user's runtime directory, so the path is
/// the one `rendezvous::socket_path` finds.
pub fn socket_unit() -> String {
    "\
[Unit]
Description=sshmcp daemon socket (SSH sessions for MCP clients)

[Socket]
ListenStream=%t/sshmcp/sshmcpd.sock
SocketMode=0600
DirectoryMode=0700

[Install]
WantedBy=sockets.target
"
    .to_owned()
}

/// `sshmcpd.service`, running `binary`.
pub fn service_unit(binary: &Path) -> String {
    format!(
        "\
[Unit]
Description=sshmcp daemon (SSH sessions for MCP clients)
Requires={SOCKET_UNIT}
After={SOCKET_UNIT}

[Service]
ExecStart={} serve
Restart=on-failure

[Install]
Also={SOCKET_UNIT}
",
        systemd_quote(&binary.display().to_string())
    )
}

/// Quotes a path for an `ExecStart=` line when it needs it.
fn systemd_quote(s: &str) -> String {
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '%')
    {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
        )
    } else {
        s.to_owned()
    }
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
pub fn user_unit_dir() -> anyhow::Result<PathBuf> {
    let base = directories::BaseDirs::new()
        .context("cannot find your home directory to install the units in")?;
    Ok(base.config_dir().join("systemd").join("user"))
}

/// Writes both units into `dir` for `binary`; returns their paths.
///
/// # Errors
/// When the directory or a file cannot be written.
pub fn install(dir: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in [
        (SOCKET_UNIT, socket_unit()),
        (SERVICE_UNIT, service_unit(binary)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_runs_the_given_binary() {
        let unit = service_unit(Path::new("/home/ada/.cargo/bin/sshmcpd"));
        assert!(unit.contains("ExecStart=/home/ada/.cargo/bin/sshmcpd serve\n"));
        assert!(unit.contains("Requires=sshmcpd.socket"));
    }

    #[test]
    fn odd_paths_are_quoted() {
        assert_eq!(systemd_quote("/a b/x%y"), "\"/a b/x%%y\"");
        assert_eq!(systemd_quote("/plain"), "/plain");
    }

    #[test]
    fn the_socket_is_where_clients_look() {
        assert!(socket_unit().contains("ListenStream=%t/sshmcp/sshmcpd.sock"));
        assert!(socket_unit().contains("SocketMode=0600"));
    }
}
