//! The MCP server: six tools, each a thin step from arguments to a daemon
//! request and from the daemon's response to a result.

use crate::daemon::Daemon;
use crate::elicit::{self, Answer, MAX_QUESTIONS, Rounds};
use crate::tools::{
    self, ConnectArgs, ConnectOutput, Direction, DisconnectArgs, DisconnectOutput, DownloadArgs,
    ExecuteArgs, ExecuteOutput, ListSessionsOutput, LocalPaths, ToolError, TransferOutput,
    UploadArgs,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, IntoCallToolResult, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, Implementation, ProgressNotificationParam, ProtocolVersion,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use sshmcp_proto::{ConnectRequest, Progress, Request, Response, SessionInfo};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The tools, forwarding every call to the daemon.
#[derive(Clone)]
pub struct SshTools {
    daemon: Arc<Daemon>,
    /// Built once: it holds each tool's generated schemas.
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl SshTools {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        SshTools {
            daemon,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = tools::CONNECT_DESCRIPTION,
        output_schema = rmcp::handler::server::tool::schema_for_output::<ConnectOutput>(),
        annotations(
            title = "Open an SSH session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn connect(
        &self,
        Parameters(args): Parameters<ConnectArgs>,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        let stateless = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        let work = async {
            if stateless {
                self.connect_round(request, state, answers, &context).await
            } else {
                let output = self.connect_asking(request, &context.peer).await?;
                Json(output)
                    .into_call_tool_result()
                    .map_err(|e| ToolError::new(e.message))
            }
        };
        tokio::select! {
            answer = work => answer,
            () = context.ct.cancelled() => Err(ToolError::new(
                "the call was cancelled; no session was opened",
            )),
        }
    }

    #[tool(
        description = tools::DISCONNECT_DESCRIPTION,
        annotations(
            title = "Close an SSH session",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn disconnect(
        &self,
        Parameters(args): Parameters<DisconnectArgs>,
    ) -> Result<Json<DisconnectOutput>, ToolError> {
        let session = self.session(&args.session_id).await;
        let request = Request::Disconnect {
            session_id: args.session_id,
        };
        match self.daemon.call(request).await? {
            Response::Disconnected { session_id } => {
                Ok(Json(DisconnectOutput::new(session_id, session.as_ref())))
            }
            other => Err(refusal("disconnect", other)),
        }
    }

    #[tool(
        description = tools::LIST_SESSIONS_DESCRIPTION,
        annotations(
            title = "List SSH sessions",
            read_only_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_sessions(&self) -> Result<Json<ListSessionsOutput>, ToolError> {
        match self.daemon.call(Request::ListSessions).await? {
            Response::Sessions(sessions) => Ok(Json(ListSessionsOutput {
                sessions: sessions.into_iter().map(Into::into).collect(),
            })),
            other => Err(refusal("list_sessions", other)),
        }
    }

    #[tool(
        description = tools::EXECUTE_DESCRIPTION,
        annotations(
            title = "Run a remote command",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn execute(
        &self,
        Parameters(args): Parameters<ExecuteArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<ExecuteOutput>, ToolError> {
        let request = args.into_request()?;
        match self
            .forward(Request::Execute(request), &context, ProgressKind::Output)
            .await?
        {
            Response::Executed(result) => Ok(Json(result.into())),
            other => Err(refusal("execute", other)),
        }
    }

    #[tool(
        description = tools::UPLOAD_DESCRIPTION,
        annotations(
            title = "Upload a file",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn upload(
        &self,
        Parameters(args): Parameters<UploadArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<TransferOutput>, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        match self
            .forward(Request::Upload(request), &context, ProgressKind::Transfer)
            .await?
        {
            Response::Transferred(result) => {
                Ok(Json(TransferOutput::new(Direction::Upload, result)))
            }
            other => Err(refusal("upload", other)),
        }
    }

    #[tool(
        description = tools::DOWNLOAD_DESCRIPTION,
        annotations(
            title = "Download a file",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn download(
        &self,
        Parameters(args): Parameters<DownloadArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<TransferOutput>, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        match self
            .forward(Request::Download(request), &context, ProgressKind::Transfer)
            .await?
        {
            Response::Transferred(result) => {
                Ok(Json(TransferOutput::new(Direction::Download, result)))
            }
            other => Err(refusal("download", other)),
        }
    }
}

/// What a call's progress counts, for the message beside the number.
#[derive(Clone, Copy)]
enum ProgressKind {
    /// Seconds elapsed, with bytes of output so far.
    Output,
    /// Bytes moved of the total.
    Transfer,
}

fn progress_param(
    token: rmcp::model::ProgressToken,
    kind: ProgressKind,
    p: &Progress,
) -> ProgressNotificationParam {
    let secs = p.elapsed_ms as f64 / 1000.0;
    match kind {
        ProgressKind::Output => ProgressNotificationParam::new(token, secs).with_message(format!(
            "{secs:.0} s elapsed, {} bytes of output so far",
            p.done
        )),
        ProgressKind::Transfer => {
            let param = ProgressNotificationParam::new(token, p.done as f64);
            match p.total {
                Some(total) => param
                    .with_total(total as f64)
                    .with_message(format!("{} of {total} bytes", p.done)),
                None => param.with_message(format!("{} bytes so far", p.done)),
            }
        }
    }
}

impl SshTools {
    /// Connects, asking the human (elicitation) for what the daemon says
    /// is missing and trying again with it: a host key to trust, then a
    /// password or passphrase. Each round answers one need, so a few
    /// rounds cover a jump host and a target both unknown plus a password.
    async fn connect_asking(
        &self,
        mut request: ConnectRequest,
        peer: &Peer<RoleServer>,
    ) -> Result<ConnectOutput, ToolError> {
        for _ in 0..MAX_QUESTIONS {
            match self.daemon.call(Request::Connect(request.clone())).await? {
                Response::Connected(result) => return Ok(result.into()),
                Response::Error(body) => {
                    let Some(needs) = body.needs.clone() else {
                        return Err(body.into());
                    };
                    match elicit::ask(peer, &self.daemon, needs).await? {
                        Some(Answer::HostKey(approval)) => {
                            request.approved_host_keys.push(approval)
                        }
                        Some(Answer::Secret(id)) => request.secret_ref = Some(id),
                        None => return Err(body.into()),
                    }
                }
                other => return Err(refusal("connect", other)),
            }
        }
        Err(ToolError::new(format!(
            "connect still needed something from the user after {MAX_QUESTIONS} questions; \
             check the host's keys and the credentials, then connect again"
        )))
    }

    /// One round of a `connect` on MCP 2026-07-28 and later: applies the
    /// answer to the previous round's question, connects, and answers with
    /// the session or with the next question (see [`Rounds`]).
    async fn connect_round(
        &self,
        mut request: ConnectRequest,
        state: Option<String>,
        answers: Option<rmcp::model::InputResponses>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ToolError> {
        let mut rounds = Rounds::resume(state)?;
        rounds.apply(answers, &self.daemon, &mut request).await?;
        match self.daemon.call(Request::Connect(request)).await? {
            Response::Connected(result) => Json(ConnectOutput::from(result))
                .into_call_tool_result()
                .map_err(|e| ToolError::new(e.message)),
            Response::Error(body) => {
                let Some(needs) = body.needs.clone() else {
                    return Err(body.into());
                };
                let capabilities = context.client_capabilities();
                match rounds
                    .ask(needs, capabilities.as_ref(), &self.daemon)
                    .await?
                {
                    Some(question) => Ok(question.into()),
                    None => Err(body.into()),
                }
            }
            other => Err(refusal("connect", other)),
        }
    }

    /// Sends a long-running request to the daemon, relaying its progress
    /// when the client asked for progress (a `progressToken`), and
    /// cancelling it in the daemon when the client cancels the tool call:
    /// dropping the daemon call sends the cancel, which stops the remote
    /// command or aborts the transfer.
    async fn forward(
        &self,
        request: Request,
        context: &RequestContext<RoleServer>,
        kind: ProgressKind,
    ) -> Result<Response, ToolError> {
        let call = async {
            let Some(token) = context.meta.get_progress_token() else {
                return self.daemon.call(request).await.map_err(ToolError::from);
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            let call = self.daemon.call_with_progress(request, tx);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    answer = &mut call => break answer.map_err(ToolError::from),
                    Some(p) = rx.recv() => {
                        let param = progress_param(token.clone(), kind, &p);
                        if let Err(e) = context.peer.notify_progress(param).await {
                            tracing::debug!("progress notification not delivered: {e}");
                        }
                    }
                }
            }
        };
        tokio::select! {
            answer = call => answer,
            () = context.ct.cancelled() => Err(ToolError::new(
                "the call was cancelled; sshmcpd stops the remote command or aborts the transfer",
            )),
        }
    }

    /// What the daemon lists for `session_id`, to name the machine in
    /// `disconnect`'s status. Only decoration: when it cannot be read, the
    /// disconnect request that follows reports the real problem.
    async fn session(&self, session_id: &str) -> Option<SessionInfo> {
        match self.daemon.call(Request::ListSessions).await {
            Ok(Response::Sessions(sessions)) => {
                sessions.into_iter().find(|s| s.session_id == session_id)
            }
            _ => None,
        }
    }
}

/// The error for a response that is not the success answer to `tool`'s
/// request: the daemon's own message when it refused, else a sign that the
/// two programs disagree on the protocol.
fn refusal(tool: &str, response: Response) -> ToolError {
    match response {
        Response::Error(body) => body.into(),
        _ => ToolError::new(format!(
            "sshmcpd answered the {tool} request with a response of another kind; {SKEW_ADVICE}"
        )),
    }
}

/// What to do when the daemon answers with the wrong kind of response.
pub const SKEW_ADVICE: &str = "sshmcp-shim and sshmcpd are probably different versions: install \
                               the same version of both, then run `sshmcpd stop` and retry";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SshTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("sshmcp", env!("CARGO_PKG_VERSION"))
                    .with_title("sshmcp: SSH sessions for agents"),
            )
            .with_instructions(tools::SERVER_INSTRUCTIONS)
    }
}
