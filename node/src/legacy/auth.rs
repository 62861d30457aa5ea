//! The SDK's authentication: an HMAC-SHA256 over the exact bytes of the
//! `XroadVnpt-sign-header` value, keyed with the system's secret as UTF-8 text, and every
//! entry of that JSON object checked against the header actually sent.
//!
//! Invariants: the HMAC is verified on the raw header bytes (never on re-serialised JSON) and
//! compared in constant time; an unknown system costs the same HMAC as a known one; no
//! freshness window on `timestamp` (the SDK fixes it for the life of its service object).

use aws_lc_rs::hmac;
use axum::http::HeaderMap;

/// Prefix of every SDK header.
pub const PREFIX: &str = "XroadVnpt-";

/// A header sent by the SDK, `XroadVnpt-<key>`, matched case-insensitively; bytes that are not
/// UTF-8 are replaced.
pub fn header(h: &HeaderMap, key: &str) -> Option<String> {
    h.get(format!("{PREFIX}{key}").as_str())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A registered system and its secret.
#[derive(Clone)]
pub struct System {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Checks the request's signature; `required` are the header keys (without the prefix) the
/// signed set must include beside `systemid`. Returns the caller, or why it is refused.
pub fn authenticate<'a>(
    systems: &'a [System],
    h: &HeaderMap,
    required: &[&str],
) -> Result<&'a System, String> {
    let Some(system_id) = header(h, "systemid") else {
        return Err("XroadVnpt-systemid is missing".into());
    };
    let Some(signed) = h.get(format!("{PREFIX}sign-header").as_str()) else {
        return Err("XroadVnpt-sign-header is missing".into());
    };
    let Some(given) = header(h, "hash-header") else {
        return Err("XroadVnpt-hash-header is missing".into());
    };
    let system = systems.iter().find(|s| s.id == system_id);
    // An unknown system costs an HMAC too.
    let secret = system.map_or("unknown system: no secret", |s| s.secret.as_str());
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::decode(given.trim()).unwrap_or_default();
    let verified = hmac::verify(&key, signed.as_bytes(), &tag).is_ok();
    let Some(system) = system else {
        return Err(format!(
            "system {system_id:?} is not registered at this node"
        ));
    };
    if !verified {
        return Err(
            "XroadVnpt-hash-header is not the HMAC of XroadVnpt-sign-header with this system's \
             secret"
                .into(),
        );
    }
    let entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(signed.as_bytes())
            .map_err(|e| format!("XroadVnpt-sign-header is not a JSON object: {e}"))?;
    let mut covered: Vec<String> = Vec::new();
    for (name, value) in &entries {
        let Some(value) = value.as_str() else {
            return Err(format!("XroadVnpt-sign-header: {name} is not a string"));
        };
        let key = name
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &name[PREFIX.len()..])
            .ok_or_else(|| format!("XroadVnpt-sign-header: {name:?} is not an {PREFIX} header"))?;
        match header(h, key) {
            Some(actual) if actual == value => covered.push(key.to_ascii_lowercase()),
            Some(_) => return Err(format!("header {name} differs from its signed value")),
            None => return Err(format!("header {name} is signed but not sent")),
        }
    }
    for need in std::iter::once("systemid").chain(required.iter().copied()) {
        if !covered.iter().any(|c| c == need) {
            return Err(format!("XroadVnpt-{need} is not covered by the signature"));
        }
    }
    Ok(system)
}

/// The headers an SDK client sends for `options` (key, value), signed with `secret` as the
/// SDK signs them: every option plus `systemid`, in the sign-header. For the demo and for
/// tools that call a node's legacy API the way a document system does.
pub fn sdk_headers(
    system_id: &str,
    secret: &str,
    options: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![(format!("{PREFIX}systemid"), system_id.to_string())];
    for (k, v) in options {
        out.push((format!("{PREFIX}{k}"), (*v).to_string()));
    }
    let json = serde_json::Value::Object(
        out.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
    .to_string();
    let keys: Vec<String> = out
        .iter()
        .map(|(k, _)| k[PREFIX.len()..].to_string())
        .collect();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::encode(hmac::sign(&key, json.as_bytes()).as_ref());
    out.push((format!("{PREFIX}sign-header-key"), keys.join(";")));
    out.push((format!("{PREFIX}sign-header"), json));
    out.push((format!("{PREFIX}hash-header"), tag));
    out
}

/// The SDK's `hash-file`: SHA-256 of the file, each byte in lower-case hex **without** zero
/// padding (0x05 → `5`).
pub fn sdk_hash_file(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, json: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hex::encode(hmac::sign(&key, json.as_bytes()).as_ref())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_sdks_signature_is_checked_on_the_raw_bytes_and_against_the_headers() {
        let systems = vec![System {
            id: "qlvb".into(),
            secret: "c2VjcmV0".into(),
        }];
        let json = r#"{"XroadVnpt-from":"000.00.00.G22","XroadVnpt-systemid":"qlvb"}"#;
        let good = headers(&[
            ("XroadVnpt-systemid", "qlvb"),
            ("xroadvnpt-FROM", "000.00.00.G22"),
            ("XroadVnpt-sign-header", json),
            ("XroadVnpt-hash-header", &sign("c2VjcmV0", json)),
        ]);
        assert_eq!(authenticate(&systems, &good, &["from"]).unwrap().id, "qlvb");
        // Wrong secret.
        let mut bad = good.clone();
        bad.insert(
            "XroadVnpt-hash-header",
            sign("other", json).parse().unwrap(),
        );
        assert!(
            authenticate(&systems, &bad, &["from"])
                .unwrap_err()
                .contains("HMAC")
        );
        // A header changed after signing.
        let mut bad = good.clone();
        bad.insert("XroadVnpt-from", "000.00.00.H41".parse().unwrap());
        assert!(
            authenticate(&systems, &bad, &["from"])
                .unwrap_err()
                .contains("differs")
        );
        // The same JSON re-serialised (spaces) no longer matches its HMAC.
        let spaced = r#"{"XroadVnpt-from": "000.00.00.G22", "XroadVnpt-systemid": "qlvb"}"#;
        let mut bad = good.clone();
        bad.insert("XroadVnpt-sign-header", spaced.parse().unwrap());
        assert!(authenticate(&systems, &bad, &["from"]).is_err());
        // A required header left unsigned.
        assert!(
            authenticate(&systems, &good, &["from", "hash-file"])
                .unwrap_err()
                .contains("hash-file")
        );
        // An unknown system.
        let mut bad = good.clone();
        bad.insert("XroadVnpt-systemid", "other".parse().unwrap());
        assert!(
            authenticate(&systems, &bad, &[])
                .unwrap_err()
                .contains("not registered")
        );
    }

    #[test]
    fn hash_file_drops_leading_zeros_byte_by_byte() {
        // SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 649b934c a495991b 7852b855
        assert_eq!(
            sdk_hash_file(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // A digest with a byte under 0x10 is shorter than 64 characters.
        let short = (0u32..)
            .map(|i| i.to_string())
            .find(|s| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
                    .as_ref()
                    .iter()
                    .any(|b| *b < 0x10)
            })
            .unwrap();
        assert!(sdk_hash_file(short.as_bytes()).len() < 64);
    }
}
