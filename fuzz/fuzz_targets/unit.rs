//! The systemd unit lexer: no panics, and what it returns comes from the input.
#![no_main]

use ember::config::unit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match unit::deserialize_options(s) {
        Ok(opts) => {
            let _ = unit::has_section(&opts, "Install");
            // Names are taken from the input and trimmed of nothing but whitespace.
            let total: usize = opts.iter().map(|o| o.name.len()).sum();
            assert!(total <= s.len());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
