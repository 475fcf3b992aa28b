//! Arbitrary bytes through the linter and its three report formats, and Ember's Go-compatible
//! JSON syntax check against serde_json.
#![no_main]

use ember::cli::lint;
use ember::config::json::{self, LineIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_spec, report) = lint::lint_bytes(data);
    // Every finding about this input that has a position has the line and column of it.
    let index = LineIndex::new(data);
    for e in report.entries.iter().filter(|e| e.source.is_none()) {
        for m in [e.marker, e.ember_marker].into_iter().flatten() {
            assert_eq!(index.line_col(m.index), (m.line, m.column), "{e:?}");
        }
    }

    let [human, json_out, sarif] = lint::lint_and_render("fuzz.ign", data);
    assert!(human.ends_with('\n'));
    for (name, text) in [("json", &json_out), ("sarif", &sarif)] {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
            panic!("{name} output is not JSON ({e}):\n{text}");
        }
    }

    json_agreement(data);
});

/// Go's scanner (`check_valid`) and serde_json decide validity the same way, except where
/// serde_json is stricter for reasons of its own:
/// * strings must be valid UTF-8 (Go accepts any byte above 0x1f);
/// * nesting is limited to 128 levels (Go: 10000);
/// * a `\u` escape of a lone surrogate is refused (Go decodes it to U+FFFD);
/// * a number must fit an f64 (Go checks only the syntax).
/// So serde_json's "valid" implies Go's everywhere, and the two agree when none of these
/// can apply.
fn json_agreement(data: &[u8]) {
    let go = json::check_valid(data);
    let serde = serde_json::from_slice::<serde_json::Value>(data);
    // The tree builder accepts exactly what the scanner accepts.
    assert_eq!(json::parse_doc(data).is_ok(), go.is_ok());
    if let Ok(v) = &serde {
        assert!(
            go.is_ok(),
            "serde_json accepts what Go refuses ({:?}): {v:?}",
            go.err()
        );
    }
    if comparable(data) {
        assert_eq!(
            go.is_ok(),
            serde.is_ok(),
            "go: {:?}, serde_json: {:?}",
            go.err(),
            serde.err()
        );
    }
}

fn comparable(data: &[u8]) -> bool {
    if std::str::from_utf8(data).is_err() {
        return false;
    }
    // Any nesting, counted generously (brackets inside strings too).
    if data.iter().filter(|&&b| b == b'[' || b == b'{').count() >= 127 {
        return false;
    }
    // Surrogate escapes, counted generously (`\\uD800` too).
    if data
        .windows(3)
        .any(|w| w[0] == b'\\' && (w[1] == b'u' || w[1] == b'U') && matches!(w[2], b'd' | b'D'))
    {
        return false;
    }
    // Numbers: any run of number characters that is too big for an f64 (or not a number at
    // all, which makes the input invalid for both anyway).
    for run in data.split(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
        if run.is_empty() {
            continue;
        }
        if let Ok(s) = std::str::from_utf8(run) {
            if let Ok(f) = s.parse::<f64>() {
                if !f.is_finite() || f.abs() > 1e300 {
                    return false;
                }
            } else if run.len() > 300 {
                return false;
            }
        }
    }
    true
}
