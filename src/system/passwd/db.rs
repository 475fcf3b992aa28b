//! The account files as tables of lines, edited the way shadow-utils' `commonio` does.
//!
//! Every line of the file is kept. A line that parses becomes an entry; one that does not
//! (comments, blank lines, NIS `+`/`-` lines, damaged lines) is kept as text and ignored by
//! lookups. When the file is written back, untouched lines are written byte for byte and only
//! entries Ember changed are formatted again. New entries go before the first NIS line, or at
//! the end. A line that is not valid UTF-8 is found by lookups but never rewritten: changing it
//! is an error.

use super::Error;

/// One record type of an account file.
pub(crate) trait Record: Clone {
    /// Parses a line (without its newline); `None` when it is not a valid entry.
    fn parse(line: &str) -> Option<Self>;
    /// Formats the entry as a line (without newline).
    fn format(&self) -> String;
    /// The key of the entry (user, group or owner name).
    fn key(&self) -> &str;
}

/// A uid or gid field: decimal, whole field, not the reserved (uid_t)-1.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u32 = s.parse().ok()?;
    (v != u32::MAX).then_some(v)
}

/// A numeric shadow field: empty means unset, otherwise a non-negative decimal.
fn parse_days(s: &str) -> Option<Option<i64>> {
    if s.is_empty() {
        return Some(None);
    }
    let v = super::defs::parse_c_long(s)?;
    if v < 0 {
        return None;
    }
    Some(Some(v))
}

fn fmt_days(v: Option<i64>) -> String {
    v.map(|d| d.to_string()).unwrap_or_default()
}

/// Splits a member list like glibc and shadow-utils: "" is no member, "a,,b" keeps the empty one.
fn split_list(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = s.split(',').map(str::to_string).collect();
    // A trailing comma does not add an empty member.
    if out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PwEnt {
    pub name: String,
    pub passwd: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
}

impl Record for PwEnt {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 {
            return None;
        }
        Some(PwEnt {
            name: f[0].to_string(),
            passwd: f[1].to_string(),
            uid: parse_id(f[2])?,
            gid: parse_id(f[3])?,
            gecos: f[4].to_string(),
            dir: f[5].to_string(),
            shell: f[6].to_string(),
        })
    }

    fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.name, self.passwd, self.uid, self.gid, self.gecos, self.dir, self.shell
        )
    }

    fn key(&self) -> &str {
        &self.name
    }
}

/// `/etc/shadow` entry; `None` numeric fields are empty in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpEnt {
    pub name: String,
    pub passwd: String,
    pub last_change: Option<i64>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub warn: Option<i64>,
    pub inactive: Option<i64>,
    pub expire: Option<i64>,
    pub flag: Option<u64>,
}

impl Record for SpEnt {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(':').collect();
        // The old five-field format and a missing flag field are accepted, as shadow-utils does.
        if f.len() != 9 && f.len() != 8 && f.len() != 5 {
            return None;
        }
        let get = |i: usize| -> Option<Option<i64>> {
            match f.get(i) {
                Some(s) => parse_days(s),
                None => Some(None),
            }
        };
        let flag = match f.get(8) {
            Some(s) if !s.is_empty() => Some(s.parse::<u64>().ok()?),
            _ => None,
        };
        Some(SpEnt {
            name: f[0].to_string(),
            passwd: f[1].to_string(),
            last_change: get(2)?,
            min: get(3)?,
            max: get(4)?,
            warn: get(5)?,
            inactive: get(6)?,
            expire: get(7)?,
            flag,
        })
    }

    fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}:{}:{}",
            self.name,
            self.passwd,
            fmt_days(self.last_change),
            fmt_days(self.min),
            fmt_days(self.max),
            fmt_days(self.warn),
            fmt_days(self.inactive),
            fmt_days(self.expire),
            self.flag.map(|f| f.to_string()).unwrap_or_default()
        )
    }

    fn key(&self) -> &str {
        &self.name
    }
}

/// `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrEnt {
    pub name: String,
    pub passwd: String,
    pub gid: u32,
    pub members: Vec<String>,
}

impl Record for GrEnt {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(':').collect();
        // shadow-utils accepts a missing member field.
        if f.len() != 4 && f.len() != 3 {
            return None;
        }
        Some(GrEnt {
            name: f[0].to_string(),
            passwd: f[1].to_string(),
            gid: parse_id(f[2])?,
            members: split_list(f.get(3).copied().unwrap_or("")),
        })
    }

    fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.passwd,
            self.gid,
            self.members.join(",")
        )
    }

    fn key(&self) -> &str {
        &self.name
    }
}

/// `/etc/gshadow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SgEnt {
    pub name: String,
    pub passwd: String,
    pub admins: Vec<String>,
    pub members: Vec<String>,
}

impl Record for SgEnt {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 {
            return None;
        }
        Some(SgEnt {
            name: f[0].to_string(),
            passwd: f[1].to_string(),
            admins: split_list(f[2]),
            members: split_list(f[3]),
        })
    }

    fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.passwd,
            self.admins.join(","),
            self.members.join(",")
        )
    }

    fn key(&self) -> &str {
        &self.name
    }
}

/// `/etc/subuid` or `/etc/subgid` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubEnt {
    pub owner: String,
    pub start: u64,
    pub count: u64,
}

impl Record for SubEnt {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 3 || f.iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(SubEnt {
            owner: f[0].to_string(),
            start: super::defs::parse_c_ulong(f[1])?,
            count: super::defs::parse_c_ulong(f[2])?,
        })
    }

    fn format(&self) -> String {
        format!("{}:{}:{}", self.owner, self.start, self.count)
    }

    fn key(&self) -> &str {
        &self.owner
    }
}

#[derive(Debug, Clone)]
struct Line<E> {
    /// The original bytes, without the newline; `None` for entries Ember added.
    raw: Option<Vec<u8>>,
    entry: Option<E>,
    /// The original was not valid UTF-8: the entry is visible but may not be rewritten.
    lossy: bool,
    changed: bool,
}

/// One account file in memory.
#[derive(Debug, Clone)]
pub(crate) struct Table<E> {
    pub file: &'static str,
    lines: Vec<Line<E>>,
    pub changed: bool,
}

fn is_nis(text: &[u8]) -> bool {
    matches!(text.first(), Some(b'+') | Some(b'-'))
}

impl<E: Record> Table<E> {
    pub fn empty(file: &'static str) -> Table<E> {
        Table {
            file,
            lines: Vec::new(),
            changed: false,
        }
    }

    pub fn parse(file: &'static str, data: &[u8]) -> Table<E> {
        let mut lines = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (line, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let (entry, lossy) = if is_nis(line) {
                (None, false)
            } else {
                match std::str::from_utf8(line) {
                    Ok(s) => (E::parse(s), false),
                    Err(_) => (E::parse(&String::from_utf8_lossy(line)), true),
                }
            };
            lines.push(Line {
                raw: Some(line.to_vec()),
                lossy: lossy && entry.is_some(),
                entry,
                changed: false,
            });
        }
        Table {
            file,
            lines,
            changed: false,
        }
    }

    /// The parsed entries, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &E> {
        self.lines.iter().filter_map(|l| l.entry.as_ref())
    }

    /// The first entry with this key.
    pub fn find(&self, key: &str) -> Option<&E> {
        self.entries().find(|e| e.key() == key)
    }

    fn index_of(&self, key: &str) -> Result<Option<usize>, Error> {
        let mut found = None;
        for (i, l) in self.lines.iter().enumerate() {
            if l.entry.as_ref().is_some_and(|e| e.key() == key) {
                if found.is_some() {
                    return Err(Error::DuplicateEntry {
                        file: self.file,
                        name: key.to_string(),
                    });
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    fn check_rewritable(&self, i: usize, key: &str) -> Result<(), Error> {
        if self.lines[i].lossy {
            return Err(Error::NotUtf8 {
                file: self.file,
                name: key.to_string(),
            });
        }
        Ok(())
    }

    /// Replaces the entry with the same key, or adds it before the first NIS line.
    /// Like shadow-utils, an updated entry is always formatted again, even if unchanged.
    pub fn update(&mut self, e: E) -> Result<(), Error> {
        let key = e.key().to_string();
        match self.index_of(&key)? {
            Some(i) => {
                self.check_rewritable(i, &key)?;
                self.lines[i].entry = Some(e);
                self.lines[i].changed = true;
            }
            None => {
                let pos = self
                    .lines
                    .iter()
                    .position(|l| l.entry.is_none() && l.raw.as_deref().is_some_and(is_nis))
                    .unwrap_or(self.lines.len());
                self.lines.insert(
                    pos,
                    Line {
                        raw: None,
                        entry: Some(e),
                        lossy: false,
                        changed: true,
                    },
                );
            }
        }
        self.changed = true;
        Ok(())
    }

    /// Adds an entry at the very end (used for subordinate id ranges).
    pub fn append(&mut self, e: E) {
        self.lines.push(Line {
            raw: None,
            entry: Some(e),
            lossy: false,
            changed: true,
        });
        self.changed = true;
    }

    /// Removes the entry with this key; false when there was none.
    pub fn remove(&mut self, key: &str) -> Result<bool, Error> {
        match self.index_of(key)? {
            Some(i) => {
                self.lines.remove(i);
                self.changed = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every entry matching `pred` (shadow-utils' removal of subordinate ranges).
    pub fn remove_where(&mut self, pred: impl Fn(&E) -> bool) -> usize {
        let before = self.lines.len();
        self.lines.retain(|l| !l.entry.as_ref().is_some_and(&pred));
        let n = before - self.lines.len();
        if n > 0 {
            self.changed = true;
        }
        n
    }

    /// Sorts the entries before the first NIS line with `cmp`; unparsed lines go last, in
    /// their order. Lines keep their text. (shadow-utils sorts /etc/subuid this way before
    /// allocating a range.)
    pub fn sort_by(&mut self, cmp: impl Fn(&E, &E) -> std::cmp::Ordering) {
        let nis = self
            .lines
            .iter()
            .position(|l| l.entry.is_none() && l.raw.as_deref().is_some_and(is_nis))
            .unwrap_or(self.lines.len());
        let tail = self.lines.split_off(nis);
        let (mut parsed, unparsed): (Vec<_>, Vec<_>) =
            self.lines.drain(..).partition(|l| l.entry.is_some());
        parsed.sort_by(|a, b| match (&a.entry, &b.entry) {
            (Some(x), Some(y)) => cmp(x, y),
            _ => std::cmp::Ordering::Equal,
        });
        self.lines = parsed;
        self.lines.extend(unparsed);
        self.lines.extend(tail);
        self.changed = true;
    }

    /// The file contents: untouched lines as they were, changed ones formatted, each line
    /// ended by a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            match (&l.raw, &l.entry, l.changed) {
                (_, Some(e), true) | (None, Some(e), _) => {
                    out.extend_from_slice(e.format().as_bytes())
                }
                (Some(raw), _, _) => out.extend_from_slice(raw),
                (None, None, _) => {}
            }
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_lines_stay_byte_for_byte() {
        let data = b"# comment\nroot:x:0:0:root:/root:/bin/bash\n\nodd line\n+@nis::::::\ndaemon:x:1:1::/:/sbin/nologin";
        let mut t: Table<PwEnt> = Table::parse("/etc/passwd", data);
        assert_eq!(t.entries().count(), 2);
        assert_eq!(t.to_bytes(), [&data[..], b"\n"].concat());
        t.update(PwEnt {
            name: "alice".into(),
            passwd: "x".into(),
            uid: 1000,
            gid: 1000,
            gecos: String::new(),
            dir: "/home/alice".into(),
            shell: "/bin/sh".into(),
        })
        .unwrap();
        let text = String::from_utf8(t.to_bytes()).unwrap();
        assert_eq!(
            text,
            "# comment\nroot:x:0:0:root:/root:/bin/bash\n\nodd line\nalice:x:1000:1000::/home/alice:/bin/sh\n+@nis::::::\ndaemon:x:1:1::/:/sbin/nologin\n"
        );
    }

    #[test]
    fn shadow_fields_round_trip() {
        let s = SpEnt::parse("bob:$6$x:19000:0:99999:7:::").unwrap();
        assert_eq!(s.last_change, Some(19000));
        assert_eq!(s.inactive, None);
        assert_eq!(s.format(), "bob:$6$x:19000:0:99999:7:::");
        assert!(SpEnt::parse("bob:x:-5:::::::").is_none());
        assert!(SpEnt::parse("bob:x:12::::").is_none());
        assert_eq!(SpEnt::parse("bob:x:12:::::").unwrap().flag, None);
        assert_eq!(
            SpEnt::parse("old:x:1:2:3").unwrap().format(),
            "old:x:1:2:3::::"
        );
    }

    #[test]
    fn group_members_and_duplicates() {
        let g = GrEnt::parse("sudo:x:27:alice,bob").unwrap();
        assert_eq!(g.members, vec!["alice", "bob"]);
        assert_eq!(GrEnt::parse("x:x:5").unwrap().members.len(), 0);
        assert!(GrEnt::parse("x:x:notanumber:").is_none());
        let mut t: Table<GrEnt> = Table::parse("/etc/group", b"a:x:1:\na:x:2:\n");
        let e = t.update(GrEnt::parse("a:x:3:").unwrap()).unwrap_err();
        assert!(matches!(e, Error::DuplicateEntry { .. }));
    }

    #[test]
    fn non_utf8_lines_are_kept_but_not_rewritten() {
        let data = b"caf\xe9:x:1000:1000:Caf\xe9:/home/c:/bin/sh\n";
        let mut t: Table<PwEnt> = Table::parse("/etc/passwd", data);
        assert_eq!(t.to_bytes(), data.to_vec());
        let e = t.find("caf\u{fffd}").unwrap().clone();
        assert!(matches!(t.update(e), Err(Error::NotUtf8 { .. })));
    }
}
