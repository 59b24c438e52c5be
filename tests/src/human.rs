//! An MCP host that can ask its human things (elicitation), built on rmcp's
//! client side: the shim asks it to confirm host keys (form mode) and sends
//! it to sshmcpd's secret page (URL mode). The human is scripted: it trusts
//! or refuses host keys as told, and hands page URLs to [`Human::on_page`],
//! which a test fills in with a real browser.

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, CustomNotification,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    FormElicitationCapability, Implementation, ProtocolVersion, UrlElicitationCapability,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceExt,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::env::Env;
use crate::process::bin_path;

/// What the human does with a page URL: open it and type the secret.
pub type PageVisit =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A page visit under way: `Err` says what the page did wrong.
type Visit = JoinHandle<Result<(), String>>;

/// The scripted human behind an MCP host.
#[derive(Clone, Default)]
pub struct Human {
    /// 2025-11-25 unless set: the last revision where servers ask by
    /// request.
    protocol: Option<ProtocolVersion>,
    form: bool,
    url: bool,
    trust_host_keys: bool,
    on_page: Option<PageVisit>,
    /// Every elicitation the shim sent, in order.
    asked: Arc<Mutex<Vec<ElicitRequestParams>>>,
    /// Page visits under way or done.
    visits: Arc<Mutex<Vec<Visit>>>,
    /// `elicitationId`s the shim reported complete.
    completed: Arc<Mutex<Vec<String>>>,
}

impl Human {
    /// A host that declares form-mode elicitation; the human answers host
    /// key questions with `trust`.
    pub fn answering_host_keys(trust: bool) -> Human {
        Human {
            form: true,
            trust_host_keys: trust,
            ..Human::default()
        }
    }

    /// A host that declares URL-mode elicitation and opens each page with
    /// `visit`.
    pub fn visiting_pages(visit: PageVisit) -> Human {
        Human {
            url: true,
            on_page: Some(visit),
            ..Human::default()
        }
    }

    /// A host that declares URL-mode elicitation, whose human declines to
    /// open any page.
    pub fn declining_pages() -> Human {
        Human {
            url: true,
            ..Human::default()
        }
    }

    /// The same host speaking MCP `protocol`: from 2026-07-28 the shim asks
    /// by answering the tool call with the question, and rmcp's client
    /// answers it and calls again.
    pub fn on_protocol(mut self, protocol: ProtocolVersion) -> Human {
        self.protocol = Some(protocol);
        self
    }

    /// A host that declares no elicitation at all.
    pub fn absent() -> Human {
        Human::default()
    }

    /// Every elicitation received so far.
    pub fn asked(&self) -> Vec<ElicitRequestParams> {
        self.asked.lock().unwrap().clone()
    }

    /// The `elicitationId`s the shim said were complete.
    pub fn completed(&self) -> Vec<String> {
        self.completed.lock().unwrap().clone()
    }

    /// Waits for every page visit and returns their outcomes.
    pub async fn visits(&self) -> Vec<Result<(), String>> {
        let handles: Vec<_> = self.visits.lock().unwrap().drain(..).collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        out
    }

    /// Starts the shim in `env` as this host's MCP server and initializes
    /// the session.
    ///
    /// # Panics
    ///
    /// When the shim cannot be started or initialized.
    pub async fn serve(self, env: &Env) -> McpHost {
        let stderr = env.dir().join("sshmcp-shim.human.err");
        let log = File::create(&stderr).expect("create the shim's stderr file");
        let command = tokio::process::Command::from(env.command(bin_path("sshmcp-shim")));
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(log)
            .spawn()
            .expect("spawn sshmcp-shim");
        let service = match self.protocol.clone() {
            // 2026-07-28 has no `initialize`: the client discovers the
            // server and sends its capabilities with each request.
            Some(version) if !version.has_initialize() => {
                let lifecycle = ClientLifecycleMode::Discover {
                    preferred_versions: vec![version],
                };
                self.serve_with_lifecycle(transport, lifecycle).await
            }
            _ => ServiceExt::serve(self, transport).await,
        }
        .expect("start the MCP session with sshmcp-shim");
        McpHost { service }
    }
}

impl ClientHandler for Human {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.form || self.url {
            let mut elicitation = ElicitationCapability::new();
            if self.form {
                elicitation = elicitation.with_form(FormElicitationCapability::new());
            }
            if self.url {
                elicitation = elicitation.with_url(UrlElicitationCapability::new());
            }
            capabilities.elicitation = Some(elicitation);
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("sshmcp-tests", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(
            self.protocol
                .clone()
                .unwrap_or(ProtocolVersion::V_2025_11_25),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked.lock().unwrap().push(request.clone());
        Ok(match request {
            ElicitRequestParams::FormElicitationParams { .. } if self.trust_host_keys => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"trust": true}))
            }
            ElicitRequestParams::UrlElicitationParams { url, .. } => match &self.on_page {
                Some(visit) => {
                    // As a real host does: say yes at once, and let the
                    // human get on with the page.
                    let visit = tokio::spawn(visit(url));
                    self.visits.lock().unwrap().push(visit);
                    ElicitResult::new(ElicitationAction::Accept)
                }
                None => ElicitResult::new(ElicitationAction::Decline),
            },
            _ => ElicitResult::new(ElicitationAction::Decline),
        })
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleClient>,
    ) {
        if notification.method == "notifications/elicitation/complete"
            && let Some(id) = notification
                .params
                .as_ref()
                .and_then(|p| p.get("elicitationId"))
                .and_then(Value::as_str)
        {
            self.completed.lock().unwrap().push(id.to_owned());
        }
    }
}

/// The running MCP session between a [`Human`]'s host and the shim.
pub struct McpHost {
    service: RunningService<RoleClient, Human>,
}

impl McpHost {
    /// Calls `tool` with `arguments` (an object).
    ///
    /// # Panics
    ///
    /// When the call fails at the protocol level (not as a tool).
    pub async fn call(&self, tool: &'static str, arguments: Value) -> CallToolResult {
        let arguments = match arguments {
            Value::Object(map) => map,
            other => panic!("tool arguments must be an object, not {other}"),
        };
        self.service
            .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
            .await
            .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// The MCP revision the session runs on.
    pub fn protocol(&self) -> Option<ProtocolVersion> {
        self.service
            .peer()
            .peer_info()
            .map(|info| info.protocol_version.clone())
    }

    /// Ends the session; the shim exits.
    pub async fn close(self) {
        drop(self.service.cancel().await);
    }
}

/// A tool result's text, joined.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
