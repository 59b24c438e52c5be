//! Asking the human, through the MCP client, for what a `connect` needs
//! (MCP elicitation): a secret on sshmcpd's one-time local page (URL mode,
//! so it never passes through the client or the model), or a yes to an
//! unknown host key under the `strict` policy (form mode: a fingerprint is
//! not a secret).

use crate::daemon::Daemon;
use crate::tools::ToolError;
use rmcp::RoleServer;
use rmcp::model::{CustomNotification, ElicitationAction, ServerNotification};
use rmcp::service::{ElicitationError, ElicitationMode, Peer};
use schemars::JsonSchema;
use serde::Deserialize;
use sshmcp_proto::{
    HostKeyApproval, Needs, Request, Response, SecretKind, SecretPage, SecretPrompt, UnknownHostKey,
};
use std::time::Duration;

/// How long the human gets to answer a host-key question.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// What the human supplied, for the next `connect` attempt.
pub enum Answer {
    HostKey(HostKeyApproval),
    /// The id of the page that received the secret.
    Secret(String),
}

/// The human's answer to the host-key question.
#[derive(Debug, Deserialize, JsonSchema)]
struct TrustHostKey {
    /// Record this key in known_hosts and connect.
    trust: bool,
}

rmcp::elicit_safe!(TrustHostKey);

/// Asks the human for what `needs` names. `Ok(None)` when the client
/// cannot ask (no elicitation of that mode): the daemon's error, which
/// lists the other ways, stands.
///
/// # Errors
/// The human declined or cancelled, the page expired, or the client or
/// daemon failed; the message says which and what to do.
pub async fn ask(
    peer: &Peer<RoleServer>,
    daemon: &Daemon,
    needs: Needs,
) -> Result<Option<Answer>, ToolError> {
    match needs {
        Needs::HostKey(key) => host_key(peer, key).await,
        Needs::Secret(prompt) => secret(peer, daemon, prompt).await,
    }
}

async fn host_key(
    peer: &Peer<RoleServer>,
    key: UnknownHostKey,
) -> Result<Option<Answer>, ToolError> {
    if !peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return Ok(None);
    }
    let message = format!(
        "{host} is not in known_hosts, and sshmcp's strict host-key policy needs you to confirm \
         its key before the agent connects.\n\n{algorithm} key {fingerprint}\n\nCompare it with \
         the fingerprint the host's administrator gives you (on the host: `ssh-keygen -lf \
         /etc/ssh/ssh_host_*_key.pub`). If they match, trust it: sshmcp records it in your \
         known_hosts.",
        host = key.host,
        algorithm = key.algorithm,
        fingerprint = key.fingerprint
    );
    let refused = || {
        ToolError::new(format!(
            "the user did not trust the host key of {} ({}); the connection was not made. Do \
             not retry unless the user asks to.",
            key.host, key.fingerprint
        ))
    };
    match peer
        .elicit_with_timeout::<TrustHostKey>(message, Some(ANSWER_TIMEOUT))
        .await
    {
        Ok(Some(TrustHostKey { trust: true })) => Ok(Some(Answer::HostKey(HostKeyApproval {
            host: key.host,
            fingerprint: key.fingerprint,
        }))),
        Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
            Err(refused())
        }
        Err(ElicitationError::CapabilityNotSupported) => Ok(None),
        Err(e) => Err(ToolError::new(format!(
            "could not ask the user to confirm the host key of {} ({}): {e}",
            key.host, key.fingerprint
        ))),
    }
}

async fn secret(
    peer: &Peer<RoleServer>,
    daemon: &Daemon,
    prompt: SecretPrompt,
) -> Result<Option<Answer>, ToolError> {
    if !peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Url)
    {
        return Ok(None);
    }
    let what = match (prompt.kind, &prompt.key_path) {
        (SecretKind::Password, _) => {
            format!("the password of {}@{}", prompt.username, prompt.host)
        }
        (SecretKind::Passphrase, key) => format!(
            "the passphrase of key {} (to log in to {}@{})",
            key.as_deref().unwrap_or("?"),
            prompt.username,
            prompt.host
        ),
    };
    let page = match daemon.call(Request::OpenSecretPage(prompt)).await? {
        Response::SecretPage(page) => page,
        Response::Error(body) => return Err(body.into()),
        _ => return Err(ToolError::new(crate::server::SKEW_ADVICE)),
    };
    let SecretPage {
        id,
        url,
        expires_in_s,
    } = page;
    let link = url::Url::parse(&url)
        .map_err(|e| ToolError::new(format!("sshmcpd gave a page URL that is not one: {e}")))?;
    let message = format!(
        "sshmcp needs {what}. Open this page on this computer and type it there: it goes \
         straight to sshmcpd, not to the agent. The page works once and closes in {} minutes.",
        expires_in_s / 60
    );
    // Dropping this call (the user declined, the tool call was cancelled)
    // cancels it in the daemon, which closes the page.
    let received = daemon.call(Request::AwaitSecret { id: id.clone() });
    tokio::pin!(received);
    let timeout = Some(Duration::from_secs(expires_in_s));
    let elicited = peer.elicit_url_with_timeout(message, link, id.clone(), timeout);
    let outcome = tokio::select! {
        action = elicited => match action {
            // The user agreed to open the page; now wait for what they type.
            Ok(ElicitationAction::Accept) => received.await,
            Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
                return Err(ToolError::new(format!(
                    "the user declined to enter {what}; the connection was not made. Other \
                     ways to log in: a key in ssh-agent, private_key, or password."
                )));
            }
            Err(ElicitationError::CapabilityNotSupported) => return Ok(None),
            Err(e) => return Err(ToolError::new(format!("could not ask the user for {what}: {e}"))),
        },
        // Typed before the client answered: fine.
        done = &mut received => done,
    };
    match outcome? {
        Response::SecretReceived => {
            let done = CustomNotification::new(
                "notifications/elicitation/complete",
                Some(serde_json::json!({ "elicitationId": id })),
            );
            if let Err(e) = peer
                .send_notification(ServerNotification::CustomNotification(done))
                .await
            {
                tracing::debug!("elicitation completion not delivered: {e}");
            }
            Ok(Some(Answer::Secret(id)))
        }
        Response::Error(body) => Err(body.into()),
        _ => Err(ToolError::new(crate::server::SKEW_ADVICE)),
    }
}
