//! Asking the human through the MCP host (elicitation), end to end: an rmcp
//! client as the host, the real shim and daemon, a real sshd, and for the
//! secret page a real headless Chromium typing into it.
//!
//! - A password or key passphrase the call did not give is typed into
//!   sshmcpd's one-time page on 127.0.0.1 (URL mode), which refuses a wrong
//!   token, another origin and a second use.
//! - Under the strict policy an unknown host key is shown to the human
//!   (form mode) and recorded only when they trust it.
//! - A host that cannot ask gets an error listing the other ways.

use std::path::PathBuf;
use std::sync::Arc;

use fantoccini::Locator;
use rmcp::model::{CallToolResult, ElicitRequestParams, ProtocolVersion};
use serde_json::{Value, json};
use sshmcp_tests::{
    Browser, Env, Human, McpHost, PageVisit, Sshd, SshdConfig, TestUser, keygen, result_text,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn structured(result: &CallToolResult) -> &Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "tool call failed: {}",
        result_text(result)
    );
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

fn failure(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a failure: {:?}",
        result.structured_content
    );
    result_text(result)
}

/// A sandbox with an empty `~/.ssh`: no keys, no agent, nothing known.
fn sandbox() -> Env {
    let env = Env::new();
    std::fs::create_dir(env.home().join(".ssh")).expect("create ~/.ssh");
    env
}

fn known_hosts(env: &Env) -> PathBuf {
    env.home().join(".ssh/known_hosts")
}

fn strict(env: &Env) {
    let config = env.dir().join("config/sshmcp/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "host_key_policy = \"strict\"\n").unwrap();
}

/// One HTTP/1.1 request to `url` (an `http://127.0.0.1:PORT/...` page);
/// returns the status code and body, or the connection error.
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    assert!(authority.starts_with("127.0.0.1:"), "{url}");
    let mut stream = TcpStream::connect(authority).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// The human at the page: first the page's refusals are probed (they must
/// leave it open), then Chromium opens it, the secret is typed and sent.
fn typing(browser: Arc<Browser>, secret: String, expect_on_page: Vec<String>) -> PageVisit {
    Arc::new(move |url: String| {
        let (browser, secret, expect) = (browser.clone(), secret.clone(), expect_on_page.clone());
        Box::pin(async move {
            let (token_path, _) = url.rsplit_once('/').map(|(a, b)| (b, a)).unwrap();
            let wrong = url.replace(token_path, &"0".repeat(token_path.len()));
            let refusals = [
                ("a wrong token", "GET", &wrong, vec![], 404),
                (
                    "a post from another origin",
                    "POST",
                    &url,
                    vec![FORM, ("Origin", "http://evil.example")],
                    403,
                ),
                (
                    "a cross-site post",
                    "POST",
                    &url,
                    vec![FORM, ("Sec-Fetch-Site", "cross-site")],
                    403,
                ),
            ];
            for (what, method, target, headers, want) in refusals {
                let (status, _) = http(method, target, &headers, "secret=x")
                    .await
                    .map_err(|e| e.to_string())?;
                if status != want {
                    return Err(format!("{what} got {status}, not {want}"));
                }
            }

            let page = browser.session().await;
            page.goto(&url).await.map_err(|e| e.to_string())?;
            let text = page
                .find(Locator::Css("body"))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            for want in &expect {
                if !text.contains(want.as_str()) {
                    return Err(format!("the page does not say {want:?}: {text}"));
                }
            }
            page.find(Locator::Css("#secret"))
                .await
                .map_err(|e| e.to_string())?
                .send_keys(&secret)
                .await
                .map_err(|e| e.to_string())?;
            page.find(Locator::Css("#send"))
                .await
                .map_err(|e| e.to_string())?
                .click()
                .await
                .map_err(|e| e.to_string())?;
            page.wait()
                .for_element(Locator::Css("#done"))
                .await
                .map_err(|e| format!("no confirmation after sending: {e}"))?;
            drop(page.close().await);
            Ok(())
        })
    })
}

/// The single URL-mode elicitation `human` received: its URL and id.
fn the_page(human: &Human) -> (String, String) {
    let asked = human.asked();
    assert_eq!(asked.len(), 1, "one question, got {asked:?}");
    match &asked[0] {
        ElicitRequestParams::UrlElicitationParams {
            url,
            elicitation_id,
            message,
            ..
        } => {
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
            assert!(message.contains("not to the agent"), "{message}");
            (url.clone(), elicitation_id.clone())
        }
        other => panic!("expected a URL-mode elicitation, got {other:?}"),
    }
}

/// After the secret is used, the page's URL takes nothing more.
async fn assert_used_up(url: &str) {
    match http("POST", url, &[FORM], "secret=again").await {
        Ok((status, _)) => assert_eq!(status, 410, "a second use must be refused"),
        // The page closed its port once it had the secret.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
    }
}

async fn run_id(host: &McpHost, session: &str) -> String {
    let r = host
        .call(
            "execute",
            json!({"session_id": session, "command": "id -un"}),
        )
        .await;
    structured(&r)["stdout"].as_str().unwrap().to_owned()
}

fn assert_nowhere(env: &Env, secret: &str) {
    let mut texts = vec![env.daemon_log()];
    for entry in std::fs::read_dir(env.dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".err") {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for text in texts {
        assert!(!text.contains(secret), "the secret leaked into a log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_typed_into_the_page_logs_in() {
    password_through_the_page(ProtocolVersion::V_2025_11_25).await;
}

/// MCP 2026-07-28 forbids server-to-client requests: the question comes as
/// the tool's `input_required` answer, and the client calls again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_typed_into_the_page_logs_in_over_mcp_2026_07_28() {
    password_through_the_page(ProtocolVersion::V_2026_07_28).await;
}

async fn password_through_the_page(protocol: ProtocolVersion) {
    let legacy = protocol == ProtocolVersion::V_2025_11_25;
    let user = TestUser::require();
    let sshd = Sshd::start();
    let env = sandbox();
    let browser = Arc::new(Browser::start());
    let login = format!("{}@[127.0.0.1]:{}", user.name(), sshd.port());
    let human = Human::visiting_pages(typing(
        browser.clone(),
        user.password().to_owned(),
        vec![login.clone(), "asks for a password".into()],
    ))
    .on_protocol(protocol.clone());
    let host = human.clone().serve(&env).await;
    assert_eq!(host.protocol(), Some(protocol));

    let r = host
        .call(
            "connect",
            json!({"hostname": sshd.host(), "port": sshd.port(), "username": user.name()}),
        )
        .await;
    let visits = human.visits().await;
    assert_eq!(visits, vec![Ok(())]);
    let value = structured(&r);
    assert_eq!(value["auth_method"], "password", "{value}");
    let session = value["session_id"].as_str().unwrap().to_owned();
    assert_eq!(run_id(&host, &session).await, format!("{}\n", user.name()));

    let (url, id) = the_page(&human);
    // A completion notice exists only where the server asks by request.
    let completed = if legacy { vec![id] } else { vec![] };
    assert_eq!(human.completed(), completed);
    assert_used_up(&url).await;
    assert!(
        sshd.log()
            .contains(&format!("Accepted password for {}", user.name())),
        "{}",
        sshd.log()
    );
    assert_nowhere(&env, user.password());
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_keys_passphrase_typed_into_the_page_logs_in_as_root() {
    let sshd = Sshd::start();
    let env = sandbox();
    let passphrase = "page-typed passphrase 5e2a";
    let key = env.dir().join("locked");
    sshd.authorize(&keygen(&key, "ed25519", passphrase));
    let browser = Arc::new(Browser::start());
    let human = Human::visiting_pages(typing(
        browser,
        passphrase.to_owned(),
        vec![key.display().to_string(), "needs its passphrase".into()],
    ));
    let host = human.clone().serve(&env).await;

    let r = host
        .call(
            "connect",
            json!({
                "hostname": sshd.host(), "port": sshd.port(), "username": "root",
                "private_key": key,
            }),
        )
        .await;
    assert_eq!(human.visits().await, vec![Ok(())]);
    let value = structured(&r);
    assert_eq!(value["auth_method"], "publickey", "{value}");
    let session = value["session_id"].as_str().unwrap().to_owned();
    assert_eq!(run_id(&host, &session).await, "root\n");
    let (url, _) = the_page(&human);
    assert_used_up(&url).await;
    assert_nowhere(&env, passphrase);
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_the_page_closes_it_and_says_so() {
    let user = TestUser::require();
    let sshd = Sshd::start();
    let env = sandbox();
    // A host that can open pages but whose human says no.
    let human = Human::declining_pages();
    let host = human.clone().serve(&env).await;
    let r = host
        .call(
            "connect",
            json!({"hostname": sshd.host(), "port": sshd.port(), "username": user.name()}),
        )
        .await;
    let text = failure(&r);
    assert!(text.contains("declined"), "{text}");
    let (url, _) = the_page(&human);
    assert_used_up(&url).await;
    host.close().await;
}

fn fingerprint_asked(human: &Human) -> String {
    let asked = human.asked();
    assert_eq!(asked.len(), 1, "one question, got {asked:?}");
    match &asked[0] {
        ElicitRequestParams::FormElicitationParams { message, .. } => message.clone(),
        other => panic!("expected a form-mode elicitation, got {other:?}"),
    }
}

fn connect_args(sshd: &Sshd) -> Value {
    json!({
        "hostname": sshd.host(), "port": sshd.port(), "username": "root",
        "private_key": sshd.client_key(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_policy_lets_the_human_trust_an_unknown_key() {
    trust_an_unknown_key(ProtocolVersion::V_2025_11_25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_policy_lets_the_human_trust_an_unknown_key_over_mcp_2026_07_28() {
    trust_an_unknown_key(ProtocolVersion::V_2026_07_28).await;
}

async fn trust_an_unknown_key(protocol: ProtocolVersion) {
    let sshd = Sshd::start();
    let env = sandbox();
    strict(&env);
    let human = Human::answering_host_keys(true).on_protocol(protocol.clone());
    let host = human.clone().serve(&env).await;
    assert_eq!(host.protocol(), Some(protocol));

    let r = host.call("connect", connect_args(&sshd)).await;
    let value = structured(&r).clone();
    assert_eq!(value["host_key_learned"], true, "{value}");
    assert_eq!(value["host_key_fingerprint"], sshd.host_key_fingerprint());
    let message = fingerprint_asked(&human);
    assert!(message.contains(sshd.host_key_fingerprint()), "{message}");
    assert!(
        message.contains(&format!("[127.0.0.1]:{}", sshd.port())),
        "{message}"
    );
    let recorded = std::fs::read_to_string(known_hosts(&env)).expect("known_hosts written");
    let key = std::fs::read_to_string(sshd.host_public_key()).unwrap();
    let key_field = key.split_whitespace().nth(1).unwrap();
    assert!(recorded.contains(key_field), "{recorded}");

    // Known now: no second question.
    let r = host.call("connect", connect_args(&sshd)).await;
    assert_eq!(structured(&r)["host_key_learned"], false);
    assert_eq!(human.asked().len(), 1);
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_key_the_human_refuses_is_not_recorded() {
    let sshd = Sshd::start();
    let env = sandbox();
    strict(&env);
    let human = Human::answering_host_keys(false);
    let host = human.clone().serve(&env).await;
    let text = failure(&host.call("connect", connect_args(&sshd)).await);
    assert!(text.contains("did not trust"), "{text}");
    assert!(text.contains(sshd.host_key_fingerprint()), "{text}");
    assert!(fingerprint_asked(&human).contains(sshd.host_key_fingerprint()));
    assert!(
        !known_hosts(&env).exists(),
        "a refused key must not be recorded"
    );
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_without_elicitation_are_told_the_other_ways() {
    let user = TestUser::require();
    let sshd = SshdConfig::new().start();
    let env = sandbox();
    strict(&env);
    let human = Human::absent();
    let host = human.clone().serve(&env).await;

    let text = failure(&host.call("connect", connect_args(&sshd)).await);
    assert!(text.contains("refuses unknown hosts"), "{text}");
    assert!(text.contains("ssh-keyscan"), "{text}");

    // Trust the host the way the message says, then log in without a
    // password.
    let line = format!(
        "[127.0.0.1]:{} {}",
        sshd.port(),
        std::fs::read_to_string(sshd.host_public_key()).unwrap()
    );
    std::fs::write(known_hosts(&env), line).unwrap();
    let text = failure(
        &host
            .call(
                "connect",
                json!({"hostname": sshd.host(), "port": sshd.port(), "username": user.name()}),
            )
            .await,
    );
    for way in ["ssh-agent", "private_key", "give password"] {
        assert!(text.contains(way), "{way:?} missing from: {text}");
    }
    assert!(human.asked().is_empty());
    host.close().await;
}
