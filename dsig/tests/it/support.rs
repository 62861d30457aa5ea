//! Test support for the dsig tests: a throw-away PKI made with rcgen and edXML packets.
//!
//! Included with `#[path]` by the library's unit tests, by the `tests/it` test binary
//! and by the dsig benchmark, so it depends only on rcgen, time and std. Nothing here is
//! used by production code.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// OID of the subject UID attribute that carries the agency code.
pub(super) const UID_OID: [u64; 7] = [0, 9, 2342, 19200300, 100, 1, 1];

static SERIAL: AtomicU64 = AtomicU64::new(0x1000);

fn next_serial() -> SerialNumber {
    let n = SERIAL.fetch_add(1, Ordering::Relaxed);
    // Time-based prefix keeps serials distinct across processes sharing files.
    let t = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let mut bytes = vec![0x11];
    bytes.extend_from_slice(&(t ^ n.rotate_left(40)).to_be_bytes());
    bytes.extend_from_slice(&n.to_be_bytes());
    SerialNumber::from(bytes)
}

/// Key algorithm for generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa2048,
    EcP256,
}

fn gen_key(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
        }
        KeyKind::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
    }
}

/// A CA (root or intermediate) able to issue certificates and CRLs.
pub(super) struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

/// An end-entity certificate with its PKCS#8 key.
pub(super) struct Leaf {
    pub key_pem: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub serial: SerialNumber,
}

fn dn(name: &str, agency: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "VN");
    dn.push(DnType::OrganizationName, name);
    dn.push(DnType::CommonName, name);
    if let Some(code) = agency {
        dn.push(DnType::CustomDnType(UID_OID.to_vec()), code);
    }
    dn
}

fn ca_params(
    name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(next_serial());
    params
}

/// Default validity: from yesterday for ten years.
pub(super) fn default_validity() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::days(1), now + Duration::days(3650))
}

impl Ca {
    /// A self-signed root CA (EC P-256).
    pub(super) fn root(name: &str) -> Ca {
        let (nb, na) = default_validity();
        Self::root_with(name, KeyKind::EcP256, nb, na)
    }

    /// A self-signed root with a chosen key and validity.
    pub(super) fn root_with(
        name: &str,
        kind: KeyKind,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Ca {
        let key = gen_key(kind);
        let params = ca_params(name, not_before, not_after);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            params,
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An intermediate CA issued by this CA.
    pub(super) fn intermediate(&self, name: &str) -> Ca {
        let (nb, na) = default_validity();
        let key = gen_key(KeyKind::EcP256);
        let params = ca_params(name, nb, na);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            params,
            key,
        }
    }

    /// A signing certificate for an agency, valid from yesterday for a year.
    pub(super) fn leaf(&self, agency: &str, name: &str, kind: KeyKind) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.leaf_with(
            agency,
            name,
            kind,
            now - Duration::days(1),
            now + Duration::days(365),
            true,
        )
    }

    /// A signing certificate with explicit validity; `signing_usage` = false gives a
    /// keyEncipherment-only certificate.
    pub(super) fn leaf_with(
        &self,
        agency: &str,
        name: &str,
        kind: KeyKind,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        signing_usage: bool,
    ) -> Leaf {
        let key = gen_key(kind);
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name, Some(agency));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if signing_usage {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ]
        } else {
            vec![KeyUsagePurpose::KeyEncipherment]
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let serial = next_serial();
        params.serial_number = Some(serial.clone());
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Leaf {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            serial,
        }
    }

    /// A CRL listing `revoked` serials, revoked at `revoked_at`.
    pub(super) fn crl(
        &self,
        revoked: &[&SerialNumber],
        revoked_at: OffsetDateTime,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> String {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: (*s).clone(),
                    revocation_time: revoked_at,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).unwrap().pem().unwrap()
    }
}

impl Leaf {
    /// The chain PEM a signer loads: this certificate followed by `intermediates`.
    pub(super) fn chain_pem(&self, intermediates: &[&Ca]) -> String {
        let mut out = self.cert_pem.clone();
        for ca in intermediates {
            out.push_str(&ca.cert_pem);
        }
        out
    }
}

/// A document packet in the canonical shape, from agency `from`, with one attachment whose
/// base64 payload is `attachment_b64`.
pub(super) fn document_packet(from: &str, subject: &str, attachment_b64: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope>
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>{from}</edXML:OrganId>
          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
        </edXML:From>
        <edXML:To>
          <edXML:OrganId>000.00.00.H41</edXML:OrganId>
          <edXML:OrganName>UBND Tỉnh Nghệ An</edXML:OrganName>
        </edXML:To>
        <edXML:DocumentId>{from},2026/11/20,7816/VPCP-TTĐT</edXML:DocumentId>
        <edXML:Code>
          <edXML:CodeNumber>7816</edXML:CodeNumber>
          <edXML:CodeNotation>VPCP-TTĐT</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:Place>Hà Nội</edXML:Place>
          <edXML:PromulgationDate>2026/11/20</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:DocumentType>
          <edXML:Type>1</edXML:Type>
          <edXML:TypeName>Công văn</edXML:TypeName>
        </edXML:DocumentType>
        <edXML:Subject>{subject}</edXML:Subject>
        <edXML:OtherInfo>
          <edXML:Priority>0</edXML:Priority>
        </edXML:OtherInfo>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader>
          <edXML:OrganId>{from}</edXML:OrganId>
          <edXML:Timestamp>2026/11/20 09:15:00</edXML:Timestamp>
        </edXML:TraceHeader>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>congvan.pdf</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>congvan.pdf</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <edXML:ContentTransferEncoded>{attachment_b64}</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"#
    )
}

/// A small document packet from `from`.
pub(super) fn small_packet(from: &str) -> String {
    document_packet(
        from,
        "V/v kết nối, liên thông phần mềm quản lý văn bản",
        "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==",
    )
}

/// Deterministic pseudo-random bytes (xorshift), for large attachments.
pub(super) fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A document packet of roughly `total` bytes (the attachment fills the rest).
pub(super) fn packet_of_size(from: &str, total: usize) -> String {
    use base64::Engine as _;
    let overhead = small_packet(from).len();
    let raw = total.saturating_sub(overhead) / 4 * 3;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pseudo_random_bytes(raw, 42));
    document_packet(from, "Báo cáo tổng hợp", &b64)
}

/// Whether `xmlsec1` is on PATH.
pub(super) fn xmlsec1_available() -> bool {
    std::process::Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
