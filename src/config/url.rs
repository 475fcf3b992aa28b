//! Placeholder until the Go-compatible URL parser lands (replaced on merge).
#![allow(dead_code)]

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRuleError(pub String);

pub fn scheme_of(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once(':')?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    Some(scheme.to_ascii_lowercase())
}

pub fn validate_resource_url(s: &str, allow_gs: bool, allow_arn: bool) -> Result<(), UrlRuleError> {
    match scheme_of(s).as_deref() {
        Some("http" | "https" | "tftp" | "s3" | "data") => Ok(()),
        Some("gs") if allow_gs => Ok(()),
        Some("arn") if allow_arn => Ok(()),
        _ => Err(UrlRuleError("invalid url scheme".into())),
    }
}

pub fn tang_url_ok(s: &str) -> Result<(), UrlRuleError> {
    match scheme_of(s).as_deref() {
        Some("http" | "https") => Ok(()),
        _ => Err(UrlRuleError("invalid url scheme".into())),
    }
}

/// Whether Go's url.Parse would accept the string, and its scheme.
pub fn parse_scheme(s: &str) -> Result<String, UrlRuleError> {
    Ok(scheme_of(s).unwrap_or_default())
}
