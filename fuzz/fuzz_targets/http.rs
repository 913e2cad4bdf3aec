//! The `http` readiness probe: the URL from the unit file (`units::http_url`) and the response
//! judge (`supervisor::http_probe::judge`), which reads whatever the service answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::supervisor::http_probe::{judge, request, Verdict, MAX_RESPONSE};
use lifsea_init::units::http_url::parse_http_url;

fuzz_target!(|data: &[u8]| {
    let v = judge(data);
    // A verdict once given holds for every longer response (the probe stops reading at it), up
    // to the most the probe reads.
    if data.len() <= MAX_RESPONSE {
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            let early = judge(&data[..cut]);
            if early != Verdict::Incomplete {
                assert_eq!(early, v, "cut at {cut}");
            }
        }
    }
    if let Ok(url) = std::str::from_utf8(data) {
        if let Ok(t) = parse_http_url(url) {
            assert!(t.addr.ip().is_loopback(), "{url:?} -> {:?}", t.addr);
            let req = request(&t);
            let text = String::from_utf8(req).expect("request is UTF-8");
            // Nothing from the URL may end the request line or add a header.
            assert_eq!(text.matches("\r\n").count(), 6, "{text:?}");
            assert!(text.ends_with("\r\n\r\n"));
            // `initctl status` shows the URL: what it shows parses back to the same target.
            assert_eq!(parse_http_url(&t.to_string()).as_ref(), Ok(&t));
        }
    }
});
