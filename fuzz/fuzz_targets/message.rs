//! One client message per run, as both protocols read it: decoded, then handled by a session
//! past its ack, and the frames built for the id it names. A run is one protocol message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subhub_protocol::{FramePrefix, Protocol, ProtocolState, Step};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        let mut session = ProtocolState::new(protocol);
        session.receive(r#"{"type":"connection_init"}"#);
        session.acknowledge();
        if let Step::Subscribe { id, .. } = session.receive(&text) {
            let frame = FramePrefix::new(protocol, &id).frame(r#"{"data":null}"#);
            assert!(frame.contains("\"id\""));
        }
    }
});
