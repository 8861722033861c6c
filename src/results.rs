//! GraphQL responses and error lists as JSON text, the way every transport sends them.

use async_graphql::{Response, ServerError, Value};

/// A response as JSON text.
pub fn response_json(response: &Response) -> String {
    serde_json::to_string(response).unwrap_or_else(|_| internal_error_json())
}

/// An error list as JSON text.
pub fn errors_json(errors: &[ServerError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| internal_error_json())
}

/// The error list a client gets where the hub failed: nothing of the failure itself.
pub fn internal_error_json() -> String {
    r#"[{"message":"internal error"}]"#.to_owned()
}

/// No data at all, only errors: the request never produced a result.
pub fn failed_before_execution(response: &Response) -> bool {
    response.data == Value::Null && !response.errors.is_empty()
}

/// True when every error is a request error (parse, validation, variables): none has a path.
pub fn is_request_error(response: &Response) -> bool {
    failed_before_execution(response) && response.errors.iter().all(|e| e.path.is_empty())
}
