//! Properties of the protocol layer over generated input: whatever a client sends, decoding
//! and the session never panic, the session's record of active operations matches a model of
//! it, close reasons fit a close frame, and every frame the hub builds is valid JSON carrying
//! the id it was built for. Bounded to a few seconds; `PROPTEST_CASES` raises the count.

use std::collections::HashSet;

use proptest::prelude::*;
use serde_json::{json, Value};
use subhub_protocol::close::MAX_REASON_BYTES;
use subhub_protocol::{ClientMessage, FramePrefix, Protocol, ProtocolState, Step};

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::TransportWs), Just(Protocol::LegacyWs)]
}

/// Ids as clients send them, and as hostile clients do: empty, long, quotes, escapes, unicode.
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-c1-3]{1,3}".prop_map(Value::String),
        1 => any::<String>().prop_map(Value::String),
        1 => Just(Value::String("x".repeat(129))),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => Just(Value::Null),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[a-z{} ]{0,12}".prop_map(|query| json!({"query": query})),
        1 => (any::<String>(), any::<String>()).prop_map(|(q, name)| json!({"query": q, "operationName": name, "variables": {"a": [1, null]}})),
        1 => any::<i32>().prop_map(|n| json!(n)),
        1 => Just(json!({"query": 5})),
        1 => Just(Value::Null),
    ]
}

/// A message of either protocol, well-formed or not, or text that is no message at all.
fn message() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("connection_init"),
        Just("ping"),
        Just("pong"),
        Just("subscribe"),
        Just("start"),
        Just("complete"),
        Just("stop"),
        Just("connection_terminate"),
        Just("nope"),
    ];
    prop_oneof![
        8 => (kind, id(), payload()).prop_map(|(kind, id, payload)| json!({"type": kind, "id": id, "payload": payload}).to_string()),
        1 => any::<String>(),
        1 => "[{}\\[\\]\":,a-z0-9 ]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn decoding_never_panics(protocol in protocol(), text in any::<String>()) {
        let _ = ClientMessage::parse(protocol, &text);
    }

    /// A session fed any sequence: it never panics, refuses subscribes before the ack, keeps
    /// exactly the ids a model says are active, and cuts every close reason to fit a frame.
    #[test]
    fn the_session_follows_its_model(protocol in protocol(), messages in prop::collection::vec(message(), 0..40), accept in any::<bool>()) {
        let mut session = ProtocolState::new(protocol);
        let mut active: HashSet<String> = HashSet::new();
        let mut acknowledged = false;
        for text in &messages {
            match session.receive(text) {
                Step::Close(frame) => {
                    prop_assert!(frame.reason.len() <= MAX_REASON_BYTES);
                    break;
                }
                Step::Init(_) => {
                    if accept {
                        session.acknowledge();
                        acknowledged = true;
                    } else {
                        let (_, frame) = session.reject("no");
                        prop_assert_eq!(frame.code, 4403);
                        break;
                    }
                }
                Step::Subscribe { id, replaces, .. } => {
                    prop_assert!(acknowledged, "a subscribe before the ack");
                    prop_assert!(!id.is_empty() && id.len() <= 128);
                    prop_assert_eq!(replaces, active.contains(&id));
                    active.insert(id);
                }
                Step::Unsubscribe { id, .. } => {
                    prop_assert!(active.remove(&id), "unsubscribed an id that was not active");
                }
                Step::Reply(reply) => {
                    prop_assert!(serde_json::from_str::<Value>(&reply).is_ok(), "{}", reply);
                }
                Step::Ignore => {}
            }
            prop_assert_eq!(session.active_count(), active.len());
        }
        let (completes, frame) = session.shutdown();
        prop_assert_eq!(completes.len(), active.len());
        prop_assert_eq!(frame.code, 1001);
    }

    /// Every `next` frame is valid JSON naming its id, whatever the id holds.
    #[test]
    fn frames_carry_their_id(protocol in protocol(), id in any::<String>(), n in any::<i64>()) {
        let payload = json!({"data": {"n": n}}).to_string();
        let frame: Value = serde_json::from_str(&FramePrefix::new(protocol, &id).frame(&payload)).expect("a frame is JSON");
        prop_assert_eq!(frame["id"].as_str(), Some(id.as_str()));
        prop_assert_eq!(&frame["payload"]["data"]["n"], &json!(n));
    }
}
