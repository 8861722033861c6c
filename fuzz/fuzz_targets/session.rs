//! Sequences of client messages (one per line) through one session: the first byte picks the
//! protocol and whether `connection_init` is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subhub_protocol::{Protocol, ProtocolState, Step};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let protocol = if first & 1 == 0 { Protocol::TransportWs } else { Protocol::LegacyWs };
    let accept = first & 2 == 0;
    let mut session = ProtocolState::new(protocol);
    for line in rest.split(|byte| *byte == b'\n') {
        match session.receive(&String::from_utf8_lossy(line)) {
            Step::Close(_) => return,
            Step::Init(_) if accept => {
                session.acknowledge();
            }
            Step::Init(_) => {
                session.reject("refused");
                return;
            }
            Step::Subscribe { id, .. } if first & 4 == 0 => {
                session.operation_ended(&id);
            }
            _ => {}
        }
    }
    let _ = session.shutdown();
});
