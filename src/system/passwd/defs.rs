//! The target's `/etc/login.defs` and `/etc/default/useradd`, read the way shadow-utils 4.13
//! reads them, with Debian 12's built-in defaults when a file or key is missing.

use std::collections::HashMap;

/// Parses like C's `strtol(s, &end, 0)` requiring the whole string to be consumed: optional
/// leading whitespace and sign, then `0x` hexadecimal, `0` octal or decimal.
pub(crate) fn parse_c_long(s: &str) -> Option<i64> {
    let (neg, digits, radix) = split_c_number(s)?;
    let v = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Like `strtoul(s, &end, 0)` over the whole string; a leading minus wraps around as in C.
pub(crate) fn parse_c_ulong(s: &str) -> Option<u64> {
    let (neg, digits, radix) = split_c_number(s)?;
    let v = u64::from_str_radix(digits, radix).ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn split_c_number(s: &str) -> Option<(bool, &str, u32)> {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some((neg, digits, radix))
}

/// `/etc/login.defs` of the target.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginDefs {
    values: HashMap<String, String>,
}

impl LoginDefs {
    /// Parses the file: `NAME value` lines, `#` comments, a value may be quoted; the last
    /// occurrence of a name wins. Trailing comments are not stripped (shadow-utils does not
    /// either, so `UMASK 022 # x` is an unparsable value and the default applies).
    pub fn parse(text: &str) -> LoginDefs {
        let mut values = HashMap::new();
        for line in text.lines() {
            let line = line.trim_end_matches(|c: char| c.is_ascii_whitespace());
            let line = line.trim_start_matches([' ', '\t']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(end) = line.find([' ', '\t']) else {
                continue;
            };
            let name = &line[..end];
            let value = line[end + 1..].trim_start_matches([' ', '"', '\t']);
            let value = match value.find('"') {
                Some(q) => &value[..q],
                None => value,
            };
            values.insert(name.to_string(), value.to_string());
        }
        LoginDefs { values }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// "yes" (any case) is true; anything else or missing is false.
    pub fn get_bool(&self, key: &str) -> bool {
        self.get_str(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
    }

    /// An `int` value (decimal, octal with a leading 0, hex with 0x); `dflt` when missing or
    /// unparsable.
    pub fn get_num(&self, key: &str, dflt: i64) -> i64 {
        match self.get_str(key).and_then(parse_c_long) {
            Some(v) if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) => v,
            Some(_) | None => {
                if self.values.contains_key(key) {
                    log::warn!("login.defs: cannot parse the {key} value, using {dflt}");
                }
                dflt
            }
        }
    }

    /// An `unsigned long` value; `dflt` when missing or unparsable.
    pub fn get_ulong(&self, key: &str, dflt: u64) -> u64 {
        match self.get_str(key).and_then(parse_c_ulong) {
            Some(v) => v,
            None => {
                if self.values.contains_key(key) {
                    log::warn!("login.defs: cannot parse the {key} value, using {dflt}");
                }
                dflt
            }
        }
    }

    /// A uid/gid-sized value (`(uid_t) getdef_ulong(...)`).
    pub fn get_id(&self, key: &str, dflt: u64) -> u32 {
        // Truncation to 32 bits is what the C cast does.
        self.get_ulong(key, dflt) as u32
    }
}

/// `/etc/default/useradd` of the target, with Debian 12's compiled-in defaults.
#[derive(Debug, Clone)]
pub(crate) struct UseraddDefaults {
    /// The raw `GROUP=` value (a name or a number), resolved later against the group files.
    pub group: Option<String>,
    pub home: String,
    pub shell: String,
    pub skel: String,
    pub inactive: i64,
    pub expire: String,
    pub create_mail_spool: String,
    pub log_init: String,
}

impl Default for UseraddDefaults {
    fn default() -> Self {
        UseraddDefaults {
            group: None,
            home: "/home".to_string(),
            shell: "/bin/bash".to_string(),
            skel: "/etc/skel".to_string(),
            inactive: -1,
            expire: String::new(),
            create_mail_spool: "no".to_string(),
            log_init: "yes".to_string(),
        }
    }
}

/// The gid used for GROUP= when it is absent or names no group (Debian's patched default).
pub(crate) const DEFAULT_GROUP_GID: u32 = 100;

impl UseraddDefaults {
    /// Parses `KEY=value` lines; the key must start the line, the value is everything after
    /// the first `=`.
    pub fn parse(text: &str) -> UseraddDefaults {
        let mut d = UseraddDefaults::default();
        for line in text.split('\n') {
            let Some(eq) = line.find('=') else {
                continue;
            };
            let value = &line[eq + 1..];
            if line.starts_with("GROUP=") {
                d.group = Some(value.to_string());
            } else if line.starts_with("HOME=") {
                d.home = value.to_string();
            } else if line.starts_with("SHELL=") {
                d.shell = value.to_string();
            } else if line.starts_with("INACTIVE=") {
                d.inactive = match parse_c_long(value) {
                    Some(v) if v >= -1 => v,
                    _ => {
                        log::warn!("/etc/default/useradd: ignoring the invalid INACTIVE value");
                        -1
                    }
                };
            } else if line.starts_with("EXPIRE=") {
                d.expire = value.to_string();
            } else if line.starts_with("SKEL=") {
                d.skel = if value.is_empty() {
                    "/etc/skel".to_string()
                } else {
                    value.to_string()
                };
            } else if line.starts_with("CREATE_MAIL_SPOOL=") {
                d.create_mail_spool = if value.is_empty() {
                    "no".to_string()
                } else {
                    value.to_string()
                };
            } else if line.starts_with("LOG_INIT=") && !value.is_empty() {
                d.log_init = value.to_string();
            }
        }
        d
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// shadow-utils' `strtoday` for the EXPIRE default: "" is -1 (never), a number is a day
/// count, `YYYY-MM-DD` is a date (UTC). `None` for anything else.
pub(crate) fn str_to_day(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(-1);
    }
    let body = s.strip_prefix('-').unwrap_or(s).trim_start_matches(' ');
    if body.chars().all(|c| c.is_ascii_digit()) {
        return parse_c_long(s);
    }
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        let y: i64 = parts[0].parse().ok()?;
        let m: i64 = parts[1].parse().ok()?;
        let d: i64 = parts[2].parse().ok()?;
        if (1..=12).contains(&m) && (1..=31).contains(&d) {
            return Some(days_from_civil(y, m, d));
        }
    }
    None
}

/// "Today" as shadow-utils counts it: days since the epoch, from `SOURCE_DATE_EPOCH` when it
/// is a valid time not in the future, else from the clock. `None` on the epoch day itself
/// (shadow-utils then leaves the field empty rather than forcing a password change).
pub(crate) fn today() -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => match v.parse::<u64>() {
            Ok(e) if e <= now => e,
            _ => now,
        },
        Err(_) => now,
    };
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    (days != 0).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_long("022"), Some(0o22));
        assert_eq!(parse_c_long("0x1F"), Some(31));
        assert_eq!(parse_c_long("  -7"), Some(-7));
        assert_eq!(parse_c_long("0"), Some(0));
        assert_eq!(parse_c_long("08"), None);
        assert_eq!(parse_c_long("12 # c"), None);
        assert_eq!(parse_c_long(""), None);
        assert_eq!(parse_c_ulong("-1"), Some(u64::MAX));
        assert_eq!(parse_c_ulong("600100000"), Some(600_100_000));
    }

    #[test]
    fn login_defs_like_shadow_utils() {
        let d = LoginDefs::parse(
            "# c\nUID_MIN\t\t\t 1000\nUMASK 077\nUMASK 022\nUSERGROUPS_ENAB Yes\nHOME_MODE \"0700\"\nBAD 12 # x\nLONELY\n",
        );
        assert_eq!(d.get_id("UID_MIN", 1), 1000);
        assert_eq!(d.get_num("UMASK", 0), 0o22);
        assert!(d.get_bool("USERGROUPS_ENAB"));
        assert!(!d.get_bool("CREATE_HOME"));
        assert_eq!(d.get_num("HOME_MODE", 0), 0o700);
        assert_eq!(d.get_num("BAD", 5), 5);
        assert_eq!(d.get_num("LONELY", 9), 9);
        assert_eq!(d.get_id("UID_MAX", 60000), 60000);
    }

    #[test]
    fn useradd_defaults() {
        let d = UseraddDefaults::parse(
            "# GROUP=100\nSHELL=/bin/sh\nSKEL=\nINACTIVE=-5\nCREATE_MAIL_SPOOL=yes\n",
        );
        assert_eq!(d.group, None);
        assert_eq!(d.shell, "/bin/sh");
        assert_eq!(d.skel, "/etc/skel");
        assert_eq!(d.inactive, -1);
        assert_eq!(d.create_mail_spool, "yes");
        assert_eq!(d.home, "/home");
    }

    #[test]
    fn expire_dates() {
        assert_eq!(str_to_day(""), Some(-1));
        assert_eq!(str_to_day("19000"), Some(19000));
        assert_eq!(str_to_day("1970-01-02"), Some(1));
        assert_eq!(str_to_day("2024-03-01"), Some(19783));
        assert_eq!(str_to_day("tomorrow"), None);
    }
}
