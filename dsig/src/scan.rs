//! One streaming pass over a packet that checks its envelope shape and the strict DocAxis
//! signature profile, with quick-xml's namespace-aware reader.
//!
//! The scanner runs before any cryptography and before any business data is read. It
//! resolves every name by (namespace URI, local name), never by prefix text, and returns
//! either a [`Layout`] or the first rule the packet breaks.
//!
//! Rules enforced for every packet (signed or not):
//! - well-formed UTF-8 XML, no DOCTYPE (so no DTD and no entities beyond the five predefined
//!   ones and character references), no comments, no processing instructions (comments are
//!   not covered by an XML-DSig `URI=""` reference, so they could be changed freely);
//! - root `edXML` in the QCVN namespace; exactly one `edXMLEnvelope` (child of the root),
//!   exactly one `edXMLHeader` (child of the envelope) and exactly one `MessageHeader` (or
//!   `Status`) as a child of that header, and none of these names anywhere else;
//! - no XML-DSig element anywhere outside the single `ds:Signature`;
//! - resource limits on depth and element count.
//!
//! Rules for the signature (when a W3C `ds:Signature` is present):
//! - exactly one, and it is the last element child of `edXMLHeader`;
//! - `SignedInfo` = exclusive C14N, an accepted `SignatureMethod`, exactly one `Reference`
//!   with `URI=""`, whose transforms are exactly enveloped-signature then exclusive C14N,
//!   with an accepted `DigestMethod`; `InclusiveNamespaces/@PrefixList` absent or empty;
//! - `KeyInfo` holds at least one `X509Data/X509Certificate`; `KeyName` and `KeyValue` may
//!   accompany it and are ignored; `RetrievalMethod`, `X509CRL`, `ds:Object`, `Manifest` and
//!   anything unknown are refused; no text, CDATA or foreign elements inside the signature.
//!
//! Only exclusive C14N (without comments) is accepted, for `SignedInfo` and for the reference:
//! DocAxis signs that way and `xmlsec1` with the DocAxis template does too, so inclusive
//! C14N would only widen the profile (its output also depends on ancestor namespace
//! declarations of the signature's position).
//!
//! A legacy placeholder `Signature` in a non-W3C namespace (QCVN) as a child of
//! `edXMLHeader` marks the packet as "unsigned legacy"; its contents are never interpreted.

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::algorithms::{DigestAlgorithm, SignatureAlgorithm, describe_refused};
use super::{DSIG_NS, ENVELOPED_SIGNATURE, EXC_C14N, QCVN_NS};

/// XML-DSig 1.1 namespace (only tolerated inside an ignored `KeyValue`).
const DSIG11_NS: &str = "http://www.w3.org/2009/xmldsig11#";

/// Resource limits for the scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanLimits {
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_certificates: usize,
}

/// Why a packet was not accepted by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// Not well-formed XML, not UTF-8, or over a resource limit.
    Malformed(String),
    /// Well-formed, but outside the edXML envelope shape or the DocAxis signature profile.
    Profile(String),
}

/// What the scan learned about a conforming packet.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Byte offset of the `<` of the `edXMLHeader` end tag.
    pub header_end: usize,
    /// The packet's signature state.
    pub signature: SignatureState,
}

/// Whether and how the packet is signed.
#[derive(Debug, Clone)]
pub(crate) enum SignatureState {
    /// No signature element at all.
    None,
    /// A legacy placeholder `Signature` outside the W3C namespace.
    Legacy,
    /// A W3C `ds:Signature` that passed every profile rule.
    Signed(SignatureModel),
}

/// The profile-relevant content of a conforming `ds:Signature`.
#[derive(Debug, Clone)]
pub(crate) struct SignatureModel {
    pub signature_algorithm: SignatureAlgorithm,
    pub digest_algorithm: DigestAlgorithm,
    /// Decoded `X509Certificate` values, in document order.
    pub certificates: Vec<Vec<u8>>,
    /// Whether `DigestValue` and `SignatureValue` carry a value.
    pub values_present: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Qcvn,
    Dsig,
    Dsig11,
    ExcC14n,
    None,
    Other,
}

impl Ns {
    fn label(self) -> &'static str {
        match self {
            Ns::Qcvn => "QCVN namespace",
            Ns::Dsig => "XML-DSig namespace",
            Ns::Dsig11 => "XML-DSig 1.1 namespace",
            Ns::ExcC14n => "exc-c14n namespace",
            Ns::None => "no namespace",
            Ns::Other => "a foreign namespace",
        }
    }
}

/// One classified event.
enum Ev<'i> {
    Open {
        ns: Ns,
        local: String,
        start: BytesStart<'i>,
        empty: bool,
    },
    Close {
        pos: usize,
    },
    Text {
        text: Cow<'i, str>,
        cdata: bool,
    },
    Eof,
}

struct Scanner<'i> {
    reader: NsReader<&'i [u8]>,
    limits: ScanLimits,
    depth: usize,
    elements: usize,
    first: bool,
}

impl<'i> Scanner<'i> {
    fn new(xml: &'i str, limits: ScanLimits) -> Self {
        let mut reader = NsReader::from_reader(xml.as_bytes());
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Scanner {
            reader,
            limits,
            depth: 0,
            elements: 0,
            first: true,
        }
    }

    fn malformed(&self, what: impl std::fmt::Display) -> ScanError {
        ScanError::Malformed(format!(
            "not well-formed XML near byte {}: {what}",
            self.reader.error_position()
        ))
    }

    /// Reads the next event, refusing DOCTYPE, comments and processing instructions.
    fn next(&mut self) -> Result<Ev<'i>, ScanError> {
        loop {
            let pos = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
            let (res, ev) = match self.reader.read_resolved_event() {
                Ok((res, ev)) => (classify_ns(&res), ev),
                Err(e) => return Err(self.malformed(e)),
            };
            let first = std::mem::replace(&mut self.first, false);
            match ev {
                Event::Decl(decl) => {
                    if !first {
                        return Err(self.malformed("XML declaration not at the start"));
                    }
                    if let Some(Ok(enc)) = decl.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if enc != "utf-8" && enc != "utf8" {
                            return Err(ScanError::Malformed(format!(
                                "declared encoding '{enc}': edXML packets must be UTF-8"
                            )));
                        }
                    }
                }
                Event::DocType(_) => {
                    return Err(ScanError::Profile(format!(
                        "DOCTYPE declaration at byte {pos}: DTDs and entity declarations are \
                         not allowed"
                    )));
                }
                Event::Comment(_) => {
                    return Err(ScanError::Profile(format!(
                        "XML comment at byte {pos}: comments are not covered by the signature \
                         and are not allowed in packets"
                    )));
                }
                Event::PI(_) => {
                    return Err(ScanError::Profile(format!(
                        "processing instruction at byte {pos}: not allowed in packets"
                    )));
                }
                Event::Start(start) => {
                    self.count_element()?;
                    self.depth += 1;
                    if self.depth > self.limits.max_depth {
                        return Err(ScanError::Malformed(format!(
                            "elements nested deeper than {} levels",
                            self.limits.max_depth
                        )));
                    }
                    let local = local_name(&start)?;
                    return Ok(Ev::Open {
                        ns: res?,
                        local,
                        start,
                        empty: false,
                    });
                }
                Event::Empty(start) => {
                    self.count_element()?;
                    let local = local_name(&start)?;
                    return Ok(Ev::Open {
                        ns: res?,
                        local,
                        start,
                        empty: true,
                    });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Ev::Close { pos });
                }
                Event::Text(t) => {
                    let text = t.decode().map_err(|e| self.malformed(e))?;
                    return Ok(Ev::Text { text, cdata: false });
                }
                Event::CData(t) => {
                    let text = t.decode().map_err(|e| self.malformed(e))?;
                    return Ok(Ev::Text { text, cdata: true });
                }
                Event::GeneralRef(r) => {
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => {
                                return Ok(Ev::Text {
                                    text: Cow::Owned(c.to_string()),
                                    cdata: false,
                                });
                            }
                            Ok(None) | Err(_) => {
                                return Err(self.malformed("invalid character reference"));
                            }
                        }
                    }
                    let name = r.decode().map_err(|e| self.malformed(e))?;
                    let text = match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        other => {
                            return Err(self.malformed(format!("undefined entity &{other};")));
                        }
                    };
                    return Ok(Ev::Text {
                        text: Cow::Borrowed(text),
                        cdata: false,
                    });
                }
                Event::Eof => return Ok(Ev::Eof),
            }
        }
    }

    fn count_element(&mut self) -> Result<(), ScanError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(ScanError::Malformed(format!(
                "more than {} elements",
                self.limits.max_elements
            )));
        }
        Ok(())
    }
}

fn classify_ns(res: &ResolveResult<'_>) -> Result<Ns, ScanError> {
    match res {
        ResolveResult::Bound(ns) => Ok(match ns.as_ref() {
            b if b == QCVN_NS.as_bytes() => Ns::Qcvn,
            b if b == DSIG_NS.as_bytes() => Ns::Dsig,
            b if b == DSIG11_NS.as_bytes() => Ns::Dsig11,
            b if b == EXC_C14N.as_bytes() => Ns::ExcC14n,
            _ => Ns::Other,
        }),
        ResolveResult::Unbound => Ok(Ns::None),
        ResolveResult::Unknown(prefix) => Err(ScanError::Malformed(format!(
            "undeclared namespace prefix '{}'",
            String::from_utf8_lossy(prefix)
        ))),
    }
}

fn local_name(start: &BytesStart<'_>) -> Result<String, ScanError> {
    std::str::from_utf8(start.local_name().as_ref())
        .map(str::to_owned)
        .map_err(|_| ScanError::Malformed("element name is not UTF-8".into()))
}

/// Scans `xml` and returns its layout, or the first rule it breaks.
pub(crate) fn scan(xml: &str, limits: ScanLimits) -> Result<Layout, ScanError> {
    let mut s = Scanner::new(xml, limits);
    // Path of (namespace, local name) from the root to the current element.
    let mut stack: Vec<(Ns, String)> = Vec::new();
    let mut root_done = false;
    let mut envelopes = 0usize;
    let mut headers = 0usize;
    let mut message_headers = 0usize;
    let mut header_end: Option<usize> = None;
    let mut signature: Option<SignatureModel> = None;
    let mut legacy = false;
    let mut signature_closed_header_children = false;

    loop {
        match s.next()? {
            Ev::Eof => break,
            Ev::Text { text, cdata } => {
                if stack.is_empty() && (cdata || !is_xml_whitespace(&text)) {
                    return Err(ScanError::Malformed("text outside the root element".into()));
                }
            }
            Ev::Close { pos } => {
                let Some((ns, local)) = stack.pop() else {
                    return Err(ScanError::Malformed("end tag without start tag".into()));
                };
                if ns == Ns::Qcvn && local == "edXMLHeader" && stack.len() == 2 {
                    header_end = Some(pos);
                }
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Ev::Open {
                ns,
                local,
                start,
                empty,
            } => {
                if root_done {
                    return Err(ScanError::Malformed(
                        "a second element after the root element".into(),
                    ));
                }
                if stack.is_empty() && !(ns == Ns::Qcvn && local == "edXML") {
                    return Err(ScanError::Profile(format!(
                        "the root element must be edXML in the QCVN namespace ({QCVN_NS}), \
                         found '{local}' in {}",
                        ns.label()
                    )));
                }
                let in_header = is_header_path(&stack);
                if ns == Ns::Dsig && local == "Signature" && signature.is_some() {
                    return Err(ScanError::Profile(
                        "more than one ds:Signature in the packet".into(),
                    ));
                }
                if in_header && signature_closed_header_children {
                    return Err(ScanError::Profile(format!(
                        "ds:Signature must be the last child of edXMLHeader, but '{local}' \
                         follows it"
                    )));
                }
                if ns == Ns::Dsig {
                    if local != "Signature" {
                        return Err(ScanError::Profile(format!(
                            "XML-DSig element ds:{local} found outside ds:Signature (at {})",
                            path_text(&stack)
                        )));
                    }
                    if !in_header {
                        return Err(ScanError::Profile(format!(
                            "ds:Signature must be the last child of \
                             /edXML/edXMLEnvelope/edXMLHeader, found it at {}",
                            path_text(&stack)
                        )));
                    }
                    if legacy {
                        return Err(ScanError::Profile(
                            "the packet carries both a legacy placeholder Signature and a \
                             ds:Signature"
                                .into(),
                        ));
                    }
                    if empty {
                        return Err(ScanError::Profile("ds:Signature is empty".into()));
                    }
                    check_attrs(&start, "ds:Signature", &["Id"])?;
                    signature = Some(parse_signature(&mut s)?);
                    signature_closed_header_children = true;
                    continue;
                }
                if ns == Ns::Qcvn {
                    match local.as_str() {
                        "edXMLEnvelope" => {
                            envelopes += 1;
                            if envelopes > 1 {
                                return Err(ScanError::Profile(
                                    "more than one edXMLEnvelope".into(),
                                ));
                            }
                            if stack.len() != 1 {
                                return Err(ScanError::Profile(format!(
                                    "edXMLEnvelope must be a child of the root, found it at {}",
                                    path_text(&stack)
                                )));
                            }
                        }
                        "edXMLHeader" => {
                            headers += 1;
                            if headers > 1 {
                                return Err(ScanError::Profile("more than one edXMLHeader".into()));
                            }
                            if !is_envelope_path(&stack) {
                                return Err(ScanError::Profile(format!(
                                    "edXMLHeader must be a child of edXMLEnvelope, found it at {}",
                                    path_text(&stack)
                                )));
                            }
                            if empty {
                                return Err(ScanError::Profile(
                                    "edXMLHeader is empty: it has no MessageHeader".into(),
                                ));
                            }
                        }
                        "MessageHeader" | "Status" if in_header => {
                            message_headers += 1;
                            if message_headers > 1 {
                                return Err(ScanError::Profile(
                                    "edXMLHeader holds more than one MessageHeader".into(),
                                ));
                            }
                        }
                        "MessageHeader" => {
                            return Err(ScanError::Profile(format!(
                                "MessageHeader found outside edXMLHeader, at {}",
                                path_text(&stack)
                            )));
                        }
                        _ => {}
                    }
                }
                if in_header && local == "Signature" && ns != Ns::Dsig {
                    if signature.is_some() {
                        return Err(ScanError::Profile(
                            "the packet carries both a ds:Signature and a legacy placeholder \
                             Signature"
                                .into(),
                        ));
                    }
                    legacy = true;
                }
                if !empty {
                    stack.push((ns, local));
                }
            }
        }
    }
    if !stack.is_empty() || !root_done {
        return Err(ScanError::Malformed(
            "the document ends before the root element is closed".into(),
        ));
    }
    if envelopes == 0 {
        return Err(ScanError::Profile("the packet has no edXMLEnvelope".into()));
    }
    let Some(header_end) = header_end else {
        return Err(ScanError::Profile("the packet has no edXMLHeader".into()));
    };
    if message_headers == 0 {
        return Err(ScanError::Profile(
            "edXMLHeader has no MessageHeader".into(),
        ));
    }
    let signature = match (signature, legacy) {
        (Some(model), _) => SignatureState::Signed(model),
        (None, true) => SignatureState::Legacy,
        (None, false) => SignatureState::None,
    };
    Ok(Layout {
        header_end,
        signature,
    })
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// True when `stack` is exactly /edXML/edXMLEnvelope.
fn is_envelope_path(stack: &[(Ns, String)]) -> bool {
    matches!(stack, [(Ns::Qcvn, r), (Ns::Qcvn, e)] if r == "edXML" && e == "edXMLEnvelope")
}

/// True when `stack` is exactly /edXML/edXMLEnvelope/edXMLHeader.
fn is_header_path(stack: &[(Ns, String)]) -> bool {
    matches!(stack, [(Ns::Qcvn, r), (Ns::Qcvn, e), (Ns::Qcvn, h)]
        if r == "edXML" && e == "edXMLEnvelope" && h == "edXMLHeader")
}

fn path_text(stack: &[(Ns, String)]) -> String {
    if stack.is_empty() {
        return "the document level".into();
    }
    let mut out = String::new();
    for (_, local) in stack {
        out.push('/');
        out.push_str(local);
    }
    out
}

/// Reads the attributes of `start`, refusing any not in `allowed` (namespace declarations
/// are always allowed) and duplicates.
fn check_attrs(
    start: &BytesStart<'_>,
    element: &str,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ScanError> {
    let mut out = Vec::new();
    for attr in start.attributes() {
        let attr =
            attr.map_err(|e| ScanError::Malformed(format!("bad attribute on {element}: {e}")))?;
        let key = std::str::from_utf8(attr.key.as_ref())
            .map_err(|_| ScanError::Malformed(format!("attribute name on {element} is not UTF-8")))?
            .to_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            return Err(ScanError::Profile(format!(
                "attribute '{key}' is not allowed on {element}"
            )));
        }
        let value = attr
            .unescape_value()
            .map_err(|e| ScanError::Malformed(format!("bad attribute value on {element}: {e}")))?
            .into_owned();
        out.push((key, value));
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The next child element inside the signature, skipping whitespace; `None` at the parent's
/// end tag. Text, CDATA and foreign-namespace elements are refused.
fn next_child<'i>(
    s: &mut Scanner<'i>,
    parent: &str,
) -> Result<Option<(Ns, String, BytesStart<'i>, bool)>, ScanError> {
    loop {
        match s.next()? {
            Ev::Text { text, cdata } => {
                if cdata || !is_xml_whitespace(&text) {
                    return Err(ScanError::Profile(format!(
                        "unexpected text inside {parent}"
                    )));
                }
            }
            Ev::Close { .. } => return Ok(None),
            Ev::Open {
                ns,
                local,
                start,
                empty,
            } => return Ok(Some((ns, local, start, empty))),
            Ev::Eof => {
                return Err(ScanError::Malformed(format!(
                    "document ends inside {parent}"
                )));
            }
        }
    }
}

/// Requires that an element just opened has no element or text content.
fn expect_no_content(s: &mut Scanner<'_>, empty: bool, element: &str) -> Result<(), ScanError> {
    if empty {
        return Ok(());
    }
    match next_child(s, element)? {
        None => Ok(()),
        Some((_, local, _, _)) => Err(ScanError::Profile(format!(
            "{element} must be empty, but contains '{local}'"
        ))),
    }
}

/// Reads the text content of a leaf element (character references included).
fn read_text(s: &mut Scanner<'_>, empty: bool, element: &str) -> Result<String, ScanError> {
    let mut out = String::new();
    if empty {
        return Ok(out);
    }
    loop {
        match s.next()? {
            Ev::Text { text, cdata } => {
                if cdata {
                    return Err(ScanError::Profile(format!("CDATA inside {element}")));
                }
                out.push_str(&text);
            }
            Ev::Close { .. } => return Ok(out),
            Ev::Open { local, .. } => {
                return Err(ScanError::Profile(format!(
                    "unexpected element '{local}' inside {element}"
                )));
            }
            Ev::Eof => {
                return Err(ScanError::Malformed(format!(
                    "document ends inside {element}"
                )));
            }
        }
    }
}

/// Decodes base64 text, ignoring XML whitespace (producers wrap lines).
fn decode_base64(text: &str, element: &str) -> Result<Vec<u8>, ScanError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ScanError::Profile(format!("{element} is not valid base64: {e}")))
}

fn require_dsig(ns: Ns, local: &str, parent: &str) -> Result<(), ScanError> {
    if ns == Ns::Dsig {
        Ok(())
    } else {
        Err(ScanError::Profile(format!(
            "element '{local}' in {} is not allowed inside {parent}",
            ns.label()
        )))
    }
}

/// Parses the content of `ds:Signature` (its start tag already read) up to its end tag.
fn parse_signature(s: &mut Scanner<'_>) -> Result<SignatureModel, ScanError> {
    const P: &str = "ds:Signature";
    // SignedInfo
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile("ds:Signature has no SignedInfo".into()));
    };
    require_dsig(ns, &local, P)?;
    if local != "SignedInfo" {
        return Err(ScanError::Profile(format!(
            "ds:Signature must start with SignedInfo, found ds:{local}"
        )));
    }
    check_attrs(&start, "ds:SignedInfo", &["Id"])?;
    if empty {
        return Err(ScanError::Profile("ds:SignedInfo is empty".into()));
    }
    let (signature_algorithm, digest_algorithm, digest_present) = parse_signed_info(s)?;

    // SignatureValue
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile(
            "ds:Signature has no SignatureValue".into(),
        ));
    };
    require_dsig(ns, &local, P)?;
    if local != "SignatureValue" {
        return Err(ScanError::Profile(format!(
            "SignedInfo must be followed by SignatureValue, found ds:{local}"
        )));
    }
    check_attrs(&start, "ds:SignatureValue", &["Id"])?;
    let sig_text = read_text(s, empty, "ds:SignatureValue")?;
    let signature_present = !decode_base64(&sig_text, "ds:SignatureValue")?.is_empty();

    // KeyInfo
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile(
            "ds:Signature has no KeyInfo: the signer's certificate is required".into(),
        ));
    };
    require_dsig(ns, &local, P)?;
    match local.as_str() {
        "KeyInfo" => {}
        "Object" => {
            return Err(ScanError::Profile(
                "ds:Object is not allowed in the signature".into(),
            ));
        }
        other => {
            return Err(ScanError::Profile(format!(
                "SignatureValue must be followed by KeyInfo, found ds:{other}"
            )));
        }
    }
    check_attrs(&start, "ds:KeyInfo", &["Id"])?;
    let certificates = parse_key_info(s, empty)?;

    // Nothing may follow KeyInfo (in particular no ds:Object).
    if let Some((_, local, _, _)) = next_child(s, P)? {
        return Err(ScanError::Profile(if local == "Object" {
            "ds:Object is not allowed in the signature".to_string()
        } else {
            format!("unexpected '{local}' after KeyInfo in ds:Signature")
        }));
    }
    Ok(SignatureModel {
        signature_algorithm,
        digest_algorithm,
        certificates,
        values_present: digest_present && signature_present,
    })
}

/// Parses `SignedInfo` content; returns the algorithms and whether DigestValue has a value.
fn parse_signed_info(
    s: &mut Scanner<'_>,
) -> Result<(SignatureAlgorithm, DigestAlgorithm, bool), ScanError> {
    const P: &str = "ds:SignedInfo";
    // CanonicalizationMethod
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile(
            "SignedInfo has no CanonicalizationMethod".into(),
        ));
    };
    require_dsig(ns, &local, P)?;
    if local != "CanonicalizationMethod" {
        return Err(ScanError::Profile(format!(
            "SignedInfo must start with CanonicalizationMethod, found ds:{local}"
        )));
    }
    let attrs = check_attrs(&start, "ds:CanonicalizationMethod", &["Algorithm"])?;
    let c14n = attr(&attrs, "Algorithm").unwrap_or("");
    if c14n != EXC_C14N {
        return Err(ScanError::Profile(format!(
            "CanonicalizationMethod '{c14n}' is not allowed: the profile requires exclusive \
             C14N ({EXC_C14N})"
        )));
    }
    parse_c14n_params(s, empty, "ds:CanonicalizationMethod")?;

    // SignatureMethod
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile(
            "SignedInfo has no SignatureMethod".into(),
        ));
    };
    require_dsig(ns, &local, P)?;
    if local != "SignatureMethod" {
        return Err(ScanError::Profile(format!(
            "CanonicalizationMethod must be followed by SignatureMethod, found ds:{local}"
        )));
    }
    let attrs = check_attrs(&start, "ds:SignatureMethod", &["Algorithm"])?;
    let uri = attr(&attrs, "Algorithm").unwrap_or("");
    let Some(signature_algorithm) = SignatureAlgorithm::from_uri(uri) else {
        return Err(ScanError::Profile(format!(
            "SignatureMethod {} is not allowed (accepted: rsa-sha256/384/512, \
             ecdsa-sha256/384/512)",
            describe_refused(uri)
        )));
    };
    expect_no_content(s, empty, "ds:SignatureMethod")?;

    // Exactly one Reference
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile("SignedInfo has no Reference".into()));
    };
    require_dsig(ns, &local, P)?;
    if local != "Reference" {
        return Err(ScanError::Profile(format!(
            "SignatureMethod must be followed by Reference, found ds:{local}"
        )));
    }
    let attrs = check_attrs(&start, "ds:Reference", &["URI", "Id", "Type"])?;
    match attr(&attrs, "URI") {
        Some("") => {}
        Some(other) => {
            return Err(ScanError::Profile(format!(
                "Reference URI=\"{other}\" is not allowed: the signature must cover the whole \
                 packet (URI=\"\")"
            )));
        }
        None => {
            return Err(ScanError::Profile(
                "Reference without a URI attribute: the profile requires URI=\"\"".into(),
            ));
        }
    }
    if empty {
        return Err(ScanError::Profile("ds:Reference is empty".into()));
    }
    let (digest_algorithm, digest_present) = parse_reference(s)?;
    if let Some((_, local, _, _)) = next_child(s, P)? {
        return Err(ScanError::Profile(if local == "Reference" {
            "SignedInfo has more than one Reference: exactly one (URI=\"\") is allowed".into()
        } else {
            format!("unexpected '{local}' after Reference in SignedInfo")
        }));
    }
    Ok((signature_algorithm, digest_algorithm, digest_present))
}

/// Reads the optional `InclusiveNamespaces` child of an exc-c14n algorithm element; its
/// PrefixList must be absent or empty.
fn parse_c14n_params(s: &mut Scanner<'_>, empty: bool, element: &str) -> Result<(), ScanError> {
    if empty {
        return Ok(());
    }
    let mut seen = false;
    while let Some((ns, local, start, child_empty)) = next_child(s, element)? {
        if ns != Ns::ExcC14n || local != "InclusiveNamespaces" || seen {
            return Err(ScanError::Profile(format!(
                "unexpected '{local}' inside {element}"
            )));
        }
        seen = true;
        let attrs = check_attrs(&start, "ec:InclusiveNamespaces", &["PrefixList"])?;
        if let Some(list) = attr(&attrs, "PrefixList")
            && !list.trim().is_empty()
        {
            return Err(ScanError::Profile(format!(
                "InclusiveNamespaces PrefixList=\"{list}\" is not allowed: it must be absent \
                 or empty"
            )));
        }
        expect_no_content(s, child_empty, "ec:InclusiveNamespaces")?;
    }
    Ok(())
}

/// Parses `Reference` content: exactly the two transforms, the digest method and value.
fn parse_reference(s: &mut Scanner<'_>) -> Result<(DigestAlgorithm, bool), ScanError> {
    const P: &str = "ds:Reference";
    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile("Reference has no Transforms".into()));
    };
    require_dsig(ns, &local, P)?;
    if local != "Transforms" {
        return Err(ScanError::Profile(format!(
            "Reference must start with Transforms (enveloped-signature, exc-c14n), found \
             ds:{local}"
        )));
    }
    check_attrs(&start, "ds:Transforms", &[])?;
    if empty {
        return Err(ScanError::Profile("ds:Transforms is empty".into()));
    }
    let mut count = 0usize;
    while let Some((ns, local, start, t_empty)) = next_child(s, "ds:Transforms")? {
        require_dsig(ns, &local, "ds:Transforms")?;
        if local != "Transform" {
            return Err(ScanError::Profile(format!(
                "unexpected ds:{local} inside Transforms"
            )));
        }
        let attrs = check_attrs(&start, "ds:Transform", &["Algorithm"])?;
        let uri = attr(&attrs, "Algorithm").unwrap_or("").to_owned();
        count += 1;
        match (count, uri.as_str()) {
            (1, ENVELOPED_SIGNATURE) => expect_no_content(s, t_empty, "ds:Transform")?,
            (2, EXC_C14N) => parse_c14n_params(s, t_empty, "ds:Transform")?,
            (n, _) if n > 2 => {
                return Err(ScanError::Profile(format!(
                    "Reference has more than two transforms (extra: '{uri}'): only \
                     enveloped-signature then exc-c14n are allowed"
                )));
            }
            _ => {
                return Err(ScanError::Profile(format!(
                    "Transform '{uri}' is not allowed at position {count}: the transforms \
                     must be exactly enveloped-signature then exc-c14n"
                )));
            }
        }
    }
    if count != 2 {
        return Err(ScanError::Profile(format!(
            "Reference has {count} transform(s): exactly enveloped-signature then exc-c14n \
             are required"
        )));
    }

    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile("Reference has no DigestMethod".into()));
    };
    require_dsig(ns, &local, P)?;
    if local != "DigestMethod" {
        return Err(ScanError::Profile(format!(
            "Transforms must be followed by DigestMethod, found ds:{local}"
        )));
    }
    let attrs = check_attrs(&start, "ds:DigestMethod", &["Algorithm"])?;
    let uri = attr(&attrs, "Algorithm").unwrap_or("");
    let Some(digest) = DigestAlgorithm::from_uri(uri) else {
        return Err(ScanError::Profile(format!(
            "DigestMethod {} is not allowed (accepted: sha256, sha384, sha512)",
            describe_refused(uri)
        )));
    };
    expect_no_content(s, empty, "ds:DigestMethod")?;

    let Some((ns, local, start, empty)) = next_child(s, P)? else {
        return Err(ScanError::Profile("Reference has no DigestValue".into()));
    };
    require_dsig(ns, &local, P)?;
    if local != "DigestValue" {
        return Err(ScanError::Profile(format!(
            "DigestMethod must be followed by DigestValue, found ds:{local}"
        )));
    }
    check_attrs(&start, "ds:DigestValue", &[])?;
    let text = read_text(s, empty, "ds:DigestValue")?;
    let present = !decode_base64(&text, "ds:DigestValue")?.is_empty();
    if let Some((_, local, _, _)) = next_child(s, P)? {
        return Err(ScanError::Profile(format!(
            "unexpected '{local}' after DigestValue in Reference"
        )));
    }
    Ok((digest, present))
}

/// Parses `KeyInfo` content and returns the decoded certificates.
fn parse_key_info(s: &mut Scanner<'_>, empty: bool) -> Result<Vec<Vec<u8>>, ScanError> {
    const P: &str = "ds:KeyInfo";
    let mut certs = Vec::new();
    if !empty {
        while let Some((ns, local, start, child_empty)) = next_child(s, P)? {
            require_dsig(ns, &local, P)?;
            match local.as_str() {
                "X509Data" => {
                    check_attrs(&start, "ds:X509Data", &[])?;
                    parse_x509_data(s, child_empty, &mut certs)?;
                }
                "KeyName" => {
                    check_attrs(&start, "ds:KeyName", &[])?;
                    read_text(s, child_empty, "ds:KeyName")?;
                }
                "KeyValue" => {
                    check_attrs(&start, "ds:KeyValue", &[])?;
                    skip_key_value(s, child_empty)?;
                }
                "RetrievalMethod" => {
                    return Err(ScanError::Profile(
                        "ds:RetrievalMethod is not allowed: keys are never fetched from \
                         references"
                            .into(),
                    ));
                }
                other => {
                    return Err(ScanError::Profile(format!(
                        "ds:{other} is not allowed in KeyInfo (only X509Data, with optional \
                         KeyName/KeyValue)"
                    )));
                }
            }
            if certs.len() > s.limits.max_certificates {
                return Err(ScanError::Malformed(format!(
                    "KeyInfo carries more than {} certificates",
                    s.limits.max_certificates
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(ScanError::Profile(
            "KeyInfo carries no X509Data/X509Certificate: the signer's certificate is \
             required (KeyName or KeyValue alone are not accepted)"
                .into(),
        ));
    }
    Ok(certs)
}

fn parse_x509_data(
    s: &mut Scanner<'_>,
    empty: bool,
    certs: &mut Vec<Vec<u8>>,
) -> Result<(), ScanError> {
    const P: &str = "ds:X509Data";
    if empty {
        return Ok(());
    }
    while let Some((ns, local, start, child_empty)) = next_child(s, P)? {
        require_dsig(ns, &local, P)?;
        match local.as_str() {
            "X509Certificate" => {
                check_attrs(&start, "ds:X509Certificate", &[])?;
                let text = read_text(s, child_empty, "ds:X509Certificate")?;
                let der = decode_base64(&text, "ds:X509Certificate")?;
                if der.is_empty() {
                    return Err(ScanError::Profile("empty ds:X509Certificate".into()));
                }
                certs.push(der);
            }
            "X509SubjectName" | "X509SKI" => {
                check_attrs(&start, "ds:X509Data child", &[])?;
                read_text(s, child_empty, "ds:X509Data child")?;
            }
            "X509IssuerSerial" => {
                check_attrs(&start, "ds:X509IssuerSerial", &[])?;
                if !child_empty {
                    while let Some((ns, local, _, e)) = next_child(s, "ds:X509IssuerSerial")? {
                        require_dsig(ns, &local, "ds:X509IssuerSerial")?;
                        if local != "X509IssuerName" && local != "X509SerialNumber" {
                            return Err(ScanError::Profile(format!(
                                "unexpected ds:{local} in X509IssuerSerial"
                            )));
                        }
                        read_text(s, e, "ds:X509IssuerSerial child")?;
                    }
                }
            }
            "X509CRL" => {
                return Err(ScanError::Profile(
                    "X509CRL in KeyInfo is not accepted: CRLs come from the node's \
                     configuration"
                        .into(),
                ));
            }
            other => {
                return Err(ScanError::Profile(format!(
                    "ds:{other} is not allowed in X509Data"
                )));
            }
        }
    }
    Ok(())
}

/// Skips an ignored `KeyValue` subtree; only XML-DSig (1.0/1.1) elements and text are
/// tolerated inside it.
fn skip_key_value(s: &mut Scanner<'_>, empty: bool) -> Result<(), ScanError> {
    if empty {
        return Ok(());
    }
    let mut depth = 1usize;
    while depth > 0 {
        match s.next()? {
            Ev::Open {
                ns, local, empty, ..
            } => {
                if ns != Ns::Dsig && ns != Ns::Dsig11 {
                    return Err(ScanError::Profile(format!(
                        "element '{local}' in {} is not allowed inside ds:KeyValue",
                        ns.label()
                    )));
                }
                if !empty {
                    depth += 1;
                }
            }
            Ev::Close { .. } => depth -= 1,
            Ev::Text { cdata, .. } => {
                if cdata {
                    return Err(ScanError::Profile("CDATA inside ds:KeyValue".into()));
                }
            }
            Ev::Eof => {
                return Err(ScanError::Malformed(
                    "document ends inside ds:KeyValue".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `xml` may hold more than `limit` elements: counts every `<` followed by a name's
/// first character, so it never counts too few (a `<` in a comment or CDATA section counts).
pub(crate) fn more_elements_than(xml: &str, limit: usize) -> bool {
    let bytes = xml.as_bytes();
    let mut count = 0usize;
    for pair in bytes.windows(2).filter(|w| w[0] == b'<') {
        let b = pair[1];
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80 {
            count += 1;
            if count > limit {
                return true;
            }
        }
    }
    false
}

/// The packet as UTF-8 text, without a leading byte-order mark.
pub(crate) fn as_utf8(bytes: &[u8]) -> Result<&str, ScanError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        ScanError::Malformed(format!(
            "the packet is not valid UTF-8 (first bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ScanLimits = ScanLimits {
        max_depth: 64,
        max_elements: 10_000,
        max_certificates: 8,
    };

    fn packet(header_extra: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <edXML xmlns=\"{QCVN_NS}\" xmlns:edXML=\"{QCVN_NS}\">\
             <edXML:edXMLEnvelope><edXML:edXMLHeader>\
             <edXML:MessageHeader><edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId>\
             </edXML:From></edXML:MessageHeader>{header_extra}</edXML:edXMLHeader>\
             </edXML:edXMLEnvelope></edXML>\n"
        )
    }

    fn signature(key_info: &str) -> String {
        format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>\
             <ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>\
             <ds:SignatureMethod Algorithm=\"{}\"/>\
             <ds:Reference URI=\"\"><ds:Transforms>\
             <ds:Transform Algorithm=\"{ENVELOPED_SIGNATURE}\"/>\
             <ds:Transform Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces \
             xmlns:ec=\"{EXC_C14N}\" PrefixList=\"\"/></ds:Transform>\
             </ds:Transforms><ds:DigestMethod Algorithm=\"{}\"/>\
             <ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo>\
             <ds:SignatureValue>QUJD&#13;\nREVG</ds:SignatureValue>\
             <ds:KeyInfo>{key_info}</ds:KeyInfo></ds:Signature>",
            SignatureAlgorithm::RsaSha256.uri(),
            DigestAlgorithm::Sha256.uri()
        )
    }

    const CERTS: &str = "<ds:KeyName>x</ds:KeyName><ds:X509Data>\
        <ds:X509SubjectName>CN=a &amp; b</ds:X509SubjectName>\
        <ds:X509Certificate>AQID\n BAU=</ds:X509Certificate>\
        <ds:X509Certificate>Bgc=</ds:X509Certificate></ds:X509Data>";

    fn profile_err(xml: &str) -> String {
        match scan(xml, LIMITS) {
            Err(ScanError::Profile(what)) => what,
            other => panic!("expected a profile error, got {other:?}"),
        }
    }

    fn malformed_err(xml: &str) -> String {
        match scan(xml, LIMITS) {
            Err(ScanError::Malformed(what)) => what,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn unsigned_packet_layout() {
        let xml = packet("");
        let layout = scan(&xml, LIMITS).unwrap();
        assert!(xml[layout.header_end..].starts_with("</edXML:edXMLHeader>"));
        assert!(matches!(layout.signature, SignatureState::None));
    }

    #[test]
    fn status_wrapper_and_legacy_placeholder() {
        let xml = packet("").replace("MessageHeader", "Status");
        scan(&xml, LIMITS).unwrap();
        let legacy = packet("<Signature><SignedInfo/></Signature>");
        assert!(matches!(
            scan(&legacy, LIMITS).unwrap().signature,
            SignatureState::Legacy
        ));
    }

    #[test]
    fn signed_packet_model() {
        let xml = packet(&signature(CERTS));
        let SignatureState::Signed(model) = scan(&xml, LIMITS).unwrap().signature else {
            panic!("not signed");
        };
        assert_eq!(model.signature_algorithm, SignatureAlgorithm::RsaSha256);
        assert_eq!(model.digest_algorithm, DigestAlgorithm::Sha256);
        assert_eq!(model.certificates, vec![vec![1, 2, 3, 4, 5], vec![6, 7]]);
        assert!(model.values_present);
    }

    #[test]
    fn envelope_shape_rules() {
        assert!(profile_err("<root/>").contains("root element must be edXML"));
        let no_header = format!("<edXML xmlns=\"{QCVN_NS}\"><edXMLEnvelope/></edXML>");
        assert!(profile_err(&no_header).contains("no edXMLHeader"));
        let no_message = format!(
            "<edXML xmlns=\"{QCVN_NS}\"><edXMLEnvelope><edXMLHeader/></edXMLEnvelope></edXML>"
        );
        assert!(profile_err(&no_message).contains("no MessageHeader"));
        let header_elsewhere = packet("").replace(
            "</edXML:edXMLEnvelope>",
            "<edXML:edXMLBody><edXML:edXMLHeader/></edXML:edXMLBody></edXML:edXMLEnvelope>",
        );
        assert!(profile_err(&header_elsewhere).contains("more than one edXMLHeader"));
        let message_elsewhere = packet("").replace(
            "</edXML:edXMLEnvelope>",
            "<edXML:edXMLBody><edXML:MessageHeader/></edXML:edXMLBody></edXML:edXMLEnvelope>",
        );
        assert!(profile_err(&message_elsewhere).contains("MessageHeader found outside"));
    }

    #[test]
    fn well_formedness_rules() {
        assert!(malformed_err(&packet("<a:b/>")).contains("undeclared namespace prefix"));
        assert!(malformed_err(&(packet("") + "tail")).contains("text outside the root"));
        assert!(malformed_err(&packet("<x>&nbsp;</x>")).contains("undefined entity"));
        assert!(malformed_err(&packet("<x></y>")).contains("not well-formed"));
        let unclosed = packet("").replace("</edXML>\n", "");
        assert!(malformed_err(&unclosed).contains("ends before the root element is closed"));
        let latin1 = packet("").replace("UTF-8", "ISO-8859-1");
        assert!(malformed_err(&latin1).contains("must be UTF-8"));
        let deep = packet(&format!("{}{}", "<d>".repeat(70), "</d>".repeat(70)));
        assert!(malformed_err(&deep).contains("deeper than 64"));
        let many = packet(&"<e/>".repeat(10_001));
        assert!(malformed_err(&many).contains("more than 10000 elements"));
        assert!(profile_err(&packet("<?pi x?>")).contains("processing instruction"));
        assert!(profile_err(&packet("<!-- c -->")).contains("comment"));
        assert!(matches!(as_utf8(b"\xEF\xBB\xBF<edXML/>"), Ok("<edXML/>")));
        assert!(matches!(
            as_utf8(b"<a>\xFF</a>"),
            Err(ScanError::Malformed(_))
        ));
    }

    #[test]
    fn key_info_rules() {
        let crl = signature("<ds:X509Data><ds:X509CRL>AAAA</ds:X509CRL></ds:X509Data>");
        assert!(profile_err(&packet(&crl)).contains("X509CRL"));
        let empty = signature("");
        assert!(profile_err(&packet(&empty)).contains("no X509Data/X509Certificate"));
        let bad_b64 =
            signature("<ds:X509Data><ds:X509Certificate>@@</ds:X509Certificate></ds:X509Data>");
        assert!(profile_err(&packet(&bad_b64)).contains("not valid base64"));
        let no_key_info =
            signature(CERTS).replace(&format!("<ds:KeyInfo>{CERTS}</ds:KeyInfo>"), "");
        assert!(profile_err(&packet(&no_key_info)).contains("no KeyInfo"));
        let too_many = signature(&format!(
            "<ds:X509Data>{}</ds:X509Data>",
            "<ds:X509Certificate>AQID</ds:X509Certificate>".repeat(9)
        ));
        assert!(malformed_err(&packet(&too_many)).contains("more than 8 certificates"));
    }

    #[test]
    fn signed_info_rules() {
        let sig = signature(CERTS);
        let attr = sig.replace(
            "<ds:Reference URI=\"\">",
            "<ds:Reference URI=\"\" Foo=\"1\">",
        );
        assert!(profile_err(&packet(&attr)).contains("attribute 'Foo'"));
        let text = sig.replace("<ds:SignedInfo>", "<ds:SignedInfo>text");
        assert!(profile_err(&packet(&text)).contains("unexpected text"));
        let no_uri = sig.replace("<ds:Reference URI=\"\">", "<ds:Reference>");
        assert!(profile_err(&packet(&no_uri)).contains("without a URI"));
        let cdata = sig.replace("QUJD&#13;\nREVG", "<![CDATA[QUJD]]>");
        assert!(profile_err(&packet(&cdata)).contains("CDATA"));
        let empty_values = sig.replace("AAAA", "");
        let SignatureState::Signed(model) = scan(&packet(&empty_values), LIMITS).unwrap().signature
        else {
            panic!("not signed");
        };
        assert!(!model.values_present);
    }
}
