//! Any bytes as an inbound event: parsing and classification must never panic,
//! and every server they name must be a valid ARN that round-trips.
#![no_main]

use drs_extender::domain::arn::SourceServerArn;
use drs_extender::inbound::classify::{classify, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(arn) = SourceServerArn::parse(text) {
            assert_eq!(arn.to_string(), text);
        }
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Request::Servers(servers) = classify(&payload).request {
        for server in servers.into_iter().flatten() {
            let text = server.arn.to_string();
            assert_eq!(SourceServerArn::parse(&text).as_ref(), Ok(&server.arn));
        }
    }
});
