//! Reading revoke, update and replace requests (QCVN 102:2016 BussinessDocType 1, 2, 3) the
//! same way at the hub and at the node: what a document packet asks ([`action_of`]), and who
//! signed a status in words ([`staff_summary`]).
//!
//! Invariants: pure functions of the packet; a request without a reason carries `None`, never
//! an empty string.

use serde::{Deserialize, Serialize};

use edxml::{DocumentPacket, ReceiverType, StaffInfo};

use crate::lifecycle::ActionKind;

/// What a revoke/update/replace document asks, about which original document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRef {
    pub kind: ActionKind,
    /// The original document's id (`Bussiness/DocumentId`).
    pub original: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Update: agencies added to the recipients.
    #[serde(default)]
    pub added: Vec<String>,
    /// Update: agencies removed from the recipients (they get the update so they know).
    #[serde(default)]
    pub removed: Vec<String>,
}

impl ActionRef {
    /// "revoke of DOC: reason", for clerks.
    pub fn describe(&self) -> String {
        let mut s = format!("{} of {}", self.kind.as_str(), self.original);
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        s
    }

    /// The state an agreement (15) by `recipient` gives the original there.
    pub fn mark_for(&self, recipient: &str) -> &'static str {
        self.kind.mark(self.removed.iter().any(|r| r == recipient))
    }

    /// Whether the original is closed at `recipient` once it agreed.
    pub fn closes_for(&self, recipient: &str) -> bool {
        self.kind
            .closes_original(self.removed.iter().any(|r| r == recipient))
    }
}

/// What a received or sent document packet asks, if it is a revoke/update/replace.
pub fn action_of(doc: &DocumentPacket) -> Option<ActionRef> {
    let b = doc.bussiness.as_ref()?;
    let kind = ActionKind::of(b.doc_type)?;
    let original = b
        .document_id
        .as_ref()
        .or_else(|| b.replacements.first().map(|r| &r.document_id))?
        .to_string();
    let receivers = b
        .document_info
        .as_ref()
        .map(|i| i.receivers.as_slice())
        .unwrap_or_default();
    let codes = |t: ReceiverType| {
        receivers
            .iter()
            .filter(|r| r.receiver_type == t)
            .map(|r| r.organ_id.to_string())
            .collect()
    };
    Some(ActionRef {
        kind,
        original,
        reason: b.reason.clone().filter(|r| !r.trim().is_empty()),
        added: codes(ReceiverType::Added),
        removed: codes(ReceiverType::Removed),
    })
}

/// "Staff, Department" from a StaffInfo.
pub fn staff_summary(s: &StaffInfo) -> Option<String> {
    let parts: Vec<&str> = [s.staff.as_deref(), s.department.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}
