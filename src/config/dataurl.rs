//! RFC 2397 `data:` URLs, accepted and rejected exactly as the Go library Ignition uses
//! (github.com/vincent-petithory/dataurl v1.0.0), with its error texts.
//!
//! The grammar that library implements, and so this module:
//!
//! ```text
//! data:[<type>/<subtype>][;<attr>=<value>]*[;base64],<data>
//! ```
//!
//! - The `data:` prefix is case-sensitive.
//! - `<type>` is RFC 2045 token characters and must *start with* `text`, `image`, `audio`,
//!   `video`, `application`, `message` or `multipart`, or start with `x-`/`X-`. (A type that
//!   starts with `x` or `X` not followed by `-` has its second character swallowed unchecked,
//!   a quirk of the library that is reproduced.) Without a type the media type is
//!   `text/plain;charset=US-ASCII`; with one, the default `charset` is dropped.
//! - A parameter value is a token (percent-decoded) or a quoted string (decoded as a Go string
//!   literal). Parameters without `=` are an error, except a last `;base64`.
//! - After `;base64,` the data may only hold the base64 alphabet, `=` and `\n`; it is decoded
//!   with Go's `base64.StdEncoding` (padding required, newlines skipped), whose error names the
//!   byte offset.
//! - Otherwise the data may only hold ASCII URI characters (RFC 2396 without delims and
//!   "unwise" characters, `%` allowed) and is percent-decoded.
//!
//! Raw characters outside the URI character set in the data part (space, `"`, `<`, `>`, `#`,
//! `{`, `}`, `|`, `\`, `^`, `[`, `]`, `` ` ``, control characters and anything non-ASCII)
//! are **rejected** with `invalid data character`, because that is what the library does and
//! Ignition hands it the *whole* original string: `url.Parse` runs first and only uses the part
//! before `#` to find the scheme, but the `#` and what follows still reach this parser. So
//! `data:,a b`, `data:,é` and `data:,a#b` are all invalid configs for Ignition, and for Ember.
//! They have to be written `data:,a%20b`, `data:,%C3%A9` and `data:,a%23b`.

/// A decoded `data:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl {
    /// `type/subtype`, `text/plain` when the URL names none.
    pub media_type: String,
    /// Parameters in the order first seen (a repeated name keeps its last value). Values that
    /// decode to bytes that are not UTF-8 are stored lossily.
    pub params: Vec<(String, String)>,
    /// Whether the data was base64.
    pub base64: bool,
    /// The decoded data.
    pub data: Vec<u8>,
}

/// Why a data URL is rejected. `Display` is the Go library's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("missing data prefix")]
    MissingPrefix,
    #[error("missing comma before data")]
    MissingComma,
    #[error("invalid character after data prefix")]
    InvalidCharAfterPrefix,
    #[error("missing media type slash")]
    MissingMediaTypeSlash,
    #[error("invalid character for media type")]
    InvalidMediaTypeChar,
    #[error("invalid media type")]
    InvalidMediaType,
    #[error("incomplete media type")]
    IncompleteMediaType,
    #[error("invalid character for media subtype")]
    InvalidMediaSubtypeChar,
    #[error("expected semicolon or comma")]
    ExpectedSemicolonOrComma,
    #[error("unterminated parameter sequence")]
    UnterminatedParameter,
    #[error("invalid character for parameter attribute")]
    InvalidParamAttrChar,
    /// A parameter without `=` that is not the final `base64` flag.
    #[error("expected base64, got {0}")]
    ExpectedBase64(String),
    #[error("invalid character for parameter value")]
    InvalidParamValueChar,
    #[error("unclosed quoted string")]
    UnclosedQuotedString,
    #[error("invalid escaped character")]
    InvalidEscapedChar,
    #[error("invalid data character")]
    InvalidDataChar,
    /// A quoted parameter value that is not a valid Go string literal (Go's `strconv.ErrSyntax`).
    #[error("invalid syntax")]
    QuotedSyntax,
    #[error("rfc2396: non-ASCII char detected")]
    NonAscii,
    #[error("rfc2396: unexpected end of unescape sequence")]
    UnescapeEnd,
    /// The library prints the `%` itself here, not the offending character.
    #[error("rfc2396: invalid char 0x25 in unescape sequence")]
    UnescapeInvalidChar,
    /// Go's `base64.CorruptInputError`.
    #[error("illegal base64 data at input byte {0}")]
    Base64(usize),
}

/// Decodes a data URL.
pub fn decode(s: &str) -> Result<DataUrl, DataUrlError> {
    let mut p = Parser::new(true);
    p.run(s)?;
    let media_type = format!("{}/{}", p.mt_type, p.mt_subtype);
    Ok(DataUrl {
        media_type,
        params: p.params,
        base64: p.base64,
        data: p.data,
    })
}

/// Says whether [`decode`] would succeed, with the same error, without building the result:
/// it allocates nothing for valid input and runs in one pass over `s`.
pub fn validate(s: &str) -> Result<(), DataUrlError> {
    Parser::new(false).run(s)
}

/// What the lexer hands the parser, as in the Go library (only the items the parser uses).
enum Item<'a> {
    MediaType(&'a str),
    MediaSubType(&'a str),
    ParamAttr(&'a str),
    LeftQuote,
    ParamVal(&'a str),
    Base64Enc,
    DataComma,
    Data(&'a str),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Unset,
    Ascii,
    Base64,
}

/// The library's parser. With `build` false it only checks.
struct Parser<'a> {
    build: bool,
    mt_type: &'a str,
    mt_subtype: &'a str,
    params: Vec<(String, String)>,
    current_attr: &'a str,
    unquote_next: bool,
    encoding: Encoding,
    base64: bool,
    data: Vec<u8>,
}

impl<'a> Parser<'a> {
    fn new(build: bool) -> Self {
        Parser {
            build,
            mt_type: "text",
            mt_subtype: "plain",
            params: if build {
                vec![("charset".to_owned(), "US-ASCII".to_owned())]
            } else {
                Vec::new()
            },
            current_attr: "",
            unquote_next: false,
            encoding: Encoding::Unset,
            base64: false,
            data: Vec::new(),
        }
    }

    fn run(&mut self, s: &'a str) -> Result<(), DataUrlError> {
        let mut lexer = Lexer {
            input: s,
            start: 0,
            pos: 0,
            width: 0,
            seen_base64: false,
        };
        lexer.run(self)
    }

    fn set_param(&mut self, value: Vec<u8>) {
        let value = String::from_utf8_lossy(&value).into_owned();
        match self.params.iter_mut().find(|(k, _)| k == self.current_attr) {
            Some(entry) => entry.1 = value,
            None => self.params.push((self.current_attr.to_owned(), value)),
        }
    }

    fn item(&mut self, item: Item<'a>) -> Result<(), DataUrlError> {
        match item {
            Item::MediaType(t) => {
                self.mt_type = t;
                self.params.retain(|(k, _)| k != "charset");
            }
            Item::MediaSubType(t) => self.mt_subtype = t,
            Item::ParamAttr(a) => self.current_attr = a,
            Item::LeftQuote => self.unquote_next = true,
            Item::ParamVal(v) => {
                // The flag is cleared only here: an empty quoted value (`a=""`) emits no value,
                // so the next parameter's value is then read as a Go string literal instead of
                // being percent-decoded. That is the library's behaviour.
                let mut out = self.build.then(Vec::new);
                if self.unquote_next {
                    self.unquote_next = false;
                    unquote_go(v, out.as_mut())?;
                } else {
                    unescape_rfc2396(v, out.as_mut())?;
                }
                if let Some(out) = out {
                    self.set_param(out);
                }
            }
            Item::Base64Enc => {
                self.encoding = Encoding::Base64;
                self.base64 = true;
            }
            Item::DataComma => {
                if self.encoding == Encoding::Unset {
                    self.encoding = Encoding::Ascii;
                }
            }
            Item::Data(d) => {
                let mut out = self.build.then(Vec::new);
                if self.encoding == Encoding::Base64 {
                    base64_decode_go(d.as_bytes(), out.as_mut())?;
                } else {
                    unescape_rfc2396(d, out.as_mut())?;
                }
                if let Some(out) = out {
                    self.data = out;
                }
            }
        }
        Ok(())
    }
}

/// RFC 2045 token characters (ASCII, not control, not space, not tspecials).
fn is_token(c: char) -> bool {
    c.is_ascii()
        && !c.is_ascii_control()
        && c != ' '
        && !matches!(
            c,
            '(' | ')'
                | '<'
                | '>'
                | '@'
                | ','
                | ';'
                | ':'
                | '\\'
                | '"'
                | '/'
                | '['
                | ']'
                | '?'
                | '='
        )
}

/// Characters allowed raw in non-base64 data.
const fn is_url_char(b: u8) -> bool {
    b < 0x80
        && b > 0x1f
        && b != 0x7f
        && !matches!(
            b,
            b' ' | b'<'
                | b'>'
                | b'#'
                | b'"'
                | b'{'
                | b'}'
                | b'|'
                | b'\\'
                | b'^'
                | b'['
                | b']'
                | b'`'
        )
}

const fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n')
}

const fn url_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = is_url_char(i as u8);
        i += 1;
    }
    t
}

const fn base64_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = is_base64_char(i as u8);
        i += 1;
    }
    t
}

static URL_CHARS: [bool; 256] = url_table();
static BASE64_CHARS: [bool; 256] = base64_table();

/// The prefixes the library accepts for a media type that does not start with `x-`.
fn is_known_type(t: &str) -> bool {
    [
        "text",
        "image",
        "audio",
        "video",
        "application",
        "message",
        "multipart",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

#[derive(Clone, Copy)]
enum State {
    AfterDataPrefix,
    XTokenMediaType,
    InDiscreteMediaType,
    MediaType,
    AfterMediaSep,
    MediaSubType,
    AfterMediaSubType,
    ParamSemicolon,
    AfterParamSemicolon,
    InParamAttr,
    Base64Enc,
    ParamAttr,
    AfterParamEqual,
    InQuotedParamVal,
    EscapedChar,
    InParamVal,
    QuotedParamVal,
    ParamVal,
    AfterParamVal,
    DataComma,
}

/// The library's lexer: a state machine over runes with `start`/`pos` marks. `next` returns
/// `None` at the end (Go's `eof`), leaving `width` at 0 so that `backup` is then a no-op.
struct Lexer<'a> {
    input: &'a str,
    start: usize,
    pos: usize,
    width: usize,
    seen_base64: bool,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    /// The text since the last emitted item; moves the start mark.
    fn take(&mut self) -> &'a str {
        let v = &self.input[self.start..self.pos];
        self.start = self.pos;
        v
    }

    fn run(&mut self, p: &mut Parser<'a>) -> Result<(), DataUrlError> {
        use DataUrlError as E;
        if !self.input.starts_with("data:") {
            return Err(E::MissingPrefix);
        }
        self.pos = "data:".len();
        self.start = self.pos;
        let mut state = State::AfterDataPrefix;
        loop {
            state = match state {
                State::AfterDataPrefix => match self.next() {
                    Some(';') => {
                        self.backup();
                        State::ParamSemicolon
                    }
                    Some(',') => {
                        self.backup();
                        State::DataComma
                    }
                    None => return Err(E::MissingComma),
                    // The character after an `x` is consumed without a check.
                    Some('x' | 'X') => match self.next() {
                        Some('-') => State::XTokenMediaType,
                        _ => State::InDiscreteMediaType,
                    },
                    Some(c) if is_token(c) => State::InDiscreteMediaType,
                    Some(_) => return Err(E::InvalidCharAfterPrefix),
                },
                State::XTokenMediaType | State::InDiscreteMediaType => loop {
                    match self.next() {
                        Some('/') => {
                            self.backup();
                            if matches!(state, State::InDiscreteMediaType)
                                && !is_known_type(&self.input[self.start..self.pos])
                            {
                                return Err(E::InvalidMediaType);
                            }
                            break State::MediaType;
                        }
                        None => return Err(E::MissingMediaTypeSlash),
                        Some(c) if is_token(c) => {}
                        Some(_) => return Err(E::InvalidMediaTypeChar),
                    }
                },
                State::MediaType => {
                    if self.pos > self.start {
                        let t = self.take();
                        p.item(Item::MediaType(t))?;
                    }
                    // The separator.
                    self.next();
                    self.start = self.pos;
                    State::AfterMediaSep
                }
                State::AfterMediaSep => loop {
                    match self.next() {
                        Some(';' | ',') => {
                            self.backup();
                            break State::MediaSubType;
                        }
                        None => return Err(E::IncompleteMediaType),
                        Some(c) if is_token(c) => {}
                        Some(_) => return Err(E::InvalidMediaSubtypeChar),
                    }
                },
                State::MediaSubType => {
                    // An empty subtype (`text/,`) is not emitted: the default stays.
                    if self.pos > self.start {
                        let t = self.take();
                        p.item(Item::MediaSubType(t))?;
                    }
                    State::AfterMediaSubType
                }
                State::AfterMediaSubType | State::AfterParamVal => match self.next() {
                    Some(';') => {
                        self.backup();
                        State::ParamSemicolon
                    }
                    Some(',') => {
                        self.backup();
                        State::DataComma
                    }
                    None => return Err(E::MissingComma),
                    Some(_) => return Err(E::ExpectedSemicolonOrComma),
                },
                State::ParamSemicolon => {
                    self.next();
                    self.start = self.pos;
                    State::AfterParamSemicolon
                }
                State::AfterParamSemicolon => match self.next() {
                    None | Some('=' | ',') => return Err(E::UnterminatedParameter),
                    Some(c) if is_token(c) => {
                        self.backup();
                        State::InParamAttr
                    }
                    Some(_) => return Err(E::InvalidParamAttrChar),
                },
                State::InParamAttr => loop {
                    match self.next() {
                        Some('=') => {
                            self.backup();
                            break State::ParamAttr;
                        }
                        Some(',') => {
                            self.backup();
                            break State::Base64Enc;
                        }
                        None => return Err(E::UnterminatedParameter),
                        Some(c) if is_token(c) => {}
                        Some(_) => return Err(E::InvalidParamAttrChar),
                    }
                },
                State::Base64Enc => {
                    if self.pos > self.start {
                        let v = &self.input[self.start..self.pos];
                        if v != "base64" {
                            return Err(E::ExpectedBase64(v.to_owned()));
                        }
                        self.seen_base64 = true;
                        self.start = self.pos;
                        p.item(Item::Base64Enc)?;
                    }
                    State::DataComma
                }
                State::ParamAttr => {
                    if self.pos > self.start {
                        let a = self.take();
                        p.item(Item::ParamAttr(a))?;
                    }
                    // The `=`.
                    self.next();
                    self.start = self.pos;
                    State::AfterParamEqual
                }
                State::AfterParamEqual => match self.next() {
                    Some('"') => {
                        self.start = self.pos;
                        p.item(Item::LeftQuote)?;
                        State::InQuotedParamVal
                    }
                    None => return Err(E::MissingComma),
                    Some(c) if is_token(c) => State::InParamVal,
                    Some(_) => return Err(E::InvalidParamValueChar),
                },
                State::InQuotedParamVal => loop {
                    match self.next() {
                        None => return Err(E::UnclosedQuotedString),
                        Some('\\') => break State::EscapedChar,
                        Some('"') => {
                            self.backup();
                            break State::QuotedParamVal;
                        }
                        Some(c) if c.is_ascii() => {}
                        Some(_) => return Err(E::InvalidParamValueChar),
                    }
                },
                // Go compares the rune with MaxASCII first, and its eof (-1) passes that test:
                // a backslash at the very end falls through to "unclosed quoted string".
                State::EscapedChar => match self.next() {
                    None => State::InQuotedParamVal,
                    Some(c) if c.is_ascii() => State::InQuotedParamVal,
                    Some(_) => return Err(E::InvalidEscapedChar),
                },
                State::InParamVal => loop {
                    match self.next() {
                        Some(';' | ',') => {
                            self.backup();
                            break State::ParamVal;
                        }
                        None => return Err(E::MissingComma),
                        Some(c) if is_token(c) => {}
                        Some(_) => return Err(E::InvalidParamValueChar),
                    }
                },
                State::QuotedParamVal => {
                    if self.pos > self.start {
                        let v = self.take();
                        p.item(Item::ParamVal(v))?;
                    }
                    // The closing quote.
                    self.next();
                    self.start = self.pos;
                    State::AfterParamVal
                }
                State::ParamVal => {
                    if self.pos > self.start {
                        let v = self.take();
                        p.item(Item::ParamVal(v))?;
                    }
                    State::AfterParamVal
                }
                State::DataComma => {
                    self.next();
                    self.start = self.pos;
                    p.item(Item::DataComma)?;
                    let table = if self.seen_base64 {
                        &BASE64_CHARS
                    } else {
                        &URL_CHARS
                    };
                    let data = &self.input[self.pos..];
                    // Non-ASCII bytes are not in either table, as the library rejects any
                    // rune above U+007F here.
                    if data.bytes().any(|b| !table[usize::from(b)]) {
                        return Err(E::InvalidDataChar);
                    }
                    if !data.is_empty() {
                        p.item(Item::Data(data))?;
                    }
                    return Ok(());
                }
            };
        }
    }
}

/// The library's `Unescape`: `%XX` escapes over ASCII-only text. `out` is `None` to only check.
fn unescape_rfc2396(s: &str, mut out: Option<&mut Vec<u8>>) -> Result<(), DataUrlError> {
    let b = s.as_bytes();
    if let Some(o) = out.as_deref_mut() {
        o.reserve(b.len());
    }
    let mut i = 0;
    while i < b.len() {
        // Copy the run of plain ASCII up to the next escape in one piece.
        let run = b[i..]
            .iter()
            .position(|&c| c == b'%' || c >= 0x80)
            .unwrap_or(b.len() - i);
        if let Some(o) = out.as_deref_mut() {
            o.extend_from_slice(&b[i..i + run]);
        }
        i += run;
        if i == b.len() {
            break;
        }
        if b[i] >= 0x80 {
            return Err(DataUrlError::NonAscii);
        }
        let mut val = 0u8;
        for k in 1..=2 {
            let Some(&h) = b.get(i + k) else {
                return Err(DataUrlError::UnescapeEnd);
            };
            let Some(v) = (h as char).to_digit(16) else {
                return Err(DataUrlError::UnescapeInvalidChar);
            };
            // A hex digit is below 16.
            val = (val << 4) | v as u8;
        }
        if let Some(o) = out.as_deref_mut() {
            o.push(val);
        }
        i += 3;
    }
    Ok(())
}

/// Go's `strconv.Unquote` applied to `"` + `v` + `"`, where `v` is the text between the
/// quotes as the lexer found it (ASCII, no unescaped `"`).
fn unquote_go(v: &str, mut out: Option<&mut Vec<u8>>) -> Result<(), DataUrlError> {
    use DataUrlError::QuotedSyntax;
    let b = v.as_bytes();
    if b.contains(&b'\n') {
        return Err(QuotedSyntax);
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            return Err(QuotedSyntax);
        }
        if c != b'\\' {
            if let Some(o) = out.as_deref_mut() {
                o.push(c);
            }
            i += 1;
            continue;
        }
        let Some(&e) = b.get(i + 1) else {
            return Err(QuotedSyntax);
        };
        i += 2;
        let simple = match e {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(byte) = simple {
            if let Some(o) = out.as_deref_mut() {
                o.push(byte);
            }
            continue;
        }
        match e {
            b'x' | b'u' | b'U' => {
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let digits = b.get(i..i + n).ok_or(QuotedSyntax)?;
                let mut val: u32 = 0;
                for &d in digits {
                    val = (val << 4) | (d as char).to_digit(16).ok_or(QuotedSyntax)?;
                }
                i += n;
                if e == b'x' {
                    // A single byte, which need not be UTF-8 on its own.
                    if let Some(o) = out.as_deref_mut() {
                        o.push(val as u8);
                    }
                } else {
                    let ch = char::from_u32(val).ok_or(QuotedSyntax)?;
                    if let Some(o) = out.as_deref_mut() {
                        let mut buf = [0u8; 4];
                        o.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            b'0'..=b'7' => {
                let digits = b.get(i..i + 2).ok_or(QuotedSyntax)?;
                let mut val = u32::from(e - b'0');
                for &d in digits {
                    if !(b'0'..=b'7').contains(&d) {
                        return Err(QuotedSyntax);
                    }
                    val = (val << 3) | u32::from(d - b'0');
                }
                i += 2;
                let byte = u8::try_from(val).map_err(|_| QuotedSyntax)?;
                if let Some(o) = out.as_deref_mut() {
                    o.push(byte);
                }
            }
            _ => return Err(QuotedSyntax),
        }
    }
    Ok(())
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Go's `base64.StdEncoding.DecodeString`, quantum by quantum, so that errors carry Go's byte
/// offsets: padding is required, `\r` and `\n` are skipped anywhere, bits left over in the
/// last quantum are ignored. `out` is `None` to only check.
fn base64_decode_go(src: &[u8], mut out: Option<&mut Vec<u8>>) -> Result<(), DataUrlError> {
    use DataUrlError::Base64;
    if let Some(o) = out.as_deref_mut() {
        o.reserve(src.len() / 4 * 3);
    }
    let mut si = 0;
    while si < src.len() {
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut j = 0;
        let mut trailing_error = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(());
                }
                // Std encoding has padding: a short final quantum is an error.
                return Err(Base64(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = base64_value(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(Base64(si - 1));
            }
            // Padding: only valid after two or three characters.
            match j {
                0 | 1 => return Err(Base64(si - 1)),
                2 => {
                    // A second `=` must follow (newlines may come between).
                    while si < src.len() && matches!(src[si], b'\n' | b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(Base64(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(Base64(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && matches!(src[si], b'\n' | b'\r') {
                si += 1;
            }
            if si < src.len() {
                trailing_error = Some(Base64(si));
            }
            dlen = j;
            break;
        }
        if let Some(o) = out.as_deref_mut() {
            let val = u32::from(dbuf[0]) << 18
                | u32::from(dbuf[1]) << 12
                | u32::from(dbuf[2]) << 6
                | u32::from(dbuf[3]);
            let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
            o.extend_from_slice(&bytes[..dlen - 1]);
        }
        if let Some(e) = trailing_error {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values produced by the Go library itself (vincent-petithory/dataurl).
    // (input, media type, parameters as name=value joined by ';', base64 flag, decoded data).
    const DECODE_OK: &[(&str, &str, &str, bool, &[u8])] = &[
        (
            "data:,example%20file%0A",
            "text/plain",
            "charset=US-ASCII",
            false,
            b"example file\x0a",
        ),
        ("data:,", "text/plain", "charset=US-ASCII", false, b""),
        ("data:;base64,", "text/plain", "charset=US-ASCII", true, b""),
        (
            "data:text/plain;base64,SGVsbG8K",
            "text/plain",
            "",
            true,
            b"Hello\x0a",
        ),
        (
            "data:text/plain;charset=utf-8;base64,SGVsbG8K",
            "text/plain",
            "charset=utf-8",
            true,
            b"Hello\x0a",
        ),
        (
            "data:application/octet-stream;base64,AAECAw==",
            "application/octet-stream",
            "",
            true,
            b"\x00\x01\x02\x03",
        ),
        (
            "data:,hello",
            "text/plain",
            "charset=US-ASCII",
            false,
            b"hello",
        ),
        ("data:,a?b", "text/plain", "charset=US-ASCII", false, b"a?b"),
        (
            "data:;charset=utf-8,x",
            "text/plain",
            "charset=utf-8",
            false,
            b"x",
        ),
        (
            "data:text/plain;charset=utf-8,%C3%A9",
            "text/plain",
            "charset=utf-8",
            false,
            b"\xc3\xa9",
        ),
        (
            "data:image/png;base64,iVBORw0KGgo=",
            "image/png",
            "",
            true,
            b"\x89PNG\x0d\x0a\x1a\x0a",
        ),
        (
            "data:x-custom/thing;a=1,x",
            "x-custom/thing",
            "a=1",
            false,
            b"x",
        ),
        (
            "data:textual/whatever,x",
            "textual/whatever",
            "",
            false,
            b"x",
        ),
        ("data:text/,x", "text/plain", "", false, b"x"),
        (
            "data:text/plain;a=\"b c\",x",
            "text/plain",
            "a=b c",
            false,
            b"x",
        ),
        (
            "data:text/plain;a=\"\\x41\\u00e9\\101\",x",
            "text/plain",
            "a=A\u{e9}A",
            false,
            b"x",
        ),
        (
            "data:text/plain;a=\"\";b=%zz,x",
            "text/plain",
            "b=%zz",
            false,
            b"x",
        ),
        (
            "data:text/plain;a=b;a=c,x",
            "text/plain",
            "a=c",
            false,
            b"x",
        ),
        (
            "data:;base64,SG\nVs\nbG8K\n",
            "text/plain",
            "charset=US-ASCII",
            true,
            b"Hello\x0a",
        ),
        (
            "data:;base64,SGVsbA==\n",
            "text/plain",
            "charset=US-ASCII",
            true,
            b"Hell",
        ),
        (
            "data:;base64,\n",
            "text/plain",
            "charset=US-ASCII",
            true,
            b"",
        ),
        ("data:text/plain;a=%41,x", "text/plain", "a=A", false, b"x"),
        ("data:message/rfc822,x", "message/rfc822", "", false, b"x"),
        ("data:multipart/mixed,x", "multipart/mixed", "", false, b"x"),
        (
            "data:;base64,SGVsbA=\n=",
            "text/plain",
            "charset=US-ASCII",
            true,
            b"Hell",
        ),
        (
            "data:,~!$&'()*+-./:;=?@_",
            "text/plain",
            "charset=US-ASCII",
            false,
            b"~!$&'()*+-./:;=?@_",
        ),
    ];
    // (input, the library's error text).
    const DECODE_ERR: &[(&str, &str)] = &[
        ("data:,a b", "invalid data character"),
        ("data:,\u{e9}", "invalid data character"),
        ("data:,a#b", "invalid data character"),
        ("data:,{}", "invalid data character"),
        ("DATA:,x", "missing data prefix"),
        ("x", "missing data prefix"),
        ("data:", "missing comma before data"),
        ("data:text", "missing media type slash"),
        ("data:text/", "incomplete media type"),
        ("data:text/plain", "incomplete media type"),
        ("data:foo/bar,x", "invalid media type"),
        ("data:x,abc", "missing media type slash"),
        ("data:x/plain,abc", "invalid character for media type"),
        ("data:x//y,", "invalid media type"),
        ("data:te(xt/plain,x", "invalid character for media type"),
        ("data:\u{e9},x", "invalid character after data prefix"),
        ("data:text/pla in,x", "invalid character for media subtype"),
        ("data:text/plain x,y", "invalid character for media subtype"),
        ("data:text/plain;charset,x", "expected base64, got charset"),
        (
            "data:text/plain;base64;a=b,x",
            "invalid character for parameter attribute",
        ),
        (
            "data:text/plain;;base64,x",
            "invalid character for parameter attribute",
        ),
        ("data:;=x,", "unterminated parameter sequence"),
        ("data:;a=,x", "invalid character for parameter value"),
        ("data:;a=b", "missing comma before data"),
        (
            "data:text/plain;a=\"unterminated,x",
            "unclosed quoted string",
        ),
        ("data:text/plain;a=\"x\\", "unclosed quoted string"),
        ("data:text/plain;a=\"\\q\",x", "invalid syntax"),
        ("data:text/plain;a=\"\\400\",x", "invalid syntax"),
        ("data:text/plain;a=\"\\uD800\",x", "invalid syntax"),
        (
            "data:text/plain;a=\"\u{e9}\",x",
            "invalid character for parameter value",
        ),
        (
            "data:text/plain;a=\"\\\u{e9}\",x",
            "invalid escaped character",
        ),
        (
            "data:text/plain;a=b x,y",
            "invalid character for parameter value",
        ),
        (
            "data:text/plain;a=%zz,x",
            "rfc2396: invalid char 0x25 in unescape sequence",
        ),
        (
            "data:text/plain;a=%4,x",
            "rfc2396: unexpected end of unescape sequence",
        ),
        ("data:,%", "rfc2396: unexpected end of unescape sequence"),
        ("data:,%4", "rfc2396: unexpected end of unescape sequence"),
        (
            "data:,%4g",
            "rfc2396: invalid char 0x25 in unescape sequence",
        ),
        (
            "data:,%g4",
            "rfc2396: invalid char 0x25 in unescape sequence",
        ),
        (
            "data:;base64,SGVsbG8",
            "illegal base64 data at input byte 4",
        ),
        ("data:;base64,SGVsbG8K\r\n", "invalid data character"),
        ("data:;base64,=", "illegal base64 data at input byte 0"),
        ("data:;base64,Q", "illegal base64 data at input byte 0"),
        ("data:;base64,QQ", "illegal base64 data at input byte 0"),
        ("data:;base64,QQ=", "illegal base64 data at input byte 3"),
        ("data:;base64,S===", "illegal base64 data at input byte 1"),
        (
            "data:;base64,SGVsbA==QUFB",
            "illegal base64 data at input byte 8",
        ),
        (
            "data:;base64,SGVsb===",
            "illegal base64 data at input byte 5",
        ),
        ("data:;base64,QUFB QUFB", "invalid data character"),
        (
            "data:;base64,QUFB\n\nQU=A",
            "illegal base64 data at input byte 8",
        ),
        ("data:;base64,QUFBQUFBQUFBQUFB!", "invalid data character"),
        ("data:;base64,%41", "invalid data character"),
    ];

    fn params_joined(d: &DataUrl) -> String {
        let mut p = d.params.clone();
        p.sort();
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn decodes_like_the_go_library() {
        for &(input, media_type, params, base64, data) in DECODE_OK {
            let d = decode(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(d.media_type, media_type, "{input:?}");
            assert_eq!(params_joined(&d), params, "{input:?}");
            assert_eq!(d.base64, base64, "{input:?}");
            assert_eq!(d.data, data, "{input:?}");
            assert_eq!(validate(input), Ok(()), "{input:?}");
        }
    }

    #[test]
    fn rejects_like_the_go_library() {
        for &(input, message) in DECODE_ERR {
            let err = decode(input).expect_err(input);
            assert_eq!(err.to_string(), message, "{input:?}");
            assert_eq!(validate(input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn base64_decoder_matches_go_std_encoding() {
        // The lexer lets only the alphabet, '=' and '\n' through, but the decoder itself is
        // Go's: '\r' is skipped as well.
        let cases: &[(&str, Result<&[u8], usize>)] = &[
            ("", Ok(b"")),
            ("SGVs\r\nbG8K", Ok(b"Hello\n")),
            ("SGVsbA=\r=", Ok(b"Hell")),
            ("SGVsbA=\r", Err(8)),
            ("SGVsbG8=\r\n", Ok(b"Hello")),
            ("SGVsbG8=\r\nx", Err(10)),
            ("SGVsbG9=", Ok(b"Hello")),
            ("AAAA!AAA", Err(4)),
            // Go reports `si - j`, which does not count the skipped newline.
            ("AA\nA", Err(1)),
        ];
        for &(input, want) in cases {
            let mut out = Vec::new();
            let got = base64_decode_go(input.as_bytes(), Some(&mut out)).map(|()| out);
            let want = want.map(<[u8]>::to_vec).map_err(DataUrlError::Base64);
            assert_eq!(got, want, "{input:?}");
            assert_eq!(
                base64_decode_go(input.as_bytes(), None),
                want.map(|_| ()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn large_inputs_validate_in_one_pass() {
        let payload = "QUJD".repeat(500_000);
        let url = format!("data:application/octet-stream;base64,{payload}");
        assert_eq!(validate(&url), Ok(()));
        assert_eq!(decode(&url).unwrap().data.len(), 1_500_000);
        let text = format!("data:,{}", "a%20".repeat(250_000));
        assert_eq!(validate(&text), Ok(()));
        let bad = format!("{text} ");
        assert_eq!(validate(&bad), Err(DataUrlError::InvalidDataChar));
    }
}
