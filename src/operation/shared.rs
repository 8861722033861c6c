//! A subscription on the hub's sources, run once for every subscriber of its key.
//!
//! async-graphql parses and validates the operation and runs its root field's resolver, which
//! renders the field's topics from its arguments, checks them and opens their sources, then
//! hands the sources over through a [`SubscribedSlot`] in the session data. From there every
//! event is filtered and written here, once, by the execution plan of the operation's selection
//! (`crate::execute`); async-graphql's stream is dropped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Data, Request};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::StreamExt;
use subhub_brokers::{Event, History};
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{ExecutionItem, ExecutionStream, SharedPayload, SourceLease, SourceRef};
use tokio::sync::oneshot;

use super::{errors_json, failed_before_execution};
use crate::auth::Identity;
use crate::documents::Document;
use crate::execute::{self, Plan};
use crate::hub::Hub;
use crate::schema::typed::filter::Filter;

/// What a subscription field's resolver hands the execution: its sources, live, and the
/// filters its events must pass.
pub struct Subscribed {
    pub leases: Vec<SourceLease>,
    pub filters: Vec<Filter>,
}

/// Put into a shared execution's session data; the subscription field's resolver delivers its
/// sources into it.
#[derive(Clone)]
pub struct SubscribedSlot(Arc<Mutex<Option<oneshot::Sender<Subscribed>>>>);

impl SubscribedSlot {
    fn new() -> (Self, oneshot::Receiver<Subscribed>) {
        let (sender, receiver) = oneshot::channel();
        (SubscribedSlot(Arc::new(Mutex::new(Some(sender)))), receiver)
    }

    /// Hands the sources over; false when the execution is gone (or they were handed already).
    pub fn deliver(&self, subscribed: Subscribed) -> bool {
        let sender = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        sender.is_some_and(|sender| sender.send(subscribed).is_ok())
    }
}

type Events = SelectAll<BoxStream<'static, Arc<Event>>>;

/// An execution whose sources are open: what it reads, how it filters and what it writes.
struct Started {
    leases: Vec<SourceLease>,
    filters: Vec<Filter>,
    plan: Plan,
}

/// Validates and resolves the operation: async-graphql runs the subscription field's resolver,
/// which opens the sources and hands them over; then the selection is compiled. `Err(None)`:
/// it ended without a word.
async fn start(
    hub: &Arc<Hub>,
    request: Request,
    document: &Document,
    payload: &OperationPayload,
    identity: Identity,
) -> Result<Started, Option<ExecutionItem>> {
    let (slot, subscribed) = SubscribedSlot::new();
    let mut data = Data::default();
    data.insert(slot);
    data.insert(identity);
    let mut responses = hub.schema.execute_stream_with_session_data(request, Arc::new(data));
    let started = tokio::select! {
        biased;
        subscribed = subscribed => subscribed.ok(),
        response = responses.next() => {
            // The resolver never yields: a response is an error, or the end.
            return Err(match response {
                Some(response) if failed_before_execution(&response) => {
                    Some(ExecutionItem::Error(errors_json(&response.errors).into()))
                }
                Some(_) => Some(ExecutionItem::Error(super::internal_error_json().into())),
                None => None,
            });
        }
    };
    drop(responses);
    let Subscribed { leases, filters } = started.ok_or(None)?;
    let plan = execute::compile(
        &hub.exec_model,
        &document.parsed,
        payload.operation_name.as_deref(),
        payload.variables.as_ref(),
    );
    match plan {
        Ok(plan) => Ok(Started { leases, filters, plan }),
        Err(error) => {
            tracing::error!(%error, "a validated subscription could not be planned");
            Err(Some(ExecutionItem::Error(super::internal_error_json().into())))
        }
    }
}

/// What a live execution holds between events.
type LiveExecution = (Events, Plan, Vec<Filter>, Arc<Hub>);

/// The results of a shared execution, each serialized once: `Live` once its sources are live,
/// then one `Next` per event. An operation that fails before its first result (validation, an
/// unknown broker or topic) ends with `error`.
pub fn shared_results(
    hub: &Arc<Hub>,
    request: Request,
    document: Arc<Document>,
    payload: OperationPayload,
    identity: Identity,
) -> ExecutionStream {
    let hub = hub.clone();
    let opening = async move {
        match start(&hub, request, &document, &payload, identity).await {
            Ok(Started { leases, filters, plan }) => {
                let sources = leases
                    .iter()
                    .map(|lease| SourceRef {
                        kind: "broker",
                        origin: lease.broker().into(),
                        topic: lease.topic().into(),
                    })
                    .collect();
                let events = futures_util::stream::select_all(leases.into_iter().map(events));
                let running: LiveExecution = (events, plan, filters, hub);
                Some((ExecutionItem::Live(sources), Some(running)))
            }
            Err(item) => item.map(|item| (item, None)),
        }
    };
    futures_util::stream::once(opening)
        .flat_map(|opened| {
            let Some((first, running)) = opened else { return futures_util::stream::empty().boxed() };
            let results = futures_util::stream::unfold(running, |running| async move {
                let (mut events, plan, filters, hub) = running?;
                let event = loop {
                    let event = events.next().await?;
                    if passes(&filters, &event, &hub) {
                        break event;
                    }
                };
                let output = execute::write(&plan, &event);
                if output.errors > 0 {
                    hub.metrics.event_errors.fetch_add(1, Relaxed);
                }
                Some((ExecutionItem::Next(result(output.json, &event)), Some((events, plan, filters, hub))))
            });
            futures_util::stream::once(async move { first }).chain(results).boxed()
        })
        .boxed()
}

/// One step of a replay.
pub enum Replayed {
    /// A result of an event from the broker's history.
    Next(SharedPayload),
    /// The broker no longer holds the cursor, or keeps no history: the client must reload.
    Lost,
}

/// Events after `cursor` from the broker's history, through the same sources, filters and
/// selection as the live execution, for one resumed client. Read a page at a time, and at most
/// `limits.max_replay` events; a replay that needs more is lost.
pub fn replay_results(
    hub: &Arc<Hub>,
    request: Request,
    document: Arc<Document>,
    payload: OperationPayload,
    identity: Identity,
    cursor: String,
) -> BoxStream<'static, Replayed> {
    /// Events read from the broker at a time.
    const PAGE: usize = 256;
    let hub = hub.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    tokio::spawn(async move {
        let Ok(Started { leases, filters, plan }) = start(&hub, request, &document, &payload, identity).await else {
            return;
        };
        // A cursor is one source's position.
        let [lease] = leases.as_slice() else {
            let _ = tx.send(Replayed::Lost).await;
            return;
        };
        let Ok(broker) = hub.brokers.get(Some(lease.broker())) else { return };
        let (mut after, mut replayed) = (cursor, 0);
        loop {
            let page = match broker.history(lease.topic(), &after, PAGE).await {
                Ok(History::Events(page)) => page,
                Ok(History::Lost | History::Unsupported) | Err(_) => {
                    let _ = tx.send(Replayed::Lost).await;
                    return;
                }
            };
            if page.is_empty() {
                return;
            }
            replayed += page.len();
            if replayed > hub.config.limits.max_replay {
                let _ = tx.send(Replayed::Lost).await;
                return;
            }
            for event in page {
                if let Some(cursor) = &event.cursor {
                    after.clone_from(cursor);
                }
                if passes(&filters, &event, &hub) {
                    let output = execute::write(&plan, &event);
                    if tx.send(Replayed::Next(result(output.json, &event))).await.is_err() {
                        return;
                    }
                }
            }
            // Live delivery goes first between pages.
            tokio::task::yield_now().await;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Whether an event passes every filter: tested once per event for the whole execution.
fn passes(filters: &[Filter], event: &Event, hub: &Hub) -> bool {
    if filters.is_empty() {
        return true;
    }
    let payload = serde_json::from_str::<&serde_json::value::RawValue>(event.payload_json()).ok();
    let passed = filters.iter().all(|filter| filter.passes(payload));
    let counter = if passed { &hub.metrics.filter_passed } else { &hub.metrics.filter_dropped };
    counter.fetch_add(1, Relaxed);
    passed
}

/// A lease's events as a stream, ending with its source.
fn events(lease: SourceLease) -> BoxStream<'static, Arc<Event>> {
    futures_util::stream::unfold(lease, |mut lease| async move {
        let event = lease.recv().await?;
        Some((event, lease))
    })
    .boxed()
}

/// An event's result, shared: with `extensions.cursor` where the event can be resumed from
/// (DESIGN §12), so a client that reconnects says where it stopped.
fn result(mut json: String, event: &Event) -> SharedPayload {
    if let Some(cursor) = &event.cursor {
        if json.ends_with('}') {
            json.pop();
            json.push_str(r#","extensions":{"cursor":"#);
            json.push_str(&serde_json::Value::String(cursor.clone()).to_string());
            json.push_str("}}");
        }
    }
    SharedPayload::of_event(json, event.cursor.as_deref(), event.id.as_deref())
}
