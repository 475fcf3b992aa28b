//! URL parsing that accepts and rejects exactly what Go's `net/url.Parse` does, and the URL
//! rules Ignition applies to config fields on top of it.
//!
//! Ignition decides whether a `source` is valid by calling Go's `url.Parse` and looking at the
//! scheme, so Ember has to draw the same line. This is a port of Go's algorithm as of Go 1.22
//! (unchanged there since Go 1.19, against which it was checked case by case), not an RFC 3986
//! parser: Go is lenient in places (an opaque part is never checked, a path may contain spaces,
//! a control byte after `#` is fine) and strict in others (control bytes before `#`, a colon in
//! the first segment of a relative reference, percent escapes in host names). Later Go releases
//! tighten host parsing (only IPv6 literals inside brackets, no stray colons in a host); that
//! is not reproduced.
//!
//! Decoded parts that are not valid UTF-8 (say a path with `%ff`) are stored lossily; every
//! accept/reject decision is taken on the raw bytes first, exactly as Go does.

use std::fmt;

use super::dataurl;

/// A URL as Go's `url.Parse` splits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoUrl {
    /// Lowercased scheme; empty for a relative reference such as `/etc/x` or `foo`.
    pub scheme: String,
    /// Everything after `scheme:` when it does not start with `/` (kept encoded, never checked).
    pub opaque: String,
    /// The userinfo before `@` in the authority, if there was an `@`.
    pub user: Option<Userinfo>,
    /// Host, with `:port` if one was given, percent-decoded.
    pub host: String,
    /// Percent-decoded path.
    pub path: String,
    /// True for `scheme:/path` (a path but no `//authority`).
    pub omit_host: bool,
    /// True when the URL ends with a lone `?` and an empty query.
    pub force_query: bool,
    /// Query string without the `?`, still encoded.
    pub raw_query: String,
    /// Percent-decoded fragment, without the `#`.
    pub fragment: String,
}

/// The userinfo part of an authority: `user` or `user:password`, percent-decoded.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Userinfo {
    pub username: String,
    /// `None` when there was no `:` in the userinfo.
    pub password: Option<String>,
}

impl fmt::Debug for Userinfo {
    // Passwords never reach logs, not even through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Userinfo")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl GoUrl {
    /// The host without its port and without IPv6 brackets, like Go's `URL.Hostname`.
    pub fn hostname(&self) -> &str {
        split_host_port(&self.host).0
    }

    /// The port digits, or `""`, like Go's `URL.Port`.
    pub fn port(&self) -> &str {
        split_host_port(&self.host).1
    }

    /// The first value of query parameter `key`, as Go's `u.Query()[key][0]`.
    pub fn query_first(&self, key: &str) -> Option<String> {
        parse_query(&self.raw_query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Why Go's `url.Parse` rejects a URL. `Display` gives Go's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("net/url: invalid control character in URL")]
    ControlCharacter,
    #[error("missing protocol scheme")]
    MissingScheme,
    #[error("first path segment in URL cannot contain colon")]
    ColonInFirstSegment,
    #[error("net/url: invalid userinfo")]
    InvalidUserinfo,
    #[error("missing ']' in host")]
    MissingBracket,
    #[error("invalid port {} after host", go_quote(.0.as_bytes()))]
    InvalidPort(String),
    #[error("invalid character {} in host name", go_quote(.0))]
    InvalidHostChar(Vec<u8>),
    #[error("invalid URL escape {}", go_quote(.0))]
    InvalidEscape(Vec<u8>),
}

/// A failed `parse`. `Display` reproduces Go's `*url.Error` text exactly:
/// `parse "<url>": <reason>`.
///
/// The text contains the URL as given (or the part before `#` when that part was at fault, as
/// in Go), userinfo included: callers that log it must know the URL is not a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse {}: {kind}", go_quote(.url.as_bytes()))]
pub struct ParseError {
    /// The string Go quotes in the message.
    pub url: String,
    /// What was wrong (also part of the message, so it is not exposed as the error source).
    pub kind: ParseErrorKind,
}

/// Ignition's verdict on a URL in a config. `Display` is Ignition's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRuleError {
    #[error("unable to parse url")]
    UnableToParse,
    #[error("invalid url scheme")]
    InvalidScheme,
    #[error("invalid S3 object VersionId")]
    InvalidS3VersionId,
    #[error("invalid S3 ARN format")]
    InvalidS3Arn,
    /// aws-sdk-go `arn.Parse` errors; Ignition passes their text through.
    #[error("arn: invalid prefix")]
    ArnInvalidPrefix,
    #[error("arn: not enough sections")]
    ArnNotEnoughSections,
    /// A `data:` URL the data URL library rejects; the message is that library's.
    #[error(transparent)]
    DataUrl(#[from] dataurl::DataUrlError),
}

/// Parses `raw` exactly as Go's `url.Parse` does.
pub fn parse(raw: &str) -> Result<GoUrl, ParseError> {
    let parts = split(raw)?;
    // Every escape was checked by `split`, so decoding cannot fail from here on.
    let user = parts.userinfo.map(|info| match info.split_once(':') {
        None => Userinfo {
            username: percent_decode(info, false),
            password: None,
        },
        Some((name, password)) => Userinfo {
            username: percent_decode(name, false),
            password: Some(percent_decode(password, false)),
        },
    });
    Ok(GoUrl {
        scheme: parts.scheme.to_ascii_lowercase(),
        opaque: parts.opaque.to_owned(),
        user,
        host: percent_decode(parts.host, false),
        path: percent_decode(parts.path, false),
        omit_host: parts.omit_host,
        force_query: parts.force_query,
        raw_query: parts.raw_query.to_owned(),
        fragment: percent_decode(parts.fragment, false),
    })
}

/// Go's `url.ParseQuery`, keeping the pairs in order. Pairs Go drops (a key containing `;`, a
/// bad percent escape in key or value) are left out; empty pairs (`a&&b`) too. `+` decodes to a
/// space.
pub fn parse_query(raw_query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in raw_query.split('&') {
        if pair.contains(';') || pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if check_escapes(key, Mode::QueryComponent).is_err()
            || check_escapes(value, Mode::QueryComponent).is_err()
        {
            continue;
        }
        out.push((percent_decode(key, true), percent_decode(value, true)));
    }
    out
}

/// Ignition's rule for a resource `source` (files, merged configs, CAs, LUKS key files).
///
/// `allow_gs` is for spec 3.2.0 and later, `allow_arn` for 3.4.0 and later. An empty string is
/// rejected with "invalid url scheme": callers decide first whether an empty source counts as
/// unspecified (Ignition treats it so, except for 3.0.0 certificate authorities).
pub fn validate_resource_url(s: &str, allow_gs: bool, allow_arn: bool) -> Result<(), UrlRuleError> {
    // Borrowed parts only: this runs on every source of a large config, data URLs included.
    let url = split(s).map_err(|_| UrlRuleError::UnableToParse)?;
    let scheme = |name: &str| url.scheme.eq_ignore_ascii_case(name);
    if scheme("http") || scheme("https") || scheme("tftp") || (allow_gs && scheme("gs")) {
        Ok(())
    } else if scheme("s3") {
        check_version_id(url.raw_query)
    } else if allow_arn && scheme("arn") {
        check_s3_arn(&format!("arn:{}", url.opaque))?;
        check_version_id(url.raw_query)
    } else if scheme("data") {
        dataurl::validate(s).map_err(UrlRuleError::DataUrl)
    } else {
        Err(UrlRuleError::InvalidScheme)
    }
}

/// Ignition's rule for a tang server URL: it must parse and be http or https.
pub fn tang_url_ok(s: &str) -> Result<(), UrlRuleError> {
    let url = split(s).map_err(|_| UrlRuleError::UnableToParse)?;
    if url.scheme.eq_ignore_ascii_case("http") || url.scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(UrlRuleError::InvalidScheme)
    }
}

/// The lowercased scheme Go finds in `s` (`Some("")` for a relative reference), or `None` when
/// Go cannot parse `s`.
pub fn scheme_of(s: &str) -> Option<String> {
    split(s).ok().map(|u| u.scheme.to_ascii_lowercase())
}

/// `?versionId=` present but empty is rejected (first value counts, like Go's `Query()[k][0]`).
fn check_version_id(raw_query: &str) -> Result<(), UrlRuleError> {
    let first = parse_query(raw_query)
        .into_iter()
        .find(|(k, _)| k == "versionId")
        .map(|(_, v)| v);
    match first {
        Some(v) if v.is_empty() => Err(UrlRuleError::InvalidS3VersionId),
        _ => Ok(()),
    }
}

/// The S3 ARN rule: a well-formed ARN (aws-sdk-go `arn.IsARN`, then `arn.Parse`) whose service
/// is `s3`, with an object key: `…:bucket/key`, or `…:accesspoint/name/object/key` for an
/// access point (which only needs three `/`-separated parts, as Ignition checks it).
fn check_s3_arn(full: &str) -> Result<(), UrlRuleError> {
    // arn.IsARN: the prefix and at least five colons. Ignition answers a non-ARN with its
    // own message before arn.Parse could say why.
    if !full.starts_with("arn:") || full.bytes().filter(|&b| b == b':').count() < 5 {
        return Err(UrlRuleError::InvalidS3Arn);
    }
    // arn.Parse (cannot fail after IsARN, kept for fidelity).
    if !full.starts_with("arn:") {
        return Err(UrlRuleError::ArnInvalidPrefix);
    }
    let sections: Vec<&str> = full.splitn(6, ':').collect();
    let [_, _partition, service, _region, _account, resource] = sections.as_slice() else {
        return Err(UrlRuleError::ArnNotEnoughSections);
    };
    if *service != "s3" {
        return Err(UrlRuleError::InvalidS3Arn);
    }
    let parts = full.split('/').count();
    let needed = if resource.starts_with("accesspoint/") {
        3
    } else {
        2
    };
    if parts < needed {
        return Err(UrlRuleError::InvalidS3Arn);
    }
    Ok(())
}

/// A URL cut into its still-encoded parts, every escape checked: what Go's `parse` decides,
/// without the decoding.
#[derive(Default)]
struct RawParts<'a> {
    /// As written (not lowercased).
    scheme: &'a str,
    opaque: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    path: &'a str,
    omit_host: bool,
    force_query: bool,
    raw_query: &'a str,
    fragment: &'a str,
}

/// Go's `url.Parse` without the decoding.
fn split(raw: &str) -> Result<RawParts<'_>, ParseError> {
    let (before, frag) = raw.split_once('#').unwrap_or((raw, ""));
    // Go quotes the part before '#' when that part is at fault, the whole URL otherwise.
    let mut parts = split_no_fragment(before).map_err(|kind| ParseError {
        url: before.to_owned(),
        kind,
    })?;
    check_escapes(frag, Mode::Fragment).map_err(|kind| ParseError {
        url: raw.to_owned(),
        kind,
    })?;
    parts.fragment = frag;
    Ok(parts)
}

/// Go's `parse(rawURL, viaRequest=false)`, for the part before any `#`.
fn split_no_fragment(raw: &str) -> Result<RawParts<'_>, ParseErrorKind> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ParseErrorKind::ControlCharacter);
    }
    let mut url = RawParts::default();
    if raw == "*" {
        url.path = raw;
        return Ok(url);
    }
    let (scheme, mut rest) = get_scheme(raw)?;
    url.scheme = scheme;

    if rest.ends_with('?') && rest.bytes().filter(|&b| b == b'?').count() == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some((r, q)) = rest.split_once('?') {
        rest = r;
        url.raw_query = q;
    }

    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // Opaque data is kept as it is: Go checks nothing in it.
            url.opaque = rest;
            return Ok(url);
        }
        let segment = rest.split('/').next().unwrap_or("");
        if segment.contains(':') {
            return Err(ParseErrorKind::ColonInFirstSegment);
        }
    }

    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        // The host is checked before the userinfo, as in Go.
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        check_host(host)?;
        if let Some(info) = userinfo {
            if !valid_userinfo(info) {
                return Err(ParseErrorKind::InvalidUserinfo);
            }
            match info.split_once(':') {
                None => check_escapes(info, Mode::UserPassword)?,
                Some((name, password)) => {
                    check_escapes(name, Mode::UserPassword)?;
                    check_escapes(password, Mode::UserPassword)?;
                }
            }
        }
        url.userinfo = userinfo;
        url.host = host;
        rest = path;
    } else if !scheme.is_empty() && rest.starts_with('/') {
        url.omit_host = true;
    }

    check_escapes(rest, Mode::Path)?;
    url.path = rest;
    Ok(url)
}

/// Go's `getScheme`: returns (scheme, rest). No scheme when a character that cannot be in a
/// scheme comes before the first `:`.
fn get_scheme(raw: &str) -> Result<(&str, &str), ParseErrorKind> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err(ParseErrorKind::MissingScheme);
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `parseHost`, without the decoding.
fn check_host(host: &str) -> Result<(), ParseErrorKind> {
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err(ParseErrorKind::MissingBracket);
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(ParseErrorKind::InvalidPort(colon_port.to_owned()));
        }
        // A zone identifier (`%25` inside the brackets) has its own escaping rules.
        if let Some(zone) = host[..i].find("%25") {
            check_escapes(&host[..zone], Mode::Host)?;
            check_escapes(&host[zone..i], Mode::Zone)?;
            return check_escapes(&host[i..], Mode::Host);
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(ParseErrorKind::InvalidPort(colon_port.to_owned()));
        }
    }
    check_escapes(host, Mode::Host)
}

/// `""` or `:` followed by digits only (an empty port is fine).
fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Go's `validUserinfo` (RFC 3986 userinfo characters; escapes are checked when decoding).
fn valid_userinfo(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    })
}

/// Go's `splitHostPort` behind `Hostname` and `Port`.
fn split_host_port(host_port: &str) -> (&str, &str) {
    let mut host = host_port;
    let mut port = "";
    if let Some(colon) = host.rfind(':') {
        if valid_optional_port(&host[colon..]) {
            port = &host[colon + 1..];
            host = &host[..colon];
        }
    }
    if host.len() >= 2 && host.starts_with('[') && host.ends_with(']') {
        host = &host[1..host.len() - 1];
    }
    (host, port)
}

/// Go's `encoding` modes, as far as unescaping needs them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// Go's `shouldEscape` for the modes unescaping consults (host and zone).
fn should_escape_host(c: u8) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    !matches!(
        c,
        b'!' | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'['
            | b']'
            | b'<'
            | b'>'
            | b'"'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
    )
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The checking half of Go's `unescape`: the first bad escape (or, in a host, the first
/// character that must not appear raw) is the error.
fn check_escapes(s: &str, mode: Mode) -> Result<(), ParseErrorKind> {
    let b = s.as_bytes();
    let host_like = matches!(mode, Mode::Host | Mode::Zone);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex_val),
                    b.get(i + 2).copied().and_then(hex_val),
                ) else {
                    let end = (i + 3).min(b.len());
                    return Err(ParseErrorKind::InvalidEscape(b[i..end].to_vec()));
                };
                let is_25 = &b[i..i + 3] == b"%25";
                // Host names may only carry escapes of non-ASCII bytes (and %25).
                if mode == Mode::Host && hi < 8 && !is_25 {
                    return Err(ParseErrorKind::InvalidEscape(b[i..i + 3].to_vec()));
                }
                if mode == Mode::Zone {
                    let v = (hi << 4) | lo;
                    if !is_25 && v != b' ' && should_escape_host(v) {
                        return Err(ParseErrorKind::InvalidEscape(b[i..i + 3].to_vec()));
                    }
                }
                i += 3;
            }
            c => {
                if host_like && c < 0x80 && should_escape_host(c) {
                    return Err(ParseErrorKind::InvalidHostChar(vec![c]));
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// The decoding half of Go's `unescape`, for text `check_escapes` accepted (a stray `%` is
/// kept as it is). Bytes that are not UTF-8 are replaced.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let plus = plus_is_space && s.contains('+');
    if !s.contains('%') && !plus {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1..i + 3)) {
            (b'%', Some(&[h, l])) => hex_val(h).zip(hex_val(l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
                continue;
            }
            (None, b'+') if plus_is_space => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Go's `strconv.Quote` (what `%q` prints): double quotes, `\"` and `\\`, printable runes as
/// they are, `\a \b \f \n \r \t \v`, other control bytes as `\xNN`, bytes that are not UTF-8
/// as `\xNN`, other non-printable runes as `\uNNNN` or `\UNNNNNNNN`. "Printable" is Go's
/// `unicode.IsPrint` (letters, marks, numbers, punctuation, symbols and U+0020), with the
/// Unicode 15.0 tables of Go 1.21 and later.
pub fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_char(&mut out, c);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

fn quote_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        ' '..='~' => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\0'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
        _ if go_is_print(c) => out.push(c),
        _ if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        _ => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `unicode.IsPrint` for non-ASCII runes.
fn go_is_print(c: char) -> bool {
    let cp = c as u32;
    // Ranges are sorted and disjoint: find the last one starting at or before `cp`.
    let idx = NON_PRINTABLE.partition_point(|&(start, _)| start <= cp);
    match idx.checked_sub(1).map(|i| NON_PRINTABLE[i]) {
        Some((_, end)) => cp > end,
        None => true,
    }
}

/// Code points from U+0080 up that Go's `unicode.IsPrint` rejects (general categories C* and
/// Z*, unassigned included), Unicode 15.0.0, as inclusive ranges. Generated from the Unicode
/// Character Database; cross-checked against Go's own tables.
#[rustfmt::skip]
const NON_PRINTABLE: &[(u32, u32)] = &[
    (0x80, 0xA0), (0xAD, 0xAD), (0x378, 0x379), (0x380, 0x383), (0x38B, 0x38B), (0x38D, 0x38D),
    (0x3A2, 0x3A2), (0x530, 0x530), (0x557, 0x558), (0x58B, 0x58C), (0x590, 0x590), (0x5C8, 0x5CF),
    (0x5EB, 0x5EE), (0x5F5, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD), (0x70E, 0x70F), (0x74B, 0x74C),
    (0x7B2, 0x7BF), (0x7FB, 0x7FC), (0x82E, 0x82F), (0x83F, 0x83F), (0x85C, 0x85D), (0x85F, 0x85F),
    (0x86B, 0x86F), (0x88F, 0x897), (0x8E2, 0x8E2), (0x984, 0x984), (0x98D, 0x98E), (0x991, 0x992),
    (0x9A9, 0x9A9), (0x9B1, 0x9B1), (0x9B3, 0x9B5), (0x9BA, 0x9BB), (0x9C5, 0x9C6), (0x9C9, 0x9CA),
    (0x9CF, 0x9D6), (0x9D8, 0x9DB), (0x9DE, 0x9DE), (0x9E4, 0x9E5), (0x9FF, 0xA00), (0xA04, 0xA04),
    (0xA0B, 0xA0E), (0xA11, 0xA12), (0xA29, 0xA29), (0xA31, 0xA31), (0xA34, 0xA34), (0xA37, 0xA37),
    (0xA3A, 0xA3B), (0xA3D, 0xA3D), (0xA43, 0xA46), (0xA49, 0xA4A), (0xA4E, 0xA50), (0xA52, 0xA58),
    (0xA5D, 0xA5D), (0xA5F, 0xA65), (0xA77, 0xA80), (0xA84, 0xA84), (0xA8E, 0xA8E), (0xA92, 0xA92),
    (0xAA9, 0xAA9), (0xAB1, 0xAB1), (0xAB4, 0xAB4), (0xABA, 0xABB), (0xAC6, 0xAC6), (0xACA, 0xACA),
    (0xACE, 0xACF), (0xAD1, 0xADF), (0xAE4, 0xAE5), (0xAF2, 0xAF8), (0xB00, 0xB00), (0xB04, 0xB04),
    (0xB0D, 0xB0E), (0xB11, 0xB12), (0xB29, 0xB29), (0xB31, 0xB31), (0xB34, 0xB34), (0xB3A, 0xB3B),
    (0xB45, 0xB46), (0xB49, 0xB4A), (0xB4E, 0xB54), (0xB58, 0xB5B), (0xB5E, 0xB5E), (0xB64, 0xB65),
    (0xB78, 0xB81), (0xB84, 0xB84), (0xB8B, 0xB8D), (0xB91, 0xB91), (0xB96, 0xB98), (0xB9B, 0xB9B),
    (0xB9D, 0xB9D), (0xBA0, 0xBA2), (0xBA5, 0xBA7), (0xBAB, 0xBAD), (0xBBA, 0xBBD), (0xBC3, 0xBC5),
    (0xBC9, 0xBC9), (0xBCE, 0xBCF), (0xBD1, 0xBD6), (0xBD8, 0xBE5), (0xBFB, 0xBFF), (0xC0D, 0xC0D),
    (0xC11, 0xC11), (0xC29, 0xC29), (0xC3A, 0xC3B), (0xC45, 0xC45), (0xC49, 0xC49), (0xC4E, 0xC54),
    (0xC57, 0xC57), (0xC5B, 0xC5C), (0xC5E, 0xC5F), (0xC64, 0xC65), (0xC70, 0xC76), (0xC8D, 0xC8D),
    (0xC91, 0xC91), (0xCA9, 0xCA9), (0xCB4, 0xCB4), (0xCBA, 0xCBB), (0xCC5, 0xCC5), (0xCC9, 0xCC9),
    (0xCCE, 0xCD4), (0xCD7, 0xCDC), (0xCDF, 0xCDF), (0xCE4, 0xCE5), (0xCF0, 0xCF0), (0xCF4, 0xCFF),
    (0xD0D, 0xD0D), (0xD11, 0xD11), (0xD45, 0xD45), (0xD49, 0xD49), (0xD50, 0xD53), (0xD64, 0xD65),
    (0xD80, 0xD80), (0xD84, 0xD84), (0xD97, 0xD99), (0xDB2, 0xDB2), (0xDBC, 0xDBC), (0xDBE, 0xDBF),
    (0xDC7, 0xDC9), (0xDCB, 0xDCE), (0xDD5, 0xDD5), (0xDD7, 0xDD7), (0xDE0, 0xDE5), (0xDF0, 0xDF1),
    (0xDF5, 0xE00), (0xE3B, 0xE3E), (0xE5C, 0xE80), (0xE83, 0xE83), (0xE85, 0xE85), (0xE8B, 0xE8B),
    (0xEA4, 0xEA4), (0xEA6, 0xEA6), (0xEBE, 0xEBF), (0xEC5, 0xEC5), (0xEC7, 0xEC7), (0xECF, 0xECF),
    (0xEDA, 0xEDB), (0xEE0, 0xEFF), (0xF48, 0xF48), (0xF6D, 0xF70), (0xF98, 0xF98), (0xFBD, 0xFBD),
    (0xFCD, 0xFCD), (0xFDB, 0xFFF), (0x10C6, 0x10C6), (0x10C8, 0x10CC), (0x10CE, 0x10CF),
    (0x1249, 0x1249), (0x124E, 0x124F), (0x1257, 0x1257), (0x1259, 0x1259), (0x125E, 0x125F),
    (0x1289, 0x1289), (0x128E, 0x128F), (0x12B1, 0x12B1), (0x12B6, 0x12B7), (0x12BF, 0x12BF),
    (0x12C1, 0x12C1), (0x12C6, 0x12C7), (0x12D7, 0x12D7), (0x1311, 0x1311), (0x1316, 0x1317),
    (0x135B, 0x135C), (0x137D, 0x137F), (0x139A, 0x139F), (0x13F6, 0x13F7), (0x13FE, 0x13FF),
    (0x1680, 0x1680), (0x169D, 0x169F), (0x16F9, 0x16FF), (0x1716, 0x171E), (0x1737, 0x173F),
    (0x1754, 0x175F), (0x176D, 0x176D), (0x1771, 0x1771), (0x1774, 0x177F), (0x17DE, 0x17DF),
    (0x17EA, 0x17EF), (0x17FA, 0x17FF), (0x180E, 0x180E), (0x181A, 0x181F), (0x1879, 0x187F),
    (0x18AB, 0x18AF), (0x18F6, 0x18FF), (0x191F, 0x191F), (0x192C, 0x192F), (0x193C, 0x193F),
    (0x1941, 0x1943), (0x196E, 0x196F), (0x1975, 0x197F), (0x19AC, 0x19AF), (0x19CA, 0x19CF),
    (0x19DB, 0x19DD), (0x1A1C, 0x1A1D), (0x1A5F, 0x1A5F), (0x1A7D, 0x1A7E), (0x1A8A, 0x1A8F),
    (0x1A9A, 0x1A9F), (0x1AAE, 0x1AAF), (0x1ACF, 0x1AFF), (0x1B4D, 0x1B4F), (0x1B7F, 0x1B7F),
    (0x1BF4, 0x1BFB), (0x1C38, 0x1C3A), (0x1C4A, 0x1C4C), (0x1C89, 0x1C8F), (0x1CBB, 0x1CBC),
    (0x1CC8, 0x1CCF), (0x1CFB, 0x1CFF), (0x1F16, 0x1F17), (0x1F1E, 0x1F1F), (0x1F46, 0x1F47),
    (0x1F4E, 0x1F4F), (0x1F58, 0x1F58), (0x1F5A, 0x1F5A), (0x1F5C, 0x1F5C), (0x1F5E, 0x1F5E),
    (0x1F7E, 0x1F7F), (0x1FB5, 0x1FB5), (0x1FC5, 0x1FC5), (0x1FD4, 0x1FD5), (0x1FDC, 0x1FDC),
    (0x1FF0, 0x1FF1), (0x1FF5, 0x1FF5), (0x1FFF, 0x200F), (0x2028, 0x202F), (0x205F, 0x206F),
    (0x2072, 0x2073), (0x208F, 0x208F), (0x209D, 0x209F), (0x20C1, 0x20CF), (0x20F1, 0x20FF),
    (0x218C, 0x218F), (0x2427, 0x243F), (0x244B, 0x245F), (0x2B74, 0x2B75), (0x2B96, 0x2B96),
    (0x2CF4, 0x2CF8), (0x2D26, 0x2D26), (0x2D28, 0x2D2C), (0x2D2E, 0x2D2F), (0x2D68, 0x2D6E),
    (0x2D71, 0x2D7E), (0x2D97, 0x2D9F), (0x2DA7, 0x2DA7), (0x2DAF, 0x2DAF), (0x2DB7, 0x2DB7),
    (0x2DBF, 0x2DBF), (0x2DC7, 0x2DC7), (0x2DCF, 0x2DCF), (0x2DD7, 0x2DD7), (0x2DDF, 0x2DDF),
    (0x2E5E, 0x2E7F), (0x2E9A, 0x2E9A), (0x2EF4, 0x2EFF), (0x2FD6, 0x2FEF), (0x2FFC, 0x3000),
    (0x3040, 0x3040), (0x3097, 0x3098), (0x3100, 0x3104), (0x3130, 0x3130), (0x318F, 0x318F),
    (0x31E4, 0x31EF), (0x321F, 0x321F), (0xA48D, 0xA48F), (0xA4C7, 0xA4CF), (0xA62C, 0xA63F),
    (0xA6F8, 0xA6FF), (0xA7CB, 0xA7CF), (0xA7D2, 0xA7D2), (0xA7D4, 0xA7D4), (0xA7DA, 0xA7F1),
    (0xA82D, 0xA82F), (0xA83A, 0xA83F), (0xA878, 0xA87F), (0xA8C6, 0xA8CD), (0xA8DA, 0xA8DF),
    (0xA954, 0xA95E), (0xA97D, 0xA97F), (0xA9CE, 0xA9CE), (0xA9DA, 0xA9DD), (0xA9FF, 0xA9FF),
    (0xAA37, 0xAA3F), (0xAA4E, 0xAA4F), (0xAA5A, 0xAA5B), (0xAAC3, 0xAADA), (0xAAF7, 0xAB00),
    (0xAB07, 0xAB08), (0xAB0F, 0xAB10), (0xAB17, 0xAB1F), (0xAB27, 0xAB27), (0xAB2F, 0xAB2F),
    (0xAB6C, 0xAB6F), (0xABEE, 0xABEF), (0xABFA, 0xABFF), (0xD7A4, 0xD7AF), (0xD7C7, 0xD7CA),
    (0xD7FC, 0xF8FF), (0xFA6E, 0xFA6F), (0xFADA, 0xFAFF), (0xFB07, 0xFB12), (0xFB18, 0xFB1C),
    (0xFB37, 0xFB37), (0xFB3D, 0xFB3D), (0xFB3F, 0xFB3F), (0xFB42, 0xFB42), (0xFB45, 0xFB45),
    (0xFBC3, 0xFBD2), (0xFD90, 0xFD91), (0xFDC8, 0xFDCE), (0xFDD0, 0xFDEF), (0xFE1A, 0xFE1F),
    (0xFE53, 0xFE53), (0xFE67, 0xFE67), (0xFE6C, 0xFE6F), (0xFE75, 0xFE75), (0xFEFD, 0xFF00),
    (0xFFBF, 0xFFC1), (0xFFC8, 0xFFC9), (0xFFD0, 0xFFD1), (0xFFD8, 0xFFD9), (0xFFDD, 0xFFDF),
    (0xFFE7, 0xFFE7), (0xFFEF, 0xFFFB), (0xFFFE, 0xFFFF), (0x1000C, 0x1000C), (0x10027, 0x10027),
    (0x1003B, 0x1003B), (0x1003E, 0x1003E), (0x1004E, 0x1004F), (0x1005E, 0x1007F),
    (0x100FB, 0x100FF), (0x10103, 0x10106), (0x10134, 0x10136), (0x1018F, 0x1018F),
    (0x1019D, 0x1019F), (0x101A1, 0x101CF), (0x101FE, 0x1027F), (0x1029D, 0x1029F),
    (0x102D1, 0x102DF), (0x102FC, 0x102FF), (0x10324, 0x1032C), (0x1034B, 0x1034F),
    (0x1037B, 0x1037F), (0x1039E, 0x1039E), (0x103C4, 0x103C7), (0x103D6, 0x103FF),
    (0x1049E, 0x1049F), (0x104AA, 0x104AF), (0x104D4, 0x104D7), (0x104FC, 0x104FF),
    (0x10528, 0x1052F), (0x10564, 0x1056E), (0x1057B, 0x1057B), (0x1058B, 0x1058B),
    (0x10593, 0x10593), (0x10596, 0x10596), (0x105A2, 0x105A2), (0x105B2, 0x105B2),
    (0x105BA, 0x105BA), (0x105BD, 0x105FF), (0x10737, 0x1073F), (0x10756, 0x1075F),
    (0x10768, 0x1077F), (0x10786, 0x10786), (0x107B1, 0x107B1), (0x107BB, 0x107FF),
    (0x10806, 0x10807), (0x10809, 0x10809), (0x10836, 0x10836), (0x10839, 0x1083B),
    (0x1083D, 0x1083E), (0x10856, 0x10856), (0x1089F, 0x108A6), (0x108B0, 0x108DF),
    (0x108F3, 0x108F3), (0x108F6, 0x108FA), (0x1091C, 0x1091E), (0x1093A, 0x1093E),
    (0x10940, 0x1097F), (0x109B8, 0x109BB), (0x109D0, 0x109D1), (0x10A04, 0x10A04),
    (0x10A07, 0x10A0B), (0x10A14, 0x10A14), (0x10A18, 0x10A18), (0x10A36, 0x10A37),
    (0x10A3B, 0x10A3E), (0x10A49, 0x10A4F), (0x10A59, 0x10A5F), (0x10AA0, 0x10ABF),
    (0x10AE7, 0x10AEA), (0x10AF7, 0x10AFF), (0x10B36, 0x10B38), (0x10B56, 0x10B57),
    (0x10B73, 0x10B77), (0x10B92, 0x10B98), (0x10B9D, 0x10BA8), (0x10BB0, 0x10BFF),
    (0x10C49, 0x10C7F), (0x10CB3, 0x10CBF), (0x10CF3, 0x10CF9), (0x10D28, 0x10D2F),
    (0x10D3A, 0x10E5F), (0x10E7F, 0x10E7F), (0x10EAA, 0x10EAA), (0x10EAE, 0x10EAF),
    (0x10EB2, 0x10EFC), (0x10F28, 0x10F2F), (0x10F5A, 0x10F6F), (0x10F8A, 0x10FAF),
    (0x10FCC, 0x10FDF), (0x10FF7, 0x10FFF), (0x1104E, 0x11051), (0x11076, 0x1107E),
    (0x110BD, 0x110BD), (0x110C3, 0x110CF), (0x110E9, 0x110EF), (0x110FA, 0x110FF),
    (0x11135, 0x11135), (0x11148, 0x1114F), (0x11177, 0x1117F), (0x111E0, 0x111E0),
    (0x111F5, 0x111FF), (0x11212, 0x11212), (0x11242, 0x1127F), (0x11287, 0x11287),
    (0x11289, 0x11289), (0x1128E, 0x1128E), (0x1129E, 0x1129E), (0x112AA, 0x112AF),
    (0x112EB, 0x112EF), (0x112FA, 0x112FF), (0x11304, 0x11304), (0x1130D, 0x1130E),
    (0x11311, 0x11312), (0x11329, 0x11329), (0x11331, 0x11331), (0x11334, 0x11334),
    (0x1133A, 0x1133A), (0x11345, 0x11346), (0x11349, 0x1134A), (0x1134E, 0x1134F),
    (0x11351, 0x11356), (0x11358, 0x1135C), (0x11364, 0x11365), (0x1136D, 0x1136F),
    (0x11375, 0x113FF), (0x1145C, 0x1145C), (0x11462, 0x1147F), (0x114C8, 0x114CF),
    (0x114DA, 0x1157F), (0x115B6, 0x115B7), (0x115DE, 0x115FF), (0x11645, 0x1164F),
    (0x1165A, 0x1165F), (0x1166D, 0x1167F), (0x116BA, 0x116BF), (0x116CA, 0x116FF),
    (0x1171B, 0x1171C), (0x1172C, 0x1172F), (0x11747, 0x117FF), (0x1183C, 0x1189F),
    (0x118F3, 0x118FE), (0x11907, 0x11908), (0x1190A, 0x1190B), (0x11914, 0x11914),
    (0x11917, 0x11917), (0x11936, 0x11936), (0x11939, 0x1193A), (0x11947, 0x1194F),
    (0x1195A, 0x1199F), (0x119A8, 0x119A9), (0x119D8, 0x119D9), (0x119E5, 0x119FF),
    (0x11A48, 0x11A4F), (0x11AA3, 0x11AAF), (0x11AF9, 0x11AFF), (0x11B0A, 0x11BFF),
    (0x11C09, 0x11C09), (0x11C37, 0x11C37), (0x11C46, 0x11C4F), (0x11C6D, 0x11C6F),
    (0x11C90, 0x11C91), (0x11CA8, 0x11CA8), (0x11CB7, 0x11CFF), (0x11D07, 0x11D07),
    (0x11D0A, 0x11D0A), (0x11D37, 0x11D39), (0x11D3B, 0x11D3B), (0x11D3E, 0x11D3E),
    (0x11D48, 0x11D4F), (0x11D5A, 0x11D5F), (0x11D66, 0x11D66), (0x11D69, 0x11D69),
    (0x11D8F, 0x11D8F), (0x11D92, 0x11D92), (0x11D99, 0x11D9F), (0x11DAA, 0x11EDF),
    (0x11EF9, 0x11EFF), (0x11F11, 0x11F11), (0x11F3B, 0x11F3D), (0x11F5A, 0x11FAF),
    (0x11FB1, 0x11FBF), (0x11FF2, 0x11FFE), (0x1239A, 0x123FF), (0x1246F, 0x1246F),
    (0x12475, 0x1247F), (0x12544, 0x12F8F), (0x12FF3, 0x12FFF), (0x13430, 0x1343F),
    (0x13456, 0x143FF), (0x14647, 0x167FF), (0x16A39, 0x16A3F), (0x16A5F, 0x16A5F),
    (0x16A6A, 0x16A6D), (0x16ABF, 0x16ABF), (0x16ACA, 0x16ACF), (0x16AEE, 0x16AEF),
    (0x16AF6, 0x16AFF), (0x16B46, 0x16B4F), (0x16B5A, 0x16B5A), (0x16B62, 0x16B62),
    (0x16B78, 0x16B7C), (0x16B90, 0x16E3F), (0x16E9B, 0x16EFF), (0x16F4B, 0x16F4E),
    (0x16F88, 0x16F8E), (0x16FA0, 0x16FDF), (0x16FE5, 0x16FEF), (0x16FF2, 0x16FFF),
    (0x187F8, 0x187FF), (0x18CD6, 0x18CFF), (0x18D09, 0x1AFEF), (0x1AFF4, 0x1AFF4),
    (0x1AFFC, 0x1AFFC), (0x1AFFF, 0x1AFFF), (0x1B123, 0x1B131), (0x1B133, 0x1B14F),
    (0x1B153, 0x1B154), (0x1B156, 0x1B163), (0x1B168, 0x1B16F), (0x1B2FC, 0x1BBFF),
    (0x1BC6B, 0x1BC6F), (0x1BC7D, 0x1BC7F), (0x1BC89, 0x1BC8F), (0x1BC9A, 0x1BC9B),
    (0x1BCA0, 0x1CEFF), (0x1CF2E, 0x1CF2F), (0x1CF47, 0x1CF4F), (0x1CFC4, 0x1CFFF),
    (0x1D0F6, 0x1D0FF), (0x1D127, 0x1D128), (0x1D173, 0x1D17A), (0x1D1EB, 0x1D1FF),
    (0x1D246, 0x1D2BF), (0x1D2D4, 0x1D2DF), (0x1D2F4, 0x1D2FF), (0x1D357, 0x1D35F),
    (0x1D379, 0x1D3FF), (0x1D455, 0x1D455), (0x1D49D, 0x1D49D), (0x1D4A0, 0x1D4A1),
    (0x1D4A3, 0x1D4A4), (0x1D4A7, 0x1D4A8), (0x1D4AD, 0x1D4AD), (0x1D4BA, 0x1D4BA),
    (0x1D4BC, 0x1D4BC), (0x1D4C4, 0x1D4C4), (0x1D506, 0x1D506), (0x1D50B, 0x1D50C),
    (0x1D515, 0x1D515), (0x1D51D, 0x1D51D), (0x1D53A, 0x1D53A), (0x1D53F, 0x1D53F),
    (0x1D545, 0x1D545), (0x1D547, 0x1D549), (0x1D551, 0x1D551), (0x1D6A6, 0x1D6A7),
    (0x1D7CC, 0x1D7CD), (0x1DA8C, 0x1DA9A), (0x1DAA0, 0x1DAA0), (0x1DAB0, 0x1DEFF),
    (0x1DF1F, 0x1DF24), (0x1DF2B, 0x1DFFF), (0x1E007, 0x1E007), (0x1E019, 0x1E01A),
    (0x1E022, 0x1E022), (0x1E025, 0x1E025), (0x1E02B, 0x1E02F), (0x1E06E, 0x1E08E),
    (0x1E090, 0x1E0FF), (0x1E12D, 0x1E12F), (0x1E13E, 0x1E13F), (0x1E14A, 0x1E14D),
    (0x1E150, 0x1E28F), (0x1E2AF, 0x1E2BF), (0x1E2FA, 0x1E2FE), (0x1E300, 0x1E4CF),
    (0x1E4FA, 0x1E7DF), (0x1E7E7, 0x1E7E7), (0x1E7EC, 0x1E7EC), (0x1E7EF, 0x1E7EF),
    (0x1E7FF, 0x1E7FF), (0x1E8C5, 0x1E8C6), (0x1E8D7, 0x1E8FF), (0x1E94C, 0x1E94F),
    (0x1E95A, 0x1E95D), (0x1E960, 0x1EC70), (0x1ECB5, 0x1ED00), (0x1ED3E, 0x1EDFF),
    (0x1EE04, 0x1EE04), (0x1EE20, 0x1EE20), (0x1EE23, 0x1EE23), (0x1EE25, 0x1EE26),
    (0x1EE28, 0x1EE28), (0x1EE33, 0x1EE33), (0x1EE38, 0x1EE38), (0x1EE3A, 0x1EE3A),
    (0x1EE3C, 0x1EE41), (0x1EE43, 0x1EE46), (0x1EE48, 0x1EE48), (0x1EE4A, 0x1EE4A),
    (0x1EE4C, 0x1EE4C), (0x1EE50, 0x1EE50), (0x1EE53, 0x1EE53), (0x1EE55, 0x1EE56),
    (0x1EE58, 0x1EE58), (0x1EE5A, 0x1EE5A), (0x1EE5C, 0x1EE5C), (0x1EE5E, 0x1EE5E),
    (0x1EE60, 0x1EE60), (0x1EE63, 0x1EE63), (0x1EE65, 0x1EE66), (0x1EE6B, 0x1EE6B),
    (0x1EE73, 0x1EE73), (0x1EE78, 0x1EE78), (0x1EE7D, 0x1EE7D), (0x1EE7F, 0x1EE7F),
    (0x1EE8A, 0x1EE8A), (0x1EE9C, 0x1EEA0), (0x1EEA4, 0x1EEA4), (0x1EEAA, 0x1EEAA),
    (0x1EEBC, 0x1EEEF), (0x1EEF2, 0x1EFFF), (0x1F02C, 0x1F02F), (0x1F094, 0x1F09F),
    (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0D0, 0x1F0D0), (0x1F0F6, 0x1F0FF),
    (0x1F1AE, 0x1F1E5), (0x1F203, 0x1F20F), (0x1F23C, 0x1F23F), (0x1F249, 0x1F24F),
    (0x1F252, 0x1F25F), (0x1F266, 0x1F2FF), (0x1F6D8, 0x1F6DB), (0x1F6ED, 0x1F6EF),
    (0x1F6FD, 0x1F6FF), (0x1F777, 0x1F77A), (0x1F7DA, 0x1F7DF), (0x1F7EC, 0x1F7EF),
    (0x1F7F1, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8B2, 0x1F8FF), (0x1FA54, 0x1FA5F),
    (0x1FA6E, 0x1FA6F), (0x1FA7D, 0x1FA7F), (0x1FA89, 0x1FA8F), (0x1FABE, 0x1FABE),
    (0x1FAC6, 0x1FACD), (0x1FADC, 0x1FADF), (0x1FAE9, 0x1FAEF), (0x1FAF9, 0x1FAFF),
    (0x1FB93, 0x1FB93), (0x1FBCB, 0x1FBEF), (0x1FBFA, 0x1FFFF), (0x2A6E0, 0x2A6FF),
    (0x2B73A, 0x2B73F), (0x2B81E, 0x2B81F), (0x2CEA2, 0x2CEAF), (0x2EBE1, 0x2F7FF),
    (0x2FA1E, 0x2FFFF), (0x3134B, 0x3134F), (0x323B0, 0xE00FF), (0xE01F0, 0x10FFFF),
];

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected value below was produced by Go itself (net/url, aws-sdk-go arn, the
    // dataurl library), not written from memory.
    // (input, scheme, opaque, host, path, raw_query, fragment), as Go 1.22's url.Parse splits them.
    const PARSE_OK: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
        ("http://example.com", "http", "", "example.com", "", "", ""),
        (
            "HTTP://Example.COM:8080/p%20a?x=1#f%20g",
            "http",
            "",
            "Example.COM:8080",
            "/p a",
            "x=1",
            "f g",
        ),
        ("https://host/a/b?", "https", "", "host", "/a/b", "", ""),
        ("http://h??", "http", "", "h", "", "?", ""),
        ("http://h?a?", "http", "", "h", "", "a?", ""),
        (
            "https://u:p%40ss@host:443/path",
            "https",
            "",
            "host:443",
            "/path",
            "",
            "",
        ),
        ("http://[::1]:80/x", "http", "", "[::1]:80", "/x", "", ""),
        (
            "http://[fe80::1%25en0]:8080/",
            "http",
            "",
            "[fe80::1%en0]:8080",
            "/",
            "",
            "",
        ),
        ("http://%c3%a9.com/", "http", "", "\u{e9}.com", "/", "", ""),
        (
            "http://\u{e9}.com/\u{e9}",
            "http",
            "",
            "\u{e9}.com",
            "/\u{e9}",
            "",
            "",
        ),
        ("http://host:", "http", "", "host:", "", "", ""),
        ("foo", "", "", "", "foo", "", ""),
        ("/etc/x", "", "", "", "/etc/x", "", ""),
        ("a/b:c", "", "", "", "a/b:c", "", ""),
        ("./foo:bar", "", "", "", "./foo:bar", "", ""),
        ("//host/path", "", "", "host", "/path", "", ""),
        ("///path", "", "", "", "///path", "", ""),
        ("*", "", "", "", "*", "", ""),
        ("mailto:x@y", "mailto", "x@y", "", "", "", ""),
        ("http:x", "http", "x", "", "", "", ""),
        ("http:/x", "http", "", "", "/x", "", ""),
        ("http:///x", "http", "", "", "/x", "", ""),
        ("data:,a b#frag", "data", ",a b", "", "", "", "frag"),
        (
            "data:text/plain;base64,SGVsbG8K",
            "data",
            "text/plain;base64,SGVsbG8K",
            "",
            "",
            "",
            "",
        ),
        (
            "s3://bucket/key?versionId=abc",
            "s3",
            "",
            "bucket",
            "/key",
            "versionId=abc",
            "",
        ),
        ("tftp://h/f", "tftp", "", "h", "/f", "", ""),
        (
            "arn:aws:s3:::bucket/key",
            "arn",
            "aws:s3:::bucket/key",
            "",
            "",
            "",
            "",
        ),
        ("a?b#c", "", "", "", "a", "b", "c"),
        ("?", "", "", "", "", "", ""),
        ("#frag", "", "", "", "", "", "frag"),
        ("http://h/p#a%20b", "http", "", "h", "/p", "", "a b"),
        ("http://h/a%2Fb", "http", "", "h", "/a/b", "", ""),
        (
            "gs://bucket/dir/obj",
            "gs",
            "",
            "bucket",
            "/dir/obj",
            "",
            "",
        ),
        ("http://a@b@c/", "http", "", "c", "/", "", ""),
        ("http://u:p:q@h", "http", "", "h", "", "", ""),
        ("http://h%25/", "http", "", "h%", "/", "", ""),
        ("http://[::1]/ a", "http", "", "[::1]", "/ a", "", ""),
        ("http://h/ a", "http", "", "h", "/ a", "", ""),
        ("http://[::1]:/", "http", "", "[::1]:", "/", "", ""),
        ("http://host:80:90", "http", "", "host:80:90", "", "", ""),
        ("http://a#\u{1}", "http", "", "a", "", "", "\u{1}"),
        ("http://h<>/", "http", "", "h<>", "/", "", ""),
        ("http://h\"/", "http", "", "h\"", "/", "", ""),
    ];
    // (input, Go's full error text).
    const PARSE_ERR: &[(&str, &str)] = &[
        (
            "http://a b",
            "parse \"http://a b\": invalid character \" \" in host name",
        ),
        (":foo", "parse \":foo\": missing protocol scheme"),
        (
            "1a:b/c",
            "parse \"1a:b/c\": first path segment in URL cannot contain colon",
        ),
        (
            "a_b:c",
            "parse \"a_b:c\": first path segment in URL cannot contain colon",
        ),
        (
            "http://host:x",
            "parse \"http://host:x\": invalid port \":x\" after host",
        ),
        (
            "http://host:8x",
            "parse \"http://host:8x\": invalid port \":8x\" after host",
        ),
        ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
        (
            "http://[::1]x/",
            "parse \"http://[::1]x/\": invalid port \"x\" after host",
        ),
        (
            "http://h%zz/",
            "parse \"http://h%zz/\": invalid URL escape \"%zz\"",
        ),
        (
            "http://h/%zz",
            "parse \"http://h/%zz\": invalid URL escape \"%zz\"",
        ),
        (
            "http://h/%2",
            "parse \"http://h/%2\": invalid URL escape \"%2\"",
        ),
        (
            "http://h/p#%zz",
            "parse \"http://h/p#%zz\": invalid URL escape \"%zz\"",
        ),
        (
            "http://a\u{1}b",
            "parse \"http://a\\x01b\": net/url: invalid control character in URL",
        ),
        (
            "http://a\u{7f}",
            "parse \"http://a\\x7f\": net/url: invalid control character in URL",
        ),
        (
            "http://u ser@h",
            "parse \"http://u ser@h\": net/url: invalid userinfo",
        ),
        (
            "http://u%zz@h",
            "parse \"http://u%zz@h\": invalid URL escape \"%zz\"",
        ),
        (
            "http://u:p%zz@h",
            "parse \"http://u:p%zz@h\": invalid URL escape \"%zz\"",
        ),
        (
            "http://%41.com",
            "parse \"http://%41.com\": invalid URL escape \"%41\"",
        ),
        (
            "http://[%41]/",
            "parse \"http://[%41]/\": invalid URL escape \"%41\"",
        ),
        (
            "http://[fe80::1%en0]/",
            "parse \"http://[fe80::1%en0]/\": invalid URL escape \"%en\"",
        ),
        (
            "http://[fe80::1%25%2f]/",
            "parse \"http://[fe80::1%25%2f]/\": invalid URL escape \"%2f\"",
        ),
        (
            "http://h/%\u{e9}",
            "parse \"http://h/%\u{e9}\": invalid URL escape \"%\u{e9}\"",
        ),
        (
            "http://h/%\u{20ac}",
            "parse \"http://h/%\u{20ac}\": invalid URL escape \"%\\xe2\\x82\"",
        ),
        (
            "http://h/%\u{1f600}",
            "parse \"http://h/%\u{1f600}\": invalid URL escape \"%\\xf0\\x9f\"",
        ),
        (
            "\u{e9}\u{a0}x:\u{1}",
            "parse \"\u{e9}\\u00a0x:\\x01\": net/url: invalid control character in URL",
        ),
        (
            "http://h\u{a0}/%",
            "parse \"http://h\\u00a0/%\": invalid URL escape \"%\"",
        ),
        (
            "http://h/\u{200b}%",
            "parse \"http://h/\\u200b%\": invalid URL escape \"%\"",
        ),
    ];
    // (source, Ignition's verdict with gs and arn allowed: "" = valid).
    const RULES: &[(&str, &str)] = &[
        ("", "invalid url scheme"),
        ("http://x", ""),
        ("HTTPS://x", ""),
        ("tftp://x/y", ""),
        ("gs://b/o", ""),
        ("s3://b/k", ""),
        ("s3://b/k?versionId=", "invalid S3 object VersionId"),
        ("s3://b/k?versionId", "invalid S3 object VersionId"),
        ("s3://b/k?versionId=1", ""),
        (
            "s3://b/k?versionId=&versionId=1",
            "invalid S3 object VersionId",
        ),
        ("s3://b/k?versionId=1&versionId=", ""),
        ("s3://b/k?a=1;versionId=", ""),
        ("s3://b/k?versionId=%zz", ""),
        (
            "s3://b/k?versionId=%zz&versionId=",
            "invalid S3 object VersionId",
        ),
        ("s3://b/k?versionId=+", ""),
        ("s3://b/k?versionI%64=", "invalid S3 object VersionId"),
        ("arn:aws:s3:::bucket/key", ""),
        ("arn:aws:s3:::bucket", "invalid S3 ARN format"),
        (
            "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/key",
            "",
        ),
        (
            "arn:aws:s3:us-east-1:1:accesspoint/ap",
            "invalid S3 ARN format",
        ),
        ("arn:aws:s3:us-east-1:1:accesspoint/ap/object", ""),
        ("arn:aws:iam:::bucket/key", "invalid S3 ARN format"),
        ("arn:aws:s3::bucket/key", "invalid S3 ARN format"),
        ("arn:", "invalid S3 ARN format"),
        ("arn:/x", "invalid S3 ARN format"),
        (
            "arn:aws:s3:::bucket/key?versionId=",
            "invalid S3 object VersionId",
        ),
        ("arn:aws:s3:::bucket/key?versionId=v1", ""),
        ("ARN:aws:s3:::b/k", ""),
        ("arn:aws:s3:::b/k#x", ""),
        ("data:,hello", ""),
        ("data:,example%20file%0A", ""),
        ("data:,a b", "invalid data character"),
        ("data:,a#b", "invalid data character"),
        (
            "data:,a%zz",
            "rfc2396: invalid char 0x25 in unescape sequence",
        ),
        ("DATA:,x", "missing data prefix"),
        (
            "data:text/plain;base64,SGVsbG8",
            "illegal base64 data at input byte 4",
        ),
        ("data:;base64,", ""),
        ("data:", "missing comma before data"),
        ("/etc/x", "invalid url scheme"),
        ("foo", "invalid url scheme"),
        ("ftp://x/y", "invalid url scheme"),
        ("file:///etc/x", "invalid url scheme"),
        ("http://a b", "unable to parse url"),
        ("http://h/%zz", "unable to parse url"),
        ("http://a\u{1}", "unable to parse url"),
        ("://x", "unable to parse url"),
        ("mailto:a@b", "invalid url scheme"),
        ("https://h/p?q#f", ""),
        ("http://[::1]:8080/x", ""),
    ];

    #[test]
    fn parse_splits_like_go() {
        for &(input, scheme, opaque, host, path, query, fragment) in PARSE_OK {
            let u = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(
                (
                    u.scheme.as_str(),
                    u.opaque.as_str(),
                    u.host.as_str(),
                    u.path.as_str(),
                    u.raw_query.as_str(),
                    u.fragment.as_str()
                ),
                (scheme, opaque, host, path, query, fragment),
                "{input:?}"
            );
        }
    }

    #[test]
    fn parse_errors_have_go_text() {
        for &(input, message) in PARSE_ERR {
            match parse(input) {
                Ok(u) => panic!("{input:?} parsed: {u:?}"),
                Err(e) => assert_eq!(e.to_string(), message, "{input:?}"),
            }
        }
    }

    #[test]
    fn resource_rules_match_ignition() {
        for &(input, verdict) in RULES {
            let got = match validate_resource_url(input, true, true) {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            assert_eq!(got, verdict, "{input:?}");
        }
    }

    #[test]
    fn gs_and_arn_depend_on_spec_version() {
        assert_eq!(
            validate_resource_url("gs://b/o", false, true),
            Err(UrlRuleError::InvalidScheme)
        );
        assert_eq!(
            validate_resource_url("arn:aws:s3:::b/k", true, false),
            Err(UrlRuleError::InvalidScheme)
        );
        assert_eq!(validate_resource_url("gs://b/o", true, false), Ok(()));
        assert_eq!(validate_resource_url("s3://b/k", false, false), Ok(()));
        assert_eq!(
            validate_resource_url("data:,a b", false, false),
            Err(UrlRuleError::DataUrl(
                dataurl::DataUrlError::InvalidDataChar
            ))
        );
    }

    #[test]
    fn arn_parse_errors_are_unreachable_behind_is_arn() {
        // arn.IsARN is checked first, so arn.Parse never gets to explain.
        for s in ["arn:aws:s3:bucket/key", "arn:aws", "arn:"] {
            assert_eq!(check_s3_arn(s), Err(UrlRuleError::InvalidS3Arn), "{s}");
        }
        assert_eq!(check_s3_arn("arn:aws:s3:::b/k"), Ok(()));
        assert_eq!(
            UrlRuleError::ArnNotEnoughSections.to_string(),
            "arn: not enough sections"
        );
        assert_eq!(
            UrlRuleError::ArnInvalidPrefix.to_string(),
            "arn: invalid prefix"
        );
    }

    #[test]
    fn tang_urls() {
        let cases: &[(&str, Result<(), UrlRuleError>)] = &[
            ("http://tang.example.com", Ok(())),
            ("HTTPS://tang:8080/", Ok(())),
            ("tftp://tang", Err(UrlRuleError::InvalidScheme)),
            ("tang.example.com", Err(UrlRuleError::InvalidScheme)),
            ("", Err(UrlRuleError::InvalidScheme)),
            ("http://tang example", Err(UrlRuleError::UnableToParse)),
            ("http://tang:port", Err(UrlRuleError::UnableToParse)),
        ];
        for (input, want) in cases {
            assert_eq!(&tang_url_ok(input), want, "{input:?}");
        }
    }

    #[test]
    fn scheme_of_is_lowercased_or_none() {
        assert_eq!(scheme_of("HTTPS://x").as_deref(), Some("https"));
        assert_eq!(scheme_of("/etc/x").as_deref(), Some(""));
        assert_eq!(scheme_of("Data:,x").as_deref(), Some("data"));
        assert_eq!(scheme_of("http://a b"), None);
        assert_eq!(scheme_of(":x"), None);
    }

    #[test]
    fn userinfo_hostname_port() {
        let u = parse("https://us%20er:p%40ss:w@[fe80::1%25eth0]:8443/p").unwrap();
        let user = u.user.clone().unwrap();
        assert_eq!(user.username, "us er");
        assert_eq!(user.password.as_deref(), Some("p@ss:w"));
        assert_eq!(u.host, "[fe80::1%eth0]:8443");
        assert_eq!(u.hostname(), "fe80::1%eth0");
        assert_eq!(u.port(), "8443");
        assert!(!format!("{user:?}").contains("p@ss"));

        let u = parse("http://only@host").unwrap();
        assert_eq!(u.user.unwrap().password, None);

        let cases = [
            ("http://h", "h", ""),
            ("http://h:80", "h", "80"),
            ("http://h:", "h", ""),
            ("http://[::1]", "::1", ""),
            ("http://[::1]:1", "::1", "1"),
            ("http://host:80:90", "host:80", "90"),
            ("mailto:x", "", ""),
        ];
        for (input, host, port) in cases {
            let u = parse(input).unwrap();
            assert_eq!((u.hostname(), u.port()), (host, port), "{input}");
        }
    }

    #[test]
    fn flags() {
        let u = parse("http://h/p?").unwrap();
        assert!(u.force_query);
        assert_eq!(u.raw_query, "");
        let u = parse("http://h/p?a?").unwrap();
        assert!(!u.force_query);
        assert_eq!(u.raw_query, "a?");
        assert!(parse("http:/x").unwrap().omit_host);
        assert!(!parse("http://x/").unwrap().omit_host);
    }

    #[test]
    fn query_parsing_like_go() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a=1&b=2", &[("a", "1"), ("b", "2")]),
            ("a=1&a=2", &[("a", "1"), ("a", "2")]),
            ("a", &[("a", "")]),
            ("a=", &[("a", "")]),
            ("=x", &[("", "x")]),
            ("a=b=c", &[("a", "b=c")]),
            ("a+b=c+d%20e", &[("a b", "c d e")]),
            ("a=1;b=2&c=3", &[("c", "3")]),
            ("a=%zz&b=1", &[("b", "1")]),
            ("%zz=1&b=%2", &[]),
            ("&&a=1&", &[("a", "1")]),
        ];
        for &(raw, want) in cases {
            let got = parse_query(raw);
            let got: Vec<(&str, &str)> =
                got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(got, want, "{raw:?}");
        }
    }

    #[test]
    fn quoting_like_go_strconv() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"plain", r#""plain""#),
            (b"q\"b\\", r#""q\"b\\""#),
            (b"\x07\x08\x0c\n\r\t\x0b", r#""\a\b\f\n\r\t\v""#),
            (b"\x00\x1f\x7f", r#""\x00\x1f\x7f""#),
            ("é€😀".as_bytes(), "\"é€😀\""),
            (
                "\u{a0}\u{ad}\u{200b}\u{feff}".as_bytes(),
                r#""\u00a0\u00ad\u200b\ufeff""#,
            ),
            (
                "\u{e0001}\u{10ffff}".as_bytes(),
                r#""\U000e0001\U0010ffff""#,
            ),
            (b"\xff\xe2\x82", r#""\xff\xe2\x82""#),
            (b"a\xc3", r#""a\xc3""#),
            // Unicode 15.0 additions are printable for Go 1.21 and later.
            ("\u{31350}\u{11f00}".as_bytes(), "\"\u{31350}\u{11f00}\""),
            ("\u{3000}\u{2028}".as_bytes(), r#""\u3000\u2028""#),
        ];
        for &(input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }

    #[test]
    fn non_printable_table_is_sorted_and_disjoint() {
        assert!(NON_PRINTABLE.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(NON_PRINTABLE.iter().all(|&(a, b)| a <= b && a >= 0x80));
    }
}
