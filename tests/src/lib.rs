//! Helpers for end-to-end tests that run the real `docaxis` binary.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/docaxis`), found
//! next to the test executable. `scripts/test.sh` builds it before running the tests.
//! Processes started here are real: they listen on loopback ports, use real TLS with a PKI
//! made by `docaxis pki init`, and are killed (SIGKILL) when a test needs a crash or when the
//! handle is dropped.

pub mod nodes;

use std::net::{SocketAddr, TcpListener};
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

/// A free loopback port (bound and released; fine on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

    /// An mTLS HTTP client authenticated as `code` (with its key and certificate).
    pub fn client_as(&self, code: &str) -> reqwest::Client {
        self.client_with(&self.cert(code), &self.key(code))
    }

    /// An mTLS HTTP client with an arbitrary certificate and key, trusting this PKI's CA.
    pub fn client_with(&self, cert: &Path, key: &Path) -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        docaxis::net::client::build_client(
            &docaxis::net::client::ClientTls {
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
        let id = docaxis::dsig::SigningIdentity::from_pem_files(&self.key(code), &self.cert(code))
            .expect("identity");
        docaxis::dsig::sign_packet(unsigned, &id).expect("sign")
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
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let admin = free_port();
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
        for (code, name) in [
            (G22, "Văn phòng Chính phủ"),
            (H41, "UBND Tỉnh Nghệ An"),
            (H14, "UBND Tỉnh Cao Bằng"),
        ] {
            run_ok(&[
                "hub",
                "--config",
                s(&config),
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
        let mut hub = HubProc {
            dir: dir.to_owned(),
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        };
        hub.restart();
        hub
    }

    /// Base URL for nodes.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "hub already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("hub.log"))
            .unwrap();
        let child = docaxis()
            .env("DOCAXIS_LOG", "info")
            .args(["hub", "--config", s(&self.config)])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn hub");
        self.child = Some(child);
        let addr = self.addr;
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
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

/// An unsigned document packet from `from` to `to` (strict form), built with the library.
pub fn unsigned_document(
    from: &str,
    to: &[&str],
    number: &str,
    attachment: Option<&[u8]>,
) -> Vec<u8> {
    use docaxis::compose::{CodeSpec, DocumentSpec, OrgSpec, known_agency_name};

    let spec = DocumentSpec {
        from: OrgSpec::Code(from.into()),
        to: to
            .iter()
            .map(|t| docaxis::compose::org_from_arg(t))
            .collect(),
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
        doc.add_attachment(docaxis::edxml::Attachment::from_bytes(
            "1",
            "file.pdf",
            "application/pdf",
            bytes,
        ));
    }
    docaxis::edxml::write(&docaxis::edxml::Packet::Document(doc)).expect("write")
}
