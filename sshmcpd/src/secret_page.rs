//! One-time pages on 127.0.0.1 where a human types the password or key
//! passphrase a login needs, so the secret goes from the browser straight
//! to the daemon and never through the MCP client, its transcript or the
//! model (MCP's URL-mode elicitation).
//!
//! Each page gets its own listener on a random loopback port, and a URL
//! whose path is a 256-bit random token: the token is the only way in.
//! The page refuses requests without the token, requests naming another
//! host (DNS rebinding) or coming from another origin (a form elsewhere
//! posting to it), and closes once the secret arrives or [`PAGE_LIFETIME`]
//! passes. The secret then waits, in memory only, for the `connect` that
//! names the page in `secret_ref`, which takes it away.

use crate::error::RequestError;
use sshmcp_proto::{ConnectRequest, ErrorKind, Secret, SecretKind, SecretPage, SecretPrompt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroize;

/// How long a page takes input: time to read it, switch windows and type.
pub const PAGE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a received secret waits for its `connect`.
const CLAIM_WINDOW: Duration = Duration::from_secs(300);
/// How long a browser connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Request head and body caps: the form has one field.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 8 * 1024;

/// The open pages and the secrets they received, by page id.
#[derive(Default)]
pub struct SecretPages {
    pages: Mutex<HashMap<String, Arc<Page>>>,
}

struct Page {
    prompt: SecretPrompt,
    /// `/` + the token: the one path the page answers.
    path: String,
    /// `127.0.0.1:PORT`, the only `Host` the page answers.
    authority: String,
    state: watch::Sender<State>,
    secret: Mutex<Option<Secret>>,
    /// Stops the listener: the secret arrived, the page expired, or the
    /// call waiting for it was cancelled.
    closed: CancellationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Received,
    /// Expired or cancelled without a secret.
    Closed,
}

impl SecretPages {
    /// Opens a page asking for `prompt`'s secret.
    ///
    /// # Errors
    /// `LocalIo` when no loopback port can be bound.
    pub async fn open(self: &Arc<Self>, prompt: SecretPrompt) -> Result<SecretPage, RequestError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            RequestError::local_io(format!(
                "cannot open a page on 127.0.0.1 for the {}: {e}",
                what(&prompt)
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| RequestError::local_io(format!("cannot read the page's port: {e}")))?
            .port();
        let token: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = uuid::Uuid::new_v4().to_string();
        let authority = format!("127.0.0.1:{port}");
        let url = format!("http://{authority}/{token}");
        let page = Arc::new(Page {
            prompt,
            path: format!("/{token}"),
            authority,
            state: watch::channel(State::Open).0,
            secret: Mutex::new(None),
            closed: CancellationToken::new(),
        });
        self.lock().insert(id.clone(), page.clone());
        tracing::info!(
            page = %id,
            port,
            host = %page.prompt.host,
            user = %page.prompt.username,
            "opened a secret page for the {}",
            what(&page.prompt)
        );
        let pages = self.clone();
        let page_id = id.clone();
        tokio::spawn(async move {
            serve(listener, &page).await;
            if *page.state.borrow() == State::Received {
                // Unclaimed secrets do not stay in memory for long.
                tokio::time::sleep(CLAIM_WINDOW).await;
            } else {
                page.state.send_replace(State::Closed);
            }
            if pages.lock().remove(&page_id).is_some() {
                tracing::info!(page = %page_id, "secret page closed unused");
            }
        });
        Ok(SecretPage {
            id,
            url,
            expires_in_s: PAGE_LIFETIME.as_secs(),
        })
    }

    /// Waits until page `id` has its secret. Cancelling closes the page.
    ///
    /// # Errors
    /// `BadRequest` for an unknown page, `Timeout` when it expired unused,
    /// `Cancelled` when `cancel` fired first.
    pub async fn wait(&self, id: &str, cancel: &CancellationToken) -> Result<(), RequestError> {
        let page = self.get(id)?;
        let mut state = page.state.subscribe();
        let outcome = tokio::select! {
            s = state.wait_for(|s| *s != State::Open) => s.map(|s| *s).unwrap_or(State::Closed),
            () = cancel.cancelled() => {
                page.closed.cancel();
                return Err(RequestError::new(
                    ErrorKind::Cancelled,
                    "the call was cancelled; the secret page is closed",
                ));
            }
        };
        match outcome {
            State::Received => Ok(()),
            _ => Err(RequestError::new(
                ErrorKind::Timeout,
                format!(
                    "nobody entered the {} within {} s and the page closed; connect again to \
                     get a new page",
                    what(&page.prompt),
                    PAGE_LIFETIME.as_secs()
                ),
            )),
        }
    }

    /// Takes page `id`'s secret away (it answers one `connect`).
    ///
    /// # Errors
    /// `BadRequest` when the page is unknown, already used, or has no
    /// secret yet.
    fn take(&self, id: &str) -> Result<(SecretKind, Secret), RequestError> {
        let page = self.get(id)?;
        let secret = page.secret.lock().unwrap_or_else(|e| e.into_inner()).take();
        match secret {
            Some(secret) => {
                self.lock().remove(id);
                Ok((page.prompt.kind, secret))
            }
            None => Err(RequestError::bad_request(format!(
                "secret page {id} has received nothing yet; wait for it (AwaitSecret) first"
            ))),
        }
    }

    /// Moves the secret of the page `req.secret_ref` names into `req`, as
    /// its password or passphrase.
    ///
    /// # Errors
    /// As [`SecretPages::take`].
    pub fn fill(&self, req: &mut ConnectRequest) -> Result<(), RequestError> {
        if let Some(id) = req.secret_ref.take() {
            match self.take(&id)? {
                (SecretKind::Password, secret) => req.password = Some(secret),
                (SecretKind::Passphrase, secret) => req.passphrase = Some(secret),
            }
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Arc<Page>, RequestError> {
        self.lock().get(id).cloned().ok_or_else(|| {
            RequestError::bad_request(format!(
                "no secret page {id:?}: it expired, was used, or belongs to an earlier daemon; \
                 connect again to get a new one"
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Page>>> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// "password of user@host" or "passphrase of key K", for messages.
fn what(prompt: &SecretPrompt) -> String {
    match (prompt.kind, &prompt.key_path) {
        (SecretKind::Passphrase, Some(key)) => format!("passphrase of key {key}"),
        (SecretKind::Passphrase, None) => "key passphrase".to_owned(),
        (SecretKind::Password, _) => {
            format!("password of {}@{}", prompt.username, prompt.host)
        }
    }
}

/// Answers browsers until the secret arrives, the page expires or is
/// closed.
async fn serve(listener: TcpListener, page: &Arc<Page>) {
    let expiry = tokio::time::sleep(PAGE_LIFETIME);
    tokio::pin!(expiry);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            () = &mut expiry => break,
            () = page.closed.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let page = page.clone();
                    connections.spawn(async move {
                        let answered =
                            tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &page)).await;
                        if let Ok(Err(e)) = answered {
                            tracing::debug!("secret page connection failed: {e}");
                        }
                    });
                }
                Err(e) => tracing::debug!("secret page accept failed: {e}"),
            },
        }
    }
    page.closed.cancel();
    connections.close();
    connections.wait().await;
}

/// One HTTP request and its answer; the connection is closed after it.
async fn answer(mut stream: TcpStream, page: &Page) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let reply = read_request(&mut stream, &mut buf)
        .await
        .map(|request| respond(page, &request));
    buf.zeroize();
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => Reply::error(400, "Bad Request", &e),
    };
    stream.write_all(&reply.into_bytes()).await?;
    stream.shutdown().await
}

/// A parsed request: what the page needs of it.
struct HttpRequest {
    method: String,
    path: String,
    host: Option<String>,
    origin: Option<String>,
    fetch_site: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Drop for HttpRequest {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

/// Reads one request head and its body into `buf`.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<HttpRequest, String> {
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("the request ended early".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
        chunk.zeroize();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length: usize = match header("content-length") {
                    Some(v) => v
                        .trim()
                        .parse()
                        .map_err(|_| "bad Content-Length".to_owned())?,
                    None => 0,
                };
                if length > MAX_BODY {
                    return Err("the request body is too large".to_owned());
                }
                let request = HttpRequest {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    path: parsed.path.unwrap_or_default().to_owned(),
                    host: header("host"),
                    origin: header("origin"),
                    fetch_site: header("sec-fetch-site"),
                    content_type: header("content-type"),
                    body: Vec::new(),
                };
                return read_body(stream, buf, head_len, length, request).await;
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("the request head is too large".into()),
            Err(e) => return Err(format!("malformed request: {e}")),
        }
    }
}

async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_len: usize,
    length: usize,
    mut request: HttpRequest,
) -> Result<HttpRequest, String> {
    let mut chunk = [0u8; 2048];
    while buf.len() < head_len + length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("the request body ended early".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    chunk.zeroize();
    request
        .body
        .extend_from_slice(&buf[head_len..head_len + length]);
    Ok(request)
}

/// The page's rules, in order: the right host, the token, not used yet,
/// then the form (GET) or the secret (POST from the page itself).
fn respond(page: &Page, request: &HttpRequest) -> Reply {
    if request.host.as_deref() != Some(page.authority.as_str()) {
        return Reply::error(
            421,
            "Misdirected Request",
            &format!("this page answers only http://{}/", page.authority),
        );
    }
    if !same_token(&request.path, &page.path) {
        return Reply::error(404, "Not Found", "no such page");
    }
    if *page.state.borrow() != State::Open || page.closed.is_cancelled() {
        return Reply::error(
            410,
            "Gone",
            "this page was used or has expired; it works once. Ask the agent to connect again \
             for a new one.",
        );
    }
    match request.method.as_str() {
        "GET" => Reply::html(200, "OK", form_page(page, None)),
        "POST" => receive(page, request),
        _ => Reply::error(405, "Method Not Allowed", "only GET and POST"),
    }
}

/// Compares the request path with the page's without stopping at the
/// first differing byte.
fn same_token(path: &str, expected: &str) -> bool {
    let (a, b) = (path.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn receive(page: &Page, request: &HttpRequest) -> Reply {
    let own_origin = format!("http://{}", page.authority);
    let foreign_origin = request
        .origin
        .as_deref()
        .is_some_and(|origin| origin != own_origin);
    let foreign_fetch = request
        .fetch_site
        .as_deref()
        .is_some_and(|site| site != "same-origin" && site != "none");
    if foreign_origin || foreign_fetch {
        tracing::warn!(
            origin = request.origin.as_deref().unwrap_or("-"),
            "secret page refused a post from another origin"
        );
        return Reply::error(
            403,
            "Forbidden",
            "this form only accepts its own page's posts",
        );
    }
    let form = request
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Reply::error(415, "Unsupported Media Type", "send the page's form");
    }
    let secret = form_urlencoded::parse(&request.body)
        .find(|(name, _)| name == "secret")
        .map(|(_, value)| Secret::new(value.into_owned()));
    let Some(secret) = secret.filter(|s| !s.expose().is_empty()) else {
        return Reply::html(
            400,
            "Bad Request",
            form_page(page, Some("Nothing was entered; type it and send again.")),
        );
    };
    *page.secret.lock().unwrap_or_else(|e| e.into_inner()) = Some(secret);
    page.state.send_replace(State::Received);
    page.closed.cancel();
    tracing::info!(host = %page.prompt.host, "secret page received its secret");
    Reply::html(200, "OK", done_page(page))
}

struct Reply {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn html(status: u16, reason: &'static str, body: String) -> Self {
        Reply {
            status,
            reason,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    fn error(status: u16, reason: &'static str, message: &str) -> Self {
        Reply {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n"),
        }
    }

    /// `Referrer-Policy: same-origin`, not `no-referrer`: under the latter
    /// browsers post the form with `Origin: null`, which the origin check
    /// must refuse.
    fn into_bytes(self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-store\r\nReferrer-Policy: same-origin\r\n\
             X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
             Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
             form-action 'self'; frame-ancestors 'none'\r\n\r\n{}",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;\
padding:0 1em;line-height:1.5}code{background:#eee;padding:0 .2em}\
input{font-size:1.1em;width:100%;padding:.3em;box-sizing:border-box}\
button{font-size:1.1em;margin-top:.8em;padding:.3em 1.2em}.error{color:#a00}";

fn form_page(page: &Page, error: Option<&str>) -> String {
    let prompt = &page.prompt;
    let login = escape(&format!("{}@{}", prompt.username, prompt.host));
    let (title, asked, label) = match (prompt.kind, &prompt.key_path) {
        (SecretKind::Password, _) => (
            format!("Password for {login}"),
            format!(
                "An AI agent using sshmcp is logging in to <code>{login}</code>, and the server \
                 asks for a password."
            ),
            "Password",
        ),
        (SecretKind::Passphrase, key) => (
            format!("Key passphrase for {login}"),
            format!(
                "An AI agent using sshmcp is logging in to <code>{login}</code> with the private \
                 key <code>{}</code>, which is encrypted and needs its passphrase.",
                escape(key.as_deref().unwrap_or("(unnamed)"))
            ),
            "Passphrase",
        ),
    };
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>sshmcp: {title}</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1><p>{asked}</p>\
         <p>What you type here goes straight to sshmcpd on this computer; the agent and the \
         model never see it. sshmcpd keeps it in memory only, to log in (and to log in again \
         if the connection drops), and never writes it to disk. This page works once and \
         closes in {} minutes. If you did not expect this, close the page.</p>{error}\
         <form method=\"post\" autocomplete=\"off\"><label for=\"secret\">{label}</label>\
         <input type=\"password\" id=\"secret\" name=\"secret\" required autofocus>\
         <button type=\"submit\" id=\"send\">Log in</button></form></body></html>",
        PAGE_LIFETIME.as_secs() / 60
    )
}

fn done_page(page: &Page) -> String {
    let login = escape(&format!("{}@{}", page.prompt.username, page.prompt.host));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sshmcp: received</title><style>{STYLE}</style></head><body>\
         <h1 id=\"done\">Received</h1><p>sshmcpd has it and is logging in to \
         <code>{login}</code>. You can close this page and go back to your agent.</p>\
         </body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Page {
        Page {
            prompt: SecretPrompt {
                kind: SecretKind::Password,
                host: "[h]:2222".into(),
                username: "<u>".into(),
                key_path: None,
            },
            path: "/abc".into(),
            authority: "127.0.0.1:9".into(),
            state: watch::channel(State::Open).0,
            secret: Mutex::new(None),
            closed: CancellationToken::new(),
        }
    }

    fn request(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            host: Some("127.0.0.1:9".into()),
            origin: None,
            fetch_site: None,
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: b"secret=p%40ss+word".to_vec(),
        }
    }

    #[test]
    fn the_form_names_the_login_escaped() {
        let reply = respond(&page(), &request("GET", "/abc"));
        assert_eq!(reply.status, 200);
        assert!(reply.body.contains("<code>&lt;u&gt;@[h]:2222</code>"));
        assert!(!reply.body.contains("<u>"));
    }

    #[test]
    fn wrong_token_host_or_origin_is_refused_and_keeps_the_page_open() {
        let p = page();
        assert_eq!(respond(&p, &request("POST", "/abd")).status, 404);
        assert_eq!(respond(&p, &request("POST", "/abc/")).status, 404);
        let mut r = request("POST", "/abc");
        r.host = Some("evil.example:9".into());
        assert_eq!(respond(&p, &r).status, 421);
        let mut r = request("POST", "/abc");
        r.origin = Some("http://evil.example".into());
        assert_eq!(respond(&p, &r).status, 403);
        let mut r = request("POST", "/abc");
        r.fetch_site = Some("cross-site".into());
        assert_eq!(respond(&p, &r).status, 403);
        assert_eq!(*p.state.borrow(), State::Open);
        assert!(p.secret.lock().unwrap().is_none());
    }

    #[test]
    fn a_post_is_taken_once() {
        let p = page();
        let mut r = request("POST", "/abc");
        r.origin = Some("http://127.0.0.1:9".into());
        assert_eq!(respond(&p, &r).status, 200);
        assert_eq!(
            p.secret.lock().unwrap().as_ref().unwrap().expose(),
            "p@ss word"
        );
        assert_eq!(respond(&p, &r).status, 410);
        assert_eq!(respond(&p, &request("GET", "/abc")).status, 410);
    }

    #[test]
    fn an_empty_secret_shows_the_form_again() {
        let p = page();
        let mut r = request("POST", "/abc");
        r.body = b"secret=".to_vec();
        let reply = respond(&p, &r);
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("Nothing was entered"));
        assert_eq!(*p.state.borrow(), State::Open);
    }
}
