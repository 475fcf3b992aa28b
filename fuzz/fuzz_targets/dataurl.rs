//! data: URLs: no panics, and the allocation-free check agrees with the decoder.
#![no_main]

use ember::config::dataurl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let checked = dataurl::validate(s);
    let decoded = dataurl::decode(s);
    assert_eq!(
        checked,
        decoded.as_ref().map(|_| ()).map_err(Clone::clone),
        "validate and decode disagree on {s:?}"
    );
    if let Ok(d) = &decoded {
        assert!(d.media_type.contains('/'));
        if !d.base64 {
            // Percent-decoding never grows the data.
            assert!(d.data.len() <= s.len());
        }
    }
    if let Err(e) = &decoded {
        let _ = e.to_string();
    }
});
