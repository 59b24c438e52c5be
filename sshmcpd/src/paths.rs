//! Where the daemon keeps its socket, lock, log and known_hosts, and the
//! permission rules that keep them private to the user.

use anyhow::{Context, bail};
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) with mode 0700 for what it creates.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Makes sure the socket's directory exists, belongs to us and is not
/// group- or world-writable: anyone who can write there could replace the
/// socket and impersonate the daemon.
///
/// # Errors
/// When the directory cannot be created or is unsafe; the message says how
/// to fix it.
pub fn prepare_socket_dir(socket: &Path) -> anyhow::Result<PathBuf> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.exists() {
        create_private_dir(&dir)
            .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
    }
    let meta = std::fs::metadata(&dir)
        .with_context(|| format!("cannot inspect socket directory {}", dir.display()))?;
    let uid = sshmcp_proto::rendezvous::current_uid();
    if meta.uid() != uid {
        bail!(
            "refusing to use socket directory {}: it belongs to uid {}, not to you (uid {uid}); \
             remove it or set SSHMCP_SOCKET to a path in a directory of your own",
            dir.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        bail!(
            "refusing to use socket directory {}: it is group- or world-writable (mode {mode:o}); \
             run `chmod 700 {}` or set SSHMCP_SOCKET elsewhere",
            dir.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// The user's home directory: `$HOME`, as `~` means in a shell (and so in
/// the test sandbox), else the passwd entry's.
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_writable_dir_is_refused() {
        let tmp = std::env::temp_dir().join(format!("sshmcpd-paths-{}", std::process::id()));
        create_private_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_socket_dir(&tmp.join("s.sock")).unwrap_err();
        assert!(err.to_string().contains("world-writable"), "{err}");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(prepare_socket_dir(&tmp.join("s.sock")).unwrap(), tmp);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn missing_dir_is_created_private() {
        let tmp = std::env::temp_dir().join(format!("sshmcpd-paths-new-{}", std::process::id()));
        let dir = tmp.join("a");
        prepare_socket_dir(&dir.join("s.sock")).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
