//! The background sender: takes what is due from the mail queue and hands it to the SMTP
//! server, one mail at a time, retrying failures with exponential backoff.
//!
//! Invariants:
//! - A mail is removed from the queue only after the server accepted it (at-least-once; the
//!   `Message-ID` fixed at queueing makes a resend after a crash recognisable).
//! - Each attempt is bounded by the configured timeout; a server that is down or slow delays
//!   only mail, never the exchange that queued it (queueing is a table write in the caller's
//!   own transaction; sending runs here, in its own task).
//! - A mail the server refuses permanently (5xx, or an address it cannot parse) is still
//!   retried, at the longest backoff, so that an operator who fixes the configuration gets it;
//!   it is never silently dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Notify, watch};

use crate::config::{MailConfig, MailConfigError, Security};
use crate::queue::{MailStore, QueueError, QueuedMail};

/// How many due mails one round takes from the queue.
const BATCH: usize = 50;

/// What the sender has done since it started (for metrics and pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailStats {
    /// Mails the server accepted.
    pub sent: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Sends queued mail over SMTP. Create with [`Mailer::new`], run with [`Mailer::run`].
pub struct Mailer {
    queue: Arc<dyn MailStore>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    retry_initial_ms: u64,
    retry_max_ms: u64,
    wake: Arc<Notify>,
    stats: Mutex<MailStats>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks `config` and builds the SMTP transport (no connection is made yet). `queue` is
    /// the owner's queue: its redb store, whose `init` created the mail tables
    /// ([`crate::queue::create_tables`]), or another [`MailStore`].
    pub fn new(queue: Arc<dyn MailStore>, config: &MailConfig) -> Result<Mailer, MailConfigError> {
        config.check()?;
        let (host, port) = config.host_port()?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| MailConfigError::From(config.from.clone()))?;
        let transport_err = |e: lettre::transport::smtp::Error| {
            MailConfigError::Transport(format!("{}: {e}", config.smtp))
        };
        let tls = || -> Result<TlsParameters, MailConfigError> {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &config.ca {
                let pem = std::fs::read(ca).map_err(|source| MailConfigError::Read {
                    path: ca.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| MailConfigError::Transport(format!("ca {}: {e}", ca.display())))?;
                params = params.add_root_certificate(cert);
            }
            params.build_rustls().map_err(transport_err)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
        builder = match config.security {
            Security::None => builder.tls(Tls::None),
            Security::Starttls => builder.tls(Tls::Required(tls()?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
            let password =
                std::fs::read_to_string(file).map_err(|source| MailConfigError::Read {
                    path: file.clone(),
                    source,
                })?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.trim_end_matches(['\r', '\n']).to_string(),
            ));
        }
        Ok(Mailer {
            queue,
            transport: builder.build(),
            from,
            retry_initial_ms: config.retry_initial_secs.max(1) * 1000,
            retry_max_ms: config.retry_max_secs.max(config.retry_initial_secs.max(1)) * 1000,
            wake: Arc::new(Notify::new()),
            stats: Mutex::new(MailStats::default()),
        })
    }

    /// Wakes the sender: call after committing a transaction that queued mail.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// What the sender has done since it started.
    pub fn stats(&self) -> MailStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends until `stop` turns true: whatever is due, then sleeps until the next mail is due,
    /// [`Mailer::notify`] is called, or a minute passes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let next = match self.round().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "mail queue unreadable; retrying");
                    Some(now_ms() + 5_000)
                }
            };
            let wait = next.map_or(Duration::from_secs(60), |at| {
                Duration::from_millis(at.saturating_sub(now_ms()).min(60_000))
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Sends every mail due now; returns when the next one not yet due is.
    async fn round(&self) -> Result<Option<u64>, QueueError> {
        loop {
            let now = now_ms();
            let (due, next) = self.queue.due(now, BATCH).await?;
            if due.is_empty() {
                return Ok(next);
            }
            for (seq, queued) in due {
                match self.send(&queued).await {
                    Ok(()) => {
                        self.queue.mark_sent(seq).await?;
                        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                        stats.sent += 1;
                        stats.last_error = None;
                        tracing::info!(seq, subject = %queued.mail.subject, "mail sent");
                    }
                    Err(error) => {
                        let at = now_ms() + self.backoff_ms(queued.attempts);
                        tracing::warn!(seq, attempts = queued.attempts + 1, %error, "mail not sent; will retry");
                        self.queue.mark_failed(seq, error.clone(), at).await?;
                        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                        stats.failures += 1;
                        stats.last_error = Some(error);
                    }
                }
            }
        }
    }

    /// The wait after `attempts` earlier failures: initial × 2^attempts, at most the maximum.
    fn backoff_ms(&self, attempts: u32) -> u64 {
        self.retry_initial_ms
            .saturating_mul(1u64 << attempts.min(20))
            .min(self.retry_max_ms)
    }

    async fn send(&self, queued: &QueuedMail) -> Result<(), String> {
        let message = build_message(&self.from, queued)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The RFC 5322 message of a queued mail (plain text, UTF-8, the fixed `Message-ID`).
fn build_message(from: &Mailbox, queued: &QueuedMail) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(queued.mail.subject.clone())
        .message_id(Some(format!("<{}>", queued.message_id)))
        .header(ContentType::TEXT_PLAIN);
    for to in &queued.mail.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| format!("recipient {to:?} is not an email address: {e}"))?;
        builder = builder.to(mailbox);
    }
    builder
        .body(queued.mail.body.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{self, Mail};
    use store::Store;

    fn queued(to: &str) -> QueuedMail {
        QueuedMail {
            mail: Mail {
                to: vec![to.into()],
                subject: "Cảnh báo: 000.00.00.H14 chưa nhận văn bản".into(),
                body: "Nội dung tiếng Việt\n".into(),
            },
            message_id: "docaxis.1.1000@docaxis.invalid".into(),
            queued_at_ms: 1000,
            attempts: 0,
            next_attempt_ms: 1000,
            last_error: None,
        }
    }

    #[test]
    fn messages_carry_the_fixed_id_and_encode_vietnamese_subjects() {
        let from: Mailbox = "DocAxis <hub@demo.vn>".parse().unwrap();
        let msg = build_message(&from, &queued("van-hanh@hub.demo")).unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <docaxis.1.1000@docaxis.invalid>"),
            "{text}"
        );
        assert!(text.contains("To: van-hanh@hub.demo"), "{text}");
        // Non-ASCII subjects are RFC 2047 encoded words.
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        let err = build_message(&from, &queued("not an address")).unwrap_err();
        assert!(err.contains("not an email address"), "{err}");
    }

    #[tokio::test]
    async fn backoff_doubles_up_to_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb"), queue::create_tables).unwrap();
        let mut config = MailConfig::loopback("127.0.0.1:1", "hub@demo.vn");
        config.retry_initial_secs = 2;
        config.retry_max_secs = 10;
        let mailer = Mailer::new(Arc::new(store), &config).unwrap();
        assert_eq!(mailer.backoff_ms(0), 2_000);
        assert_eq!(mailer.backoff_ms(1), 4_000);
        assert_eq!(mailer.backoff_ms(2), 8_000);
        assert_eq!(mailer.backoff_ms(3), 10_000);
        assert_eq!(mailer.backoff_ms(60), 10_000);
    }

    #[tokio::test]
    async fn a_server_that_is_down_keeps_the_mail_queued_with_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb"), queue::create_tables).unwrap();
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = MailConfig::loopback(&format!("127.0.0.1:{port}"), "hub@demo.vn");
        config.timeout_secs = 2;
        let mailer = Mailer::new(Arc::new(store.clone()), &config).unwrap();
        store
            .write(|txn| {
                queue::enqueue(
                    txn,
                    &Mail {
                        to: vec!["van-hanh@hub.demo".into()],
                        subject: "s".into(),
                        body: "b".into(),
                    },
                    now_ms(),
                )
            })
            .await
            .unwrap();
        let next = mailer.round().await.unwrap();
        assert!(next.is_some(), "a retry is scheduled");
        assert_eq!(store.read(queue::counts).await.unwrap(), (1, 0));
        let waiting = store.read(|t| queue::waiting(t, 10)).await.unwrap();
        assert_eq!(waiting[0].attempts, 1);
        assert!(waiting[0].last_error.is_some());
        assert_eq!(mailer.stats().failures, 1);
    }
}
