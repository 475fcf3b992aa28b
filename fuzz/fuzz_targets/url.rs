//! Go's `url.Parse` port and Ignition's URL rules: no panics, and parsed parts stay
//! consistent.
#![no_main]

use ember::config::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = url::go_quote(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match url::parse(s) {
        Ok(u) => {
            let _ = u.hostname();
            let _ = u.port();
            let _ = u.query_first("versionId");
            assert_eq!(u.scheme, u.scheme.to_ascii_lowercase());
            assert!(u.hostname().len() <= u.host.len());
            assert_eq!(url::scheme_of(s).as_deref().unwrap_or(""), u.scheme);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = url::parse_query(s);
    for (gs, arn) in [(false, false), (true, false), (false, true), (true, true)] {
        if let Err(e) = url::validate_resource_url(s, gs, arn) {
            let _ = e.to_string();
        }
    }
    let _ = url::tang_url_ok(s);
});
