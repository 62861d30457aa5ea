//! Verifying a packet fetched from the hub, exactly as the hub verified it, before anything
//! of it is stored or acknowledged.
//!
//! Order: the bytes hash to the packet id the hub listed; the signature verifies under the
//! strict profile with a signer chaining to this node's trust anchors (and not revoked); the
//! signer's certificate belongs to the agency in `From/OrganId`; the packet reads as edXML and
//! the reader agrees on the sender; and the packet is addressed to this agency.
//!
//! Invariant: no business field of a packet is used before its signature verified.
//! Blocking and CPU-bound: async callers use `spawn_blocking`.

use dsig::{
    Refusal, SignedPacket, TrustStore, Verdict, VerifyPolicy, check_sender, sender_organ_id,
    verify_packet,
};
use edxml::{Packet, ReadOptions, read};
use exchange::packet_id::PacketId;

/// A packet that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub packet: Packet,
    pub signer: SignedPacket,
}

/// Why a fetched packet is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IncomingError {
    #[error(
        "the bytes received from the hub do not match the packet id: it listed {expected}, the bytes hash \
         to {actual}"
    )]
    IdMismatch { expected: String, actual: String },
    #[error("the signature is refused: {0}")]
    Signature(Refusal),
    #[error("the packet is not signed with a DocAxis signature")]
    Unsigned,
    #[error("{0}")]
    WrongSigner(Refusal),
    #[error("the packet cannot be read as edXML: {0}")]
    Unreadable(String),
    #[error("the signature scanner reads sender {scanner} but the edXML reader reads {reader}")]
    SenderDisagreement { scanner: String, reader: String },
    #[error("the packet is not addressed to this agency ({me}); it is addressed to {to}")]
    NotForUs { me: String, to: String },
}

/// Verifies `bytes` fetched as packet `expected` for agency `me`.
pub fn verify_incoming(
    bytes: &[u8],
    expected: &PacketId,
    trust: &TrustStore,
    me: &str,
) -> Result<Verified, IncomingError> {
    let actual = PacketId::of(bytes);
    if actual != *expected {
        return Err(IncomingError::IdMismatch {
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    let verdict =
        verify_packet(bytes, trust, &VerifyPolicy::default()).map_err(IncomingError::Signature)?;
    let Verdict::Signed(signer) = verdict else {
        return Err(IncomingError::Unsigned);
    };
    let from = sender_organ_id(bytes).map_err(IncomingError::Signature)?;
    check_sender(&signer, &from).map_err(IncomingError::WrongSigner)?;
    let outcome = read(bytes, &ReadOptions::default())
        .map_err(|e| IncomingError::Unreadable(e.to_string()))?;
    let packet = outcome.packet;
    let reader_from = packet.from().organ_id.as_str();
    if reader_from != from {
        return Err(IncomingError::SenderDisagreement {
            scanner: from,
            reader: reader_from.to_string(),
        });
    }
    let to = packet.to();
    if !to.iter().any(|c| c.as_str() == me) {
        return Err(IncomingError::NotForUs {
            me: me.to_string(),
            to: to
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(Verified { packet, signer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outgoing::{SendDocument, compose_document, sign};
    use dsig::SigningIdentity;
    use edxml::{AgencyCode, Organization, write};

    fn certs() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
    }

    fn identity(code: &str) -> SigningIdentity {
        let dir = certs().join("agencies");
        SigningIdentity::from_pem_files(
            &dir.join(format!("{code}.key.pem")),
            &dir.join(format!("{code}.pem")),
        )
        .unwrap()
    }

    fn trust() -> TrustStore {
        TrustStore::from_pem_files(&[&certs().join("ca.pem")], &[&certs().join("crl.pem")]).unwrap()
    }

    fn document(from: &str, to: &str) -> Packet {
        let me = Organization::new(AgencyCode::parse_strict(from).unwrap(), "Cơ quan gửi");
        let req: SendDocument = serde_json::from_value(serde_json::json!({
            "to": [to],
            "subject": "S",
            "code": {"number": "1", "notation": "X"},
        }))
        .unwrap();
        Packet::Document(compose_document(&req, &me).unwrap())
    }

    #[test]
    fn a_good_packet_passes_and_each_failure_is_named() {
        let trust = trust();
        let g22 = identity("000.00.00.G22");
        let good = sign(&document("000.00.00.G22", "000.00.00.H41"), &g22).unwrap();
        let id = PacketId::of(&good);
        let v = verify_incoming(&good, &id, &trust, "000.00.00.H41").unwrap();
        assert_eq!(v.packet.from().organ_id.as_str(), "000.00.00.G22");
        assert_eq!(v.signer.agency_code.as_deref(), Some("000.00.00.G22"));

        let err = verify_incoming(&good, &PacketId::of(b"x"), &trust, "000.00.00.H41").unwrap_err();
        assert!(matches!(err, IncomingError::IdMismatch { .. }), "{err}");

        let err = verify_incoming(&good, &id, &trust, "000.00.00.H14").unwrap_err();
        assert!(matches!(err, IncomingError::NotForUs { .. }), "{err}");

        // Signed by H14 while claiming to come from G22.
        let forged = sign(
            &document("000.00.00.G22", "000.00.00.H41"),
            &identity("000.00.00.H14"),
        )
        .unwrap();
        let err =
            verify_incoming(&forged, &PacketId::of(&forged), &trust, "000.00.00.H41").unwrap_err();
        assert!(matches!(err, IncomingError::WrongSigner(_)), "{err}");
        assert!(err.to_string().contains("000.00.00.H14"), "{err}");

        let unsigned = write(&document("000.00.00.G22", "000.00.00.H41")).unwrap();
        let err = verify_incoming(&unsigned, &PacketId::of(&unsigned), &trust, "000.00.00.H41")
            .unwrap_err();
        assert!(matches!(err, IncomingError::Signature(_)), "{err}");

        let tampered = String::from_utf8(good.clone())
            .unwrap()
            .replace("<edXML:Subject>S<", "<edXML:Subject>T<");
        assert_ne!(tampered.as_bytes(), good.as_slice());
        let err = verify_incoming(
            tampered.as_bytes(),
            &PacketId::of(tampered.as_bytes()),
            &trust,
            "000.00.00.H41",
        )
        .unwrap_err();
        assert!(
            matches!(err, IncomingError::Signature(Refusal::DigestMismatch)),
            "{err}"
        );

        let empty = TrustStore::new();
        let err = verify_incoming(&good, &id, &empty, "000.00.00.H41").unwrap_err();
        assert!(matches!(err, IncomingError::Signature(_)), "{err}");
    }
}
