//! Encoding of structured records stored as redb values.
//!
//! Records are JSON: self-describing, readable with any tool during an incident, and tolerant
//! of added optional fields when the software is upgraded. Large opaque payloads (signed packet
//! bytes, receipts) are stored raw, never through this codec.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Serialises a record for storage. A record that cannot be serialised (a map with non-string
/// keys, a failing `Serialize`) is an error, never empty bytes that would store silently.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| {
        StoreError::Corrupt(format!(
            "cannot encode a {} for storage: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Reads a stored record back, naming what was expected when the bytes are not a valid record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "cannot decode a stored {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        a: u32,
        b: Option<String>,
    }

    #[test]
    fn round_trip_and_corruption_is_named() {
        let r = R {
            a: 7,
            b: Some("Hà Nội".into()),
        };
        assert_eq!(decode::<R>(&encode(&r).unwrap()).unwrap(), r);
        let err = decode::<R>(b"{not json").unwrap_err().to_string();
        assert!(err.contains("R"), "{err}");
        // JSON object keys must be strings: such a record is refused, not stored as nothing.
        let bad = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
        let err = encode(&bad).unwrap_err().to_string();
        assert!(err.contains("cannot encode"), "{err}");
    }
}
