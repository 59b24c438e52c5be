//! Asking the human, through the MCP client, for what a `connect` needs
//! (MCP elicitation): a secret on sshmcpd's one-time local page (URL mode,
//! so it never passes through the client or the model), or a yes to an
//! unknown host key under the `strict` policy (form mode: a fingerprint is
//! not a secret).
//!
//! Up to MCP 2025-11-25 the shim asks within the tool call (a request to the
//! client); from 2026-07-28, which forbids that, the call answers with the
//! question (`InputRequiredResult`) and the client calls again with the
//! answer ([`Rounds`]).

use crate::daemon::Daemon;
use crate::tools::ToolError;
use rmcp::RoleServer;
use rmcp::model::{
    ClientCapabilities, CustomNotification, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
    ServerNotification,
};
use rmcp::service::{ElicitationError, ElicitationMode, Peer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    ConnectRequest, HostKeyApproval, Needs, Request, Response, SecretKind, SecretPage,
    SecretPrompt, UnknownHostKey,
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

/// The question shown for an unknown host key.
pub fn host_key_message(key: &UnknownHostKey) -> String {
    format!(
        "{host} is not in known_hosts, and sshmcp's strict host-key policy needs you to confirm \
         its key before the agent connects.\n\n{algorithm} key {fingerprint}\n\nCompare it with \
         the fingerprint the host's administrator gives you (on the host: `ssh-keygen -lf \
         /etc/ssh/ssh_host_*_key.pub`). If they match, trust it: sshmcp records it in your \
         known_hosts.",
        host = key.host,
        algorithm = key.algorithm,
        fingerprint = key.fingerprint
    )
}

/// The form for the host-key question: one yes/no field.
///
/// # Errors
/// Only if the schema cannot be generated, which is a bug.
pub fn host_key_form() -> Result<ElicitationSchema, ToolError> {
    ElicitationSchema::from_type::<TrustHostKey>()
        .map_err(|e| ToolError::new(format!("cannot build the host-key question: {e}")))
}

/// Whether a form answer says to trust the key.
pub fn trusts(answer: &ElicitResult) -> bool {
    answer.action == ElicitationAction::Accept
        && answer
            .content
            .clone()
            .and_then(|c| serde_json::from_value::<TrustHostKey>(c).ok())
            .is_some_and(|a| a.trust)
}

/// The error when the human did not trust `key`.
pub fn untrusted(key: &HostKeyApproval) -> ToolError {
    ToolError::new(format!(
        "the user did not trust the host key of {} ({}); the connection was not made. Do not \
         retry unless the user asks to.",
        key.host, key.fingerprint
    ))
}

/// What is asked for, for messages: "the password of user@host", ….
pub fn secret_what(prompt: &SecretPrompt) -> String {
    match (prompt.kind, &prompt.key_path) {
        (SecretKind::Password, _) => {
            format!("the password of {}@{}", prompt.username, prompt.host)
        }
        (SecretKind::Passphrase, key) => format!(
            "the passphrase of key {} (to log in to {}@{})",
            key.as_deref().unwrap_or("?"),
            prompt.username,
            prompt.host
        ),
    }
}

/// The message beside the page's link.
pub fn page_message(what: &str, page: &SecretPage) -> String {
    format!(
        "sshmcp needs {what}. Open this page on this computer and type it there: it goes \
         straight to sshmcpd, not to the agent. The page works once and closes in {} minutes.",
        page.expires_in_s / 60
    )
}

/// The error when the human would not open the page.
pub fn declined(what: &str) -> ToolError {
    ToolError::new(format!(
        "the user declined to enter {what}; the connection was not made. Other ways to log in: \
         a key in ssh-agent, private_key, or password."
    ))
}

/// Opens a secret page in the daemon.
///
/// # Errors
/// The daemon could not open one.
pub async fn open_page(daemon: &Daemon, prompt: SecretPrompt) -> Result<SecretPage, ToolError> {
    match daemon.call(Request::OpenSecretPage(prompt)).await? {
        Response::SecretPage(page) => Ok(page),
        Response::Error(body) => Err(body.into()),
        _ => Err(ToolError::new(crate::server::SKEW_ADVICE)),
    }
}

/// Waits for the page's secret to arrive in the daemon.
///
/// # Errors
/// The page expired or was closed.
pub async fn page_filled(daemon: &Daemon, id: &str) -> Result<(), ToolError> {
    match daemon
        .call(Request::AwaitSecret { id: id.to_owned() })
        .await?
    {
        Response::SecretReceived => Ok(()),
        Response::Error(body) => Err(body.into()),
        _ => Err(ToolError::new(crate::server::SKEW_ADVICE)),
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
    let message = host_key_message(&key);
    let approval = HostKeyApproval {
        host: key.host,
        fingerprint: key.fingerprint,
    };
    match peer
        .elicit_with_timeout::<TrustHostKey>(message, Some(ANSWER_TIMEOUT))
        .await
    {
        Ok(Some(TrustHostKey { trust: true })) => Ok(Some(Answer::HostKey(approval))),
        Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
            Err(untrusted(&approval))
        }
        Err(ElicitationError::CapabilityNotSupported) => Ok(None),
        Err(e) => Err(ToolError::new(format!(
            "could not ask the user to confirm the host key of {} ({}): {e}",
            approval.host, approval.fingerprint
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
    let what = secret_what(&prompt);
    let page = open_page(daemon, prompt).await?;
    let link = page_link(&page)?;
    let message = page_message(&what, &page);
    let SecretPage {
        id, expires_in_s, ..
    } = page;
    {
        // Dropping this call (the user declined, the tool call was
        // cancelled) cancels it in the daemon, which closes the page.
        let received = page_filled(daemon, &id);
        tokio::pin!(received);
        let timeout = Some(Duration::from_secs(expires_in_s));
        let elicited = peer.elicit_url_with_timeout(message, link, id.clone(), timeout);
        tokio::select! {
            action = elicited => match action {
                // The user agreed to open the page; now wait for what they
                // type.
                Ok(ElicitationAction::Accept) => received.await?,
                Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
                    return Err(declined(&what));
                }
                Err(ElicitationError::CapabilityNotSupported) => return Ok(None),
                Err(e) => {
                    return Err(ToolError::new(format!("could not ask the user for {what}: {e}")));
                }
            },
            // Typed before the client answered: fine.
            done = &mut received => done?,
        }
    }
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

/// The page's URL, checked.
///
/// # Errors
/// The daemon sent something that is not a URL.
pub fn page_link(page: &SecretPage) -> Result<url::Url, ToolError> {
    url::Url::parse(&page.url)
        .map_err(|e| ToolError::new(format!("sshmcpd gave a page URL that is not one: {e}")))
}

/// The key of the shim's one question in `inputRequests`.
const INPUT_KEY: &str = "sshmcp";

/// Between the rounds of a `connect` on MCP 2026-07-28, which forbids
/// server-to-client requests: the shim answers with an
/// `InputRequiredResult` holding the question, and the client calls again
/// with the answer and this state, echoed as `requestState`.
///
/// The client could alter the state, but it holds nothing the client is
/// not already trusted with: the human's answers come through the client
/// anyway, a page id is only useful to the daemon that opened it, and a
/// host key is accepted only if the server presents exactly that key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Rounds {
    approved: Vec<HostKeyApproval>,
    pending: Option<Pending>,
    asked: usize,
}

#[derive(Debug, Serialize, Deserialize)]
enum Pending {
    HostKey(HostKeyApproval),
    Page { id: String, what: String },
}

/// Questions asked at most per `connect`: two unknown hosts and a secret.
pub const MAX_QUESTIONS: usize = 4;

impl Rounds {
    /// The state the client echoed, or a fresh one on the first round.
    ///
    /// # Errors
    /// The client sent a state this shim did not write.
    pub fn resume(state: Option<String>) -> Result<Rounds, ToolError> {
        match state {
            None => Ok(Rounds::default()),
            Some(state) => serde_json::from_str(&state).map_err(|_| {
                ToolError::new(
                    "the requestState sent with connect is not one sshmcp-shim wrote; call \
                     connect again without it",
                )
            }),
        }
    }

    /// Applies the human's answer to the question of the previous round to
    /// `request`; for a page, waits until the secret has arrived.
    ///
    /// # Errors
    /// The human refused or declined, or the page expired.
    pub async fn apply(
        &mut self,
        answers: Option<InputResponses>,
        daemon: &Daemon,
        request: &mut ConnectRequest,
    ) -> Result<(), ToolError> {
        let answer = answers
            .and_then(|mut a| a.remove(INPUT_KEY))
            .and_then(|v| serde_json::from_value::<ElicitResult>(v).ok());
        match self.pending.take() {
            None => {}
            Some(Pending::HostKey(key)) => {
                if !answer.as_ref().is_some_and(trusts) {
                    return Err(untrusted(&key));
                }
                self.approved.push(key);
            }
            Some(Pending::Page { id, what }) => {
                if answer.map(|a| a.action) != Some(ElicitationAction::Accept) {
                    return Err(declined(&what));
                }
                page_filled(daemon, &id).await?;
                request.secret_ref = Some(id);
            }
        }
        request.approved_host_keys = self.approved.clone();
        Ok(())
    }

    /// The question for `needs`, as the result that carries it; `None`
    /// when the client cannot be asked that way.
    ///
    /// # Errors
    /// Too many questions already, or no page could be opened.
    pub async fn ask(
        mut self,
        needs: Needs,
        capabilities: Option<&ClientCapabilities>,
        daemon: &Daemon,
    ) -> Result<Option<InputRequiredResult>, ToolError> {
        let modes = capabilities.and_then(|c| c.elicitation.as_ref());
        // A declared capability with neither mode means form, as in 2025-06-18.
        let form = modes.is_some_and(|m| m.form.is_some() || m.url.is_none());
        let url = modes.is_some_and(|m| m.url.is_some());
        if self.asked >= MAX_QUESTIONS {
            return Err(ToolError::new(format!(
                "connect still needed something from the user after {MAX_QUESTIONS} questions; \
                 check the host's keys and the credentials, then connect again"
            )));
        }
        let params = match needs {
            Needs::HostKey(key) if form => {
                let params = ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: host_key_message(&key),
                    requested_schema: host_key_form()?,
                };
                self.pending = Some(Pending::HostKey(HostKeyApproval {
                    host: key.host,
                    fingerprint: key.fingerprint,
                }));
                params
            }
            Needs::Secret(prompt) if url => {
                let what = secret_what(&prompt);
                let page = open_page(daemon, prompt).await?;
                let params = ElicitRequestParams::UrlElicitationParams {
                    meta: None,
                    message: page_message(&what, &page),
                    url: page_link(&page)?.to_string(),
                    elicitation_id: page.id.clone(),
                };
                self.pending = Some(Pending::Page { id: page.id, what });
                params
            }
            _ => return Ok(None),
        };
        self.asked += 1;
        let state = serde_json::to_string(&self)
            .map_err(|e| ToolError::new(format!("cannot encode the connect state: {e}")))?;
        let question = InputRequest::Elicitation(ElicitRequest::new(params));
        Ok(Some(InputRequiredResult::new(
            Some([(INPUT_KEY.to_owned(), question)].into()),
            Some(state),
        )))
    }
}
