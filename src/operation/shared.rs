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
use subhub_subscriptions::{Arrival, ExecutionItem, ExecutionStream, SharedPayload, SourceLease, SourceRef};
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
                let delivery = hub.metrics.delivery(Arrival::of(&event));
                let next = ExecutionItem::Next(result(output.json, &event, Some(delivery)));
                Some((next, Some((events, plan, filters, hub))))
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
///
/// Nothing runs until the stream is polled, and then only as far as it is read: the replay's
/// execution, its history reads (a JetStream consumer each) and its page of events exist only
/// while the client's turn among `limits.max_replays` is held (`resume::run`).
pub fn replay_results(
    hub: &Arc<Hub>,
    request: Request,
    document: Arc<Document>,
    payload: OperationPayload,
    identity: Identity,
    cursor: String,
) -> BoxStream<'static, Replayed> {
    let hub = hub.clone();
    let opening = async move {
        let Started { leases, filters, plan } = start(&hub, request, &document, &payload, identity).await.ok()?;
        Some(Replay {
            hub,
            leases,
            filters,
            plan,
            after: cursor,
            replayed: 0,
            page: Vec::new().into_iter(),
            over: false,
        })
    };
    futures_util::stream::once(opening)
        .filter_map(std::future::ready)
        .flat_map(|replay| {
            futures_util::stream::unfold(replay, |mut replay| async move {
                let step = replay.next().await?;
                Some((step, replay))
            })
        })
        .boxed()
}

/// A replay under way: the sources it reads through, where it is in the broker's history, and
/// the page read last.
struct Replay {
    hub: Arc<Hub>,
    leases: Vec<SourceLease>,
    filters: Vec<Filter>,
    plan: Plan,
    /// The cursor of the last event read.
    after: String,
    replayed: usize,
    page: std::vec::IntoIter<Event>,
    over: bool,
}

impl Replay {
    /// Events read from the broker at a time.
    const PAGE: usize = 256;

    async fn next(&mut self) -> Option<Replayed> {
        loop {
            if let Some(event) = self.page.next() {
                if let Some(cursor) = &event.cursor {
                    self.after.clone_from(cursor);
                }
                if passes(&self.filters, &event, &self.hub) {
                    let output = execute::write(&self.plan, &event);
                    return Some(Replayed::Next(result(output.json, &event, None)));
                }
                continue;
            }
            if self.over {
                return None;
            }
            match self.read_page().await {
                Some(Ok(page)) => self.page = page.into_iter(),
                Some(Err(lost)) => {
                    self.over = true;
                    return Some(lost);
                }
                None => {
                    self.over = true;
                    return None;
                }
            }
        }
    }

    /// The next page of the history: `None` once nothing follows, `Err` when the client must
    /// reload instead.
    async fn read_page(&mut self) -> Option<Result<Vec<Event>, Replayed>> {
        // A cursor is one source's position.
        let [lease] = self.leases.as_slice() else { return Some(Err(Replayed::Lost)) };
        let broker = self.hub.brokers.get(Some(lease.broker())).ok()?.clone();
        if self.replayed > 0 {
            // Live delivery goes first between pages.
            tokio::task::yield_now().await;
        }
        let page = match broker.history(lease.topic(), &self.after, Self::PAGE).await {
            Ok(History::Events(page)) => page,
            Ok(History::Lost | History::Unsupported) | Err(_) => return Some(Err(Replayed::Lost)),
        };
        if page.is_empty() {
            return None;
        }
        self.replayed += page.len();
        if self.replayed > self.hub.config.limits.max_replay {
            return Some(Err(Replayed::Lost));
        }
        Some(Ok(page))
    }
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
/// (DESIGN §12), so a client that reconnects says where it stopped; a live one timed to its
/// last subscriber.
fn result(mut json: String, event: &Event, delivery: Option<subhub_subscriptions::Delivery>) -> SharedPayload {
    if let Some(cursor) = &event.cursor {
        if json.ends_with('}') {
            json.pop();
            json.push_str(r#","extensions":{"cursor":"#);
            json.push_str(&serde_json::Value::String(cursor.clone()).to_string());
            json.push_str("}}");
        }
    }
    SharedPayload::of_timed_event(json, event.cursor.as_deref(), event.id.as_deref(), delivery)
}
