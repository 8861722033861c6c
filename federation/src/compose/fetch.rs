//! A subgraph's SDL read from `{ _service { sdl } }` at its URL, as every Federation subgraph
//! library serves it.

use std::time::Duration;

use serde::Deserialize;

/// Why a subgraph's SDL could not be read; each names the subgraph and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("subgraph `{subgraph}`: cannot reach {url}: {reason}; is it running? (or give it an `sdl` file)")]
    Unreachable { subgraph: String, url: String, reason: &'static str },
    #[error("subgraph `{subgraph}`: {url} answered HTTP {status} to `{{ _service {{ sdl }} }}`")]
    Status { subgraph: String, url: String, status: u16 },
    #[error("subgraph `{subgraph}`: {url} sent more than {limit} bytes for its SDL (max_response_bytes)")]
    TooLarge { subgraph: String, url: String, limit: usize },
    #[error("subgraph `{subgraph}`: {url} did not answer `{{ _service {{ sdl }} }}` with an SDL{detail}; is it a Federation subgraph?")]
    NoSdl { subgraph: String, url: String, detail: String },
}

#[derive(Deserialize)]
struct Response {
    data: Option<Data>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "_service")]
    service: Option<Service>,
}

#[derive(Deserialize)]
struct Service {
    sdl: Option<String>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
}

/// Asks `url` for its SDL, waiting at most `timeout` and reading at most `limit` bytes.
pub async fn service_sdl(subgraph: &str, url: &str, timeout: Duration, limit: usize) -> Result<String, FetchError> {
    let unreachable = |reason| FetchError::Unreachable { subgraph: subgraph.to_owned(), url: url.to_owned(), reason };
    let client = reqwest::Client::builder().timeout(timeout).build().map_err(|_| unreachable("no HTTP client"))?;
    let request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(r#"{"query":"{ _service { sdl } }"}"#);
    let mut response = request.send().await.map_err(|error| unreachable(reason(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status { subgraph: subgraph.to_owned(), url: url.to_owned(), status: status.as_u16() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| unreachable(reason(&error)))? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { subgraph: subgraph.to_owned(), url: url.to_owned(), limit });
        }
        body.extend_from_slice(&chunk);
    }
    let no_sdl = |detail: String| FetchError::NoSdl { subgraph: subgraph.to_owned(), url: url.to_owned(), detail };
    let response: Response =
        serde_json::from_slice(&body).map_err(|_| no_sdl(" (the body is not GraphQL JSON)".to_owned()))?;
    match response.data.and_then(|data| data.service).and_then(|service| service.sdl) {
        Some(sdl) => Ok(sdl),
        None => Err(no_sdl(match response.errors.first() {
            Some(error) => format!(" (it answered: {})", error.message.chars().take(200).collect::<String>()),
            None => String::new(),
        })),
    }
}

fn reason(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "it did not answer in time"
    } else if error.is_connect() {
        "the connection was refused or failed"
    } else if error.is_builder() {
        "the URL is not valid"
    } else {
        "the request failed"
    }
}
