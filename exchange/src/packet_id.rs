//! Packet identity: the SHA-256 of a packet's signed bytes.
//!
//! Two submissions of the same bytes are the same packet; any change, even one byte of
//! whitespace, is another packet. Written as 64 lower-case hex digits on the wire and in logs.

use std::fmt;
use std::str::FromStr;

/// SHA-256 of a packet's exact signed bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(pub [u8; 32]);

impl PacketId {
    /// Computes the id of `bytes`.
    pub fn of(bytes: &[u8]) -> PacketId {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_ref());
        PacketId(id)
    }

    /// Lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes (database keys).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketId({})", self.to_hex())
    }
}

/// A string that is not a packet id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a packet id (expected 64 lower-case hex digits, the SHA-256 of the packet)")]
pub struct BadPacketId(pub String);

impl FromStr for PacketId {
    type Err = BadPacketId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !crate::protocol::is_packet_id(s) {
            return Err(BadPacketId(s.chars().take(80).collect()));
        }
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id).map_err(|_| BadPacketId(s.to_string()))?;
        Ok(PacketId(id))
    }
}

impl serde::Serialize for PacketId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PacketId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_round_trip() {
        let id = PacketId::of(b"abc");
        assert_eq!(
            id.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(id.to_hex().parse::<PacketId>().unwrap(), id);
        assert!("xyz".parse::<PacketId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PacketId>(&json).unwrap(), id);
    }
}
