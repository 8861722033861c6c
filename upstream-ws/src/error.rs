//! Why an upstream subscription failed. The text is shown to the clients affected.

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
