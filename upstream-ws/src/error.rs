//! Why an upstream subscription failed. The display text is the operator's (logs, a failed
//! start): it names the URL and what went wrong. Clients are told [`UpstreamError::client_errors`]:
//! a fixed text that names only the upstream, and a code.

use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{upstream}` at {url} is unreachable: {reason}")]
    Unreachable { upstream: String, url: String, reason: String },
    #[error("upstream `{upstream}` at {url} is not a GraphQL WebSocket server: {reason}")]
    NotGraphql { upstream: String, url: String, reason: String },
    #[error("upstream `{upstream}` rejected the connection: {reason}")]
    Rejected { upstream: String, reason: String },
    #[error("upstream `{upstream}`: {reason}")]
    Schema { upstream: String, reason: String },
}

impl UpstreamError {
    /// `extensions.code` of the error clients get.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable { .. } | UpstreamError::Schema { .. } => "UPSTREAM_UNAVAILABLE",
            UpstreamError::NotGraphql { .. } => "UPSTREAM_NOT_GRAPHQL",
            UpstreamError::Rejected { .. } => "UPSTREAM_REJECTED",
        }
    }

    /// What clients are told: never the URL, nor what the socket or the upstream said.
    pub fn client_message(&self) -> String {
        match self {
            UpstreamError::Unreachable { upstream, .. } | UpstreamError::Schema { upstream, .. } => {
                format!("upstream `{upstream}` is unavailable")
            }
            UpstreamError::NotGraphql { upstream, .. } => {
                format!("upstream `{upstream}` is not a GraphQL WebSocket server")
            }
            UpstreamError::Rejected { upstream, .. } => format!("upstream `{upstream}` rejected the connection"),
        }
    }

    /// The client's error as a GraphQL error list.
    pub fn client_errors(&self) -> Value {
        json!([{ "message": self.client_message(), "extensions": { "code": self.code() } }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_hear_the_upstream_name_and_a_code_only() {
        let error = UpstreamError::NotGraphql {
            upstream: "pricing".into(),
            url: "ws://10.0.0.7:4001/graphql".into(),
            reason: "answered HTTP 404 Not Found".into(),
        };
        assert!(error.to_string().contains("10.0.0.7"), "the operator's text names the URL");
        let errors = error.client_errors().to_string();
        assert!(errors.contains("`pricing`") && errors.contains("UPSTREAM_NOT_GRAPHQL"), "{errors}");
        assert!(!errors.contains("10.0.0.7") && !errors.contains("404"), "{errors}");
    }
}
