//! A minimal `docaxis node` process for the lifecycle end-to-end tests ([`ClerkNode`]): its
//! own `node.toml` (fixed loopback API port, short retries), started and waited for, killed
//! on drop. Kept apart from `lib.rs` so that a fuller node helper can live there; the name
//! differs on purpose.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Pki, docaxis, free_port, run, s};

/// A running `docaxis node` for one agency.
pub struct ClerkNode {
    pub agency: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl ClerkNode {
    /// Writes `dir/node.toml` for `agency` against `hub_url`, starts the node and waits until
    /// its clerk API answers.
    pub fn start(dir: &Path, pki: &Pki, agency: &str, hub_url: &str) -> ClerkNode {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "agency = \"{agency}\"\nhub_url = \"{hub_url}\"\ndata_dir = \"data\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\ntrust = [\"{}\"]\ncrl = [\"{}\"]\nhub_certificate = \"{}\"\napi_listen = \"127.0.0.1:{port}\"\npoll_wait_secs = 2\n[retry]\ninitial_ms = 100\nmax_ms = 1000\n",
                s(&pki.cert(agency)),
                s(&pki.key(agency)),
                s(&pki.ca()),
                s(&pki.crl()),
                s(&pki.dir.join("hub.pem")),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let child = docaxis()
            .env("DOCAXIS_LOG", "info")
            .args(["node", "--config", s(&config)])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn node");
        let mut node = ClerkNode {
            agency: agency.to_string(),
            dir: dir.to_owned(),
            config,
            child: Some(child),
        };
        let start = Instant::now();
        loop {
            if node.clerk(&["outbox"]).status.success() {
                break;
            }
            let exited = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "node {agency} exited at start:\n{}",
                node.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {agency} does not answer after 20 s:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    /// Runs a clerk command against this node: `docaxis ARGS… --config node.toml`.
    pub fn clerk(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", s(&self.config)]);
        run(&all)
    }

    /// Like [`ClerkNode::clerk`], parsing the `--json` output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.clerk(&all);
        assert!(
            out.status.success(),
            "docaxis {} failed: {}{}",
            all.join(" "),
            crate::stdout(&out),
            crate::stderr(&out)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

impl Drop for ClerkNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
