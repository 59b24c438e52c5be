//! What every figure shares: one sshd on loopback, OpenSSH's clients and
//! the raw russh floor pointed at it, and a scratch directory.
//!
//! One sshd serves the whole run, so ours and OpenSSH always meet the same
//! server with the same settings; each figure starts its own daemon
//! ([`Bench::ours`]) so memory readings see only that figure's sessions.

use anyhow::{Context, Result};
use sshmcp_tests::{Sshd, SshdConfig, current_user_name};
use tempfile::TempDir;

use crate::openssh::OpenSsh;
use crate::ours::Ours;
use crate::plan::Plan;
use crate::raw::RawSsh;

pub struct Bench {
    pub plan: Plan,
    pub openssh: OpenSsh,
    pub raw: RawSsh,
    /// Big files, control sockets and their logs, under `$TMPDIR`. Figures
    /// stop their ControlMasters before returning, so nothing uses it when
    /// it is removed.
    pub scratch: TempDir,
    pub sshd: Sshd,
    user: String,
}

impl Bench {
    /// Starts the sshd and prepares the clients.
    ///
    /// # Errors
    ///
    /// When the scratch dir or the floor's client cannot be set up. (The
    /// sshd fixture panics with its log when it cannot start.)
    pub fn start(plan: Plan) -> Result<Bench> {
        // Room above the fixture's own limit on connections still logging
        // in: figure 8 opens 50 at once from each client. INFO is sshd's
        // default log level; the fixture's VERBOSE would log every channel.
        let sshd = SshdConfig::new()
            .set("MaxStartups", "200:30:400")
            .set("LogLevel", "INFO")
            .start();
        let user = current_user_name().to_owned();
        let scratch = tempfile::Builder::new()
            .prefix("sshmcp-bench-")
            .tempdir()
            .context("create the scratch dir")?;
        Ok(Bench {
            openssh: OpenSsh::new(&sshd, &user, scratch.path()),
            raw: RawSsh::new(&sshd, &user)?,
            plan,
            scratch,
            sshd,
            user,
        })
    }

    /// A fresh daemon with an initialised shim, logging in as the user the
    /// baselines use.
    pub fn ours(&self) -> Ours {
        Ours::start(&self.sshd, &self.user)
    }
}
