//! A subscription forwarded to an upstream server: validated against the hub's schema, sent
//! with the namespace removed, its results passed through.

use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::Request;
use futures_util::StreamExt;
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{
    Arrival, ExecutionItem, ExecutionStream, ForwardedKey, ForwardedRefusal, ForwardedSources, Metrics, SharedPayload,
    SourceRef,
};
use subhub_upstream_ws::rewrite::forward;
use subhub_upstream_ws::Item;

use super::{errors_json, internal_error_json};
use crate::schema::upstream::FORWARD;
use crate::upstreams::UpstreamEntry;

/// An upstream subscription: validated once against the hub's schema, forwarded with the
/// namespace removed, and its results passed through (each serialized once, `__typename`
/// mapped back; each timed from when the execution takes it in to its last subscriber). The
/// upstream's `error` and `complete` end it for every subscriber.
pub fn upstream_results(
    schema: &Schema,
    request: Request,
    entry: Arc<UpstreamEntry>,
    init_payload: Option<serde_json::Map<String, serde_json::Value>>,
    payload: OperationPayload,
    sources: Arc<ForwardedSources>,
    metrics: Arc<Metrics>,
) -> ExecutionStream {
    let validation = schema.execute_stream(request);
    let starting = entry.clone();
    let start = async move {
        let entry = starting;
        let error = |ForwardedRefusal { message, code }: ForwardedRefusal| {
            let errors = match code {
                Some(code) => serde_json::json!([{ "message": message, "extensions": { "code": code } }]),
                None => serde_json::json!([{ "message": message }]),
            };
            ExecutionItem::Error(errors.to_string().into())
        };
        let mut validation = validation;
        let verdict = validation.next().await;
        let valid = verdict.as_ref().is_some_and(|r| r.errors.len() == 1 && r.errors[0].message == FORWARD);
        if !valid {
            let errors = verdict.map_or_else(internal_error_json, |r| errors_json(&r.errors));
            return Err(ExecutionItem::Error(errors.into()));
        }
        let forwarded = forward(&entry.namespace, &entry.root_fields, &payload)
            .map_err(|message| error(ForwardedRefusal { message, code: None }))?;
        let key = ForwardedKey::new(&entry.name, init_payload, forwarded.operation.clone());
        let lease = sources.acquire(key).await.map_err(error)?;
        Ok((lease, forwarded))
    };
    let live = futures_util::stream::once(start).flat_map(move |started| match started {
        Err(item) => futures_util::stream::iter(vec![item]).boxed(),
        Ok((lease, forwarded)) => {
            let source = SourceRef {
                kind: "upstream",
                origin: entry.name.as_str().into(),
                topic: operation_label(&forwarded.operation).into(),
            };
            let (entry, metrics) = (entry.clone(), metrics.clone());
            let results = futures_util::stream::unfold(Some((lease, forwarded)), move |state| {
                let (entry, metrics) = (entry.clone(), metrics.clone());
                async move {
                    let (mut lease, forwarded) = state?;
                    let item = lease.recv().await?;
                    match &*item {
                        Item::Next(result) => {
                            let delivery = metrics.delivery(Arrival::now());
                            let mut result = result.clone();
                            forwarded.map_result(&entry.namespace, &mut result);
                            let result = SharedPayload::of_timed_event(result.to_string(), None, None, Some(delivery));
                            Some((ExecutionItem::Next(result), Some((lease, forwarded))))
                        }
                        Item::Error(errors) => Some((ExecutionItem::Error(errors.to_string().into()), None)),
                        Item::Complete => None,
                    }
                }
            });
            futures_util::stream::once(async move { ExecutionItem::Live(Arc::from([source])) }).chain(results).boxed()
        }
    });
    live.boxed()
}

/// The forwarded operation as the dashboard names it: its text on one line, cut short.
fn operation_label(operation: &OperationPayload) -> String {
    const MOST: usize = 80;
    let text = operation.query.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MOST) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
