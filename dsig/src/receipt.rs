//! Hub receipts: the hub's signed statements that it accepted a packet, or delivered it.
//!
//! A receipt is a small XML document in its own namespace ([`RECEIPT_NS`]), validated by
//! `schemas/hub-receipt.xsd`, and signed by the hub: with an enveloped `ds:Signature` as the
//! last child of the root, or, since batch signing, with a `<Batch>` proof there instead
//! ([`crate::batch`]). Records systems keep receipts beside the packets as legal evidence of
//! transport, so a receipt names the packet by the SHA-256 of its signed bytes and says who,
//! what and when without needing the packet itself.
//!
//! Invariants:
//! - [`HubReceipt::to_xml`] writes one canonical form (fixed element order, UTF-8, no DTD);
//!   [`HubReceipt::parse`] reads it back to an equal value (round trip tested).
//! - Parsing is strict: unknown elements, duplicates, missing fields and DTDs are refused.
//!   Content inside `ds:Signature` is skipped, never read as receipt data.

use std::io::Cursor;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Writer};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Namespace of hub receipts.
pub const RECEIPT_NS: &str = "urn:docaxis:hub-receipt:1";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// What a receipt attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptKind {
    /// The hub verified and durably stored the packet and queued it for the accepted recipients.
    Submission,
    /// The recipient named in `delivered_to` fetched, verified, stored and acknowledged it.
    Delivery,
}

impl ReceiptKind {
    fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Submission => "submission",
            ReceiptKind::Delivery => "delivery",
        }
    }
}

/// A recipient the hub refused to route to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedRecipient {
    pub code: String,
    pub reason: String,
}

/// The content of a hub receipt (everything but the signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubReceipt {
    pub kind: ReceiptKind,
    /// SHA-256 of the packet's signed bytes, lower-case hex: the packet id.
    pub packet_id: String,
    /// `document` or `status`.
    pub packet_kind: String,
    /// Sending agency (`From/OrganId`).
    pub from: String,
    /// The packet's business document id (for a status packet: the document it answers).
    pub document_id: String,
    /// When the hub committed what this receipt attests (UTC, RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub hub_time: OffsetDateTime,
    /// Submission: recipients queued for delivery.
    pub accepted: Vec<String>,
    /// Submission: recipients refused, with reasons.
    pub refused: Vec<RefusedRecipient>,
    /// Delivery: the recipient that acknowledged the packet.
    pub delivered_to: Option<String>,
}

/// Why a receipt could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("receipt is not well-formed XML: {0}")]
    Xml(String),
    #[error("receipt contains a DOCTYPE; DTDs are refused")]
    Doctype,
    #[error("receipt root must be HubReceipt in namespace {RECEIPT_NS}")]
    WrongRoot,
    #[error("receipt element {0} is not allowed here")]
    Unexpected(String),
    #[error("receipt element {0} appears twice")]
    Duplicate(String),
    #[error("receipt lacks required element {0}")]
    Missing(&'static str),
    #[error("receipt element {element} has an invalid value {value:?}")]
    Invalid {
        element: &'static str,
        value: String,
    },
}

impl HubReceipt {
    /// Writes the unsigned receipt in its canonical form.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        // Writing into a Vec cannot fail; errors are impossible here, so they are ignored.
        let _ = self.write_into(&mut w);
        let mut out = w.into_inner().into_inner();
        out.push(b'\n');
        out
    }

    fn write_into(&self, w: &mut Writer<Cursor<Vec<u8>>>) -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let hub_time = self
            .hub_time
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        w.create_element("HubReceipt")
            .with_attribute(("xmlns", RECEIPT_NS))
            .with_attribute(("version", "1"))
            .write_inner_content(|w| {
                leaf(w, "Kind", self.kind.as_str())?;
                leaf(w, "PacketId", &self.packet_id)?;
                leaf(w, "PacketKind", &self.packet_kind)?;
                leaf(w, "From", &self.from)?;
                leaf(w, "DocumentId", &self.document_id)?;
                leaf(w, "HubTime", &hub_time)?;
                if !self.accepted.is_empty() {
                    w.create_element("Accepted").write_inner_content(|w| {
                        for code in &self.accepted {
                            leaf(w, "Recipient", code)?;
                        }
                        Ok(())
                    })?;
                }
                if !self.refused.is_empty() {
                    w.create_element("Refused").write_inner_content(|w| {
                        for r in &self.refused {
                            w.create_element("Recipient")
                                .with_attribute(("code", r.code.as_str()))
                                .write_text_content(BytesText::new(&r.reason))?;
                        }
                        Ok(())
                    })?;
                }
                if let Some(to) = &self.delivered_to {
                    leaf(w, "DeliveredTo", to)?;
                }
                Ok(())
            })?;
        Ok(())
    }

    /// Reads a receipt (signed, batch-signed or not). Signature verification is the caller's
    /// job and must happen before the values are trusted ([`crate::batch::verify_receipt`]
    /// checks and reads in one step).
    pub fn parse(xml: &[u8]) -> Result<HubReceipt, ReceiptError> {
        Self::parse_parts(xml).map(|(r, _)| r)
    }

    /// [`HubReceipt::parse`], also counting the signature and batch-proof elements it skipped.
    pub fn parse_parts(xml: &[u8]) -> Result<(HubReceipt, Parts), ReceiptError> {
        let mut parts = Parts::default();
        let mut r = NsReader::from_reader(xml);
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut in_sig = 0usize;
        let mut fields = Fields::default();
        let mut refused_code: Option<String> = None;
        let mut saw_root = false;
        loop {
            let (res, ev) = r
                .read_resolved_event()
                .map_err(|e| ReceiptError::Xml(e.to_string()))?;
            match ev {
                Event::DocType(_) => return Err(ReceiptError::Doctype),
                Event::Start(e) => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let ns = namespace(&res);
                    if in_sig > 0 {
                        in_sig += 1;
                        continue;
                    }
                    if path.is_empty() {
                        if local != "HubReceipt" || ns.as_deref() != Some(RECEIPT_NS) || saw_root {
                            return Err(ReceiptError::WrongRoot);
                        }
                        saw_root = true;
                    } else if (ns.as_deref() == Some(DSIG_NS) && local == "Signature")
                        || (ns.as_deref() == Some(RECEIPT_NS) && local == "Batch")
                    {
                        // The signature, or the batch proof (`crate::batch`): checked by the
                        // verifier, never read as receipt data.
                        if path.len() != 1 {
                            return Err(ReceiptError::Unexpected(local));
                        }
                        if local == "Batch" {
                            parts.batches += 1;
                        } else {
                            parts.signatures += 1;
                        }
                        in_sig = 1;
                        continue;
                    } else if ns.as_deref() != Some(RECEIPT_NS) {
                        return Err(ReceiptError::Unexpected(local));
                    }
                    if local == "Recipient" && path.last().map(String::as_str) == Some("Refused") {
                        let code = e
                            .try_get_attribute("code")
                            .map_err(|e| ReceiptError::Xml(e.to_string()))?
                            .ok_or(ReceiptError::Missing("Refused/Recipient/@code"))?;
                        let code = code
                            .unescape_value()
                            .map_err(|e| ReceiptError::Xml(e.to_string()))?;
                        refused_code = Some(code.into_owned());
                    }
                    path.push(local);
                    text.clear();
                }
                Event::Empty(e) => {
                    if in_sig > 0 {
                        continue;
                    }
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    return Err(ReceiptError::Invalid {
                        element: "element",
                        value: format!("empty <{local}/>"),
                    });
                }
                Event::Text(t) if in_sig == 0 => {
                    let t = t.decode().map_err(|e| ReceiptError::Xml(e.to_string()))?;
                    text.push_str(&t);
                }
                Event::GeneralRef(g) if in_sig == 0 => {
                    let name = g.decode().map_err(|e| ReceiptError::Xml(e.to_string()))?;
                    let resolved = match name.as_ref() {
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "amp" => "&".to_string(),
                        "quot" => "\"".to_string(),
                        "apos" => "'".to_string(),
                        other => {
                            let ch = g
                                .resolve_char_ref()
                                .map_err(|e| ReceiptError::Xml(e.to_string()))?
                                .ok_or_else(|| ReceiptError::Invalid {
                                    element: "entity",
                                    value: other.to_string(),
                                })?;
                            ch.to_string()
                        }
                    };
                    text.push_str(&resolved);
                }
                Event::End(_) => {
                    if in_sig > 0 {
                        in_sig -= 1;
                        continue;
                    }
                    let Some(local) = path.pop() else {
                        return Err(ReceiptError::Xml("unbalanced end tag".into()));
                    };
                    let parent = path.last().map(String::as_str);
                    let value = std::mem::take(&mut text).trim().to_string();
                    fields.take(parent, &local, value, &mut refused_code)?;
                }
                // What a signature covers but this reader would not see as the canonical
                // form does (CDATA is text there), and what the hub never writes.
                Event::CData(_) | Event::Comment(_) | Event::PI(_) if in_sig == 0 => {
                    return Err(ReceiptError::Unexpected(
                        "a CDATA section, comment or processing instruction".into(),
                    ));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let receipt = fields.finish()?;
        Ok((receipt, parts))
    }
}

/// The signature and batch-proof elements a receipt holds (each skipped by the reader).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// `ds:Signature` children of the root.
    pub signatures: usize,
    /// `Batch` children of the root.
    pub batches: usize,
}

fn namespace(res: &ResolveResult<'_>) -> Option<String> {
    match res {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        _ => None,
    }
}

fn leaf(w: &mut Writer<Cursor<Vec<u8>>>, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

#[derive(Default)]
struct Fields {
    kind: Option<ReceiptKind>,
    packet_id: Option<String>,
    packet_kind: Option<String>,
    from: Option<String>,
    document_id: Option<String>,
    hub_time: Option<OffsetDateTime>,
    accepted: Vec<String>,
    refused: Vec<RefusedRecipient>,
    delivered_to: Option<String>,
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ReceiptError> {
    if slot.is_some() {
        return Err(ReceiptError::Duplicate(name.to_string()));
    }
    *slot = Some(value);
    Ok(())
}

impl Fields {
    fn take(
        &mut self,
        parent: Option<&str>,
        local: &str,
        text: String,
        refused_code: &mut Option<String>,
    ) -> Result<(), ReceiptError> {
        match (parent, local) {
            (Some("HubReceipt"), "Kind") => {
                let kind = match text.as_str() {
                    "submission" => ReceiptKind::Submission,
                    "delivery" => ReceiptKind::Delivery,
                    _ => {
                        return Err(ReceiptError::Invalid {
                            element: "Kind",
                            value: text,
                        });
                    }
                };
                set(&mut self.kind, local, kind)
            }
            (Some("HubReceipt"), "PacketId") => {
                if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ReceiptError::Invalid {
                        element: "PacketId",
                        value: text,
                    });
                }
                set(&mut self.packet_id, local, text)
            }
            (Some("HubReceipt"), "PacketKind") => set(&mut self.packet_kind, local, text),
            (Some("HubReceipt"), "From") => set(&mut self.from, local, text),
            (Some("HubReceipt"), "DocumentId") => set(&mut self.document_id, local, text),
            (Some("HubReceipt"), "HubTime") => {
                let t =
                    OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| ReceiptError::Invalid {
                        element: "HubTime",
                        value: text.clone(),
                    })?;
                set(&mut self.hub_time, local, t)
            }
            (Some("HubReceipt"), "DeliveredTo") => set(&mut self.delivered_to, local, text),
            (Some("HubReceipt"), "Accepted" | "Refused") => Ok(()),
            (Some("Accepted"), "Recipient") => {
                self.accepted.push(text);
                Ok(())
            }
            (Some("Refused"), "Recipient") => {
                let code = refused_code
                    .take()
                    .ok_or(ReceiptError::Missing("Refused/Recipient/@code"))?;
                self.refused.push(RefusedRecipient { code, reason: text });
                Ok(())
            }
            (None, "HubReceipt") => Ok(()),
            (_, other) => Err(ReceiptError::Unexpected(other.to_string())),
        }
    }

    fn finish(self) -> Result<HubReceipt, ReceiptError> {
        Ok(HubReceipt {
            kind: self.kind.ok_or(ReceiptError::Missing("Kind"))?,
            packet_id: self.packet_id.ok_or(ReceiptError::Missing("PacketId"))?,
            packet_kind: self
                .packet_kind
                .ok_or(ReceiptError::Missing("PacketKind"))?,
            from: self.from.ok_or(ReceiptError::Missing("From"))?,
            document_id: self
                .document_id
                .ok_or(ReceiptError::Missing("DocumentId"))?,
            hub_time: self.hub_time.ok_or(ReceiptError::Missing("HubTime"))?,
            accepted: self.accepted,
            refused: self.refused,
            delivered_to: self.delivered_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HubReceipt {
        HubReceipt {
            kind: ReceiptKind::Submission,
            packet_id: "ab".repeat(32),
            packet_kind: "document".into(),
            from: "000.00.00.G22".into(),
            document_id: "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT <&>".into(),
            hub_time: OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
            accepted: vec!["000.00.00.H41".into(), "000.00.00.H14".into()],
            refused: vec![RefusedRecipient {
                code: "000.00.00.X99".into(),
                reason: "not a registered agency".into(),
            }],
            delivered_to: None,
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let xml = r.to_xml();
        assert_eq!(HubReceipt::parse(&xml).unwrap(), r);
        let mut d = sample();
        d.kind = ReceiptKind::Delivery;
        d.accepted.clear();
        d.refused.clear();
        d.delivered_to = Some("000.00.00.H41".into());
        assert_eq!(HubReceipt::parse(&d.to_xml()).unwrap(), d);
    }

    #[test]
    fn signature_content_is_not_read_as_data() {
        let xml = String::from_utf8(sample().to_xml()).unwrap().replace(
            "</HubReceipt>",
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object><From>evil</From></ds:Object></ds:Signature></HubReceipt>",
        );
        assert_eq!(
            HubReceipt::parse(xml.as_bytes()).unwrap().from,
            "000.00.00.G22"
        );
    }

    #[test]
    fn refusals_are_named() {
        let good = String::from_utf8(sample().to_xml()).unwrap();
        let dup = good.replace(
            "<Kind>submission</Kind>",
            "<Kind>submission</Kind><Kind>delivery</Kind>",
        );
        assert_eq!(
            HubReceipt::parse(dup.as_bytes()),
            Err(ReceiptError::Duplicate("Kind".into()))
        );
        let missing = good.replace("<From>000.00.00.G22</From>", "");
        assert_eq!(
            HubReceipt::parse(missing.as_bytes()),
            Err(ReceiptError::Missing("From"))
        );
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{good}");
        assert!(HubReceipt::parse(dtd.as_bytes()).is_err());
        let other_ns = good.replace(RECEIPT_NS, "urn:other");
        assert_eq!(
            HubReceipt::parse(other_ns.as_bytes()),
            Err(ReceiptError::WrongRoot)
        );
    }
}

#[cfg(test)]
mod xmllint_tests {
    use super::tests_support::sample_for_schema;

    /// The canonical receipt validates with libxml2's XSD validator against our schema.
    #[test]
    fn written_receipt_validates_with_xmllint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.xml");
        std::fs::write(&file, sample_for_schema().to_xml()).unwrap();
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/hub-receipt.xsd");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", schema])
            .arg(&file)
            .output()
            .expect("xmllint is required for this test: apt-get install libxml2-utils");
        assert!(
            out.status.success(),
            "xmllint refused the receipt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub(super) fn sample_for_schema() -> HubReceipt {
        HubReceipt {
            kind: ReceiptKind::Delivery,
            packet_id: "0f".repeat(32),
            packet_kind: "status".into(),
            from: "000.00.00.H41".into(),
            document_id: "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT".into(),
            hub_time: OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
            accepted: vec!["000.00.00.G22".into()],
            refused: vec![RefusedRecipient {
                code: "000.00.00.X99".into(),
                reason: "not registered".into(),
            }],
            delivered_to: Some("000.00.00.G22".into()),
        }
    }
}
