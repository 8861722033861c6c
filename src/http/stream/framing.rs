//! The bytes of the two HTTP streaming transports, around the shared result bytes.
//!
//! - GraphQL over SSE (graphql-sse, distinct connections): `event: next` with the result as
//!   `data:` (and the event's cursor as `id:`), `event: complete` with an empty `data:` line so
//!   `EventSource` listeners fire, and a comment line as keep-alive.
//! - Multipart subscriptions (Apollo's `subscriptionSpec=1.0`): each result a part
//!   `{"payload":…}`, a heartbeat part `{}`, a transport error `{"payload":null,"errors":…}`,
//!   and the closing boundary at the end. Each part is followed by the next boundary at once,
//!   as Apollo Router writes them: a client reads a part when it sees the boundary after it.

use subhub_subscriptions::{SharedPayload, Transport};

pub const SSE_CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";
pub const MULTIPART_CONTENT_TYPE: &str = "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0";

const BOUNDARY: &[u8] = b"\r\n--graphql";
const PART_HEADERS: &[u8] = b"\r\ncontent-type: application/json; charset=utf-8\r\n\r\n";
/// Makes the boundary that follows the last part the closing one.
const CLOSING: &[u8] = b"--\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Multipart,
}

impl Framing {
    pub fn transport(self) -> Transport {
        match self {
            Framing::Sse => Transport::Sse,
            Framing::Multipart => Transport::Multipart,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Sse => SSE_CONTENT_TYPE,
            Framing::Multipart => MULTIPART_CONTENT_TYPE,
        }
    }

    /// What a stream starts with: SSE a comment, so the client sees it accepted at once;
    /// multipart the first boundary.
    pub fn opening(self, out: &mut Vec<u8>) {
        match self {
            Framing::Sse => out.extend_from_slice(b":\n\n"),
            Framing::Multipart => out.extend_from_slice(BOUNDARY),
        }
    }

    /// One result.
    pub fn next(self, out: &mut Vec<u8>, payload: &SharedPayload) {
        match self {
            Framing::Sse => sse_event(out, "next", payload.cursor(), payload.json()),
            Framing::Multipart => part(out, &[br#"{"payload":"#, payload.json().as_bytes(), b"}"]),
        }
    }

    /// The operation ended with GraphQL errors (a JSON array): they are its last result.
    pub fn errors(self, out: &mut Vec<u8>, errors_json: &str) {
        match self {
            Framing::Sse => {
                let result = format!(r#"{{"errors":{errors_json}}}"#);
                sse_event(out, "next", None, &result);
            }
            Framing::Multipart => part(out, &[br#"{"payload":{"errors":"#, errors_json.as_bytes(), b"}}"]),
        }
        self.complete(out);
    }

    /// The operation is over: nothing follows.
    pub fn complete(self, out: &mut Vec<u8>) {
        match self {
            Framing::Sse => out.extend_from_slice(b"event: complete\ndata: \n\n"),
            Framing::Multipart => out.extend_from_slice(CLOSING),
        }
    }

    /// The stream ends for a reason of the transport's (a client too slow): said the way the
    /// transport says it, then the end.
    pub fn transport_error(self, out: &mut Vec<u8>, message: &str) {
        match self {
            Framing::Sse => {
                let result = format!(r#"{{"errors":{}}}"#, subhub_protocol::server::error_list(message));
                sse_event(out, "next", None, &result);
            }
            Framing::Multipart => {
                let errors = subhub_protocol::server::error_list(message);
                part(out, &[br#"{"payload":null,"errors":"#, errors.as_bytes(), b"}"]);
            }
        }
        self.complete(out);
    }

    /// Keeps the connection alive through proxies and tells the client the hub is there.
    pub fn heartbeat(self, out: &mut Vec<u8>) {
        match self {
            Framing::Sse => out.extend_from_slice(b":\n\n"),
            Framing::Multipart => part(out, &[b"{}"]),
        }
    }
}

/// An SSE event. Result JSON may hold line breaks between its tokens (payloads pass through as
/// published, never inside a string), so each line becomes a `data:` line of its own; the
/// client joins them with `\n`, which is the same JSON.
pub fn sse_event(out: &mut Vec<u8>, event: &str, id: Option<&str>, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        // An id cannot hold a line break (broker positions never do); one that did would end
        // the field early, so it is left out rather than cut.
        if !id.contains(['\n', '\r', '\0']) {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
    }
    for line in data.split(['\n', '\r']) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// A part, after the boundary already written, and the boundary after it.
fn part(out: &mut Vec<u8>, body: &[&[u8]]) {
    out.extend_from_slice(PART_HEADERS);
    for piece in body {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(BOUNDARY);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(build: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        build(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sse_events_carry_the_cursor_as_id_and_split_lines() {
        let payload = SharedPayload::new("{\"data\":\n {\"x\":1}}", Some("1700000000000-0"));
        let event = text(|out| Framing::Sse.next(out, &payload));
        assert_eq!(event, "event: next\nid: 1700000000000-0\ndata: {\"data\":\ndata:  {\"x\":1}}\n\n");
        let plain = text(|out| Framing::Sse.next(out, &SharedPayload::from("{}")));
        assert_eq!(plain, "event: next\ndata: {}\n\n");
        assert_eq!(text(|out| Framing::Sse.complete(out)), "event: complete\ndata: \n\n");
        assert_eq!(text(|out| Framing::Sse.heartbeat(out)), ":\n\n");
    }

    #[test]
    fn sse_ids_with_line_breaks_are_left_out() {
        let payload = SharedPayload::new("{}", Some("a\nevent: complete"));
        assert_eq!(text(|out| Framing::Sse.next(out, &payload)), "event: next\ndata: {}\n\n");
    }

    #[test]
    fn multipart_parts_wrap_the_result_in_payload_and_end_with_a_boundary() {
        let stream = text(|out| {
            Framing::Multipart.opening(out);
            Framing::Multipart.next(out, &SharedPayload::from(r#"{"data":{"x":1}}"#));
            Framing::Multipart.heartbeat(out);
            Framing::Multipart.complete(out);
        });
        let head = "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n";
        assert_eq!(
            stream,
            format!(
                "\r\n--graphql{head}{{\"payload\":{{\"data\":{{\"x\":1}}}}}}\r\n--graphql{head}{{}}\r\n--graphql--\r\n"
            )
        );
        let failed = text(|out| Framing::Multipart.transport_error(out, "too slow"));
        assert!(failed.ends_with("{\"payload\":null,\"errors\":[{\"message\":\"too slow\"}]}\r\n--graphql--\r\n"));
        let errors = text(|out| Framing::Multipart.errors(out, r#"[{"message":"no"}]"#));
        assert!(errors.contains(r#"{"payload":{"errors":[{"message":"no"}]}}"#));
    }
}
