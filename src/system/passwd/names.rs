//! Which user and group names shadow-utils accepts.
//!
//! These are upstream shadow-utils 4.13's rules (what Fedora, RHEL, Flatcar and CoreOS ship):
//! `[A-Za-z0-9_.][A-Za-z0-9_.-]*` with an optional final `$` (Samba machine accounts), not
//! `.` or `..`, not entirely digits, at most 32 bytes. Debian patches its tools to accept much
//! more (anything without `:`, `,` or whitespace that does not start with `-`, `+` or `~`);
//! Ember keeps to the portable rules, so a few names Debian's useradd takes are refused.

/// Longest user name (utmp's `ut_user`) and group name (shadow's build default).
const MAX_NAME_LEN: usize = 32;

fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if name == "." || name == ".." {
        return false;
    }
    if !(first.is_ascii_alphanumeric() || first == b'_' || first == b'.') {
        return false;
    }
    let last = b.len() - 1;
    for (i, &c) in b.iter().enumerate().skip(1) {
        let ok = c.is_ascii_alphanumeric()
            || c == b'_'
            || c == b'.'
            || c == b'-'
            || (c == b'$' && i == last);
        if !ok {
            return false;
        }
    }
    !b.iter().all(u8::is_ascii_digit)
}

pub(crate) fn is_valid_user_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && is_valid_name(name)
}

pub(crate) fn is_valid_group_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && is_valid_name(name)
}

/// shadow-utils' `VALID()`: a field may not contain `:` or a newline.
pub(crate) fn is_valid_field(s: &str) -> bool {
    !s.contains([':', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "core",
            "a",
            "_apt",
            "user.name",
            "a-b",
            "WORKSTATION$",
            "x1",
            "1x",
            ".hidden",
        ] {
            assert!(is_valid_user_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "-rf",
            "a:b",
            "a b",
            "a,b",
            "a$b",
            "123",
            "ümlaut",
            "a@b",
            "a/b",
            "+nis",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            assert!(!is_valid_user_name(bad), "{bad}");
        }
        assert!(is_valid_group_name("abcdefghijklmnopqrstuvwxyz012345"));
    }
}
