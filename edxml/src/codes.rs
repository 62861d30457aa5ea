//! Small coded values of edXML: priority (độ khẩn), status codes, business document types and
//! receiver change types.
//!
//! Invariants: each enum covers exactly the documented codes; parsing refuses anything else
//! with an error naming the value; `code()` gives back the wire form, and serde serializes the
//! wire form too (a number, or the two-digit string for status codes), so JSON shows what the
//! packet says.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a coded value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "invalid priority {value:?}: expected 0 (thường), 1 (khẩn), 2 (thượng khẩn), 3 (hỏa tốc) or 4 (hỏa tốc hẹn giờ)"
    )]
    Priority { value: String },
    #[error("unknown status code {value:?}: expected one of 01, 02, 03, 04, 05, 06, 13, 15, 16")]
    StatusCode { value: String },
    #[error(
        "invalid BussinessDocType {value:?}: expected 0 (new), 1 (revoke), 2 (update) or 3 (replace)"
    )]
    BussinessDocType { value: String },
    #[error("invalid ReceiverType {value:?}: expected 0 (removed) or 1 (added)")]
    ReceiverType { value: String },
}

fn small_number(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

macro_rules! number_serialize {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(self.code())
            }
        }
    };
}

/// Priority (độ khẩn) of a document, `OtherInfo/Priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// 0 — thường.
    #[default]
    Normal,
    /// 1 — khẩn.
    Urgent,
    /// 2 — thượng khẩn.
    VeryUrgent,
    /// 3 — hỏa tốc.
    Flash,
    /// 4 — hỏa tốc hẹn giờ.
    FlashScheduled,
}

impl Priority {
    /// All priorities, lowest first.
    pub const ALL: [Priority; 5] = [
        Priority::Normal,
        Priority::Urgent,
        Priority::VeryUrgent,
        Priority::Flash,
        Priority::FlashScheduled,
    ];

    /// Parses the wire form `0`..`4`.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        small_number(s)
            .and_then(Self::from_code)
            .ok_or_else(|| CodeError::Priority {
                value: s.to_owned(),
            })
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            Priority::Normal => "thường",
            Priority::Urgent => "khẩn",
            Priority::VeryUrgent => "thượng khẩn",
            Priority::Flash => "hỏa tốc",
            Priority::FlashScheduled => "hỏa tốc hẹn giờ",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
            Priority::VeryUrgent => "very urgent",
            Priority::Flash => "flash",
            Priority::FlashScheduled => "flash scheduled",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.code(),
            self.label_vi(),
            self.label_en()
        )
    }
}

number_serialize!(Priority);

/// Status code of a status packet (gói tin trạng thái).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusCode {
    /// 01 — đã đến: stored by the receiving system, not yet handled by the clerk.
    Received,
    /// 02 — từ chối tiếp nhận: rejected; reason in Description.
    Rejected,
    /// 03 — đã tiếp nhận: accepted and registered.
    Accepted,
    /// 04 — phân công: assigned by a leader.
    Assigned,
    /// 05 — đang xử lý: being processed.
    Processing,
    /// 06 — hoàn thành: processing complete.
    Completed,
    /// 13 — lấy lại: the original sender asks to take the document back.
    TakeBack,
    /// 15 — đồng ý: the receiver agrees to a take-back / update / revoke request.
    Agreed,
    /// 16 — từ chối: the receiver refuses that request.
    Refused,
}

impl StatusCode {
    /// All codes in numeric order.
    pub const ALL: [StatusCode; 9] = [
        StatusCode::Received,
        StatusCode::Rejected,
        StatusCode::Accepted,
        StatusCode::Assigned,
        StatusCode::Processing,
        StatusCode::Completed,
        StatusCode::TakeBack,
        StatusCode::Agreed,
        StatusCode::Refused,
    ];

    /// Parses the two-digit wire form (`"01"`, `"13"`, …).
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let err = || CodeError::StatusCode {
            value: s.to_owned(),
        };
        if s.len() != 2 {
            return Err(err());
        }
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(err)
    }

    /// The two-digit wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Received => "01",
            StatusCode::Rejected => "02",
            StatusCode::Accepted => "03",
            StatusCode::Assigned => "04",
            StatusCode::Processing => "05",
            StatusCode::Completed => "06",
            StatusCode::TakeBack => "13",
            StatusCode::Agreed => "15",
            StatusCode::Refused => "16",
        }
    }

    /// The numeric value (1, 2, …, 16).
    pub fn code(self) -> u8 {
        match self {
            StatusCode::Received => 1,
            StatusCode::Rejected => 2,
            StatusCode::Accepted => 3,
            StatusCode::Assigned => 4,
            StatusCode::Processing => 5,
            StatusCode::Completed => 6,
            StatusCode::TakeBack => 13,
            StatusCode::Agreed => 15,
            StatusCode::Refused => 16,
        }
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            StatusCode::Received => "đã đến",
            StatusCode::Rejected => "từ chối tiếp nhận",
            StatusCode::Accepted => "đã tiếp nhận",
            StatusCode::Assigned => "phân công",
            StatusCode::Processing => "đang xử lý",
            StatusCode::Completed => "hoàn thành",
            StatusCode::TakeBack => "lấy lại",
            StatusCode::Agreed => "đồng ý",
            StatusCode::Refused => "từ chối",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            StatusCode::Received => "received",
            StatusCode::Rejected => "rejected",
            StatusCode::Accepted => "accepted",
            StatusCode::Assigned => "assigned",
            StatusCode::Processing => "processing",
            StatusCode::Completed => "completed",
            StatusCode::TakeBack => "take back",
            StatusCode::Agreed => "agreed",
            StatusCode::Refused => "refused",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.as_str(),
            self.label_vi(),
            self.label_en()
        )
    }
}

impl Serialize for StatusCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        StatusCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `Bussiness/BussinessDocType`: what the document packet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BussinessDocType {
    /// 0 — a new document.
    #[default]
    New,
    /// 1 — thu hồi: revoke an earlier document.
    Revoke,
    /// 2 — cập nhật: update an earlier document.
    Update,
    /// 3 — thay thế: replace an earlier document.
    Replace,
}

impl BussinessDocType {
    pub const ALL: [BussinessDocType; 4] = [
        BussinessDocType::New,
        BussinessDocType::Revoke,
        BussinessDocType::Update,
        BussinessDocType::Replace,
    ];

    pub fn parse(s: &str) -> Result<Self, CodeError> {
        small_number(s)
            .and_then(Self::from_code)
            .ok_or_else(|| CodeError::BussinessDocType {
                value: s.to_owned(),
            })
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn label_vi(self) -> &'static str {
        match self {
            BussinessDocType::New => "văn bản mới",
            BussinessDocType::Revoke => "thu hồi",
            BussinessDocType::Update => "cập nhật",
            BussinessDocType::Replace => "thay thế",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            BussinessDocType::New => "new",
            BussinessDocType::Revoke => "revoke",
            BussinessDocType::Update => "update",
            BussinessDocType::Replace => "replace",
        }
    }
}

impl fmt::Display for BussinessDocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.code(),
            self.label_vi(),
            self.label_en()
        )
    }
}

number_serialize!(BussinessDocType);

/// `Receiver/ReceiverType` in an update (BussinessDocType 2): how the recipient list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiverType {
    /// 0 — the agency was removed from the recipients.
    Removed,
    /// 1 — the agency was added.
    Added,
}

impl ReceiverType {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        match s {
            "0" => Ok(ReceiverType::Removed),
            "1" => Ok(ReceiverType::Added),
            _ => Err(CodeError::ReceiverType {
                value: s.to_owned(),
            }),
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

number_serialize!(ReceiverType);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_codes_and_labels() {
        for (i, p) in Priority::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(p.code()), i);
            assert_eq!(Priority::parse(&i.to_string()), Ok(p));
        }
        assert_eq!(Priority::Flash.label_vi(), "hỏa tốc");
        assert_eq!(Priority::FlashScheduled.label_en(), "flash scheduled");
        assert_eq!(Priority::Urgent.to_string(), "1 (khẩn, urgent)");
        for bad in ["5", "-1", "", "khẩn", "1.0", "0000"] {
            assert!(Priority::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(serde_json::to_string(&Priority::VeryUrgent).unwrap(), "2");
    }

    #[test]
    fn status_codes() {
        for c in StatusCode::ALL {
            assert_eq!(StatusCode::parse(c.as_str()), Ok(c));
            assert_eq!(format!("{:02}", c.code()), c.as_str());
        }
        assert_eq!(StatusCode::parse("13"), Ok(StatusCode::TakeBack));
        assert_eq!(StatusCode::Rejected.label_vi(), "từ chối tiếp nhận");
        let err = StatusCode::parse("14").unwrap_err();
        assert!(err.to_string().contains("\"14\""), "{err}");
        for bad in ["1", "001", "07", "12", "", "ab"] {
            assert!(StatusCode::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&StatusCode::Received).unwrap(),
            "\"01\""
        );
    }

    #[test]
    fn business_doc_types() {
        assert_eq!(BussinessDocType::parse("3"), Ok(BussinessDocType::Replace));
        assert_eq!(BussinessDocType::Revoke.label_en(), "revoke");
        assert!(BussinessDocType::parse("4").is_err());
        assert_eq!(ReceiverType::parse("1"), Ok(ReceiverType::Added));
        assert!(ReceiverType::parse("2").is_err());
    }
}
