//! The MCP server: six tools, each a thin step from arguments to a daemon
//! request and from the daemon's response to a result.

use crate::daemon::Daemon;
use crate::tools::{
    self, ConnectArgs, ConnectOutput, Direction, DisconnectArgs, DisconnectOutput, DownloadArgs,
    ExecuteArgs, ExecuteOutput, ListSessionsOutput, LocalPaths, ToolError, TransferOutput,
    UploadArgs,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use sshmcp_proto::{Request, Response, SessionInfo};
use std::sync::Arc;

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
    ) -> Result<Json<ConnectOutput>, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        match self.daemon.call(Request::Connect(request)).await? {
            Response::Connected(result) => Ok(Json(result.into())),
            other => Err(refusal("connect", other)),
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
    ) -> Result<Json<ExecuteOutput>, ToolError> {
        let request = args.into_request()?;
        match self.daemon.call(Request::Execute(request)).await? {
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
    ) -> Result<Json<TransferOutput>, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        match self.daemon.call(Request::Upload(request)).await? {
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
    ) -> Result<Json<TransferOutput>, ToolError> {
        let request = args.into_request(&LocalPaths::from_env())?;
        match self.daemon.call(Request::Download(request)).await? {
            Response::Transferred(result) => {
                Ok(Json(TransferOutput::new(Direction::Download, result)))
            }
            other => Err(refusal("download", other)),
        }
    }
}

impl SshTools {
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
            "sshmcpd answered the {tool} request with a response of another kind; sshmcp-shim \
             and sshmcpd are probably different versions: install the same version of both, then \
             run `sshmcpd stop` and retry"
        )),
    }
}

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
