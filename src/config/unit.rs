//! The systemd unit-file lexer Ignition runs on every unit and drop-in (`contents`), ported
//! from go-systemd v22 `unit.DeserializeOptions` so that Ember accepts, rejects and words its
//! errors exactly as Ignition does (Ignition prefixes them with `invalid unit content: `).
//!
//! The Go lexer reads through a `bufio.Reader` with a 4096-byte buffer and, before each of its
//! steps, refuses the input when 2048 or more bytes are buffered and the first 2048 of them hold
//! no `\r` or `\n`. Whether a long line is caught therefore depends on how much happens to be
//! buffered at that moment, which depends on Go's buffering. [`BufReader`] reproduces that
//! buffering byte for byte (without copying: it tracks offsets into the input), so the
//! line-length verdict is the same as Go's, quirks included: a line is refused only when a check
//! happens to see 2048 of its bytes, so a line of any length passes when fewer than 2048 bytes
//! are buffered at the checks made around it (for example a long `Name=value` line that starts
//! late in a 4096-byte buffer window).

use super::url::go_quote;

/// go-systemd's `SYSTEMD_LINE_MAX`.
const LINE_MAX: usize = 2048;
/// Go's `bufio.defaultBufSize`.
const BUF_SIZE: usize = 4096;

/// One `Name=Value` line (continuation lines joined), with the section it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOption {
    pub section: String,
    pub name: String,
    pub value: String,
}

/// Why go-systemd rejects unit contents. `Display` is its text (without Ignition's prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitParseError {
    #[error("line too long (max 2048 bytes)")]
    LineTooLong,
    #[error("unable to find end of section")]
    NoSectionEnd,
    /// The section name in the Go message comes from a field that is never set, so it is
    /// always empty: `found garbage after section name : "x"`.
    #[error("found garbage after section name : {}", go_quote(.0.as_bytes()))]
    GarbageAfterSection(String),
    #[error("unexpected newline encountered while parsing option name")]
    NewlineInOptionName,
    /// The input ended inside an option name (a line without `=`). Go prints its `io.EOF`.
    #[error("EOF")]
    Eof,
}

/// Parses unit contents into options, as go-systemd's `DeserializeOptions`.
pub fn deserialize_options(contents: &str) -> Result<Vec<UnitOption>, UnitParseError> {
    Lexer {
        buf: BufReader::new(contents.as_bytes()),
        src: contents,
        section: String::new(),
        options: Vec::new(),
        eol_cache: None,
    }
    .run()
}

/// Whether any option is in section `name`. This is how Ignition looks for `[Install]`: a
/// section header with no option under it does not count.
pub fn has_section(opts: &[UnitOption], name: &str) -> bool {
    opts.iter().any(|o| o.section == name)
}

/// The lexer's steps (go-systemd's `lexStep` closures; the section they capture is kept in
/// `Lexer::section`, since exactly one chain of steps runs).
enum Step {
    NextSection,
    SectionName,
    SectionSuffix,
    IgnoreLine(AfterIgnore),
    NextSectionOrOption,
    OptionName,
    OptionValue { name: String, partial: String },
}

#[derive(Clone, Copy)]
enum AfterIgnore {
    NextSection,
    NextSectionOrOption,
}

struct Lexer<'a> {
    buf: BufReader<'a>,
    src: &'a str,
    section: String,
    options: Vec<UnitOption>,
    /// (from, offset of the first line end at or after `from`).
    eol_cache: Option<(usize, usize)>,
}

impl<'a> Lexer<'a> {
    fn run(mut self) -> Result<Vec<UnitOption>, UnitParseError> {
        let mut step = Step::NextSection;
        loop {
            if self.buf.buffered() >= LINE_MAX {
                // Go peeks at the next 2048 bytes (all buffered already, so no refill) and
                // looks for '\r' or '\n'. Peek also forgets the last rune read.
                self.buf.last_rune_size = None;
                let pos = self.buf.position();
                if self.line_end_from(pos) - pos >= LINE_MAX {
                    return Err(UnitParseError::LineTooLong);
                }
            }
            step = match self.step(step)? {
                Some(next) => next,
                None => return Ok(self.options),
            };
        }
    }

    /// Offset of the first '\r' or '\n' at or after `pos` (or the input length). The answer
    /// is remembered, so that checking at every step (Go scans 2048 bytes each time) stays
    /// linear in the input size.
    fn line_end_from(&mut self, pos: usize) -> usize {
        if let Some((from, found)) = self.eol_cache {
            if from <= pos && pos <= found {
                return found;
            }
        }
        let found = self.src.as_bytes()[pos..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(self.src.len(), |i| pos + i);
        self.eol_cache = Some((pos, found));
        found
    }

    /// `&str` for a byte range the reader returned. The reader only splits the input after
    /// ASCII delimiters or whole runes, so the range is on character boundaries.
    fn text(&self, range: (usize, usize)) -> &'a str {
        self.src.get(range.0..range.1).unwrap_or("")
    }

    /// Go's `toEOL`: the rest of the line without one trailing `\r` and then one `\n` (so a
    /// `\r\n` ending keeps its `\r`), and whether the input ended.
    fn read_to_eol(&mut self) -> (&'a str, bool) {
        let (range, eof) = self.buf.read_bytes(b'\n');
        let line = self.text(range);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.strip_suffix('\n').unwrap_or(line);
        (line, eof)
    }

    fn step(&mut self, step: Step) -> Result<Option<Step>, UnitParseError> {
        Ok(Some(match step {
            Step::NextSection => match self.buf.read_rune() {
                None => return Ok(None),
                Some('[') => Step::SectionName,
                Some('#' | ';') => Step::IgnoreLine(AfterIgnore::NextSection),
                Some(_) => Step::NextSection,
            },
            Step::SectionName => {
                let (range, eof) = self.buf.read_bytes(b']');
                if eof {
                    return Err(UnitParseError::NoSectionEnd);
                }
                // Without the `]`; a section name may span lines, as in Go.
                self.section = self.text((range.0, range.1 - 1)).to_owned();
                Step::SectionSuffix
            }
            Step::SectionSuffix => {
                let (garbage, _) = self.read_to_eol();
                let garbage = garbage.trim();
                if !garbage.is_empty() {
                    return Err(UnitParseError::GarbageAfterSection(garbage.to_owned()));
                }
                Step::NextSectionOrOption
            }
            Step::IgnoreLine(then) => {
                loop {
                    let (line, _) = self.read_to_eol();
                    // Only one trailing space is dropped before looking for a continuation.
                    let line = line.strip_suffix(' ').unwrap_or(line);
                    if !line.ends_with('\\') {
                        break;
                    }
                }
                match then {
                    AfterIgnore::NextSection => Step::NextSection,
                    AfterIgnore::NextSectionOrOption => Step::NextSectionOrOption,
                }
            }
            Step::NextSectionOrOption => match self.buf.read_rune() {
                None => return Ok(None),
                // Go's unicode.IsSpace is the White_Space property, as Rust's is_whitespace.
                Some(c) if c.is_whitespace() => Step::NextSectionOrOption,
                Some('[') => Step::SectionName,
                Some('#' | ';') => Step::IgnoreLine(AfterIgnore::NextSectionOrOption),
                Some(_) => {
                    self.buf.unread_rune();
                    Step::OptionName
                }
            },
            Step::OptionName => {
                let mut partial = String::new();
                loop {
                    match self.buf.read_rune() {
                        None => return Err(UnitParseError::Eof),
                        Some('\n' | '\r') => return Err(UnitParseError::NewlineInOptionName),
                        Some('=') => break,
                        Some(c) => partial.push(c),
                    }
                }
                Step::OptionValue {
                    name: partial.trim().to_owned(),
                    partial: String::new(),
                }
            }
            Step::OptionValue { name, mut partial } => {
                let (line, eof) = self.read_to_eol();
                if !line.trim().is_empty() {
                    partial.push_str(line);
                    if line.ends_with('\\') {
                        if !eof {
                            partial.push('\n');
                        }
                        // A new step, so the line-length check runs before the next line.
                        return Ok(Some(Step::OptionValue { name, partial }));
                    }
                }
                let value = if partial.ends_with('\n') {
                    format!("{}\n", partial.trim())
                } else {
                    partial.trim().to_owned()
                };
                self.options.push(UnitOption {
                    section: self.section.clone(),
                    name,
                    value,
                });
                Step::NextSectionOrOption
            }
        }))
    }
}

/// Go's `bufio.Reader` (default size) over a `strings.Reader`, as far as the lexer uses it.
///
/// The buffer holds `src[base + r .. base + w]`; `fill` slides it forward (Go's copy to the
/// front) and then "reads" as much as fits, as `strings.Reader.Read` returns
/// `min(free space, remaining)` bytes, or `io.EOF` when nothing remains.
struct BufReader<'a> {
    src: &'a [u8],
    base: usize,
    r: usize,
    w: usize,
    /// Go's `b.err` holding `io.EOF`, waiting to be returned.
    eof: bool,
    /// Size of the last rune read, for `unread_rune`; `None` when it cannot be undone.
    last_rune_size: Option<usize>,
}

impl<'a> BufReader<'a> {
    fn new(src: &'a [u8]) -> Self {
        BufReader {
            src,
            base: 0,
            r: 0,
            w: 0,
            eof: false,
            last_rune_size: None,
        }
    }

    fn buffered(&self) -> usize {
        self.w - self.r
    }

    fn bytes(&self) -> &'a [u8] {
        &self.src[self.base + self.r..self.base + self.w]
    }

    /// Go's `fill`. Only called with room in the buffer.
    fn fill(&mut self) {
        self.base += self.r;
        self.w -= self.r;
        self.r = 0;
        let remaining = self.src.len() - (self.base + self.w);
        let n = (BUF_SIZE - self.w).min(remaining);
        if n == 0 {
            self.eof = true;
        }
        self.w += n;
    }

    /// Go's `readErr`: returns the pending error and clears it.
    fn take_eof(&mut self) -> bool {
        std::mem::replace(&mut self.eof, false)
    }

    /// Offset in the input of the next byte to read.
    fn position(&self) -> usize {
        self.base + self.r
    }

    /// Go's `ReadRune`; `None` at the end of input. Bytes that are not UTF-8 read as U+FFFD,
    /// one at a time (they cannot occur in a `&str`, kept for fidelity).
    fn read_rune(&mut self) -> Option<char> {
        while self.r + 4 > self.w
            && !full_rune(self.bytes())
            && !self.eof
            && self.buffered() < BUF_SIZE
        {
            self.fill();
        }
        self.last_rune_size = None;
        if self.r == self.w {
            self.take_eof();
            return None;
        }
        let (c, size) = decode_rune(self.bytes());
        self.r += size;
        self.last_rune_size = Some(size);
        Some(c)
    }

    /// Go's `UnreadRune` (its error, which the lexer ignores, is dropped too).
    fn unread_rune(&mut self) {
        if let Some(size) = self.last_rune_size.take() {
            if self.r >= size {
                self.r -= size;
            }
        }
    }

    /// Go's `ReadSlice`: (start, end) offsets into `src`, and the error: `Some(true)` for
    /// `io.EOF`, `Some(false)` for `ErrBufferFull`, `None` when `delim` was found.
    fn read_slice(&mut self, delim: u8) -> ((usize, usize), Option<bool>) {
        let start = self.base + self.r;
        let mut searched = 0;
        let err = loop {
            if let Some(i) = self.bytes()[searched..].iter().position(|&b| b == delim) {
                self.r += searched + i + 1;
                break None;
            }
            if self.eof {
                self.r = self.w;
                break Some(self.take_eof());
            }
            if self.buffered() >= BUF_SIZE {
                self.r = self.w;
                break Some(false);
            }
            searched = self.buffered();
            self.fill();
        };
        let end = self.base + self.r;
        if end > start {
            self.last_rune_size = None;
        }
        ((start, end), err)
    }

    /// Go's `ReadBytes`: everything up to and including `delim`, or to the end of input (then
    /// the flag is true: Go's `io.EOF`).
    fn read_bytes(&mut self, delim: u8) -> ((usize, usize), bool) {
        let start = self.base + self.r;
        loop {
            let ((_, end), err) = self.read_slice(delim);
            match err {
                Some(false) => continue,
                Some(true) => return ((start, end), true),
                None => return ((start, end), false),
            }
        }
    }
}

/// Go's `utf8.FullRune`: whether `b` starts with a complete encoding (an invalid one counts,
/// since it decodes as one error byte).
fn full_rune(b: &[u8]) -> bool {
    let Some(&first) = b.first() else {
        return false;
    };
    let need = match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return true,
    };
    if b.len() >= need {
        return true;
    }
    // A short sequence is still "full" when a byte already there makes it invalid; it is
    // incomplete only when more bytes could still make it valid.
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_some(),
    }
}

/// Go's `utf8.DecodeRune`: the first rune and its size; invalid bytes give (U+FFFD, 1).
fn decode_rune(b: &[u8]) -> (char, usize) {
    let len = b.len().min(4);
    let head = &b[..len];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => ('\u{fffd}', 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values produced by go-systemd itself.
    // (contents, options as section/name=value lines joined by '|', or go-systemd's error).
    const CASES: &[(&str, Result<&str, &str>)] = &[
        ("", Ok("")),
        ("[Unit]\nDescription=x\n", Ok("Unit/Description=x")),
        ("[Unit]\nDescription=x", Ok("Unit/Description=x")),
        ("[Unit]", Ok("")),
        ("[Unit]\n\n\n", Ok("")),
        ("[Unit]\nDescription=A unit\nAfter=network.target\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n", Ok("Unit/Description=A unit|Unit/After=network.target|Service/ExecStart=/bin/true|Install/WantedBy=multi-user.target")),
        ("garbage before\n[Service]\nExecStart=/bin/true\n", Ok("Service/ExecStart=/bin/true")),
        ("#c\n;c\n[Install]\nWantedBy=multi-user.target\n", Ok("Install/WantedBy=multi-user.target")),
        ("[Unit]\n# comment \\\n continued=1\nA=1\n", Ok("Unit/A=1")),
        ("[U]\nA=1\n;c\\ \nstill=x\nB=2\n", Ok("U/A=1|U/B=2")),
        ("[Unit]\nA=b \\\n  c\n", Ok("Unit/A=b \\\n  c")),
        ("[Unit]\nA=b \\\n", Ok("Unit/A=b \\\n")),
        ("[Unit]\nA=b \\", Ok("Unit/A=b \\")),
        ("[Unit]\nA=x\\\n\nB=y\n", Ok("Unit/A=x\\\n|Unit/B=y")),
        ("[Unit]\nA=x\\ \nB=y\n", Ok("Unit/A=x\\|Unit/B=y")),
        ("[Unit]\nA=1\\\\\n", Ok("Unit/A=1\\\\\n")),
        ("[Unit]\r\nA=1\r\nB=2\r\n", Ok("Unit/A=1|Unit/B=2")),
        ("[Unit]\nA=1\rB=2\n", Ok("Unit/A=1\rB=2")),
        ("[Unit]\n  A = 1  \n", Ok("Unit/A=1")),
        ("[Unit]\nA=\n", Ok("Unit/A=")),
        ("[Unit]\n=x\n", Ok("Unit/=x")),
        ("[Unit]\nA==b=c\n", Ok("Unit/A==b=c")),
        ("[Un\nit]\nA=1\n", Ok("Un\nit/A=1")),
        ("[Unit]\t \n", Ok("")),
        ("[A]\n[B]\nC=d\n", Ok("B/C=d")),
        ("[Unit]\n\u{a0}A=1\n", Ok("Unit/A=1")),
        ("\u{feff}[Unit]\nA=1\n", Ok("Unit/A=1")),
        ("[Unit]\u{3000}\nA=\u{3000}x\u{3000}\n", Ok("Unit/A=x")),
        ("[Unit]\nA=x\n[Unit]\nA=y\n", Ok("Unit/A=x|Unit/A=y")),
        ("[Unit", Err("unable to find end of section")),
        ("[Unit] x\n", Err("found garbage after section name : \"x\"")),
        ("[Unit]]\n", Err("found garbage after section name : \"]\"")),
        ("[Unit] ;x\n", Err("found garbage after section name : \";x\"")),
        ("[Unit]\u{e9}\n", Err("found garbage after section name : \"\u{e9}\"")),
        ("[Unit]\"\\\n", Err("found garbage after section name : \"\\\"\\\\\"")),
        ("[Unit]\t\u{1} \n", Err("found garbage after section name : \"\\x01\"")),
        ("[Unit]\nNoEquals\n", Err("unexpected newline encountered while parsing option name")),
        ("[Unit]\nA\rB=1\n", Err("unexpected newline encountered while parsing option name")),
        ("[Unit]\nNoEquals", Err("EOF")),
        ("[Unit]\nA=1\nB", Err("EOF")),
    ];

    fn render(opts: &[UnitOption]) -> String {
        opts.iter()
            .map(|o| format!("{}/{}={}", o.section, o.name, o.value))
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn lexes_like_go_systemd() {
        for &(contents, want) in CASES {
            let got = deserialize_options(contents);
            match want {
                Ok(opts) => {
                    let got = got.unwrap_or_else(|e| panic!("{contents:?}: {e}"));
                    assert_eq!(render(&got), opts, "{contents:?}");
                }
                Err(message) => {
                    let err = got.expect_err(contents);
                    assert_eq!(err.to_string(), message, "{contents:?}");
                }
            }
        }
    }

    #[test]
    fn install_section_detection() {
        let opts = deserialize_options(
            "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        assert!(has_section(&opts, "Install"));
        assert!(has_section(&opts, "Service"));
        assert!(!has_section(&opts, "install"));
        // A header with nothing under it has no options, so Ignition does not see it.
        let opts = deserialize_options("[Unit]\nDescription=x\n[Install]\n").unwrap();
        assert!(!has_section(&opts, "Install"));
        // Commented out.
        let opts = deserialize_options("[Unit]\nA=1\n#[Install]\n#WantedBy=x\n").unwrap();
        assert!(!has_section(&opts, "Install"));
    }

    /// `[Unit]\n` (7 bytes), `before` filler lines of 64 bytes, the line `X=aaa…` whose
    /// content is `len` bytes, its ending, then `after` filler lines.
    fn unit_with_line(before: usize, len: usize, ending: &str, after: usize) -> String {
        let filler = |n: usize| -> String {
            (0..n)
                .map(|i| format!("K{:02}={}\n", i % 100, "v".repeat(59)))
                .collect()
        };
        format!(
            "[Unit]\n{}X={}{ending}{}",
            filler(before),
            "a".repeat(len - 2),
            filler(after)
        )
    }

    /// Long lines in a unit larger than Go's 4096-byte buffer. The first `ReadRune` fills the
    /// buffer with bytes 0..4096; from then on each step starts with a check of the next 2048
    /// buffered bytes, if at least 2048 are buffered, and the buffer is refilled only when a
    /// read runs dry.
    #[test]
    fn line_length_limit_follows_go_buffering() {
        let cases: &[(&str, usize, usize, &str, usize, bool)] = &[
            // At the start (offset 7): the check made at the line start sees bytes 7..2055.
            // 2047 bytes leave the '\n' at 2054, inside; 2048 push it out.
            ("start", 0, 2047, "\n", 70, true),
            ("start", 0, 2048, "\n", 70, false),
            ("start", 0, 3000, "\n", 70, false),
            // In the middle (offset 1927): 4096 - 1927 = 2169 bytes are buffered at the line
            // start, so the same check runs and sees 1927..3975.
            ("middle", 30, 2047, "\n", 70, true),
            ("middle", 30, 2048, "\n", 70, false),
            ("middle", 30, 3000, "\n", 70, false),
            // Later in the window (offset 3015): only 1081 bytes are buffered at the line start
            // and after `X=`, so no check looks at the line, and `ReadBytes` then reads all of
            // it across refills. Go accepts any length here.
            ("late", 47, 2047, "\n", 70, true),
            ("late", 47, 2048, "\n", 70, true),
            ("late", 47, 3000, "\n", 70, true),
            ("late", 47, 5000, "\n", 70, true),
            // At the end (offset 4487): the refill made while reading the line that crosses
            // 4096 (it starts at 4039) slides the window to 4043 and reads up to the end, so
            // everything from 4487 on is buffered: 2048 or more bytes get checked.
            ("end", 70, 2047, "\n", 0, true),
            ("end", 70, 2048, "\n", 0, false),
            ("end", 70, 3000, "\n", 0, false),
            // Without the final newline, 2047 bytes are fewer than 2048 buffered: no check.
            ("end, no newline", 70, 2047, "", 0, true),
            ("end, no newline", 70, 2048, "", 0, false),
            ("end, no newline", 70, 3000, "", 0, false),
            // "\r\n" endings: the '\r' counts as a line end for the check.
            ("crlf", 0, 2047, "\r\n", 70, true),
            ("cr only", 0, 3000, "\r", 70, false),
        ];
        for &(place, before, len, ending, after, ok) in cases {
            let unit = unit_with_line(before, len, ending, after);
            assert!(unit.len() > 4096);
            let got = deserialize_options(&unit);
            if ok {
                let opts = got.unwrap_or_else(|e| panic!("{place} {len}: {e}"));
                assert_eq!(opts.len(), before + after + 1, "{place} {len}");
                let long = &opts[before];
                assert_eq!((long.name.as_str(), long.value.len()), ("X", len - 2));
            } else {
                assert_eq!(got, Err(UnitParseError::LineTooLong), "{place} {len}");
            }
        }
    }

    #[test]
    fn line_length_limit_other_lines() {
        let filler: String = (0..70).map(|i| format!("K{i:02}=value\n")).collect();
        let cases: Vec<(&str, String, bool)> = vec![
            // The check after '#' sees the comment's 2047 bytes and its newline.
            (
                "comment 2047",
                format!("#{}\n[Unit]\n{filler}", "c".repeat(2047)),
                true,
            ),
            (
                "comment 2048",
                format!("#{}\n[Unit]\n{filler}", "c".repeat(2048)),
                false,
            ),
            // Each physical line of a continued value is checked on its own.
            (
                "continued",
                format!(
                    "[Unit]\nA={}\\\n{}\n{filler}",
                    "a".repeat(1500),
                    "b".repeat(1500)
                ),
                true,
            ),
            (
                "preamble",
                format!("{}\n[Unit]\n{filler}", "x".repeat(3000)),
                false,
            ),
            (
                "section name",
                format!("[{}]\nA=1\n{filler}", "S".repeat(3000)),
                false,
            ),
            (
                "small unit",
                format!("[Unit]\nX={}", "a".repeat(3000)),
                false,
            ),
            (
                "small, no section",
                format!("X={}", "a".repeat(2100)),
                false,
            ),
        ];
        for (what, unit, ok) in cases {
            let got = deserialize_options(&unit);
            assert_eq!(got.is_ok(), ok, "{what}: {got:?}");
            if !ok {
                assert_eq!(got, Err(UnitParseError::LineTooLong), "{what}");
            }
        }
        let continued = deserialize_options(&format!(
            "[Unit]\nA={}\\\n{}\n",
            "a".repeat(1500),
            "b".repeat(1500)
        ))
        .unwrap();
        assert_eq!(continued[0].value.len(), 1500 + 2 + 1500);
    }

    #[test]
    fn big_units_parse() {
        // A megabyte of text before the first section: every character is a lexer step with
        // its own line-length check (Go accepts it: no line reaches 2048 bytes).
        let preamble = format!("{}\n", "x".repeat(2000)).repeat(500);
        let opts = deserialize_options(&format!("{preamble}[Unit]\nA=1\n")).unwrap();
        assert_eq!(render(&opts), "Unit/A=1");
        let body = "A=1\n  \n".repeat(20_000);
        let opts = deserialize_options(&format!("[Unit]\n{body}")).unwrap();
        assert_eq!(opts.len(), 20_000);
    }

    #[test]
    fn buf_reader_follows_go() {
        let src = "x".repeat(5000);
        let mut b = BufReader::new(src.as_bytes());
        assert_eq!(b.buffered(), 0);
        assert_eq!(b.read_rune(), Some('x'));
        assert_eq!(b.buffered(), 4095);
        b.unread_rune();
        assert_eq!(b.buffered(), 4096);
        // Only the last rune can be unread.
        b.unread_rune();
        assert_eq!((b.buffered(), b.position()), (4096, 0));
        let ((start, end), eof) = b.read_bytes(b'\n');
        assert_eq!((start, end, eof), (0, 5000, true));
        assert_eq!(b.read_rune(), None);
        // Multi-byte runes split by the buffer edge are completed by a refill.
        let src = format!("{}é", "y".repeat(4095));
        let mut b = BufReader::new(src.as_bytes());
        let ((_, end), eof) = b.read_bytes(b'y');
        assert_eq!((end, eof), (1, false));
        for _ in 0..4094 {
            assert_eq!(b.read_rune(), Some('y'));
        }
        assert_eq!(b.read_rune(), Some('é'));
        assert_eq!(b.read_rune(), None);
    }

    #[test]
    fn go_utf8_helpers() {
        assert_eq!(decode_rune(b"\xff"), ('\u{fffd}', 1));
        assert_eq!(decode_rune(b"\xe2\x82"), ('\u{fffd}', 1));
        assert_eq!(decode_rune("€x".as_bytes()), ('€', 3));
        assert!(!full_rune(b""));
        assert!(!full_rune(b"\xe2\x82"));
        assert!(full_rune(b"\xe2\x41"));
        assert!(full_rune(b"\xff"));
        assert!(full_rune(b"a"));
    }
}
