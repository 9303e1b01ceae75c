//! A guard running the real `teacher-server` binary on `127.0.0.1:0` with its own data dir:
//! parses the bound address from stdout, waits for `/health`, kills the process on drop.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;

use crate::paths::{bin_path, ort_lib};

/// How long a server may take to print its address and answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// One HTTP answer, kept whole so a failing assertion can show it.
#[derive(Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {:.2000}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Reply {
    /// The body as JSON; panics (showing the body) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as an error answer `{"error": {"code", "message", "field"}}`; panics otherwise.
    pub fn error(&self) -> distill_proto::api::ErrorBody {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not an error answer ({e}): {self:?}"))
    }

    /// Asserts the status is `want`, showing the body otherwise; returns self for chaining.
    pub fn expect_status(self, want: u16) -> Self {
        assert_eq!(self.status, want, "unexpected status: {self:?}");
        self
    }
}

/// The running server (or, after [`Server::kill9`], the stopped one and its data dir).
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    model: PathBuf,
    args: Vec<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    token: Option<String>,
    client: Client,
    // Declared last: dropped after the process is killed.
    _tmp: tempfile::TempDir,
}

impl Server {
    /// Starts `teacher-server serve --model MODEL --data-dir <temp> --bind 127.0.0.1:0 ARGS`.
    /// Panics, showing the server's log, when it does not come up.
    pub fn start(model: &Path, args: &[&str]) -> Server {
        Self::try_start(model, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Like [`Server::start`], returning the failure instead of panicking.
    pub fn try_start(model: &Path, args: &[&str]) -> anyhow::Result<Server> {
        Self::launch(model, None, args)
    }

    /// Like [`Server::try_start`] with the data dir at `data_dir` (e.g. on a filesystem the
    /// test made) instead of a temporary folder.
    pub fn try_start_in(model: &Path, data_dir: &Path, args: &[&str]) -> anyhow::Result<Server> {
        Self::launch(model, Some(data_dir), args)
    }

    fn launch(model: &Path, data_dir: Option<&Path>, args: &[&str]) -> anyhow::Result<Server> {
        let tmp = tempfile::tempdir()?;
        let data_dir = data_dir.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
        let log_path = tmp.path().join("server.log");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let token = args
            .iter()
            .position(|a| a == "--api-token")
            .and_then(|i| args.get(i + 1).cloned());
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        let mut server = Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            model: model.to_path_buf(),
            args,
            data_dir,
            log_path,
            token,
            client,
            _tmp: tmp,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        writeln!(log, "=== start {:?}", self.args)?;
        let mut child = Command::new(bin_path("teacher-server"))
            .arg("serve")
            .arg("--model")
            .arg(&self.model)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--bind")
            .arg("127.0.0.1:0")
            .args(&self.args)
            .env("ORT_DYLIB_PATH", ort_lib())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone()?)
            .spawn()
            .context("cannot spawn teacher-server")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        self.child = Some(child);

        // Read stdout on a thread for the whole life of the process (a full pipe would block
        // the server); the first `listening on http://ADDR` line gives the address.
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "[stdout] {line}");
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let (Some(t), Ok(addr)) = (tx.as_ref(), rest.trim().parse::<SocketAddr>()) {
                        let _ = t.send(addr);
                        tx = None;
                    }
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    self.addr = addr;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    bail!(
                        "teacher-server closed stdout without `listening on` (exit {status:?}); log:\n{}",
                        self.log()
                    );
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "teacher-server exited with {status} before listening; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "teacher-server did not print `listening on` in {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
        }
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send() {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "/health did not answer 200 in {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data dir given to the server.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Folder of one dataset in the data dir.
    pub fn dataset_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// The server's stderr and stdout so far (for failure messages).
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(8000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text[start..].to_string()
    }

    /// The shared blocking HTTP client (no token attached).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn with_token(
        &self,
        rb: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request built on the client (the token, if any, is attached) and collects it.
    pub fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Reply {
        let r = self
            .with_token(rb)
            .send()
            .unwrap_or_else(|e| panic!("request failed: {e}; server log:\n{}", self.log()));
        collect(r)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)))
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(body))
    }

    /// `POST path` with raw bytes of the given content type.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.client
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
    }

    /// `POST /v1/score` with a JSON body.
    pub fn score(&self, body: &serde_json::Value) -> Reply {
        self.post_json("/v1/score", body)
    }

    /// `POST /v1/datasets/{name}/seal`, expecting 200; returns the manifest answered.
    pub fn seal(&self, name: &str) -> serde_json::Value {
        self.send(
            self.client
                .post(self.url(&format!("/v1/datasets/{name}/seal"))),
        )
        .expect_status(200)
        .json()
    }

    /// Kills the server with SIGKILL (no chance to flush or seal) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; kills it after that.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.child.as_ref()?.id();
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let status = self.wait_exit(timeout);
        if status.is_none() {
            self.kill9();
        }
        self.child = None;
        status
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again with the same model, flags and data dir (a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn()
            .unwrap_or_else(|e| panic!("restart failed: {e:#}"));
    }

    /// Stops the server (SIGKILL) and starts it on the same data dir with another model
    /// and flags; the error carries the log when it does not come up.
    pub fn restart_with(&mut self, model: &Path, args: &[&str]) -> anyhow::Result<()> {
        self.kill9();
        self.model = model.to_path_buf();
        self.args = args.iter().map(|s| s.to_string()).collect();
        self.token = self
            .args
            .iter()
            .position(|a| a == "--api-token")
            .and_then(|i| self.args.get(i + 1).cloned());
        self.spawn()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn collect(r: reqwest::blocking::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}
