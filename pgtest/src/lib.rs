//! A throwaway PostgreSQL cluster for tests: the real server (Debian's `postgresql`), never a
//! mock. [`Cluster::start`] runs `initdb` in a temporary folder and starts `postgres` on a free
//! loopback port; dropping the cluster stops it and removes the folder.
//!
//! Invariants:
//! - The server never runs as root: when the tests do, the folder is given to the `postgres`
//!   user (created by Debian's package) and every server command runs through `runuser`.
//! - It listens on 127.0.0.1 only, with a Unix socket in its own folder, and trusts local
//!   connections (role `docaxis`, superuser): it holds test data only.
//! - Every cluster is new: no state is shared between test runs or between tests that start
//!   their own.
//!
//! The binaries are found in `DOCAXIS_PG_BIN` if set, else in the newest
//! `/usr/lib/postgresql/*/bin`, else on `PATH`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The role the tests connect as.
pub const USER: &str = "docaxis";

/// A running test cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run server commands as this user (when the tests run as root).
    run_as: Option<String>,
}

/// Why a cluster could not be made.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

fn err(what: impl Into<String>) -> ClusterError {
    ClusterError(what.into())
}

/// Where the server binaries are.
fn find_bin() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("DOCAXIS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    Err(err(
        "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH); \
         install Debian's `postgresql` (scripts/test.sh does) or set DOCAXIS_PG_BIN",
    ))
}

/// A free loopback port in `low .. low + span`, for a server started a moment later; `None`
/// when every port there is taken.
///
/// Choose the range below the kernel's ephemeral range (32768–60999 on Linux): a port the
/// kernel hands out (`bind(:0)`, or the local end of an outgoing connection — HTTP clients,
/// database pools) could be taken by a connection between this check and the server's own
/// bind. A counter shared by the whole process gives each port once; its start differs per
/// process.
pub fn free_port_in(low: u16, span: u16) -> Option<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % 65_536,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let span32 = u32::from(span.max(1));
    for _ in 0..span32 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = low.checked_add(u16::try_from(n % span32).ok()?)?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Some(port);
        }
    }
    None
}

/// The clusters' ports: 16000–19999, apart from what other test helpers hand out.
fn free_port() -> Result<u16, ClusterError> {
    free_port_in(16_000, 4_000).ok_or_else(|| err("no free loopback port between 16000 and 19999"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn check(what: &str, out: std::io::Result<Output>) -> Result<Output, ClusterError> {
    let out = out.map_err(|e| err(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

impl Cluster {
    /// Makes and starts a new cluster.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::make(None)
    }

    /// Makes and starts a new cluster that also accepts TLS, with this certificate chain and
    /// key (PEM; the key PKCS#8 or traditional).
    pub fn start_tls(certificate: &Path, key: &Path) -> Result<Cluster, ClusterError> {
        Cluster::make(Some((certificate, key)))
    }

    fn make(tls: Option<(&Path, &Path)>) -> Result<Cluster, ClusterError> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("docaxis-pg-")
            .tempdir()
            .map_err(|e| err(format!("cannot make a folder for the cluster: {e}")))?;
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            check(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{user}:"))
                    .arg(dir.path())
                    .output(),
            )
            .map_err(|e| {
                err(format!(
                    "{e} (running as root, the cluster belongs to the `postgres` user that \
                     Debian's postgresql package creates)"
                ))
            })?;
        }
        let cluster = Cluster {
            dir,
            bin,
            port: free_port()?,
            run_as,
        };
        check(
            "initdb",
            cluster
                .server_command("initdb")
                .arg("-D")
                .arg(cluster.data())
                .args([
                    "-U",
                    USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .output(),
        )?;
        // Enough connections for several hub replicas with their pools and listeners.
        let mut settings = String::from("max_connections = 300\nshared_buffers = 64MB\n");
        if let Some((certificate, key)) = tls {
            for (from, to) in [(certificate, "server.crt"), (key, "server.key")] {
                let target = cluster.data().join(to);
                std::fs::copy(from, &target)
                    .map_err(|e| err(format!("cannot copy {}: {e}", from.display())))?;
                // The server refuses a key others can read.
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(format!("cannot protect {}: {e}", target.display())))?;
                if let Some(user) = &cluster.run_as {
                    check(
                        "chown",
                        Command::new("chown")
                            .arg(format!("{user}:"))
                            .arg(&target)
                            .output(),
                    )?;
                }
            }
            settings.push_str("ssl = on\n");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data().join("postgresql.conf"))
            .and_then(|mut f| {
                use std::io::Write as _;
                f.write_all(settings.as_bytes())
            })
            .map_err(|e| err(format!("cannot configure the cluster: {e}")))?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        check(
            "pg_ctl start",
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .output(),
        )
        .map_err(|e| err(format!("{e}\nserver log:\n{}", self.log())))?;
        Ok(())
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the cluster.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one SQL statement in database `db` with `psql`; returns what it printed.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let out = check(
            "psql",
            Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", db, "-c", sql])
                .output(),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates database `name` and returns its URL.
    pub fn database(&self, name: &str) -> Result<String, ClusterError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or an immediate stop
    /// (like a crash: recovery from the WAL at the next start).
    pub fn stop(&self, fast: bool) -> Result<(), ClusterError> {
        let mode = if fast { "fast" } else { "immediate" };
        check(
            "pg_ctl stop",
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", mode, "-w", "-t", "60", "stop"])
                .output(),
        )?;
        Ok(())
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn restart(&self) -> Result<(), ClusterError> {
        self.start_server()
    }

    /// Waits until the server answers (after a restart).
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "the server did not answer within {timeout:?}\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_restarts_and_is_gone_when_dropped() {
        let cluster = Cluster::start().unwrap();
        let url = cluster.database("t").unwrap();
        assert!(url.ends_with("/t"), "{url}");
        assert_eq!(cluster.psql("t", "SELECT 40 + 2").unwrap(), "42");
        cluster.psql("t", "CREATE TABLE x (v int)").unwrap();
        cluster.psql("t", "INSERT INTO x VALUES (7)").unwrap();
        cluster.stop(false).unwrap();
        assert!(cluster.psql("t", "SELECT 1").is_err(), "stopped");
        cluster.restart().unwrap();
        cluster.wait_ready(Duration::from_secs(30)).unwrap();
        assert_eq!(
            cluster.psql("t", "SELECT v FROM x").unwrap(),
            "7",
            "a committed row survives an immediate stop"
        );
        let path = cluster.path().to_path_buf();
        drop(cluster);
        assert!(!path.exists());
    }
}
