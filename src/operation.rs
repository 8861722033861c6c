//! From a client's GraphQL request to results: which kind of operation it is, the key that
//! makes identical operations share one execution, and results turned into shared bytes.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::dynamic::Schema;
use async_graphql::{Data, Request, Response, ServerError, Value, Variables};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{ExecutionItem, ExecutionStream, Metrics, OperationKey};
use subhub_upstream_ws::rewrite::forward;
use subhub_upstream_ws::Item;

use crate::documents::Prepared;
use crate::schema::upstream::FORWARD;
use crate::upstreams::UpstreamEntry;
use tokio::sync::oneshot;

/// The request to execute, with the document parsed once already.
pub fn request(payload: &OperationPayload, prepared: &Prepared) -> Request {
    let mut request = Request::new(payload.query.clone());
    request.set_parsed_query(prepared.document.parsed.clone());
    if let Some(name) = &payload.operation_name {
        request = request.operation_name(name.clone());
    }
    if let Some(variables) = &payload.variables {
        request = request.variables(Variables::from_json(serde_json::Value::Object(variables.clone())));
    }
    request
}

/// The key of the shared execution: the same document, operation name, variables and auth
/// scope run once, whatever order the variables' keys came in.
pub fn key(payload: &OperationPayload, prepared: &Prepared, scope: &str) -> OperationKey {
    let mut variables = String::new();
    if let Some(vars) = &payload.variables {
        canonical_json(&serde_json::Value::Object(vars.clone()), &mut variables);
    }
    OperationKey {
        document: prepared.document.text.clone(),
        operation_name: payload.operation_name.clone(),
        variables,
        scope: scope.to_owned(),
    }
}

fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", serde_json::Value::String(k.clone()));
                canonical_json(v, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Put into a shared execution's session data: a subscription resolver marks it once its
/// sources are live, and the execution reports [`ExecutionItem::Live`].
#[derive(Clone)]
pub struct LiveSignal(Arc<Mutex<Option<oneshot::Sender<()>>>>);

impl LiveSignal {
    fn new() -> (Self, oneshot::Receiver<()>) {
        let (sender, receiver) = oneshot::channel();
        (LiveSignal(Arc::new(Mutex::new(Some(sender)))), receiver)
    }

    pub fn mark(&self) {
        let sender = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

struct SharedState {
    responses: BoxStream<'static, Response>,
    live: Option<oneshot::Receiver<()>>,
    first: bool,
}

/// The results of a shared execution, each serialized once: `Live` once its sources are live,
/// then one `Next` per event. An operation that fails before its first result (validation, an
/// unknown broker or topic) ends with `error`.
pub fn shared_results(schema: &Schema, request: Request) -> ExecutionStream {
    let (signal, live) = LiveSignal::new();
    let mut data = Data::default();
    data.insert(signal);
    let responses = schema.execute_stream_with_session_data(request, Arc::new(data));
    let state = SharedState { responses, live: Some(live), first: true };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let response = loop {
            let Some(live) = state.live.as_mut() else {
                break state.responses.next().await?;
            };
            tokio::select! {
                biased;
                signal = live => {
                    state.live = None;
                    if signal.is_ok() {
                        return Some((ExecutionItem::Live, Some(state)));
                    }
                }
                response = state.responses.next() => break response?,
            }
        };
        let item = item(response, state.first);
        state.first = false;
        let next = match item {
            ExecutionItem::Error(_) => None,
            _ => Some(state),
        };
        Some((item, next))
    })
    .boxed()
}

/// An upstream subscription: validated once against the hub's schema, forwarded with the
/// namespace removed, and its results passed through (each serialized once, `__typename`
/// mapped back). The upstream's `error` and `complete` end it for every subscriber.
pub fn upstream_results(
    schema: &Schema,
    request: Request,
    entry: Arc<UpstreamEntry>,
    init_payload: Option<serde_json::Map<String, serde_json::Value>>,
    payload: OperationPayload,
    metrics: Arc<Metrics>,
) -> ExecutionStream {
    let validation = schema.execute_stream(request);
    let starting = entry.clone();
    let start = async move {
        let entry = starting;
        let error =
            |message: String| ExecutionItem::Error(serde_json::json!([{ "message": message }]).to_string().into());
        let mut validation = validation;
        let verdict = validation.next().await;
        let valid = verdict.as_ref().is_some_and(|r| r.errors.len() == 1 && r.errors[0].message == FORWARD);
        if !valid {
            let errors = verdict.map_or_else(internal_error_json, |r| errors_json(&r.errors));
            return Err(ExecutionItem::Error(errors.into()));
        }
        let forwarded = forward(&entry.namespace, &entry.root_fields, &payload).map_err(error)?;
        let lease = entry.pool.subscribe(init_payload, &forwarded.operation).await.map_err(|e| error(e.to_string()))?;
        Ok((lease, forwarded))
    };
    let live = futures_util::stream::once(start).flat_map(move |started| match started {
        Err(item) => futures_util::stream::iter(vec![item]).boxed(),
        Ok((lease, forwarded)) => {
            let entry = entry.clone();
            let metrics = metrics.clone();
            let results = futures_util::stream::unfold(Some((lease, forwarded)), move |state| {
                let (entry, metrics) = (entry.clone(), metrics.clone());
                async move {
                    let (mut lease, forwarded) = state?;
                    let item = lease.recv(&metrics.dropped_lagged).await?;
                    match &*item {
                        Item::Next(result) => {
                            let mut result = result.clone();
                            forwarded.map_result(&entry.namespace, &mut result);
                            Some((ExecutionItem::Next(result.to_string().into()), Some((lease, forwarded))))
                        }
                        Item::Error(errors) => Some((ExecutionItem::Error(errors.to_string().into()), None)),
                        Item::Complete => None,
                    }
                }
            });
            futures_util::stream::once(async { ExecutionItem::Live }).chain(results).boxed()
        }
    });
    live.boxed()
}

/// Runs a query or mutation.
pub async fn single_result(schema: &Schema, request: Request) -> ExecutionItem {
    item(schema.execute(request).await, true)
}

fn item(response: Response, first: bool) -> ExecutionItem {
    if first && failed_before_execution(&response) {
        ExecutionItem::Error(errors_json(&response.errors).into())
    } else {
        ExecutionItem::Next(response_json(&response).into())
    }
}

/// No data at all, only errors: the request never produced a result.
pub fn failed_before_execution(response: &Response) -> bool {
    response.data == Value::Null && !response.errors.is_empty()
}

/// True when every error is a request error (parse, validation, variables): none has a path.
pub fn is_request_error(response: &Response) -> bool {
    failed_before_execution(response) && response.errors.iter().all(|e| e.path.is_empty())
}

pub fn response_json(response: &Response) -> String {
    serde_json::to_string(response).unwrap_or_else(|_| internal_error_json())
}

pub fn errors_json(errors: &[ServerError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| internal_error_json())
}

fn internal_error_json() -> String {
    r#"[{"message":"internal error"}]"#.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{CostLimits, Documents};

    fn payload(query: &str, variables: serde_json::Value) -> OperationPayload {
        OperationPayload { query: query.into(), variables: variables.as_object().cloned(), ..Default::default() }
    }

    #[test]
    fn keys_ignore_variable_order() {
        let documents = Documents::new(4, 1024, CostLimits { max_depth: 4, max_complexity: 10, max_aliases: 2 });
        let key = |payload: &OperationPayload| {
            let prepared = documents.prepare(&payload.query, None).expect("prepared");
            key(payload, &prepared, "")
        };
        let a = key(&payload("{ q }", serde_json::json!({"a": 1, "b": {"y": 2, "x": 1}})));
        let b = key(&payload("{ q }", serde_json::json!({"b": {"x": 1, "y": 2}, "a": 1})));
        assert_eq!(a, b);
        assert_ne!(a, key(&payload("{ q }", serde_json::json!({"a": 2}))));
    }
}
