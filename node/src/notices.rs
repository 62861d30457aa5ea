//! Email notices to the agency's clerks: what they say, and to whom.
//!
//! The events: a document arrived (urgent ones say so in the subject), a revoke/update/replace
//! request or a take-back (13) arrived, a recipient rejected (02) or refused (16) what this
//! agency sent, the outbox gave up on a document. Each notice names the document (số/ký hiệu,
//! trích yếu, the other agency) and links to its page.
//!
//! Invariants:
//! - Building a notice is pure; [`crate::db`] queues it with [`mail::queue::enqueue`] inside
//!   the transaction that commits the event, so a notice exists exactly when its event was
//!   committed and is sent once by the shared [`mail::Mailer`], never on the exchange's path.
//! - Subjects and bodies are UTF-8 text; nothing from a packet is interpreted (the mail is
//!   plain text).

use std::sync::Arc;

use edxml::{Priority, StatusCode};
use exchange::lifecycle::ActionKind;

use crate::client::encode_segment;

/// Where notices go, and how their links start.
#[derive(Debug)]
pub struct Notices {
    /// The clerks' addresses (`[notices] to` in node.toml).
    pub to: Vec<String>,
    /// Base URL of the node's web pages, without the trailing `/` (set once the listener is
    /// bound when `[notices] web_url` does not say).
    pub web_url: std::sync::OnceLock<String>,
    /// Woken after a transaction queued mail.
    pub mailer: Option<Arc<mail::Mailer>>,
}

/// What a notice is about.
#[derive(Debug, Clone)]
pub struct About<'a> {
    /// "số/ký hiệu", when known.
    pub code: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub document_id: &'a str,
    /// The other agency (sender or recipient), code and name.
    pub agency: &'a str,
    pub agency_name: &'a str,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn clip(s: &str, n: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= n {
        s
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

impl About<'_> {
    fn title(&self) -> String {
        let code = self.code.unwrap_or(self.document_id);
        match self.subject {
            Some(s) => format!("{} — {}", one_line(code), clip(s, 90)),
            None => one_line(code),
        }
    }

    fn lines(&self) -> String {
        format!(
            "Số/ký hiệu: {}\nTrích yếu: {}\nCơ quan: {} ({})\nMã văn bản / document id: {}\n",
            self.code.map(one_line).unwrap_or_else(|| "—".into()),
            self.subject.map(one_line).unwrap_or_else(|| "—".into()),
            one_line(self.agency_name),
            self.agency,
            self.document_id
        )
    }
}

const FOOTER: &str = "\n-- \nThư tự động của DocAxis, nút liên thông văn bản của cơ quan. \
                      (Automatic notice from your agency's DocAxis node.)\n";

impl Notices {
    fn url(&self) -> &str {
        self.web_url.get().map_or("", String::as_str)
    }

    fn mail(&self, subject: String, body: String) -> Option<mail::Mail> {
        if self.to.is_empty() {
            return None;
        }
        Some(mail::Mail {
            to: self.to.clone(),
            subject,
            body,
        })
    }

    /// Wakes the mail sender (after a commit that may have queued a notice).
    pub fn wake(&self) {
        if let Some(m) = &self.mailer {
            m.notify();
        }
    }

    /// A received document: its link is its inbox page.
    pub fn arrived(
        &self,
        about: &About<'_>,
        packet_id: &str,
        priority: u8,
        action: Option<ActionKind>,
    ) -> Option<mail::Mail> {
        let link = format!("{}/inbox/{packet_id}", self.url());
        if let Some(kind) = action {
            let (vi, en) = match kind {
                ActionKind::Revoke => ("thu hồi", "revoke"),
                ActionKind::Update => ("cập nhật", "update"),
                ActionKind::Replace => ("thay thế", "replace"),
            };
            return self.mail(
                format!("[DocAxis] Yêu cầu {vi} văn bản: {}", about.title()),
                format!(
                    "{} gửi yêu cầu {vi} một văn bản đã gửi cho cơ quan. Hãy xem và trả lời \
                     (đồng ý 15 hoặc từ chối 16).\n({} asks to {en} a document it sent; \
                     answer with 15 or 16.)\n\n{}\nXem / open: {link}\n{FOOTER}",
                    one_line(about.agency_name),
                    one_line(about.agency_name),
                    about.lines()
                ),
            );
        }
        let p = Priority::from_code(priority).unwrap_or_default();
        let urgent = p >= Priority::VeryUrgent;
        let subject = if urgent {
            format!(
                "[DocAxis] {} — Văn bản đến: {}",
                p.label_vi().to_uppercase(),
                about.title()
            )
        } else {
            format!("[DocAxis] Văn bản đến: {}", about.title())
        };
        self.mail(
            subject,
            format!(
                "Có văn bản mới đến từ {}{}.\n(A new document arrived{}.)\n\n{}Độ khẩn: {} ({})\n\
                 Xem / open: {link}\n\nVăn bản đến cần được đăng ký trong ngày{}.\n{FOOTER}",
                one_line(about.agency_name),
                if urgent { ", cần xử lý ngay" } else { "" },
                if urgent { ", urgent" } else { "" },
                about.lines(),
                p.label_vi(),
                p.label_en(),
                if urgent {
                    "; văn bản khẩn được đăng ký và trình ngay khi nhận"
                } else {
                    ""
                },
            ),
        )
    }

    /// The sender of a document this node received asks for it back (13).
    pub fn take_back(
        &self,
        about: &About<'_>,
        packet_id: &str,
        reason: Option<&str>,
    ) -> Option<mail::Mail> {
        self.mail(
            format!("[DocAxis] Yêu cầu lấy lại văn bản: {}", about.title()),
            format!(
                "{} đề nghị lấy lại văn bản đã gửi. Hãy trả lời: đồng ý (15) hoặc từ chối (16).\n\
                 (The sender asks for the document back; answer with 15 or 16.)\n\n{}Lý do / \
                 reason: {}\nXem / open: {}/inbox/{packet_id}\n{FOOTER}",
                one_line(about.agency_name),
                about.lines(),
                reason.map(one_line).unwrap_or_else(|| "—".into()),
                self.url()
            ),
        )
    }

    /// A recipient rejected (02) or refused a request (16) about a document this node sent.
    pub fn answered(
        &self,
        about: &About<'_>,
        code: StatusCode,
        reason: Option<&str>,
        staff: Option<&str>,
    ) -> Option<mail::Mail> {
        let (vi, en) = match code {
            StatusCode::Rejected => ("từ chối tiếp nhận", "rejected"),
            _ => ("từ chối yêu cầu", "refused the request about"),
        };
        self.mail(
            format!(
                "[DocAxis] {} {vi}: {}",
                clip(about.agency_name, 60),
                about.title()
            ),
            format!(
                "{} đã {vi} văn bản cơ quan gửi (trạng thái {}).\n({} {en} the document, status \
                 {}.)\n\n{}Lý do / reason: {}\nNgười xử lý / by: {}\nTheo dõi / track: {}/sent/document?id={}\n{FOOTER}",
                one_line(about.agency_name),
                code.as_str(),
                one_line(about.agency_name),
                code.as_str(),
                about.lines(),
                reason.map(one_line).unwrap_or_else(|| "—".into()),
                staff.map(one_line).unwrap_or_else(|| "—".into()),
                self.url(),
                encode_segment(about.document_id)
            ),
        )
    }

    /// The outbox gave up submitting a document.
    pub fn gave_up(&self, about: &About<'_>, error: &str) -> Option<mail::Mail> {
        self.mail(
            format!("[DocAxis] KHÔNG GỬI ĐƯỢC văn bản: {}", about.title()),
            format!(
                "Nút không gửi được văn bản này lên trục và đã ngừng thử lại. Hãy kiểm tra rồi \
                 gửi lại.\n(The node gave up submitting this document to the hub.)\n\n{}Lỗi / \
                 error: {}\nTheo dõi / track: {}/sent/document?id={}\n{FOOTER}",
                about.lines(),
                clip(error, 500),
                self.url(),
                encode_segment(about.document_id)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notices() -> Notices {
        Notices {
            to: vec!["van-thu@h41.demo".into()],
            web_url: "http://127.0.0.1:8600".to_string().into(),
            mailer: None,
        }
    }

    fn about() -> About<'static> {
        About {
            code: Some("7816/VPCP-TTĐT"),
            subject: Some("Về việc\nkết nối   liên thông"),
            document_id: "000.00.00.G22,2026/12/03,7816/VPCP-TTĐT",
            agency: "000.00.00.G22",
            agency_name: "Văn phòng Chính phủ",
        }
    }

    #[test]
    fn urgent_arrivals_say_so_and_every_notice_links_to_its_page() {
        let n = notices();
        let m = n.arrived(&about(), "ab12", 3, None).unwrap();
        assert_eq!(
            m.subject,
            "[DocAxis] HỎA TỐC — Văn bản đến: 7816/VPCP-TTĐT — Về việc kết nối liên thông"
        );
        assert!(
            m.body.contains("http://127.0.0.1:8600/inbox/ab12"),
            "{}",
            m.body
        );
        assert!(m.body.contains("Văn phòng Chính phủ"));
        let m = n.arrived(&about(), "ab12", 0, None).unwrap();
        assert!(
            m.subject.starts_with("[DocAxis] Văn bản đến: "),
            "{}",
            m.subject
        );
        let m = n
            .answered(
                &about(),
                StatusCode::Rejected,
                Some("Sai thẩm quyền"),
                Some("Lan"),
            )
            .unwrap();
        assert!(m.subject.contains("từ chối tiếp nhận"), "{}", m.subject);
        assert!(m.body.contains("Sai thẩm quyền"));
        assert!(
            m.body.contains(
                "/sent/document?id=000.00.00.G22%2C2026%2F12%2F03%2C7816%2FVPCP-TT%C4%90T"
            ),
            "{}",
            m.body
        );
        let nobody = Notices {
            to: vec![],
            ..notices()
        };
        assert!(nobody.arrived(&about(), "ab12", 0, None).is_none());
    }
}
