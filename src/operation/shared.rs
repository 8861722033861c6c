//! A subscription on the hub's sources, run once for every subscriber of its key.
//!
//! async-graphql parses and validates the operation and runs its root field's resolver, which
//! renders the field's topics from its arguments, checks them and opens their sources, then
//! hands the sources over through a [`SubscribedSlot`] in the session data. From there every
//! event is filtered and written here, once, by the execution plan of the operation's selection
//! (`crate::execute`); async-graphql's stream is dropped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Data, Request, Response};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::StreamExt;
use subhub_brokers::Event;
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

enum State {
    /// Validating and resolving: async-graphql's stream, until the resolver hands sources over.
    Starting { responses: BoxStream<'static, Response>, subscribed: oneshot::Receiver<Subscribed>, compile: Compile },
    /// Writing each event of the sources.
    Running { events: Events, plan: Plan, filters: Vec<Filter>, hub: Arc<Hub> },
}

/// What compiling the plan needs once the sources are open.
struct Compile {
    hub: Arc<Hub>,
    document: Arc<Document>,
    payload: OperationPayload,
}

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
    let (slot, subscribed) = SubscribedSlot::new();
    let mut data = Data::default();
    data.insert(slot);
    data.insert(identity);
    let responses = hub.schema.execute_stream_with_session_data(request, Arc::new(data));
    let compile = Compile { hub: hub.clone(), document, payload };
    let state = State::Starting { responses, subscribed, compile };
    futures_util::stream::unfold(Some(state), |state| async move {
        match state? {
            State::Starting { mut responses, subscribed, compile } => {
                let started = tokio::select! {
                    biased;
                    subscribed = subscribed => subscribed.ok(),
                    response = responses.next() => {
                        // The resolver never yields: a response is an error, or the end.
                        let item = match response {
                            Some(response) if failed_before_execution(&response) => {
                                ExecutionItem::Error(errors_json(&response.errors).into())
                            }
                            Some(_) => ExecutionItem::Error(super::internal_error_json().into()),
                            None => return None,
                        };
                        return Some((item, None));
                    }
                };
                drop(responses);
                let Subscribed { leases, filters } = started?;
                let Compile { hub, document, payload } = compile;
                let plan = execute::compile(
                    &hub.exec_model,
                    &document.parsed,
                    payload.operation_name.as_deref(),
                    payload.variables.as_ref(),
                );
                match plan {
                    Ok(plan) => {
                        let sources = leases
                            .iter()
                            .map(|lease| SourceRef {
                                kind: "broker",
                                origin: lease.broker().into(),
                                topic: lease.topic().into(),
                            })
                            .collect();
                        let events = futures_util::stream::select_all(leases.into_iter().map(events));
                        Some((ExecutionItem::Live(sources), Some(State::Running { events, plan, filters, hub })))
                    }
                    Err(error) => {
                        tracing::error!(%error, "a validated subscription could not be planned");
                        Some((ExecutionItem::Error(super::internal_error_json().into()), None))
                    }
                }
            }
            State::Running { mut events, plan, filters, hub } => {
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
                let payload = result(output.json, &event);
                Some((ExecutionItem::Next(payload), Some(State::Running { events, plan, filters, hub })))
            }
        }
    })
    .boxed()
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
