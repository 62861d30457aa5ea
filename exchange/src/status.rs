//! Building status packets (QCVN 102:2016 §3) about a document, the same way at every party:
//! the recipient's 01–06 and 15/16, the original sender's take-back request 13.
//!
//! Invariant: a status names its document by `ResponseFor` built from the document itself
//! (sender, number/notation, promulgation date, DocumentId), never from what a clerk typed.

use edxml::{
    AgencyCode, DocumentPacket, EdxmlDateTime, Organization, ResponseFor, StaffInfo, StatusCode,
    StatusPacket,
};

/// The status 01 (đã đến) `me` sends back when `doc` has been stored.
pub fn status_received(doc: &DocumentPacket, me: &Organization) -> StatusPacket {
    status_about(doc, me, StatusCode::Received, None, None)
}

/// The `ResponseFor` naming `doc`, addressed to `to` (the document's sender for the
/// recipient's statuses; the recipient for the sender's own 13).
pub fn response_for(doc: &DocumentPacket, to: AgencyCode) -> ResponseFor {
    ResponseFor {
        organ_id: to,
        code: Some(format!(
            "{}/{}",
            doc.code.code_number, doc.code.code_notation
        )),
        promulgation_date: Some(doc.promulgation_info.promulgation_date),
        document_id: doc.document_id.clone(),
    }
}

/// A business status about received document `doc`, sent by its recipient `me` back to the
/// document's sender (01–06, 15, 16), timestamped now.
pub fn status_about(
    doc: &DocumentPacket,
    me: &Organization,
    code: StatusCode,
    description: Option<String>,
    staff: Option<StaffInfo>,
) -> StatusPacket {
    let mut s = StatusPacket::new(
        me.clone(),
        response_for(doc, doc.from.organ_id.clone()),
        code,
        EdxmlDateTime::now(),
    );
    s.description = description;
    s.staff_info = staff;
    s
}

/// The take-back request (13) the original sender `me` of `doc` sends to `recipient`
/// (ResponseFor/OrganId = the recipient, QCVN 102:2016 §3), timestamped now.
pub fn take_back_request(
    doc: &DocumentPacket,
    me: &Organization,
    recipient: AgencyCode,
    reason: String,
    staff: Option<StaffInfo>,
) -> StatusPacket {
    let mut s = StatusPacket::new(
        me.clone(),
        response_for(doc, recipient),
        StatusCode::TakeBack,
        EdxmlDateTime::now(),
    );
    s.description = Some(reason);
    s.staff_info = staff;
    s
}
