//! The floor: russh used directly inside the bench process, with the
//! daemon's connection settings, against the same sshd.
//!
//! An `execute` through the shim and the daemon can never be faster than a
//! bare channel exec on an open russh connection, because that is what the
//! daemon does after the MCP and socket hops; and that exec costs what sshd
//! takes to set up a session and start the login shell. Measuring the floor
//! in the same run splits our time into "sshd's" and "ours".

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use sshmcp_tests::Sshd;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Generous for one connect or exec on a loaded machine; a hang fails the
/// figure instead of stalling the run.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts exactly the fixture's host key, which the bench read from the
/// fixture's own files: the floor must not trust blindly what the product
/// is careful about.
pub struct FixtureHostKey(PublicKey);

impl client::Handler for FixtureHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(offered, PublicKeyOrCertificate::PublicKey { key, .. } if *key == self.0))
    }
}

/// An open, authenticated connection.
pub type RawSession = Arc<Handle<FixtureHostKey>>;

/// A russh client for the fixture sshd, on its own runtime.
pub struct RawSsh {
    /// Current-thread: the lowest-latency way to drive one call at a time,
    /// and fan-out is I/O-bound on the client side.
    runtime: Runtime,
    config: Arc<client::Config>,
    host_key: PublicKey,
    key: Arc<PrivateKey>,
    host: &'static str,
    port: u16,
    user: String,
}

impl RawSsh {
    /// # Errors
    ///
    /// When the fixture's keys cannot be read or the runtime not built.
    pub fn new(sshd: &Sshd, user: &str) -> Result<RawSsh> {
        let host_pub = std::fs::read_to_string(sshd.host_public_key())
            .context("read the fixture's host public key")?;
        let host_key = host_pub
            .split_whitespace()
            .nth(1)
            .context("the fixture's host public key has no key field")
            .and_then(|b64| {
                russh::keys::parse_public_key_base64(b64).context("parse the fixture's host key")
            })?;
        let key = russh::keys::load_secret_key(sshd.client_key(), None)
            .context("load the fixture's client key")?;
        Ok(RawSsh {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("build the floor's runtime")?,
            // The daemon's window and nodelay (sshmcpd/src/ssh/connect.rs),
            // so the floor differs from ours only by what sits in front. Its
            // cipher order is russh's default: the floor only runs `true`,
            // where the cipher costs nothing measurable.
            config: Arc::new(client::Config {
                inactivity_timeout: None,
                nodelay: true,
                window_size: 16 * 1024 * 1024,
                ..client::Config::default()
            }),
            host_key,
            key: Arc::new(key),
            host: sshd.host(),
            port: sshd.port(),
            user: user.to_owned(),
        })
    }

    /// Connects and authenticates with the client key.
    ///
    /// # Errors
    ///
    /// When the connection, host key or authentication fails.
    pub fn connect(&self) -> Result<RawSession> {
        self.runtime.block_on(self.connect_owned())
    }

    /// Opens `n` connections at once.
    ///
    /// # Errors
    ///
    /// When any of them fails.
    pub fn connect_many(&self, n: usize) -> Result<Vec<RawSession>> {
        self.runtime.block_on(async {
            let mut set = JoinSet::new();
            for _ in 0..n {
                set.spawn(self.connect_owned());
            }
            let mut sessions = Vec::with_capacity(n);
            while let Some(joined) = set.join_next().await {
                sessions.push(joined.context("a connect task panicked")??);
            }
            Ok(sessions)
        })
    }

    /// Runs `command` on a new channel of `session` until the channel
    /// closes, as the daemon does for `execute`.
    ///
    /// # Errors
    ///
    /// When the channel fails or the command exits non-zero.
    pub fn exec(&self, session: &RawSession, command: &str) -> Result<()> {
        self.runtime
            .block_on(exec(session.clone(), command.to_owned()))
    }

    /// One `command` on every session at once; returns when all are done.
    ///
    /// # Errors
    ///
    /// When any of them fails.
    pub fn exec_all(&self, sessions: &[RawSession], command: &str) -> Result<()> {
        self.runtime.block_on(async {
            let mut set = JoinSet::new();
            for session in sessions {
                set.spawn(exec(session.clone(), command.to_owned()));
            }
            while let Some(joined) = set.join_next().await {
                joined.context("an exec task panicked")??;
            }
            Ok(())
        })
    }

    /// Says goodbye on each session, so sshd's per-connection processes go
    /// away now rather than when the socket is dropped.
    pub fn disconnect(&self, sessions: Vec<RawSession>) {
        self.runtime.block_on(async {
            for session in sessions {
                if let Err(e) = session
                    .disconnect(Disconnect::ByApplication, "", "en")
                    .await
                {
                    eprintln!("raw russh disconnect: {e}");
                }
            }
        });
    }

    /// The connect future, owning what it needs so it can be spawned.
    fn connect_owned(&self) -> impl Future<Output = Result<RawSession>> + Send + 'static {
        let config = self.config.clone();
        let handler = FixtureHostKey(self.host_key.clone());
        let key = self.key.clone();
        let (host, port, user) = (self.host, self.port, self.user.clone());
        async move {
            let connecting = async {
                let mut handle = client::connect(config, (host, port), handler)
                    .await
                    .context("raw russh connect")?;
                let auth = handle
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None))
                    .await
                    .context("raw russh authentication")?;
                if !matches!(auth, AuthResult::Success) {
                    bail!("raw russh: the fixture refused its own client key");
                }
                Ok(Arc::new(handle))
            };
            tokio::time::timeout(TIMEOUT, connecting)
                .await
                .context("raw russh connect timed out")?
        }
    }
}

async fn exec(session: RawSession, command: String) -> Result<()> {
    let run = async {
        let mut channel = session.channel_open_session().await?;
        channel.exec(true, command).await?;
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok::<_, russh::Error>(status)
    };
    match tokio::time::timeout(TIMEOUT, run).await {
        Err(_) => bail!("raw russh exec timed out"),
        Ok(Err(e)) => Err(e).context("raw russh exec"),
        Ok(Ok(Some(0))) => Ok(()),
        Ok(Ok(status)) => bail!("raw russh exec exited with {status:?}"),
    }
}
