//! Control API lines (`control::protocol`): requests from any client allowed on the socket, and
//! responses as initctl reads them. A request that parses must survive `encode_request` unchanged
//! (initctl builds its requests with it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::control::protocol::{encode_request, parse_request, parse_response, Response};
use lifsea_init::units::valid_unit_name;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(req) => {
            let line = encode_request(&req);
            let again = parse_request(line.trim_end_matches('\n').as_bytes())
                .unwrap_or_else(|e| panic!("re-parse of {line:?}: {e:?}"));
            assert_eq!(again, req);
            use lifsea_init::control::protocol::Op::*;
            match &req.op {
                Status { unit }
                | Start { unit }
                | Stop { unit }
                | Restart { unit }
                | Enable { unit }
                | Disable { unit }
                | Logs { unit, .. } => {
                    assert!(valid_unit_name(unit), "{unit:?}")
                }
                _ => {}
            }
            if let Logs { n, .. } = &req.op {
                assert!(*n <= lifsea_init::control::protocol::MAX_LOG_LINES);
            }
        }
        Err(e) => {
            // Every refusal becomes a well-formed error line the client can read.
            let r = Response::from_proto_error(&e);
            let line = r.encode();
            let back = parse_response(line.trim_ascii_end()).expect("error line parses");
            assert_eq!(back, r);
        }
    }
    if let Ok(r) = parse_response(data) {
        let _ = r.encode();
    }
});
