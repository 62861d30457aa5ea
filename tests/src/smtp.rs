//! A real SMTP server for tests: Debian's `python3-aiosmtpd`, storing every message it accepts
//! in a Maildir, and a reader that decodes what arrived (subjects, addresses, text bodies) with
//! Python's own `email` package, so the mails are checked as a mail client would read them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One received mail, decoded.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub body: String,
}

/// `python3 -m aiosmtpd` on a loopback port, saving to `dir/maildir`.
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl SmtpServer {
    /// A server for `port` (not started; see [`SmtpServer::start`]), storing under `dir`.
    pub fn new(dir: &Path, port: u16) -> SmtpServer {
        std::fs::create_dir_all(dir).unwrap();
        SmtpServer {
            port,
            maildir: dir.join("maildir"),
            log: dir.join("smtp.log"),
            child: None,
        }
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "SMTP server already running");
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                crate::s(&self.maildir),
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("/usr/bin/python3 -m aiosmtpd (scripts/test.sh installs python3-aiosmtpd)");
        self.child = Some(child);
        let start = Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "aiosmtpd exited ({exited:?}): {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "aiosmtpd does not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        if !self.maildir.exists() {
            return Vec::new();
        }
        let script = r#"
import email, email.policy, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in box.iterkeys():
    raw = box.get_bytes(key)
    m = email.message_from_bytes(raw, policy=email.policy.default)
    body = m.get_body(preferencelist=("plain",))
    out.append({
        "from": str(m["From"]), "to": str(m["To"]), "subject": str(m["Subject"]),
        "message_id": str(m["Message-ID"]),
        "body": body.get_content() if body is not None else "",
        "date": email.utils.parsedate_to_datetime(m["Date"]).timestamp() if m["Date"] else 0,
    })
out.sort(key=lambda x: x["date"])
print(json.dumps(out))
"#;
        let out = Command::new("/usr/bin/python3")
            .args(["-c", script, crate::s(&self.maildir)])
            .output()
            .expect("/usr/bin/python3");
        assert!(
            out.status.success(),
            "cannot read the maildir: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the maildir reader prints JSON")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
