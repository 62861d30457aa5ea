//! Helpers for end-to-end tests that run the real `docaxis` binary.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/docaxis`), found
//! next to the test executable. `scripts/test.sh` builds it before running the tests.
//! Processes started here are real: they listen on loopback ports, use real TLS with a PKI
//! made by `docaxis pki init`, and are killed (SIGKILL) when a test needs a crash or when the
//! handle is dropped.
//!
//! [`HubProc`] runs `docaxis hub`; [`NodeProc`] runs `docaxis node` for one agency (its own
//! `node.toml`, fixed ports, short retry delays) and runs the clerk commands against it
//! (`send/outbox/inbox/track --json`); [`NodeApi`] calls a node's clerk API directly, for
//! streams of documents faster than the command line allows.

pub mod browser;
pub mod smtp;
pub mod vdxp;
pub use smtp::{ReceivedMail, SmtpServer};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The sample agencies `docaxis pki init` creates.
pub const G22: &str = "000.00.00.G22";
pub const H41: &str = "000.00.00.H41";
pub const H14: &str = "000.00.00.H14";

/// Path of the built `docaxis` binary (`DOCAXIS_BIN` overrides it).
pub fn docaxis_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("DOCAXIS_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/docaxis
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("docaxis{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build -p docaxis --bin docaxis` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A `docaxis` command ready to run.
pub fn docaxis() -> Command {
    let mut c = Command::new(docaxis_bin());
    c.env("DOCAXIS_LOG", "warn");
    c
}

/// Runs `docaxis ARGS…` and returns its output.
pub fn run(args: &[&str]) -> Output {
    docaxis().args(args).output().expect("docaxis runs")
}

/// Runs `docaxis ARGS…` and panics with its output unless it succeeds.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "docaxis {} failed: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as `&str` for command lines.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A free loopback port for a server a test starts later: 20000–31999, below the kernel's
/// ephemeral range, each handed out once per process (see [`pgtest::free_port_in`]).
pub fn free_port() -> u16 {
    pgtest::free_port_in(20_000, 12_000).expect("a free loopback port between 20000 and 31999")
}

/// `GET url` (plain HTTP on loopback) with a bearer token: status and body.
pub fn http_get(url: &str, token: &str) -> (u16, String) {
    let token = token.trim().to_string();
    http_get_with(url, move |r| r.bearer_auth(token))
}

/// `GET url` with HTTP Basic credentials (a records system's account): status and body.
pub fn http_get_basic(url: &str, user: &str, password: &str) -> (u16, String) {
    let (user, password) = (user.to_string(), password.to_string());
    http_get_with(url, move |r| r.basic_auth(user, Some(password)))
}

fn http_get_with(
    url: &str,
    auth: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let url = url.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client");
            let r = auth(client.get(url))
                .send()
                .await
                .expect("the server answers");
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A development PKI made by `docaxis pki init` in a folder of its own.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// `docaxis pki init DIR`.
    pub fn init(dir: &Path) -> Pki {
        run_ok(&["pki", "init", s(dir)]);
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn cert(&self, code: &str) -> PathBuf {
        self.dir.join("agencies").join(format!("{code}.pem"))
    }
    pub fn key(&self, code: &str) -> PathBuf {
        self.dir.join("agencies").join(format!("{code}.key.pem"))
    }

    /// An HTTPS client (no client certificate) trusting this PKI's CA, as a browser would
    /// that was given it; `follow_redirects` false to see the 303s themselves.
    pub fn https_client(&self, follow_redirects: bool) -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = std::fs::read(self.ca()).expect("ca.pem");
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a PEM CA"));
        if !follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        b.build().expect("HTTPS client")
    }

    /// An mTLS HTTP client authenticated as `code` (with its key and certificate).
    pub fn client_as(&self, code: &str) -> reqwest::Client {
        self.client_with(&self.cert(code), &self.key(code))
    }

    /// An mTLS HTTP client with an arbitrary certificate and key, trusting this PKI's CA.
    pub fn client_with(&self, cert: &Path, key: &Path) -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        net::client::build_client(
            &net::client::ClientTls {
                cert_chain_pem: cert.to_owned(),
                key_pem: key.to_owned(),
                ca_pems: vec![self.ca()],
                crl_pems: vec![],
            },
            Duration::from_secs(30),
        )
        .expect("client")
    }

    /// Signs `unsigned` edXML as agency `code`.
    pub fn sign_as(&self, code: &str, unsigned: &[u8]) -> Vec<u8> {
        let id = dsig::SigningIdentity::from_pem_files(&self.key(code), &self.cert(code))
            .expect("identity");
        dsig::sign_packet(unsigned, &id).expect("sign")
    }
}

/// A `docaxis hub` process.
pub struct HubProc {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl HubProc {
    /// Writes `hub.toml` in `dir` (fixed ports, so restarts keep the address), registers the
    /// three sample agencies of `pki`, and starts the hub.
    pub fn start(dir: &Path, pki: &Pki, extra_config: &str) -> HubProc {
        let mut hub = HubProc::prepare(dir, pki, extra_config);
        hub.restart();
        hub
    }

    /// Like [`HubProc::start`] but leaves the hub stopped: its address is known (nodes can be
    /// configured with it) and [`HubProc::restart`] starts it later.
    pub fn prepare(dir: &Path, pki: &Pki, extra_config: &str) -> HubProc {
        let hub = HubProc::configure(dir, pki, extra_config);
        for (code, name) in [
            (G22, "Văn phòng Chính phủ"),
            (H41, "UBND Tỉnh Nghệ An"),
            (H14, "UBND Tỉnh Cao Bằng"),
        ] {
            run_ok(&[
                "hub",
                "--config",
                s(&hub.config),
                "agency",
                "add",
                "--code",
                code,
                "--name",
                name,
                "--cert",
                s(&pki.cert(code)),
            ]);
        }
        hub
    }

    /// Another replica of a hub whose state is in PostgreSQL (`extra_config` names it in
    /// `[store]`): its own folder and ports, the agencies already registered in the shared
    /// database. Stopped; [`HubProc::restart`] starts it.
    pub fn replica(dir: &Path, pki: &Pki, extra_config: &str) -> HubProc {
        HubProc::configure(dir, pki, extra_config)
    }

    /// Two running replicas of one hub on database `hub` of `cluster` (folders `dir/hub-1`
    /// and `dir/hub-2`, the three sample agencies registered), with `extra_config` added to
    /// both.
    pub fn replicas_on(
        dir: &Path,
        pki: &Pki,
        cluster: &pgtest::Cluster,
        extra_config: &str,
    ) -> Vec<HubProc> {
        let url = cluster.database("hub").expect("a database for the hub");
        let store = format!("{extra_config}\n[store]\npostgres = \"{url}\"\npool_size = 8\n");
        let first = HubProc::start(&dir.join("hub-1"), pki, &store);
        let mut second = HubProc::replica(&dir.join("hub-2"), pki, &store);
        second.restart();
        vec![first, second]
    }

    /// Writes `dir/hub.toml` with fresh loopback ports.
    fn configure(dir: &Path, pki: &Pki, extra_config: &str) -> HubProc {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        // Two probes may return the same freed port: the admin port must differ.
        let admin = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\ndata_dir = \"{}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\ntrust = [\"{}\"]\ncrl = [\"{}\"]\n{extra_config}\n",
                s(&dir.join("data")),
                s(&pki.dir.join("hub.pem")),
                s(&pki.dir.join("hub.key.pem")),
                s(&pki.ca()),
                s(&pki.crl()),
            ),
        )
        .unwrap();
        HubProc {
            dir: dir.to_owned(),
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        }
    }

    /// The admin API address, as the hub wrote it at start.
    pub fn admin_addr(&self) -> SocketAddr {
        let addresses: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir.join("data/addresses.json"))
                .expect("the hub wrote data/addresses.json"),
        )
        .expect("addresses.json is JSON");
        addresses["admin_listen"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("addresses.json names admin_listen")
    }

    /// `GET path` on the admin API with the operator token: status and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(
            &format!("http://{}{path}", self.admin_addr()),
            &self.admin_token(),
        )
    }

    /// The operator token (`data/admin.token`).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/admin.token"))
            .expect("the hub wrote data/admin.token")
            .trim()
            .to_string()
    }

    /// Submits `packet` directly (around any node) with `code`'s certificate: the status and
    /// the body of the answer.
    pub fn submit_as(&self, pki: &Pki, code: &str, packet: Vec<u8>) -> (u16, String) {
        let client = pki.client_as(code);
        let url = self.url();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let r = client
                    .post(format!("{url}/v1/packets"))
                    .header("content-type", "application/xml")
                    .body(packet)
                    .send()
                    .await
                    .expect("the hub answers");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            })
    }

    /// Base URL for nodes.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "hub already running");
        // A stale addresses.json from the previous run must not count as "started".
        let _ = std::fs::remove_file(self.dir.join("data/addresses.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("hub.log"))
            .unwrap();
        let child = docaxis()
            .env("DOCAXIS_LOG", "info")
            .env("NO_COLOR", "1")
            .args(["hub", "--config", s(&self.config)])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn hub");
        self.child = Some(child);
        let addr = self.addr;
        let start = Instant::now();
        loop {
            // Both listeners: the node API binds first, the admin API (which the CLI uses
            // while the hub runs) last, just before addresses.json is written.
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && self.dir.join("data/addresses.json").exists()
                && std::net::TcpStream::connect_timeout(
                    &self.admin_addr(),
                    Duration::from_millis(200),
                )
                .is_ok()
            {
                break;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "the hub exited ({exited:?}) at start:\n{}",
                self.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the hub does not listen after 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a directory command against this hub (`docaxis hub --config … ARGS`).
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut all = vec!["hub", "--config", s(&self.config)];
        all.extend_from_slice(args);
        run(&all)
    }

    /// The hub's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default()
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Marks the start of each run of a node in its log (see [`NodeProc::log_runs`]).
pub const RUN_MARKER: &str = "---- docaxis-e2e: node started, run ";

/// A `docaxis node` process for one agency, with a `node.toml` of its own: fixed loopback
/// ports (a restart keeps the clerk API address), short retry delays and long polls so tests
/// do not wait for production-sized backoffs. Its stdout and stderr go to `dir/node.log`,
/// each run preceded by a [`RUN_MARKER`] line.
pub struct NodeProc {
    pub agency: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub api_addr: SocketAddr,
    runs: u32,
    child: Option<Child>,
}

impl NodeProc {
    /// Configures the node of `agency` (its own certificate) against `hub_url` and starts it.
    pub fn start(dir: &Path, pki: &Pki, agency: &str, hub_url: &str) -> NodeProc {
        let mut node = NodeProc::configure(dir, pki, agency, agency, hub_url, "");
        node.restart();
        node
    }

    /// Writes `dir/node.toml` for `agency`, presenting the certificate and key of `cert_of`
    /// (normally the same agency), without starting anything. `extra` is appended to the
    /// top-level options (before the `[retry]` table). `hub_url` is one URL, or a TOML list of
    /// them (`["https://…", "https://…"]`: hub replicas).
    pub fn configure(
        dir: &Path,
        pki: &Pki,
        agency: &str,
        cert_of: &str,
        hub_url: &str,
        extra: &str,
    ) -> NodeProc {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = dir.join("node.toml");
        let hub_url = if hub_url.starts_with('[') {
            hub_url.to_string()
        } else {
            format!("\"{hub_url}\"")
        };
        std::fs::write(
            &config,
            format!(
                "agency = \"{agency}\"\nhub_url = {hub_url}\ndata_dir = \"data\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\ntrust = [\"{}\"]\ncrl = [\"{}\"]\nhub_certificate = \"{}\"\napi_listen = \"127.0.0.1:{port}\"\npoll_wait_secs = 5\n{extra}\n[retry]\ninitial_ms = 100\nmax_ms = 1000\n",
                s(&pki.cert(cert_of)),
                s(&pki.key(cert_of)),
                s(&pki.ca()),
                s(&pki.crl()),
                s(&pki.dir.join("hub.pem")),
            ),
        )
        .unwrap();
        NodeProc {
            agency: agency.to_string(),
            dir: dir.to_owned(),
            config,
            api_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            runs: 0,
            child: None,
        }
    }

    /// Adds a web account (`docaxis node user add`, password from a file), panicking unless
    /// the node's command accepts it.
    pub fn add_user(&self, name: &str, full_name: &str, role: &str, password: &str) {
        let file = self.dir.join(format!("{name}.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let out = self.clerk(&[
            "node",
            "user",
            "add",
            name,
            "--full-name",
            full_name,
            "--position",
            "Văn thư",
            "--role",
            role,
            "--password-file",
            s(&file),
        ]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains(name), "{}", stdout(&out));
    }

    /// The node's data folder (database, `api.token`, `api.addr`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The clerk API token (the node creates it at first start).
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("api.token"))
            .expect("api.token (is the node started?)")
            .trim()
            .to_string()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.agency);
        self.runs += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .unwrap();
        use std::io::Write;
        writeln!(log, "{RUN_MARKER}{}", self.runs).unwrap();
        let child = docaxis()
            .env("DOCAXIS_LOG", "info")
            .env("NO_COLOR", "1")
            .args(["node", "--config", s(&self.config)])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn node");
        self.child = Some(child);
    }

    /// Starts the process (again) and waits until its clerk API answers `GET /api/v1/health`.
    pub fn restart(&mut self) {
        // A stale api.addr from the previous run must not count as "started".
        let _ = std::fs::remove_file(self.data_dir().join("api.addr"));
        self.spawn();
        let start = Instant::now();
        loop {
            if self.data_dir().join("api.addr").exists() && self.health_ok() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "the node of {} exited ({exited:?}) at start:\n{}",
                self.agency,
                self.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the node of {} has no clerk API after 30 s:\n{}",
                self.agency,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Runs `docaxis node` expecting it to stop by itself (a refused configuration) within
    /// `timeout`; returns its exit status and the log of that run. Panics if it keeps running.
    pub fn run_expecting_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        self.spawn();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let run = self.log_runs().pop().unwrap_or_default();
                return (status, run);
            }
            if start.elapsed() > timeout {
                self.kill();
                panic!(
                    "the node of {} is still running after {timeout:?}:\n{}",
                    self.agency,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// A plain HTTP/1.1 `GET /api/v1/health` (no token needed) answering 200.
    fn health_ok(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut c) =
            std::net::TcpStream::connect_timeout(&self.api_addr, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.api_addr
        );
        if c.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        c.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node is running").id()
    }

    /// Whether the process started last is still running (not exited or killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGHUP (the node reads its trust anchors and CRLs again).
    pub fn hangup(&self) {
        let pid = self.child.as_ref().expect("the node is running").id();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "SIGHUP delivered to the node");
    }

    /// How many times the process was started.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The log split by run (the first element is the first run).
    pub fn log_runs(&self) -> Vec<String> {
        self.log()
            .split(RUN_MARKER)
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// Runs a clerk command against this node: `docaxis ARGS… --config node.toml`.
    pub fn clerk(&self, args: &[&str]) -> Output {
        docaxis()
            .args(args)
            .args(["--config", s(&self.config)])
            .output()
            .expect("docaxis runs")
    }

    /// Runs a clerk command with `--json`, panics unless it succeeds, and parses its answer.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.clerk(&all);
        assert!(
            out.status.success(),
            "docaxis {} at {} failed: {}{}",
            all.join(" "),
            self.agency,
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
            panic!(
                "docaxis {} printed no JSON ({e}): {}",
                all.join(" "),
                stdout(&out)
            )
        })
    }

    fn json_of(&self, command: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec![command];
        all.extend_from_slice(args);
        self.json(&all)
    }

    /// `docaxis send --config … ARGS --json`: `{document_id, packet_id}`.
    pub fn send(&self, args: &[&str]) -> serde_json::Value {
        self.json_of("send", args)
    }

    /// `docaxis outbox --config … ARGS --json`: the outbox entries.
    pub fn outbox(&self, args: &[&str]) -> Vec<serde_json::Value> {
        items(self.json_of("outbox", args))
    }

    /// `docaxis inbox --config … ARGS --json`: the inbox entries.
    pub fn inbox(&self, args: &[&str]) -> Vec<serde_json::Value> {
        items(self.json_of("inbox", args))
    }

    /// `docaxis track DOCUMENT_ID --config … --json`.
    pub fn track(&self, document_id: &str) -> serde_json::Value {
        self.json(&["track", document_id])
    }

    /// An async client of this node's clerk API (token read now).
    pub fn api(&self) -> NodeApi {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        NodeApi {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            base: format!("http://{}", self.api_addr),
            token: self.token(),
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn items(list: serde_json::Value) -> Vec<serde_json::Value> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .clone()
}

/// A client of a node's clerk API (JSON over HTTP, bearer token), for tests that call it at a
/// rate the command-line tools cannot reach.
#[derive(Clone)]
pub struct NodeApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl NodeApi {
    /// `POST /api/v1/documents`: `Ok({document_id, packet_id})` when the node answered 201
    /// (the document is durably queued), `Err(reason)` otherwise.
    pub async fn send(&self, request: &serde_json::Value) -> Result<serde_json::Value, String> {
        let r = self
            .http
            .post(format!("{}/api/v1/documents", self.base))
            .bearer_auth(&self.token)
            .json(request)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("{status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// `GET PATH_AND_QUERY`: the status and the body's text.
    pub async fn get_text(&self, path_and_query: &str) -> Result<(u16, String), String> {
        let r = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// `GET PATH_AND_QUERY` (e.g. `/api/v1/inbox?limit=5000`) answering 200 with JSON.
    pub async fn get(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        let (status, body) = self.get_text(path_and_query).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// `GET PATH_AND_QUERY`, whatever the status: the status and the JSON body.
    pub async fn get_any(&self, path_and_query: &str) -> Result<(u16, serde_json::Value), String> {
        let (status, body) = self.get_text(path_and_query).await?;
        let json = serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        Ok((status, json))
    }

    /// The `items` of a list answer (`/api/v1/outbox?…`, `/api/v1/inbox?…`).
    pub async fn items(&self, path_and_query: &str) -> Result<Vec<serde_json::Value>, String> {
        self.get(path_and_query).await.map(items)
    }

    /// `GET /api/v1/documents/{id}/track`.
    pub async fn track(&self, document_id: &str) -> Result<serde_json::Value, String> {
        self.get(&format!(
            "/api/v1/documents/{}/track",
            encode_segment(document_id)
        ))
        .await
    }
}

/// Percent-encodes one URL path segment.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An unsigned document packet from `from` to `to` (strict form), built with the library.
pub fn unsigned_document(
    from: &str,
    to: &[&str],
    number: &str,
    attachment: Option<&[u8]>,
) -> Vec<u8> {
    use edxml::compose::{CodeSpec, DocumentSpec, OrgSpec, known_agency_name};

    let spec = DocumentSpec {
        from: OrgSpec::Code(from.into()),
        to: to.iter().map(|t| edxml::compose::org_from_arg(t)).collect(),
        subject: format!("Văn bản thử nghiệm số {number}"),
        content: None,
        document_id: None,
        code: CodeSpec {
            number: number.into(),
            notation: "TEST".into(),
        },
        promulgation: Default::default(),
        document_type: None,
        priority: Some(0),
        steering_type: None,
        due_date: None,
        to_places: vec![],
        signer: None,
        staff: None,
        attachments: vec![],
    };
    let names = |c: &str| known_agency_name(c).or_else(|| Some(format!("Cơ quan {c}")));
    let mut doc = spec.build(Path::new("."), &names).expect("compose");
    if let Some(bytes) = attachment {
        doc.add_attachment(edxml::Attachment::from_bytes(
            "1",
            "file.pdf",
            "application/pdf",
            bytes,
        ));
    }
    edxml::write(&edxml::Packet::Document(doc)).expect("write")
}

/// Randomness for crash tests that can be replayed: the seed comes from
/// `DOCAXIS_CRASH_SEED` when set, otherwise from the clock, and is printed either way so a
/// failing run can be repeated exactly (`DOCAXIS_CRASH_SEED=N cargo test …`).
pub struct CrashRng(u64);

impl CrashRng {
    /// A generator for the crash test `test`, announcing its seed on stderr.
    pub fn announce(test: &str) -> CrashRng {
        let seed = match std::env::var("DOCAXIS_CRASH_SEED") {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("DOCAXIS_CRASH_SEED={s:?} is not a number")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        };
        eprintln!("{test}: crash seed {seed} (replay with DOCAXIS_CRASH_SEED={seed})");
        CrashRng::new(seed)
    }

    /// A generator from a known seed (xorshift64; a zero seed is made odd).
    pub fn new(seed: u64) -> CrashRng {
        CrashRng(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration between `lo` and `hi` milliseconds (`hi` exclusive).
    pub fn between_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo).max(1))
    }
}

#[cfg(test)]
mod crash_rng_tests {
    use super::CrashRng;

    #[test]
    fn the_same_seed_gives_the_same_kills() {
        let (mut a, mut b) = (CrashRng::new(42), CrashRng::new(42));
        let xs: Vec<_> = (0..8).map(|_| a.between_ms(300, 1500)).collect();
        let ys: Vec<_> = (0..8).map(|_| b.between_ms(300, 1500)).collect();
        assert_eq!(xs, ys);
        assert!(
            xs.iter()
                .all(|d| (300..1500).contains(&(d.as_millis() as u64)))
        );
        assert_ne!(xs[0], xs[1]);
    }
}
