//! Agency identifier codes (mã định danh, QĐ 20/2020/QĐ-TTg), e.g. `000.00.00.G22`.
//!
//! Invariants: an [`AgencyCode`] always holds a non-empty token without whitespace or control
//! characters, exactly as written by its producer; `is_standard()` tells whether it also matches
//! the national pattern `^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$`. Hierarchy queries (`levels`,
//! `level`, `parent`, `level1`) answer only for standard codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an agency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgencyCodeError {
    #[error("agency code is empty")]
    Empty,
    #[error("agency code {code:?} contains whitespace or a control character")]
    InvalidCharacter { code: String },
    #[error(
        "agency code {code:?} does not match the pattern 000.00.00.A00 (three, two and two digits, then a capital letter and two digits)"
    )]
    NotStandard { code: String },
}

/// The four levels of a standard code, read right to left: `V1V2V3.Z1Z2.Y1Y2.MX1X2` gives
/// level 1 = `MX1X2`, level 2 = `Y1Y2`, level 3 = `Z1Z2`, level 4 = `V1V2V3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgencyLevels {
    /// Group letter of the level-1 unit (`G` ministries, `H` provincial committees, …).
    pub group: char,
    /// Number of the level-1 unit within its group (`22` in `G22`).
    pub unit: u8,
    /// Level-2 number (`Y1Y2`), 0 when unused.
    pub level2: u8,
    /// Level-3 number (`Z1Z2`), 0 when unused.
    pub level3: u8,
    /// Level-4 number (`V1V2V3`), 0 when unused.
    pub level4: u16,
}

/// An agency identifier code as written in a packet or a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode {
    raw: String,
}

impl AgencyCode {
    /// Accepts only codes matching `^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$` (no surrounding spaces).
    pub fn parse_strict(s: &str) -> Result<Self, AgencyCodeError> {
        let code = Self::parse_lenient(s)?;
        if s.len() != code.raw.len() || !code.is_standard() {
            return Err(AgencyCodeError::NotStandard { code: s.to_owned() });
        }
        Ok(code)
    }

    /// Accepts any non-empty token once surrounding whitespace is trimmed, provided it holds no
    /// inner whitespace or control character (legacy codes such as `H37.DN.001` pass).
    pub fn parse_lenient(s: &str) -> Result<Self, AgencyCodeError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(AgencyCodeError::Empty);
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AgencyCodeError::InvalidCharacter { code: t.to_owned() });
        }
        Ok(Self { raw: t.to_owned() })
    }

    /// The code exactly as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the code follows the national pattern.
    pub fn is_standard(&self) -> bool {
        self.levels().is_some()
    }

    /// The four levels, for standard codes.
    pub fn levels(&self) -> Option<AgencyLevels> {
        let b = self.raw.as_bytes();
        if b.len() != 13 || b[3] != b'.' || b[6] != b'.' || b[9] != b'.' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            b[r].iter().try_fold(0u16, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
            })
        };
        let level4 = digits(0..3)?;
        let level3 = u8::try_from(digits(4..6)?).ok()?;
        let level2 = u8::try_from(digits(7..9)?).ok()?;
        if !b[10].is_ascii_uppercase() {
            return None;
        }
        let unit = u8::try_from(digits(11..13)?).ok()?;
        Some(AgencyLevels {
            group: char::from(b[10]),
            unit,
            level2,
            level3,
            level4,
        })
    }

    /// The level-1 unit, group letter and number (`G22` in `000.00.01.G22`), for standard codes.
    pub fn level1(&self) -> Option<&str> {
        self.levels().map(|_| &self.raw[10..])
    }

    /// Depth of the unit in the hierarchy: 1 for `000.00.00.G22`, 2 for `000.00.01.H53`,
    /// 3 for `000.01.01.H53`, 4 when the leftmost level is used. `None` for non-standard codes.
    pub fn level(&self) -> Option<u8> {
        let l = self.levels()?;
        Some(if l.level4 != 0 {
            4
        } else if l.level3 != 0 {
            3
        } else if l.level2 != 0 {
            2
        } else {
            1
        })
    }

    /// The parent unit: the lowest non-zero level set to zero. `None` at level 1 and for
    /// non-standard codes.
    pub fn parent(&self) -> Option<AgencyCode> {
        let level = self.level()?;
        let mut raw = self.raw.clone().into_bytes();
        let range = match level {
            4 => 0..3,
            3 => 4..6,
            2 => 7..9,
            _ => return None,
        };
        raw[range].fill(b'0');
        // Only ASCII digits were replaced by ASCII zeros: the bytes stay valid UTF-8.
        String::from_utf8(raw).ok().map(|raw| AgencyCode { raw })
    }
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for AgencyCode {
    type Err = AgencyCodeError;

    /// Lenient parsing (see [`AgencyCode::parse_lenient`]); check `is_standard()` when the
    /// national pattern is required.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_lenient(s)
    }
}

impl AsRef<str> for AgencyCode {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl Serialize for AgencyCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for AgencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_lenient(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse_strict(s).unwrap()
    }

    #[test]
    fn strict_pattern() {
        assert!(AgencyCode::parse_strict("000.00.00.G22").is_ok());
        for bad in [
            "14.00.W00",
            "H37.DN.001",
            "000.00.00.g22",
            "000.00.00.G2",
            "000.00.00.G222",
            "000-00-00-G22",
            " 000.00.00.G22",
            "",
            "000.0a.00.G22",
        ] {
            assert!(AgencyCode::parse_strict(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lenient_accepts_legacy_codes() {
        let c = AgencyCode::parse_lenient(" H37.DN.001 ").unwrap();
        assert_eq!(c.as_str(), "H37.DN.001");
        assert!(!c.is_standard());
        assert_eq!(c.level(), None);
        assert_eq!(c.parent(), None);
        assert_eq!(c.level1(), None);
        assert_eq!(AgencyCode::parse_lenient("  "), Err(AgencyCodeError::Empty));
        assert!(matches!(
            AgencyCode::parse_lenient("000.00 .00.G22"),
            Err(AgencyCodeError::InvalidCharacter { .. })
        ));
        assert!(matches!(
            AgencyCode::parse_lenient("a\u{7}b"),
            Err(AgencyCodeError::InvalidCharacter { .. })
        ));
    }

    #[test]
    fn hierarchy_from_the_spec() {
        let province = code("000.00.00.H53");
        let office = code("000.00.01.H53");
        let unit = code("000.01.01.H53");
        let district = code("000.00.32.H53");
        let district_office = code("000.02.32.H53");
        assert_eq!(province.level(), Some(1));
        assert_eq!(office.level(), Some(2));
        assert_eq!(unit.level(), Some(3));
        assert_eq!(district.level(), Some(2));
        assert_eq!(district_office.level(), Some(3));
        assert_eq!(unit.parent(), Some(office.clone()));
        assert_eq!(office.parent(), Some(province.clone()));
        assert_eq!(district_office.parent(), Some(district.clone()));
        assert_eq!(district.parent(), Some(province.clone()));
        assert_eq!(province.parent(), None);
        assert_eq!(code("001.02.03.G01").level(), Some(4));
        assert_eq!(code("001.02.03.G01").parent(), Some(code("000.02.03.G01")));
        assert_eq!(unit.level1(), Some("H53"));
        assert_eq!(code("000.00.00.G22").level1(), Some("G22"));
        assert_eq!(
            unit.levels(),
            Some(AgencyLevels {
                group: 'H',
                unit: 53,
                level2: 1,
                level3: 1,
                level4: 0
            })
        );
    }

    #[test]
    fn display_fromstr_serde_are_the_plain_string() {
        let c: AgencyCode = "000.00.00.G22".parse().unwrap();
        assert_eq!(c.to_string(), "000.00.00.G22");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"000.00.00.G22\"");
        let back: AgencyCode = serde_json::from_str("\"H37.DN.001\"").unwrap();
        assert_eq!(back.as_str(), "H37.DN.001");
        assert!(serde_json::from_str::<AgencyCode>("\"\"").is_err());
    }
}
