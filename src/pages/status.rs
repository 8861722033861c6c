//! The dashboard's numbers: one task samples the hub once a second, keeps the last minutes of
//! samples for the charts, and hands each snapshot to every viewer's status stream. A sample
//! reads the hub's metrics as `/metrics` does, from one gathered list, so the page and a scrape
//! never disagree. Viewers cost one serialization per second each.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use subhub_subscriptions::{Reading, SourceRef};
use tokio::sync::watch;

use crate::auth::Identity;
use crate::authz::Action;
use crate::hub::Hub;

/// How often the hub is sampled.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Samples kept for the charts: the last five minutes.
const HISTORY: usize = 300;
/// Sources listed at most, busiest first; the rest are only counted.
const SOURCES_LISTED: usize = 50;

/// The families a sample reads.
const CONNECTIONS: &str = "subhub_connections";
const SUBSCRIPTIONS: &str = "subhub_subscriptions";
const EXECUTIONS: &str = "subhub_executions";
const QUEUED: &str = "subhub_queued_messages";
const SOURCES_OPEN: &str = "subhub_sources_open";
const EVENTS: &str = "subhub_events_received_total";
const DELIVERIES: &str = "subhub_deliveries_total";
const DROPPED: &str = "subhub_dropped_total";
const REFUSED: &str = "subhub_refused_total";
const SLOW_CONSUMER_CLOSES: &str = "subhub_slow_consumer_closes_total";
const STALLED_CLOSES: &str = "subhub_stalled_closes_total";
const BROKER_CONNECTED: &str = "subhub_broker_connected";
const BROKER_SUBSCRIPTIONS: &str = "subhub_broker_subscriptions";
const UPSTREAM_REACHABLE: &str = "subhub_upstream_reachable";
const UPSTREAM_CONNECTIONS: &str = "subhub_upstream_connections";
#[cfg(test)]
const READ: [&str; 15] = [
    CONNECTIONS,
    SUBSCRIPTIONS,
    EXECUTIONS,
    QUEUED,
    SOURCES_OPEN,
    EVENTS,
    DELIVERIES,
    DROPPED,
    REFUSED,
    SLOW_CONSUMER_CLOSES,
    STALLED_CLOSES,
    BROKER_CONNECTED,
    BROKER_SUBSCRIPTIONS,
    UPSTREAM_REACHABLE,
    UPSTREAM_CONNECTIONS,
];

/// The sampler's output, shared by the hub and every viewer.
pub struct Status {
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    history: Mutex<VecDeque<Sample>>,
}

/// One point of the charts.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: u64,
    pub connections: i64,
    pub subscriptions: i64,
    pub executions: i64,
    pub sources: i64,
    /// Per second over the last period.
    pub events: f64,
    pub deliveries: f64,
    pub dropped: f64,
}

/// Everything the dashboard shows, at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub sample: Sample,
    pub connections: BTreeMap<String, i64>,
    pub queued: i64,
    pub totals: Totals,
    pub brokers: Vec<BrokerView>,
    pub upstreams: Vec<UpstreamView>,
    /// The busiest sources; each viewer sees those it may subscribe to.
    pub sources: Vec<SourceView>,
    /// Sources open but not listed (beyond the busiest, or not the viewer's to see).
    pub sources_unlisted: usize,
    pub hub: HubView,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub events: u64,
    pub deliveries: u64,
    pub dropped: BTreeMap<String, u64>,
    pub refused: BTreeMap<String, u64>,
    pub slow_consumer_closes: u64,
    pub stalled_closes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerView {
    pub name: String,
    pub kind: String,
    pub connected: bool,
    pub sources: i64,
    pub broker_subscriptions: i64,
    pub events: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UpstreamView {
    pub name: String,
    pub healthy: bool,
    pub connections: i64,
    pub sources: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceView {
    pub kind: &'static str,
    pub origin: Arc<str>,
    pub topic: Arc<str>,
    pub executions: usize,
    pub subscribers: usize,
}

/// What the page needs to know of the hub's setup.
#[derive(Clone, Debug, Serialize)]
pub struct HubView {
    pub version: &'static str,
    pub default_broker: String,
    /// The built-in `events` subscription is served (the live tail uses it).
    pub generic_api: bool,
    /// `[auth]` is configured, and how a browser can present its token on a stream.
    pub auth: bool,
    pub token_query: Option<String>,
    pub token_cookie: Option<String>,
}

impl Status {
    pub fn new() -> Arc<Self> {
        Arc::new(Status { latest: watch::Sender::new(None), history: Mutex::new(VecDeque::with_capacity(HISTORY)) })
    }

    /// The samples of the last minutes, oldest first.
    pub fn history(&self) -> Vec<Sample> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Snapshots as they are taken.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.latest.subscribe()
    }
}

impl Snapshot {
    /// The snapshot as one viewer may see it: a broker's topic only where `[authz]` lets the
    /// viewer subscribe to it; no source at all for a viewer `[auth]` refused (`None`).
    pub fn for_viewer(&self, hub: &Hub, viewer: Option<&Identity>) -> Snapshot {
        let mut seen = self.clone();
        match viewer {
            None => seen.sources.clear(),
            Some(identity) => seen.sources.retain(|source| match source.kind {
                "broker" => hub.brokers.get(Some(&source.origin)).is_ok_and(|broker| {
                    hub.access.allows(Action::Subscribe, broker.as_ref(), &source.topic, &identity.claims)
                }),
                _ => true,
            }),
        }
        seen.sources_unlisted += self.sources.len() - seen.sources.len();
        seen
    }
}

/// Samples the hub every [`PERIOD`] until it shuts down or is gone.
pub async fn sample(hub: Weak<Hub>, status: Arc<Status>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<(tokio::time::Instant, Counters)> = None;
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        if hub.shutdown.is_cancelled() {
            return;
        }
        let now = tokio::time::Instant::now();
        let reading = hub.metrics.gather();
        let counters = Counters::read(&reading);
        let rates = previous.as_ref().map(|(then, before)| {
            let seconds = now.duration_since(*then).as_secs_f64().max(f64::EPSILON);
            let rate = |after: u64, before: u64| after.saturating_sub(before) as f64 / seconds;
            (
                rate(counters.events, before.events),
                rate(counters.deliveries, before.deliveries),
                rate(counters.dropped, before.dropped),
            )
        });
        let (events, deliveries, dropped) = rates.unwrap_or_default();
        let sample = Sample {
            t: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            connections: reading.sum(CONNECTIONS) as i64,
            subscriptions: reading.sum(SUBSCRIPTIONS) as i64,
            executions: reading.sum(EXECUTIONS) as i64,
            sources: reading.sum(SOURCES_OPEN) as i64,
            events,
            deliveries,
            dropped,
        };
        {
            let mut history = status.history.lock().unwrap_or_else(PoisonError::into_inner);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(sample.clone());
        }
        if status.latest.receiver_count() > 0 {
            status.latest.send_replace(Some(Arc::new(snapshot(&hub, sample, &reading, &counters))));
        }
        previous = Some((now, counters));
    }
}

/// The counters the charts show as rates.
struct Counters {
    events: u64,
    deliveries: u64,
    dropped: u64,
}

impl Counters {
    fn read(reading: &Reading) -> Self {
        Counters {
            events: reading.sum(EVENTS) as u64,
            deliveries: reading.sum(DELIVERIES) as u64,
            dropped: reading.sum(DROPPED) as u64,
        }
    }
}

fn snapshot(hub: &Hub, sample: Sample, reading: &Reading, counters: &Counters) -> Snapshot {
    let whole = |by: BTreeMap<String, f64>| by.into_iter().map(|(label, n)| (label, n as u64)).collect();
    let totals = Totals {
        events: counters.events,
        deliveries: counters.deliveries,
        dropped: whole(reading.by(DROPPED, "reason")),
        refused: whole(reading.by(REFUSED, "reason")),
        slow_consumer_closes: reading.sum(SLOW_CONSUMER_CLOSES) as u64,
        stalled_closes: reading.sum(STALLED_CLOSES) as u64,
    };
    let brokers = reading
        .by(BROKER_CONNECTED, "broker")
        .into_iter()
        .map(|(name, connected)| BrokerView {
            kind: reading.label_where(SOURCES_OPEN, "broker", &name, "kind").unwrap_or_default().to_owned(),
            connected: connected > 0.0,
            sources: reading.sum_where(SOURCES_OPEN, "broker", &name) as i64,
            broker_subscriptions: reading.sum_where(BROKER_SUBSCRIPTIONS, "broker", &name) as i64,
            events: reading.sum_where(EVENTS, "broker", &name) as u64,
            name,
        })
        .collect();
    let upstreams = reading
        .by(UPSTREAM_REACHABLE, "upstream")
        .into_iter()
        .map(|(name, reachable)| UpstreamView {
            healthy: reachable > 0.0,
            connections: reading.sum_where(UPSTREAM_CONNECTIONS, "upstream", &name) as i64,
            sources: reading.sum_where(SOURCES_OPEN, "upstream", &name) as i64,
            name,
        })
        .collect();
    // Subscribers of a source: those of every execution that listens to it.
    let mut by_source: HashMap<SourceRef, (usize, usize)> = HashMap::new();
    for view in hub.executions.views() {
        for source in view.sources.iter() {
            let counts = by_source.entry(source.clone()).or_default();
            counts.0 += 1;
            counts.1 += view.subscribers;
        }
    }
    let mut sources: Vec<SourceView> = by_source
        .into_iter()
        .map(|(source, (executions, subscribers))| SourceView {
            kind: source.kind,
            origin: source.origin,
            topic: source.topic,
            executions,
            subscribers,
        })
        .collect();
    sources.sort_by(|a, b| {
        b.subscribers.cmp(&a.subscribers).then_with(|| (&a.origin, &a.topic).cmp(&(&b.origin, &b.topic)))
    });
    let sources_unlisted = sources.len().saturating_sub(SOURCES_LISTED);
    sources.truncate(SOURCES_LISTED);
    let auth = hub.config.auth.as_ref();
    Snapshot {
        sample,
        connections: reading.by(CONNECTIONS, "transport").into_iter().map(|(t, n)| (t, n as i64)).collect(),
        queued: reading.sum(QUEUED) as i64,
        totals,
        brokers,
        upstreams,
        sources,
        sources_unlisted,
        hub: HubView {
            version: env!("CARGO_PKG_VERSION"),
            default_broker: hub.config.default_broker.clone(),
            generic_api: hub.config.generic_api,
            auth: auth.is_some(),
            token_query: auth.and_then(|a| a.token_query.clone()),
            token_cookie: auth.and_then(|a| a.token_cookie.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_a_sample_reads_is_one_the_hub_exports() {
        let metrics = subhub_subscriptions::Metrics::new();
        for name in READ {
            assert!(metrics.declared().iter().any(|family| family.name == name), "{name} is not exported");
        }
    }
}
