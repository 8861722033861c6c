//! Broker topics in the registry, on the embedded memory broker: the registry's rules hold for
//! real sources. Timings on tokio's paused clock, so that they are exact; races on a
//! multi-threaded runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use subhub_brokers::memory::MemoryConfig;
use subhub_brokers::{BrokerConfig, Brokers, Publish};
use subhub_subscriptions::{Metrics, SourceLimits, Sources};

async fn sources(limits: SourceLimits) -> Arc<Sources> {
    sources_counted(limits, Arc::new(Metrics::default())).await
}

async fn sources_counted(limits: SourceLimits, metrics: Arc<Metrics>) -> Arc<Sources> {
    let configs = BTreeMap::from([("local".to_owned(), BrokerConfig::Memory(MemoryConfig::default()))]);
    let brokers = Arc::new(Brokers::build(&configs, "local", &Default::default()).await.expect("memory broker"));
    Sources::new(brokers, limits, metrics)
}

fn open_on_broker(sources: &Sources) -> i64 {
    let broker = sources.brokers().get(None).expect("local");
    broker.stats().sources_open.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn a_source_left_rejoined_and_left_again_lingers_from_the_second_leave() {
    let sources = sources(SourceLimits { linger: Duration::from_secs(1), ..SourceLimits::default() }).await;
    drop(sources.acquire(None, "t").await.expect("acquire"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(sources.acquire(None, "t").await.expect("rejoin"));
    // The first leave's linger is over; the second's has 400 ms to go.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!((sources.len(), open_on_broker(&sources)), (1, 1), "closed 400 ms early");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((sources.len(), open_on_broker(&sources)), (0, 0));
}

#[tokio::test]
async fn events_reach_every_lease_of_one_source_and_closing_counts_down() {
    let sources = sources(SourceLimits::default()).await;
    let mut leases = Vec::new();
    for _ in 0..10 {
        leases.push(sources.acquire(None, "prices").await.expect("acquire"));
    }
    assert_eq!((sources.len(), open_on_broker(&sources)), (1, 1));
    let broker = sources.brokers().get(None).expect("local").clone();
    let message = Publish { topic: "prices".into(), key: None, body: bytes::Bytes::from_static(b"{\"n\":1}") };
    broker.publish(message).await.expect("publish");
    for lease in &mut leases {
        let event = lease.recv().await.expect("an event");
        assert_eq!(event.payload_json(), "{\"n\":1}");
    }
    drop(leases);
    assert_eq!((sources.len(), open_on_broker(&sources)), (0, 0));
}

/// Many tasks join and leave one topic (no linger, so the source closes whenever nobody holds
/// it) and check, every other time they join, that their lease delivers: a publish made while
/// the lease is held reaches it. A lease that joins a source in the instant its last lease left
/// must get either the old source, still open, or a new one, never one that closes under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_lease_of_a_source_joined_and_left_by_many_delivers() {
    use futures_util::FutureExt;
    use std::sync::atomic::Ordering::SeqCst;

    const TASKS: usize = 4;
    const JOINS: usize = 50_000;
    /// Joins between two checks: the joins in between leave at once, which is when they race.
    const CHECK_EVERY: usize = 2;
    let metrics = Arc::new(Metrics::default());
    let sources = sources_counted(SourceLimits::default(), metrics.clone()).await;
    let broker = sources.brokers().get(None).expect("local").clone();
    let churn: Vec<_> = (0..TASKS)
        .map(|task| {
            let (sources, broker, metrics) = (sources.clone(), broker.clone(), metrics.clone());
            tokio::spawn(async move {
                let mut dead = 0;
                for join in 0..JOINS {
                    let lagged_before = metrics.dropped_lagged.load(SeqCst);
                    let mut lease = sources.acquire(None, "churn").await.expect("acquire");
                    if join % CHECK_EVERY != 0 {
                        continue;
                    }
                    let body = format!("{{\"task\":{task},\"join\":{join}}}");
                    let message = Publish { topic: "churn".into(), key: None, body: bytes::Bytes::from(body.clone()) };
                    broker.publish(message).await.expect("publish");
                    // The memory broker has delivered to the source before `publish` returns:
                    // the event is in the lease's buffer now, or the lease is on a source that
                    // closed. (Unconstrained: tokio's task budget could make a ready receiver
                    // say pending.)
                    let received = loop {
                        match tokio::task::unconstrained(lease.recv()).now_or_never() {
                            Some(Some(event)) if event.payload_json() == body => break true,
                            Some(Some(_)) => continue,
                            Some(None) | None => break false,
                        }
                    };
                    // A lease that fell a whole buffer behind (its task descheduled while the
                    // others ran on) may have lost its own event: that proves nothing.
                    if !received && metrics.dropped_lagged.load(SeqCst) == lagged_before {
                        dead += 1;
                    }
                }
                dead
            })
        })
        .collect();
    let mut dead = 0;
    for task in churn {
        dead += task.await.expect("join");
    }
    let checked = TASKS * JOINS / CHECK_EVERY;
    assert_eq!(dead, 0, "{dead} of {checked} leases never received what was published while they were held");
    assert_eq!((sources.len(), open_on_broker(&sources)), (0, 0), "the source closed with its last lease");
}
