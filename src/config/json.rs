//! JSON reading that behaves like Go's `encoding/json`, which is what Ignition uses.
//!
//! Compatibility is decided byte by byte here, so this module reproduces Go's decoder instead of
//! using serde_json:
//!
//! * [`check_valid`] is Go's syntax scanner: the same accept/reject decisions, the same error
//!   texts (`invalid character 'x' looking for beginning of value`, `unexpected end of JSON
//!   input`, `... exceeded max depth`) and the same offsets (bytes consumed, one past the
//!   offending byte).
//! * [`parse_doc`] builds a position tree like the one Ignition's report code correlates JSON
//!   paths with: object and array markers point one past the opening bracket, literal markers at
//!   their first byte, key markers at the key's opening quote; in objects the last duplicate key
//!   wins when looking a path up.
//! * Strings are unquoted as Go does: invalid UTF-8 and lone surrogates become U+FFFD.
//!
//! Subtrees nested more than [`TREE_DEPTH_LIMIT`] levels deep are kept as opaque leaves: no known
//! config field is that deep, so nothing ever looks inside them, and it keeps the tree builder
//! and the tree's destructor from recursing without bound.

use std::borrow::Cow;
use std::fmt;

/// Go's `maxNestingDepth`.
pub const MAX_NESTING_DEPTH: usize = 10_000;
/// Deeper subtrees are stored as [`Kind::Opaque`].
pub const TREE_DEPTH_LIMIT: usize = 64;

/// A syntax error with Go's message and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub msg: String,
    /// Bytes consumed when the error was found (Go's `SyntaxError.Offset`).
    pub offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for SyntaxError {}

/// Go's `quoteChar`: how a byte is shown in "invalid character" messages.
pub fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            // Go converts the byte to a rune (Latin-1) and uses strconv.Quote's escaping.
            let r = c as char;
            let inner = match r {
                '\x07' => r"\a".to_string(),
                '\x08' => r"\b".to_string(),
                '\x0c' => r"\f".to_string(),
                '\n' => r"\n".to_string(),
                '\r' => r"\r".to_string(),
                '\t' => r"\t".to_string(),
                '\x0b' => r"\v".to_string(),
                '\\' => r"\\".to_string(),
                _ if go_is_print(r) => r.to_string(),
                _ if (r as u32) < 0x20 || r as u32 == 0x7f => format!(r"\x{:02x}", r as u32),
                _ => format!(r"\u{:04x}", r as u32),
            };
            format!("'{inner}'")
        }
    }
}

/// Go's `strconv.IsPrint` restricted to U+0000..U+00FF (all a byte can become).
fn go_is_print(r: char) -> bool {
    let u = r as u32;
    (0x20..0x7f).contains(&u) || (0xa1..=0xff).contains(&u) && u != 0xad
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    Lit(&'static [u8], u8, &'static str),
    Error,
}

struct Scanner {
    step: Step,
    parse: Vec<Parse>,
    end_top: bool,
    err: Option<SyntaxError>,
    bytes: usize,
}

#[derive(PartialEq, Eq)]
enum Op {
    Continue,
    SkipSpace,
    Error,
    Other,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            step: Step::BeginValue,
            parse: Vec::new(),
            end_top: false,
            err: None,
            bytes: 0,
        }
    }

    fn error(&mut self, c: u8, context: &str) -> Op {
        self.step = Step::Error;
        self.err = Some(SyntaxError {
            msg: format!("invalid character {} {}", quote_char(c), context),
            offset: self.bytes,
        });
        Op::Error
    }

    fn push(&mut self, c: u8, p: Parse) -> Op {
        self.parse.push(p);
        if self.parse.len() <= MAX_NESTING_DEPTH {
            Op::Other
        } else {
            self.error(c, "exceeded max depth")
        }
    }

    fn run(&mut self, c: u8) -> Op {
        match self.step {
            Step::BeginValueOrEmpty => {
                if is_space(c) {
                    return Op::SkipSpace;
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            Step::BeginValue => self.begin_value(c),
            Step::BeginStringOrEmpty => {
                if is_space(c) {
                    return Op::SkipSpace;
                }
                if c == b'}' {
                    if let Some(last) = self.parse.last_mut() {
                        *last = Parse::ObjectValue;
                    }
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            Step::BeginString => self.begin_string(c),
            Step::EndValue => self.end_value(c),
            Step::EndTop => self.end_top_step(c),
            Step::InString => {
                if c == b'"' {
                    self.step = Step::EndValue;
                    Op::Continue
                } else if c == b'\\' {
                    self.step = Step::InStringEsc;
                    Op::Continue
                } else if c < 0x20 {
                    self.error(c, "in string literal")
                } else {
                    Op::Continue
                }
            }
            Step::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.step = Step::InString;
                    Op::Continue
                }
                b'u' => {
                    self.step = Step::InStringEscU(0);
                    Op::Continue
                }
                _ => self.error(c, "in string escape code"),
            },
            Step::InStringEscU(n) => {
                if c.is_ascii_hexdigit() {
                    self.step = if n == 3 {
                        Step::InString
                    } else {
                        Step::InStringEscU(n + 1)
                    };
                    Op::Continue
                } else {
                    self.error(c, "in \\u hexadecimal character escape")
                }
            }
            Step::Neg => {
                if c == b'0' {
                    self.step = Step::Zero;
                    Op::Continue
                } else if (b'1'..=b'9').contains(&c) {
                    self.step = Step::One;
                    Op::Continue
                } else {
                    self.error(c, "in numeric literal")
                }
            }
            Step::One => {
                if c.is_ascii_digit() {
                    Op::Continue
                } else {
                    self.zero(c)
                }
            }
            Step::Zero => self.zero(c),
            Step::Dot => {
                if c.is_ascii_digit() {
                    self.step = Step::Dot0;
                    Op::Continue
                } else {
                    self.error(c, "after decimal point in numeric literal")
                }
            }
            Step::Dot0 => {
                if c.is_ascii_digit() {
                    Op::Continue
                } else if c == b'e' || c == b'E' {
                    self.step = Step::E;
                    Op::Continue
                } else {
                    self.end_value(c)
                }
            }
            Step::E => {
                if c == b'+' || c == b'-' {
                    self.step = Step::ESign;
                    Op::Continue
                } else {
                    self.e_sign(c)
                }
            }
            Step::ESign => self.e_sign(c),
            Step::E0 => {
                if c.is_ascii_digit() {
                    Op::Continue
                } else {
                    self.end_value(c)
                }
            }
            Step::Lit(word, i, name) => {
                let want = word[i as usize];
                if c == want {
                    if (i as usize) + 1 == word.len() {
                        self.step = Step::EndValue;
                    } else {
                        self.step = Step::Lit(word, i + 1, name);
                    }
                    Op::Continue
                } else {
                    let ctx = format!("in literal {} (expecting {})", name, quote_char(want));
                    self.error(c, &ctx)
                }
            }
            Step::Error => Op::Error,
        }
    }

    fn zero(&mut self, c: u8) -> Op {
        if c == b'.' {
            self.step = Step::Dot;
            Op::Continue
        } else if c == b'e' || c == b'E' {
            self.step = Step::E;
            Op::Continue
        } else {
            self.end_value(c)
        }
    }

    fn e_sign(&mut self, c: u8) -> Op {
        if c.is_ascii_digit() {
            self.step = Step::E0;
            Op::Continue
        } else {
            self.error(c, "in exponent of numeric literal")
        }
    }

    fn begin_value(&mut self, c: u8) -> Op {
        if is_space(c) {
            return Op::SkipSpace;
        }
        match c {
            b'{' => {
                self.step = Step::BeginStringOrEmpty;
                self.push(c, Parse::ObjectKey)
            }
            b'[' => {
                self.step = Step::BeginValueOrEmpty;
                self.push(c, Parse::ArrayValue)
            }
            b'"' => {
                self.step = Step::InString;
                Op::Other
            }
            b'-' => {
                self.step = Step::Neg;
                Op::Other
            }
            b'0' => {
                self.step = Step::Zero;
                Op::Other
            }
            b't' => {
                self.step = Step::Lit(b"rue", 0, "true");
                Op::Other
            }
            b'f' => {
                self.step = Step::Lit(b"alse", 0, "false");
                Op::Other
            }
            b'n' => {
                self.step = Step::Lit(b"ull", 0, "null");
                Op::Other
            }
            b'1'..=b'9' => {
                self.step = Step::One;
                Op::Other
            }
            _ => self.error(c, "looking for beginning of value"),
        }
    }

    fn begin_string(&mut self, c: u8) -> Op {
        if is_space(c) {
            return Op::SkipSpace;
        }
        if c == b'"' {
            self.step = Step::InString;
            return Op::Other;
        }
        self.error(c, "looking for beginning of object key string")
    }

    fn end_value(&mut self, c: u8) -> Op {
        let Some(&ps) = self.parse.last() else {
            self.step = Step::EndTop;
            self.end_top = true;
            return self.end_top_step(c);
        };
        if is_space(c) {
            self.step = Step::EndValue;
            return Op::SkipSpace;
        }
        match ps {
            Parse::ObjectKey => {
                if c == b':' {
                    if let Some(last) = self.parse.last_mut() {
                        *last = Parse::ObjectValue;
                    }
                    self.step = Step::BeginValue;
                    return Op::Other;
                }
                self.error(c, "after object key")
            }
            Parse::ObjectValue => {
                if c == b',' {
                    if let Some(last) = self.parse.last_mut() {
                        *last = Parse::ObjectKey;
                    }
                    self.step = Step::BeginString;
                    return Op::Other;
                }
                if c == b'}' {
                    self.pop();
                    return Op::Other;
                }
                self.error(c, "after object key:value pair")
            }
            Parse::ArrayValue => {
                if c == b',' {
                    self.step = Step::BeginValue;
                    return Op::Other;
                }
                if c == b']' {
                    self.pop();
                    return Op::Other;
                }
                self.error(c, "after array element")
            }
        }
    }

    fn pop(&mut self) {
        self.parse.pop();
        if self.parse.is_empty() {
            self.step = Step::EndTop;
            self.end_top = true;
        } else {
            self.step = Step::EndValue;
        }
    }

    fn end_top_step(&mut self, c: u8) -> Op {
        if !is_space(c) {
            // Go records the error but reports it on the next call (or at EOF).
            self.error(c, "after top-level value");
        }
        Op::Other
    }

    fn eof(&mut self) -> Result<(), SyntaxError> {
        if let Some(e) = &self.err {
            return Err(e.clone());
        }
        if self.end_top {
            return Ok(());
        }
        self.run(b' ');
        if self.end_top {
            return Ok(());
        }
        if self.err.is_none() {
            self.err = Some(SyntaxError {
                msg: "unexpected end of JSON input".into(),
                offset: self.bytes,
            });
        }
        Err(self.err.clone().unwrap_or(SyntaxError {
            msg: "unexpected end of JSON input".into(),
            offset: self.bytes,
        }))
    }
}

/// Go's `checkValid`: the whole input must be one JSON value.
pub fn check_valid(data: &[u8]) -> Result<(), SyntaxError> {
    let mut s = Scanner::new();
    // Fast path for the bytes inside strings, which dominate large configs.
    let mut i = 0;
    while i < data.len() {
        if s.step == Step::InString {
            let rest = &data[i..];
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            if run > 0 {
                s.bytes += run;
                i += run;
                continue;
            }
        }
        let c = data[i];
        s.bytes += 1;
        if s.run(c) == Op::Error {
            return Err(s.err.clone().unwrap_or(SyntaxError {
                msg: "invalid JSON".into(),
                offset: s.bytes,
            }));
        }
        i += 1;
    }
    s.eof()
}

/// Whether `data` is valid JSON (Go's `json.Valid`).
pub fn is_valid(data: &[u8]) -> bool {
    check_valid(data).is_ok()
}

/// A parsed document: the source and the position tree over it.
///
/// Nodes hold byte spans, not copies: string contents are read from the source on demand, so
/// the tree of an 11 MB config stays a few megabytes.
#[derive(Debug)]
pub struct Doc<'a> {
    pub src: &'a [u8],
    pub root: Node,
}

/// A node of the position tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Byte index of the first byte of the value (the bracket for objects and arrays).
    pub start: u32,
    /// Byte index one past the value's last byte.
    pub end: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    /// The literal is `src[start..end]`.
    Number,
    /// The literal, quotes included, is `src[start..end]`; `plain` when it has no escapes and
    /// is valid UTF-8, so the bytes inside the quotes are the string.
    Str {
        plain: bool,
    },
    Array(Box<[Node]>),
    /// Members in document order, duplicates included.
    Object(Box<[Member]>),
    /// An object or array nested deeper than [`TREE_DEPTH_LIMIT`]; its inside is not kept.
    Opaque {
        object: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Byte index of the key's opening quote.
    pub key_start: u32,
    /// One past the key's closing quote.
    pub key_end: u32,
    pub key_plain: bool,
    pub value: Node,
}

impl Node {
    /// Where Ignition's reports point for this node: one past the bracket for objects and
    /// arrays, the first byte for anything else.
    pub fn marker(&self) -> usize {
        match self.kind {
            Kind::Object(_) | Kind::Array(_) | Kind::Opaque { .. } => self.start as usize + 1,
            _ => self.start as usize,
        }
    }

    /// The kind name Go uses in "cannot unmarshal X" messages.
    pub fn go_kind(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "bool",
            Kind::Number => "number",
            Kind::Str { .. } => "string",
            Kind::Array(_) | Kind::Opaque { object: false } => "array",
            Kind::Object(_) | Kind::Opaque { object: true } => "object",
        }
    }

    pub fn members(&self) -> &[Member] {
        match &self.kind {
            Kind::Object(m) => m,
            _ => &[],
        }
    }
}

impl<'a> Doc<'a> {
    fn raw(&self, start: u32, end: u32) -> &'a [u8] {
        self.src
            .get(start as usize + 1..(end as usize).saturating_sub(1))
            .unwrap_or_default()
    }

    /// The contents of a string node (unquoted the Go way), or "" for other nodes.
    pub fn str_of(&self, n: &Node) -> Cow<'a, str> {
        match n.kind {
            Kind::Str { plain: true } => {
                Cow::Borrowed(std::str::from_utf8(self.raw(n.start, n.end)).unwrap_or(""))
            }
            Kind::Str { plain: false } => unquote(self.raw(n.start, n.end)),
            _ => Cow::Borrowed(""),
        }
    }

    /// The raw bytes inside a string node's quotes.
    pub fn raw_str(&self, n: &Node) -> &'a [u8] {
        self.raw(n.start, n.end)
    }

    /// The literal text of a number node.
    pub fn number(&self, n: &Node) -> &'a str {
        std::str::from_utf8(
            self.src
                .get(n.start as usize..n.end as usize)
                .unwrap_or_default(),
        )
        .unwrap_or("0")
    }

    pub fn key(&self, m: &Member) -> Cow<'a, str> {
        let raw = self.raw(m.key_start, m.key_end);
        if m.key_plain {
            Cow::Borrowed(std::str::from_utf8(raw).unwrap_or(""))
        } else {
            unquote(raw)
        }
    }

    pub fn key_is(&self, m: &Member, key: &str) -> bool {
        if m.key_plain {
            self.raw(m.key_start, m.key_end) == key.as_bytes()
        } else {
            self.key(m) == key
        }
    }

    /// The member `key` of an object node, the last one when the key is duplicated (like a
    /// Go map built from the document).
    pub fn get<'n>(&self, n: &'n Node, key: &str) -> Option<&'n Member> {
        n.members().iter().rev().find(|m| self.key_is(m, key))
    }
}

/// Builds the position tree of input that [`check_valid`] accepts.
///
/// Panic-free on any input: invalid input gives an error instead of a tree.
pub fn parse_doc(data: &[u8]) -> Result<Doc<'_>, SyntaxError> {
    check_valid(data)?;
    if data.len() > u32::MAX as usize {
        return Err(SyntaxError {
            msg: "config larger than 4 GiB".into(),
            offset: 0,
        });
    }
    let mut p = TreeParser {
        data,
        pos: 0,
        members: Vec::new(),
        elems: Vec::new(),
    };
    p.skip_ws();
    let root = p.value(0);
    Ok(Doc { src: data, root })
}

struct TreeParser<'a> {
    data: &'a [u8],
    pos: usize,
    // Scratch stacks: children are collected here and moved into exactly sized slices.
    members: Vec<Member>,
    elems: Vec<Node>,
}

impl TreeParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.data.len() && is_space(self.data[self.pos]) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> u8 {
        self.data.get(self.pos).copied().unwrap_or(b' ')
    }

    // The input is known to be valid JSON here, so the parser only has to find boundaries.
    fn value(&mut self, depth: usize) -> Node {
        let start = self.pos;
        let c = self.peek();
        let kind = match c {
            b'{' | b'[' if depth >= TREE_DEPTH_LIMIT => {
                self.skip_container();
                Kind::Opaque { object: c == b'{' }
            }
            b'{' => {
                self.pos += 1;
                let mark = self.members.len();
                self.skip_ws();
                if self.peek() == b'}' {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        let key_start = self.pos;
                        let key_plain = self.string_end();
                        let key_end = self.pos;
                        self.skip_ws();
                        self.pos += 1; // ':'
                        self.skip_ws();
                        let value = self.value(depth + 1);
                        self.members.push(Member {
                            key_start: key_start as u32,
                            key_end: key_end as u32,
                            key_plain,
                            value,
                        });
                        self.skip_ws();
                        let sep = self.peek();
                        self.pos += 1;
                        if sep != b',' {
                            break;
                        }
                    }
                }
                Kind::Object(self.members.drain(mark..).collect())
            }
            b'[' => {
                self.pos += 1;
                let mark = self.elems.len();
                self.skip_ws();
                if self.peek() == b']' {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        let v = self.value(depth + 1);
                        self.elems.push(v);
                        self.skip_ws();
                        let sep = self.peek();
                        self.pos += 1;
                        if sep != b',' {
                            break;
                        }
                    }
                }
                Kind::Array(self.elems.drain(mark..).collect())
            }
            b'"' => Kind::Str {
                plain: self.string_end(),
            },
            b't' => {
                self.pos += 4;
                Kind::Bool(true)
            }
            b'f' => {
                self.pos += 5;
                Kind::Bool(false)
            }
            b'n' => {
                self.pos += 4;
                Kind::Null
            }
            _ => {
                while self.pos < self.data.len()
                    && matches!(
                        self.data[self.pos],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.pos += 1;
                }
                Kind::Number
            }
        };
        Node {
            start: start as u32,
            end: self.pos as u32,
            kind,
        }
    }

    fn skip_container(&mut self) {
        let mut depth = 0usize;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'"' => {
                    self.string_end();
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.pos += 1;
                        return;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// Advances past a string literal starting at `pos`; returns whether its inside is plain
    /// (no escapes, valid UTF-8).
    fn string_end(&mut self) -> bool {
        let s = self.pos + 1;
        let mut i = s;
        let mut escaped = false;
        let mut ascii = true;
        while i < self.data.len() {
            match self.data[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => break,
                b => {
                    ascii &= b < 0x80;
                    i += 1;
                }
            }
        }
        let end = i.min(self.data.len());
        self.pos = end + 1;
        !escaped && (ascii || std::str::from_utf8(&self.data[s..end]).is_ok())
    }
}

/// Go's `unquoteBytes` for the inside of a string literal that the scanner accepted.
pub fn unquote(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'\\') {
        if let Ok(s) = std::str::from_utf8(raw) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c == b'\\' {
            let e = raw.get(i + 1).copied().unwrap_or(b'\\');
            i += 2;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\x08'),
                b'f' => out.push('\x0c'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let r = hex4(&raw[i.min(raw.len())..]);
                    i += 4;
                    let Some(r) = r else {
                        out.push('\u{fffd}');
                        continue;
                    };
                    if (0xd800..0xe000).contains(&r) {
                        // A surrogate: valid only as a high/low pair.
                        if (0xd800..0xdc00).contains(&r)
                            && raw.get(i) == Some(&b'\\')
                            && raw.get(i + 1) == Some(&b'u')
                        {
                            if let Some(r2) = hex4(&raw[(i + 2).min(raw.len())..]) {
                                if (0xdc00..0xe000).contains(&r2) {
                                    let cp = 0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00);
                                    out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                                    i += 6;
                                    continue;
                                }
                            }
                        }
                        out.push('\u{fffd}');
                    } else {
                        out.push(char::from_u32(r).unwrap_or('\u{fffd}'));
                    }
                }
                _ => out.push('\u{fffd}'),
            }
        } else if c < 0x80 {
            out.push(c as char);
            i += 1;
        } else {
            // Go coerces to well-formed UTF-8 one invalid byte at a time.
            let rest = &raw[i..];
            let valid_len = match std::str::from_utf8(rest) {
                Ok(_) => rest.len(),
                Err(e) => e.valid_up_to(),
            };
            // Copy the valid non-escape run, then handle one bad byte.
            let run_end = rest[..valid_len]
                .iter()
                .position(|&b| b == b'\\')
                .unwrap_or(valid_len);
            if run_end > 0 {
                // Cannot fail: a prefix of a valid UTF-8 run cut before an ASCII byte.
                out.push_str(std::str::from_utf8(&rest[..run_end]).unwrap_or(""));
                i += run_end;
            } else {
                out.push('\u{fffd}');
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Whether the raw bytes of a string literal hold invalid UTF-8 that Go replaces.
pub fn has_invalid_utf8(raw: &[u8]) -> bool {
    std::str::from_utf8(raw).is_err()
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let s = std::str::from_utf8(&b[..4]).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Line and column (1-based, counting bytes) of a byte index, the way Ignition's reports count
/// them. An index at or past the end gives `(0, 0)`, as Ignition prints for errors at EOF.
pub fn line_col(src: &[u8], index: usize) -> (usize, usize) {
    if index >= src.len() {
        return (0, 0);
    }
    let before = &src[..index];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, index - line_start + 1)
}

/// Computes line/column for many indices in one pass over the source.
pub struct LineIndex {
    line_starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(src: &[u8]) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            src.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex {
            line_starts,
            len: src.len(),
        }
    }

    /// Same result as [`line_col`].
    pub fn line_col(&self, index: usize) -> (usize, usize) {
        if index >= self.len {
            return (0, 0);
        }
        let line = self.line_starts.partition_point(|&s| s <= index);
        let start = self.line_starts[line - 1];
        (line, index - start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> (String, usize) {
        let e = check_valid(s.as_bytes()).unwrap_err();
        (e.msg, e.offset)
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            "{}",
            " {} ",
            "[]",
            "0",
            "-0.5e+10",
            r#"{"a":[1,2,{"b":null}],"c":"\u00e9\n"}"#,
            "\"x\"",
            "true",
        ] {
            assert!(check_valid(s.as_bytes()).is_ok(), "{s}");
        }
    }

    #[test]
    fn go_error_texts_and_offsets() {
        assert_eq!(err(""), ("unexpected end of JSON input".into(), 0));
        assert_eq!(err("{"), ("unexpected end of JSON input".into(), 1));
        assert_eq!(
            err("{\"a\" 1}"),
            ("invalid character '1' after object key".into(), 6)
        );
        assert_eq!(
            err("{\"a\":1,}"),
            (
                "invalid character '}' looking for beginning of object key string".into(),
                8
            )
        );
        assert_eq!(
            err("[1,]"),
            (
                "invalid character ']' looking for beginning of value".into(),
                4
            )
        );
        assert_eq!(
            err("{} x"),
            ("invalid character 'x' after top-level value".into(), 4)
        );
        assert_eq!(
            err("{} xy"),
            ("invalid character 'x' after top-level value".into(), 4)
        );
        // At EOF Go feeds a space to the current state, so truncated literals say so.
        assert_eq!(
            err("tru"),
            (
                "invalid character ' ' in literal true (expecting 'e')".into(),
                3
            )
        );
        assert_eq!(err("\"abc"), ("unexpected end of JSON input".into(), 4));
        assert_eq!(
            err("trUe"),
            (
                "invalid character 'U' in literal true (expecting 'u')".into(),
                3
            )
        );
        assert_eq!(
            err("01"),
            ("invalid character '1' after top-level value".into(), 2)
        );
        assert_eq!(
            err("1."),
            (
                "invalid character ' ' after decimal point in numeric literal".into(),
                2
            )
        );
        assert!(check_valid(b"12").is_ok());
        assert_eq!(
            err("1.x"),
            (
                "invalid character 'x' after decimal point in numeric literal".into(),
                3
            )
        );
        assert_eq!(
            err("\"a\tb\""),
            ("invalid character '\\t' in string literal".into(), 3)
        );
        assert_eq!(
            err("\"\\x\""),
            ("invalid character 'x' in string escape code".into(), 3)
        );
        assert_eq!(
            err("\u{feff}{}"),
            (
                "invalid character 'ï' looking for beginning of value".into(),
                1
            )
        );
        assert_eq!(
            err("\x01"),
            (
                "invalid character '\\x01' looking for beginning of value".into(),
                1
            )
        );
        assert_eq!(
            err("'"),
            (
                "invalid character '\\'' looking for beginning of value".into(),
                1
            )
        );
    }

    #[test]
    fn depth_limit_matches_go() {
        let ok = "[".repeat(MAX_NESTING_DEPTH) + &"]".repeat(MAX_NESTING_DEPTH);
        assert!(check_valid(ok.as_bytes()).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(
            err(&deep),
            (
                "invalid character '[' exceeded max depth".into(),
                MAX_NESTING_DEPTH + 1
            )
        );
        // The tree keeps deep subtrees opaque and drops without recursion trouble.
        let t = parse_doc(ok.as_bytes()).unwrap();
        assert_eq!(t.root.go_kind(), "array");
    }

    #[test]
    fn tree_positions() {
        let src = br#"{"a": {"b": [1, "x"]}, "a": 5}"#;
        let d = parse_doc(src).unwrap();
        assert_eq!(d.root.marker(), 1);
        // Last duplicate wins.
        let a = d.get(&d.root, "a").unwrap();
        assert_eq!(d.number(&a.value), "5");
        assert_eq!(a.key_start, 23);
        let first = &d.root.members()[0];
        let b = d.get(&first.value, "b").unwrap();
        assert_eq!(b.value.marker(), 13);
        let Kind::Array(items) = &b.value.kind else {
            panic!()
        };
        assert_eq!(items[1].start, 16);
        assert_eq!(items[1].end, 19);
        assert_eq!(d.str_of(&items[1]), "x");
        let e = parse_doc(br#"{"k\u0065y": "a\nb"}"#).unwrap();
        let m = &e.root.members()[0];
        assert!(e.key_is(m, "key"));
        assert_eq!(e.str_of(&m.value), "a\nb");
    }

    #[test]
    fn unquote_like_go() {
        assert_eq!(unquote(br"a\u00e9b"), "aéb");
        assert_eq!(unquote(br"\ud83d\ude00"), "😀");
        assert_eq!(unquote(br"\ud83dx"), "\u{fffd}x");
        assert_eq!(unquote(br"\udc00"), "\u{fffd}");
        assert_eq!(unquote(b"a\xffb"), "a\u{fffd}b");
        // A truncated sequence gives one replacement per byte, as in Go.
        assert_eq!(unquote(b"\xe2\x82A"), "\u{fffd}\u{fffd}A");
        assert_eq!(unquote(b"\xc3\xa9\\n"), "é\n");
    }

    #[test]
    fn line_columns() {
        let src = b"{\n  \"a\": 1\n}";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 4), (2, 3));
        assert_eq!(line_col(src, src.len()), (0, 0));
        let idx = LineIndex::new(src);
        for i in 0..=src.len() {
            assert_eq!(idx.line_col(i), line_col(src, i));
        }
    }
}
