//! Clients of the hub's HTTP streams: GraphQL over SSE and multipart subscriptions, read from
//! a real response body as it arrives.

use std::time::Duration;

use serde_json::Value;

use super::{TestHub, PATIENCE};

/// One thing an SSE stream carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    /// A comment line (`:`), the keep-alive.
    Comment,
    Event {
        event: String,
        id: Option<String>,
        data: String,
    },
}

/// An open SSE response, read event by event.
pub struct SseStream {
    pub response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// `GET /graphql?query=…` with `Accept: text/event-stream`; panics unless it answers 200
    /// with the event-stream type.
    pub async fn get(hub: &TestHub, query: &str, variables: Value) -> Self {
        let request = hub
            .http()
            .get(hub.url("/graphql"))
            .query(&[("query", query), ("variables", &variables.to_string())])
            .header("accept", "text/event-stream");
        Self::open(request).await
    }

    /// Sends a prepared request and checks the stream opened.
    pub async fn open(request: reqwest::RequestBuilder) -> Self {
        let response = tokio::time::timeout(PATIENCE, request.send()).await.expect("SSE answered in time");
        let response = response.expect("SSE request");
        assert_eq!(response.status(), 200, "SSE answered {}", response.status());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "content type {content_type}");
        SseStream { response, buffer: String::new() }
    }

    /// The next comment or event; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(':') {
                    return Some(Sse::Comment);
                }
                let (mut event, mut id, mut data) = (String::new(), None, Vec::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        event = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push(value.to_owned());
                    }
                }
                return Some(Sse::Event { event, id, data: data.join("\n") });
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk()).await.expect("SSE chunk in time");
            match chunk.expect("SSE body") {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                None => return None,
            }
        }
    }

    /// The next event, skipping keep-alive comments: its name, id and data.
    pub async fn event(&mut self) -> (String, Option<String>, String) {
        loop {
            match self.next().await.expect("an event before the stream ended") {
                Sse::Comment => {}
                Sse::Event { event, id, data } => return (event, id, data),
            }
        }
    }

    /// The next `next` event's result as JSON, and its id.
    pub async fn next_result(&mut self) -> (Value, Option<String>) {
        let (event, id, data) = self.event().await;
        assert_eq!(event, "next", "expected a next event, got {event}: {data}");
        (serde_json::from_str(&data).expect("next data is JSON"), id)
    }
}

/// An open multipart response, read part by part.
pub struct MultipartStream {
    pub response: reqwest::Response,
    buffer: String,
    ended: bool,
}

/// What a multipart stream carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// A part's JSON body (`{}` is the heartbeat).
    Json(Value),
    /// The closing boundary.
    End,
}

pub const APOLLO_ACCEPT: &str =
    "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9";

impl MultipartStream {
    /// `POST /graphql` as Apollo Client's HttpLink sends a subscription.
    pub async fn post(hub: &TestHub, query: &str, variables: Value) -> Self {
        let request = hub
            .http()
            .post(hub.url("/graphql"))
            .header("accept", APOLLO_ACCEPT)
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        Self::from_response(request.send().await.expect("multipart request"))
    }

    /// Reads a multipart answer; panics unless it is one.
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "multipart answered {}", response.status());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0");
        MultipartStream { response, buffer: String::new(), ended: false }
    }

    /// The next part; `None` once the body ended.
    pub async fn next(&mut self) -> Option<Part> {
        const BOUNDARY: &str = "\r\n--graphql";
        loop {
            if self.ended {
                return None;
            }
            // A part is complete once the next boundary (or the closing one) follows it.
            if let Some(start) = self.buffer.find(BOUNDARY) {
                let rest = &self.buffer[start + BOUNDARY.len()..];
                if rest.starts_with("--") {
                    self.ended = true;
                    return Some(Part::End);
                }
                if let Some(next) = rest.find(BOUNDARY) {
                    let part = rest[..next].to_owned();
                    self.buffer.drain(..start + BOUNDARY.len() + next);
                    let (headers, body) = part.split_once("\r\n\r\n").expect("part headers and body");
                    assert!(headers.to_ascii_lowercase().contains("content-type: application/json"), "{headers}");
                    return Some(Part::Json(serde_json::from_str(body).expect("part body is JSON")));
                }
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk()).await.expect("multipart chunk in time");
            match chunk.expect("multipart body") {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                None => {
                    assert!(self.buffer.trim().is_empty(), "body ended inside a part: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next part that is not a heartbeat.
    pub async fn payload(&mut self) -> Part {
        loop {
            match self.next().await.expect("a part before the body ended") {
                Part::Json(value) if value == serde_json::json!({}) => {}
                part => return part,
            }
        }
    }
}

/// How long a stream test waits for something that should happen at once.
pub const SOON: Duration = Duration::from_secs(1);
