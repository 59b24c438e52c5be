//! Making sure the run measures this checkout's product, optimised like
//! the benchmark itself.
//!
//! `cargo run --release -p sshmcp-bench` builds the benchmark, not the
//! binaries it drives, so a fresh clone would have none and an edited one
//! stale ones. Started by cargo (which says so in `$CARGO`), the bench
//! builds `sshmcpd` and `sshmcp-shim` into its own profile directory first,
//! where the harness's `bin_path` finds them; `$SSHMCPD_BIN` and
//! `$SSHMCP_SHIM_BIN` name other builds instead.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Builds the product binaries beside this executable, unless both are
/// given by environment variables or the bench was not started by cargo.
///
/// # Errors
///
/// For a debug build of the bench (its numbers would mean nothing), or when
/// the build fails.
pub fn ensure_fresh() -> Result<()> {
    if cfg!(debug_assertions) {
        bail!(
            "this is a debug build, which would measure unoptimised code: run \
             `cargo run --release -p sshmcp-bench`"
        );
    }
    let given = ["SSHMCPD_BIN", "SSHMCP_SHIM_BIN"]
        .iter()
        .all(|var| std::env::var_os(var).is_some_and(|p| !p.is_empty()));
    if given {
        return Ok(());
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "not started by cargo: measuring the sshmcpd and sshmcp-shim beside this executable"
        );
        return Ok(());
    };
    let exe = std::env::current_exe().context("find this executable")?;
    // target/<profile>/sshmcp-bench: build the same profile into the same
    // target dir, however cargo was told where that is.
    let (Some(profile_dir), Some(target_dir)) = (exe.parent(), exe.parent().and_then(Path::parent))
    else {
        bail!(
            "{} is not inside a cargo target dir; set SSHMCPD_BIN and SSHMCP_SHIM_BIN",
            exe.display()
        );
    };
    let profile = profile_dir
        .file_name()
        .context("the profile dir has no name")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!(
        "building sshmcpd and sshmcp-shim ({})",
        profile.to_string_lossy()
    );
    let mut build = Command::new(cargo);
    // `cargo run` describes the bench to it in CARGO_PKG_* and
    // CARGO_MANIFEST_*. Build scripts that watch those (ring's does) would
    // see them change between this build and the next `cargo run` and
    // rebuild every time; the nested build gets cargo's own environment.
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("CARGO_PKG_")
            || name_text.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*name_text,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            build.env_remove(&name);
        }
    }
    let status = build
        .args([
            "build",
            "--bins",
            "-p",
            "sshmcpd",
            "-p",
            "sshmcp-shim",
            "--profile",
        ])
        .arg(profile)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("building sshmcpd and sshmcp-shim failed ({status})");
    }
    Ok(())
}
