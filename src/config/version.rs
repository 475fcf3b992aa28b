//! Spec versions and how `ignition.version` strings are read.
//!
//! Ignition parses the version with coreos/go-semver and then compares the whole parsed value
//! (numbers, pre-release and build metadata) with each supported version. That parser is more
//! forgiving than the semver grammar (`03.6.0` and `3.6.0-` both read as 3.6.0), and Ember
//! reproduces it so the same strings are accepted.

use std::fmt;

/// A supported config spec version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Spec {
    V3_0,
    V3_1,
    V3_2,
    V3_3,
    V3_4,
    V3_5,
    V3_6,
    V3_7Exp,
}

impl Spec {
    pub const ALL: [Spec; 8] = [
        Spec::V3_0,
        Spec::V3_1,
        Spec::V3_2,
        Spec::V3_3,
        Spec::V3_4,
        Spec::V3_5,
        Spec::V3_6,
        Spec::V3_7Exp,
    ];
    /// The stable versions Ember documents as supported.
    pub const STABLE: [Spec; 7] = [
        Spec::V3_0,
        Spec::V3_1,
        Spec::V3_2,
        Spec::V3_3,
        Spec::V3_4,
        Spec::V3_5,
        Spec::V3_6,
    ];
    /// The internal model's version: configs of every version are translated up to it.
    pub const LATEST: Spec = Spec::V3_7Exp;
    /// The newest stable version.
    pub const MAX_STABLE: Spec = Spec::V3_6;

    pub fn as_str(self) -> &'static str {
        match self {
            Spec::V3_0 => "3.0.0",
            Spec::V3_1 => "3.1.0",
            Spec::V3_2 => "3.2.0",
            Spec::V3_3 => "3.3.0",
            Spec::V3_4 => "3.4.0",
            Spec::V3_5 => "3.5.0",
            Spec::V3_6 => "3.6.0",
            Spec::V3_7Exp => "3.7.0-experimental",
        }
    }

    pub fn is_experimental(self) -> bool {
        self == Spec::V3_7Exp
    }

    /// Looks a version up by its exact canonical text (`3.4.0`, `3.7.0-experimental`).
    pub fn from_canonical(s: &str) -> Option<Spec> {
        Spec::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    fn semver(self) -> GoSemver {
        let (minor, pre) = match self {
            Spec::V3_0 => (0, ""),
            Spec::V3_1 => (1, ""),
            Spec::V3_2 => (2, ""),
            Spec::V3_3 => (3, ""),
            Spec::V3_4 => (4, ""),
            Spec::V3_5 => (5, ""),
            Spec::V3_6 => (6, ""),
            Spec::V3_7Exp => (7, "experimental"),
        };
        GoSemver {
            major: 3,
            minor,
            patch: 0,
            pre: pre.to_string(),
            metadata: String::new(),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version as coreos/go-semver represents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoSemver {
    pub major: i64,
    pub minor: i64,
    pub patch: i64,
    pub pre: String,
    pub metadata: String,
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Ignition: `invalid config version (couldn't parse)`.
    #[error("invalid config version (couldn't parse)")]
    Unparseable,
    /// Ignition: `unsupported config version`.
    #[error("unsupported config version")]
    Unsupported,
}

fn valid_identifier(id: &str) -> bool {
    // ^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$ ; the empty string is allowed by the caller.
    id.is_empty()
        || id.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, underscores not allowed
/// in base 10, no surrounding space.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Out-of-range values fail here, as they do in Go.
    s.parse::<i64>().ok()
}

/// coreos/go-semver's `NewVersion`.
pub fn parse_go_semver(s: &str) -> Option<GoSemver> {
    let mut rest = s;
    let mut metadata = "";
    if let Some((a, b)) = rest.split_once('+') {
        rest = a;
        metadata = b;
    }
    let mut pre = "";
    if let Some((a, b)) = rest.split_once('-') {
        rest = a;
        pre = b;
    }
    let parts: Vec<&str> = rest.splitn(3, '.').collect();
    if parts.len() != 3 {
        return None;
    }
    if !valid_identifier(pre) || !valid_identifier(metadata) {
        return None;
    }
    Some(GoSemver {
        major: go_parse_int(parts[0])?,
        minor: go_parse_int(parts[1])?,
        patch: go_parse_int(parts[2])?,
        pre: pre.to_string(),
        metadata: metadata.to_string(),
    })
}

/// Maps an `ignition.version` string to a supported version, as Ignition decides it.
pub fn spec_from_version(s: &str) -> Result<Spec, VersionError> {
    let v = parse_go_semver(s).ok_or(VersionError::Unparseable)?;
    Spec::ALL
        .iter()
        .copied()
        .find(|spec| spec.semver() == v)
        .ok_or(VersionError::Unsupported)
}

/// The list of supported versions for messages and `--help`.
pub fn supported_list() -> String {
    let stable: Vec<&str> = Spec::STABLE.iter().map(|s| s.as_str()).collect();
    stable.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_versions() {
        for spec in Spec::ALL {
            assert_eq!(spec_from_version(spec.as_str()), Ok(spec));
        }
    }

    #[test]
    fn go_semver_quirks() {
        assert_eq!(spec_from_version("03.6.0"), Ok(Spec::V3_6));
        // "+" splits off build metadata first, leaving nothing to parse.
        assert_eq!(spec_from_version("+3.6.0"), Err(VersionError::Unparseable));
        assert_eq!(spec_from_version("3.6.0-"), Ok(Spec::V3_6));
        assert_eq!(spec_from_version("3.6.0-"), Ok(Spec::V3_6));
        assert_eq!(spec_from_version("3.6.0+"), Ok(Spec::V3_6));
        assert_eq!(spec_from_version("3.6.00"), Ok(Spec::V3_6));
    }

    #[test]
    fn rejects_others() {
        use VersionError::*;
        for (s, e) in [
            ("", Unparseable),
            ("3.6", Unparseable),
            ("3.6.0.1", Unparseable),
            (" 3.6.0", Unparseable),
            ("v3.6.0", Unparseable),
            ("3.6.0-exp!", Unparseable),
            ("99999999999999999999.0.0", Unparseable),
            ("2.3.0", Unsupported),
            ("3.8.0", Unsupported),
            ("3.6.0-experimental", Unsupported),
            ("3.6.0+build", Unsupported),
            ("3.7.0", Unsupported),
        ] {
            assert_eq!(spec_from_version(s), Err(e), "{s}");
        }
    }
}
