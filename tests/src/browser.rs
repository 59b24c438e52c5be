//! A real headless Chromium, driven through ChromeDriver (WebDriver), for
//! the pages a human would use: Debian's `chromium` and `chromium-driver`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::process::{read_lossy, show_if_panicking, stop_in_drop};

/// How long ChromeDriver may take to say which port it listens on.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A ChromeDriver process on 127.0.0.1; killed when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver on a port it picks.
    ///
    /// # Panics
    ///
    /// When `chromedriver` is missing (install Debian's `chromium` and
    /// `chromium-driver`) or does not start.
    pub fn start() -> Browser {
        let dir = tempfile::tempdir().expect("a temp dir for the browser");
        let log = dir.path().join("chromedriver.log");
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run chromedriver: {e}; install Debian's chromium and \
                     chromium-driver (.ci/run does)"
                )
            });
        let stdout = driver.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                    && tx.send(port).is_err()
                {
                    break;
                }
            }
        });
        let port = rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("chromedriver did not report its port"));
        Browser {
            driver,
            port,
            log,
            _dir: dir,
        }
    }

    /// A new headless browser session with an empty profile.
    ///
    /// # Panics
    ///
    /// When ChromeDriver cannot start Chromium.
    pub async fn session(&self) -> Client {
        let profile = tempfile::tempdir().expect("a profile dir").keep();
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                // Root needs --no-sandbox; the rest keeps Chromium off the
                // network, which this machine's sandbox refuses anyway.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        show_if_panicking("chromedriver", &read_lossy(&self.log));
        stop_in_drop(&mut self.driver, "chromedriver", Duration::from_secs(5));
    }
}
