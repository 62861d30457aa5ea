//! The node's sending services, without HTTP: a clerk's document ([`send_document`]), status
//! (`status::send_status`) and revoke/update/replace (`actions::send_action`). The clerk API,
//! and any later front end (pages, the legacy facade), call these and map [`SendError`] to
//! their own answers — the HTTP mapping lives only in `api` (`impl From<SendError> for
//! ApiError`).
//!
//! Invariants:
//! - Nothing is answered before the packet and its outbox row committed durably
//!   (`db::NodeDb::commit_outgoing`); a refusal signs nothing and stores nothing.
//! - Composition and signing run on the blocking pool.
//! - Recipients are checked against the hub's directory before anything is signed.

use edxml::Packet;
use exchange::clock;

use crate::Shared;
use crate::db::NodeDbError;
use crate::outgoing::{
    OutgoingError, SendDocument, compose_document_named, outgoing, recipient_codes,
};
use crate::views::Sent;

/// A conflict with what the node already holds: the request is well-formed, but not possible
/// now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The lifecycle rules refuse the status where the document is.
    InvalidTransition,
    /// A 13 is sent by the original sender, by document id; other codes by the recipient.
    WrongSide,
    /// Several agencies sent a document with that id: the sender must be named.
    Ambiguous,
    /// A revoke of a document that stands nowhere any more.
    NothingToRevoke,
    /// A request that would go to no recipient.
    NoRecipient,
    /// A revoke/update/replace about a request rather than a document.
    RequestOfRequest,
    /// A request about a document that never reached the hub.
    OriginalFailed,
    /// Two clerks numbered the same request at the same moment.
    ConcurrentRequest,
}

impl Conflict {
    /// The error code clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::InvalidTransition => "invalid_transition",
            Conflict::WrongSide => "wrong_side",
            Conflict::Ambiguous => "ambiguous",
            Conflict::NothingToRevoke => "nothing_to_revoke",
            Conflict::NoRecipient => "no_recipient",
            Conflict::RequestOfRequest => "request_of_request",
            Conflict::OriginalFailed => "original_failed",
            Conflict::ConcurrentRequest => "concurrent_request",
        }
    }
}

/// Why something a clerk asked to send was refused, or could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request itself is wrong (a missing reason, an unknown code, a malformed field).
    #[error("{0}")]
    Invalid(String),
    /// A recipient the hub's directory does not list as active.
    #[error("{0}")]
    UnknownRecipient(String),
    /// The document names another agency as its sender.
    #[error("{0}")]
    WrongSender(String),
    /// The document cannot be composed as the strict form requires.
    #[error("{0}")]
    InvalidDocument(String),
    /// No such document or packet at this node (or not this node's to act on).
    #[error("{0}")]
    NotFound(String),
    /// Not possible where the document is now.
    #[error("{message}")]
    Conflict { kind: Conflict, message: String },
    /// The node's database refused or failed.
    #[error(transparent)]
    Db(#[from] NodeDbError),
    /// The packet would be over this node's `max_packet_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// The node failed (a task, signing, a stored packet that cannot be read).
    #[error("{0}")]
    Internal(String),
}

impl SendError {
    pub(crate) fn conflict(kind: Conflict, message: impl Into<String>) -> SendError {
        SendError::Conflict {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> SendError {
        SendError::Invalid(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> SendError {
        SendError::NotFound(message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> SendError {
        SendError::Internal(message.into())
    }
}

impl From<OutgoingError> for SendError {
    fn from(e: OutgoingError) -> Self {
        match &e {
            OutgoingError::WrongSender { .. } => SendError::WrongSender(e.to_string()),
            OutgoingError::TooLarge { .. } => SendError::TooLarge(e.to_string()),
            e if e.is_request_error() => SendError::InvalidDocument(e.to_string()),
            e => SendError::Internal(e.to_string()),
        }
    }
}

/// Composes, signs and commits a document; answers once it is durably queued.
pub async fn send_document(node: &Shared, req: SendDocument) -> Result<Sent, SendError> {
    crate::directory::check_recipients(node.directory_access(), &recipient_codes(&req))
        .await
        .map_err(SendError::UnknownRecipient)?;
    let me = node.me.clone();
    let identity = node.identity.clone();
    let n = node.clone();
    let max = node.config.max_packet_bytes;
    let out = tokio::task::spawn_blocking(move || {
        let doc = compose_document_named(&req, &me, &|c| n.agency_name(c))?;
        // The composed document holds the attachments now; the request's copy goes.
        drop(req);
        let (packet, bytes) =
            crate::outgoing::sign_within_owned(Packet::Document(doc), &identity, max)?;
        Ok::<_, OutgoingError>(outgoing(&packet, bytes, clock::now_ms()))
    })
    .await
    .map_err(|e| SendError::internal(format!("composition task failed: {e}")))??;
    let sent = Sent {
        document_id: out.entry.document_id.clone(),
        packet_id: out.id.to_hex(),
    };
    let recipients = out.entry.recipients.join(", ");
    node.db.commit_outgoing(out).await?;
    tracing::info!(document = %sent.document_id, packet = %sent.packet_id, to = %recipients,
        "document signed and queued");
    node.outbox_wake.notify_one();
    Ok(sent)
}
