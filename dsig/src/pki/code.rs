//! Agency codes as the PKI accepts them.
//!
//! The standard form is `NNN.NN.NN.XNN` (regular expression `^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$`,
//! ASCII digits and an ASCII capital letter), e.g. `000.00.00.G22`. A non-standard code may be
//! accepted on request, but every code names files under `agencies/`, so whatever is accepted
//! must be a safe single file-name component: that check is never waived.

use super::PkiError;

/// Shape of a standard code: `d` an ASCII digit, `.` a full stop, `A` an ASCII capital letter.
const STANDARD_SHAPE: &[u8; 13] = b"ddd.dd.dd.Add";

/// Longest code accepted even when non-standard codes are allowed.
const MAX_CODE_LEN: usize = 64;

/// Checks `code` against the standard form; on failure says which character breaks it.
pub fn check_standard_agency_code(code: &str) -> Result<(), String> {
    let count = code.chars().count();
    if count != STANDARD_SHAPE.len() {
        return Err(format!(
            "it has {count} characters instead of {}",
            STANDARD_SHAPE.len()
        ));
    }
    for (index, (c, &shape)) in code.chars().zip(STANDARD_SHAPE.iter()).enumerate() {
        let (fits, expected) = match shape {
            b'd' => (c.is_ascii_digit(), "a digit 0-9"),
            b'A' => (c.is_ascii_uppercase(), "a capital letter A-Z"),
            _ => (c == '.', "a full stop"),
        };
        if !fits {
            return Err(format!(
                "character {} is {c:?}, expected {expected}",
                index + 1
            ));
        }
    }
    Ok(())
}

/// True when `code` has the standard form `NNN.NN.NN.XNN`.
pub fn is_standard_agency_code(code: &str) -> bool {
    check_standard_agency_code(code).is_ok()
}

/// Accepts `code` for a certificate: standard form unless `allow_nonstandard`, and always a
/// safe file-name component.
pub(crate) fn accept_agency_code(code: &str, allow_nonstandard: bool) -> Result<(), PkiError> {
    if !allow_nonstandard {
        check_standard_agency_code(code).map_err(|reason| PkiError::NonStandardCode {
            code: code.to_owned(),
            reason,
        })?;
    }
    check_file_safe_code(code)
}

/// Accepts `code` as the stem of file names under `agencies/` (used on its own when reading
/// certificates back, where a non-standard code may have been issued earlier).
pub(crate) fn check_file_safe_code(code: &str) -> Result<(), PkiError> {
    let unsafe_code = |reason: &str| PkiError::UnsafeCode {
        code: code.to_owned(),
        reason: reason.to_owned(),
    };
    if code.is_empty() {
        return Err(unsafe_code("it is empty"));
    }
    if code.len() > MAX_CODE_LEN {
        return Err(unsafe_code("it is longer than 64 bytes"));
    }
    if code.starts_with('.') {
        return Err(unsafe_code("it starts with a full stop"));
    }
    if let Some(bad) = code
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(unsafe_code(&format!(
            "it contains {bad:?}; only ASCII letters, digits, '.', '-' and '_' are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes_pass() {
        for code in ["000.00.00.G22", "000.00.00.H41", "123.45.67.Z99"] {
            assert!(is_standard_agency_code(code), "{code}");
            accept_agency_code(code, false).unwrap();
        }
    }

    #[test]
    fn each_deviation_is_named() {
        let cases = [
            (
                "000.00.00.g22",
                "character 11 is 'g', expected a capital letter A-Z",
            ),
            ("000.00.00.G2", "it has 12 characters instead of 13"),
            ("000-00.00.G22", "character 4 is '-', expected a full stop"),
            ("0a0.00.00.G22", "character 2 is 'a', expected a digit 0-9"),
            // An Arabic-Indic digit three is a digit, but not an ASCII one.
            (
                "000.00.00.G2\u{0663}",
                "character 13 is '\u{663}', expected a digit 0-9",
            ),
            ("000.00.00.G22 ", "it has 14 characters instead of 13"),
        ];
        for (code, expected) in cases {
            assert_eq!(check_standard_agency_code(code).unwrap_err(), expected);
            assert!(!is_standard_agency_code(code));
        }
    }

    #[test]
    fn nonstandard_needs_permission_and_stays_file_safe() {
        let err = accept_agency_code("G22", false).unwrap_err();
        assert!(matches!(err, PkiError::NonStandardCode { .. }), "{err}");
        assert!(err.to_string().contains("--allow-nonstandard-code"));
        accept_agency_code("G22", true).unwrap();
        accept_agency_code("test-agency_1.x", true).unwrap();
        for bad in ["", "../ca", "a/b", ".hidden", "a b", "ca\u{0}", "ả"] {
            let err = accept_agency_code(bad, true).unwrap_err();
            assert!(matches!(err, PkiError::UnsafeCode { .. }), "{bad:?}: {err}");
        }
        assert!(accept_agency_code(&"A".repeat(65), true).is_err());
    }
}
