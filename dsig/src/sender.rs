//! Reading the sending agency (`From/OrganId`) from verified packet bytes.
//!
//! Used after [`super::verify_packet`] accepted the bytes, to bind the signer to the sender
//! with [`super::check_sender`]. Names are resolved by namespace URI; the whole
//! `ds:Signature` subtree is skipped, so nothing placed inside the signature can ever be
//! read as business data. Exactly one `From` with exactly one `OrganId` is required under
//! `/edXML/edXMLEnvelope/edXMLHeader/MessageHeader` (or the `Status` variant of status
//! packets).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::verify::Refusal;
use super::{DSIG_NS, QCVN_NS};

/// Returns the trimmed text of the packet's `From/OrganId`.
pub fn sender_organ_id(verified: &[u8]) -> Result<String, Refusal> {
    let bytes = verified.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(verified);
    let mut reader = NsReader::from_reader(bytes);
    let malformed = |what: String| Refusal::Malformed { what };
    // Local names of QCVN elements from the root; `None` marks a non-QCVN element.
    let mut stack: Vec<Option<Vec<u8>>> = Vec::new();
    let mut found: Option<String> = None;
    let mut from_count = 0usize;
    let mut capturing: Option<String> = None;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map(|(res, ev)| {
                let ns = match res {
                    ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
                    _ => None,
                };
                (ns, ev)
            })
            .map_err(|e| malformed(e.to_string()))?;
        match event {
            Event::Start(start) => {
                let local = start.local_name().as_ref().to_vec();
                if ns.as_deref() == Some(DSIG_NS.as_bytes()) && local == b"Signature" {
                    reader
                        .read_to_end(start.name())
                        .map_err(|e| malformed(e.to_string()))?;
                    continue;
                }
                let qcvn = ns.as_deref() == Some(QCVN_NS.as_bytes());
                stack.push(qcvn.then_some(local));
                if is_path(&stack, &[b"From"]) {
                    from_count += 1;
                }
                if is_path(&stack, &[b"From", b"OrganId"]) {
                    if found.is_some() || capturing.is_some() {
                        return Err(Refusal::WrongProfile {
                            what: "the sender (From) has more than one OrganId".into(),
                        });
                    }
                    capturing = Some(String::new());
                }
            }
            Event::Empty(start) => {
                let local = start.local_name().as_ref().to_vec();
                let qcvn = ns.as_deref() == Some(QCVN_NS.as_bytes());
                stack.push(qcvn.then_some(local));
                if is_path(&stack, &[b"From"]) {
                    from_count += 1;
                }
                if is_path(&stack, &[b"From", b"OrganId"]) {
                    return Err(Refusal::WrongProfile {
                        what: "the sender's OrganId is empty".into(),
                    });
                }
                stack.pop();
            }
            Event::End(_) => {
                if is_path(&stack, &[b"From", b"OrganId"])
                    && let Some(text) = capturing.take()
                {
                    found = Some(text.trim().to_owned());
                }
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(buf) = capturing.as_mut() {
                    buf.push_str(&t.decode().map_err(|e| malformed(e.to_string()))?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(buf) = capturing.as_mut() {
                    let c = if r.is_char_ref() {
                        r.resolve_char_ref().ok().flatten()
                    } else {
                        match r.decode().map_err(|e| malformed(e.to_string()))?.as_ref() {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            _ => None,
                        }
                    };
                    match c {
                        Some(c) => buf.push(c),
                        None => return Err(malformed("undefined entity in OrganId".into())),
                    }
                }
            }
            Event::CData(t) => {
                if let Some(buf) = capturing.as_mut() {
                    buf.push_str(&t.decode().map_err(|e| malformed(e.to_string()))?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if from_count > 1 {
        return Err(Refusal::WrongProfile {
            what: "the header has more than one From".into(),
        });
    }
    match found {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(Refusal::WrongProfile {
            what: "the header has no From/OrganId".into(),
        }),
    }
}

/// True when `stack` is /edXML/edXMLEnvelope/edXMLHeader/(MessageHeader|Status)/`tail`,
/// all in the QCVN namespace.
fn is_path(stack: &[Option<Vec<u8>>], tail: &[&[u8]]) -> bool {
    if stack.len() != 4 + tail.len() {
        return false;
    }
    let name = |i: usize| stack[i].as_deref();
    name(0) == Some(b"edXML".as_slice())
        && name(1) == Some(b"edXMLEnvelope".as_slice())
        && name(2) == Some(b"edXMLHeader".as_slice())
        && matches!(name(3), Some(b"MessageHeader") | Some(b"Status"))
        && tail
            .iter()
            .enumerate()
            .all(|(i, t)| name(4 + i) == Some(*t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::small_packet;

    #[test]
    fn reads_from_organ_id() {
        assert_eq!(
            sender_organ_id(small_packet("000.00.00.G22").as_bytes()).unwrap(),
            "000.00.00.G22"
        );
        let status = small_packet(" 000.00.00.H41\n").replace("MessageHeader", "Status");
        assert_eq!(sender_organ_id(status.as_bytes()).unwrap(), "000.00.00.H41");
    }

    #[test]
    fn ignores_the_signature_and_other_places() {
        let forged = format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:Object><edXML:MessageHeader><edXML:From>\
             <edXML:OrganId>000.00.00.G99</edXML:OrganId></edXML:From></edXML:MessageHeader>\
             </ds:Object></ds:Signature></edXML:edXMLHeader>"
        );
        let packet = small_packet("000.00.00.G22").replace("</edXML:edXMLHeader>", &forged);
        assert_eq!(sender_organ_id(packet.as_bytes()).unwrap(), "000.00.00.G22");
        // To/OrganId and TraceHeader/OrganId are not the sender.
        let no_from = small_packet("000.00.00.G22").replace("edXML:From>", "edXML:Sender>");
        let err = sender_organ_id(no_from.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no From/OrganId"), "{err}");
    }

    #[test]
    fn ambiguous_senders_are_refused() {
        let two = small_packet("000.00.00.G22").replace(
            "<edXML:To>",
            "<edXML:From><edXML:OrganId>000.00.00.G99</edXML:OrganId></edXML:From><edXML:To>",
        );
        assert!(sender_organ_id(two.as_bytes()).is_err());
        let two_ids = small_packet("000.00.00.G22").replace(
            "</edXML:OrganId>\n          <edXML:OrganName>Văn",
            "</edXML:OrganId><edXML:OrganId>000.00.00.G99</edXML:OrganId>\n          <edXML:OrganName>Văn",
        );
        assert_ne!(two_ids, small_packet("000.00.00.G22"));
        assert!(sender_organ_id(two_ids.as_bytes()).is_err());
    }
}
